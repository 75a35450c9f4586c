//! podtemplates: stored pod templates (kept by controllers such as the old deployment
//! tooling); validated like every embedded template, printed without an AGE column as
//! upstream prints them.

use apimachinery::field::{ErrorList, Path};
use k8s_openapi::api::core::v1::PodTemplate;
use serde_json::Value;

use crate::registry::core::{podspec, resourcelist};
use crate::registry::table::{Column, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct PodTemplateStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    Column::new(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    Column::new("Pod Labels", "string", "The labels for the pod template."),
];

impl TypedStrategy for PodTemplateStrategy {
    type Object = PodTemplate;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<PodTemplate>().tracks_generation()
    }

    fn default(&self, t: &mut PodTemplate) {
        podspec::default_pod_template_spec(t.template.get_or_insert_with(Default::default));
    }

    fn validate(&self, t: &PodTemplate) -> ErrorList {
        podspec::validate_pod_template_spec(
            &t.template.clone().unwrap_or_default(),
            &Path::new("template"),
        )
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, t: &PodTemplate, _raw: &Value) -> Vec<Value> {
        let template = t.template.clone().unwrap_or_default();
        let (names, images) = podspec::container_cells(template.spec.as_ref());
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        vec![
            t.metadata.name.clone().unwrap_or_default().into(),
            names.into(),
            images.into(),
            resourcelist::format_labels(labels).into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    #[test]
    fn defaults_validation_and_row() {
        let s = Typed::new(PodTemplateStrategy);
        let obj = s
            .decode(
                json!({"metadata": {"name": "t", "namespace": "ns"}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}),
            )
            .unwrap();
        assert_eq!(obj["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(s.validate(&obj).is_empty());
        assert_eq!(
            s.row(&obj),
            vec![json!("t"), json!("c"), json!("nginx:1"), json!("app=web")]
        );
        let bad = s
            .decode(json!({"metadata": {"name": "t"}, "template": {"spec": {"containers": []}}}))
            .unwrap();
        let errs: Vec<String> = s
            .validate(&bad)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(errs, vec!["template.spec.containers: Required value"]);
    }
}
