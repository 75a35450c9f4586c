//! Pod templates inside workload objects (Deployments, Jobs, ...): upstream defaults and
//! validates them with the pod's own functions (`SetDefaults_PodSpec`,
//! `ValidatePodTemplateSpec`), which live with pods in `registry::core::podspec`. Every
//! workload of `apps` and `batch` goes through these two calls.

use apimachinery::field::{ErrorList, Path};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::registry::core::podspec;

/// Apply upstream's pod defaults to a template.
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    podspec::default_pod_template_spec(template);
}

/// Validate a template at `path` (e.g. `spec.template`), as upstream's
/// `ValidatePodTemplateSpec`.
pub fn validate_pod_template(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    podspec::validate_pod_template_spec(template, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_validation_reach_the_pod_rules() {
        let mut t: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "image": "nginx"},
        ]}}))
        .unwrap();
        default_pod_template(&mut t);
        let spec = t.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert!(validate_pod_template(&t, &Path::new("spec").child("template")).is_empty());

        let bad: PodTemplateSpec =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "", "image": "x"}]}}))
                .unwrap();
        let errs = validate_pod_template(&bad, &Path::new("spec").child("template"));
        assert!(errs
            .iter()
            .any(|e| e.field == "spec.template.spec.containers[0].name"));
    }
}
