//! replicationcontrollers: the original replica manager. One replica and a selector equal
//! to the template's labels by default; the selector must match the template; status and
//! scale subresources; `metadata.generation` moves with the spec.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels;
use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerStatus};
use serde_json::Value;

use crate::registry::core::{podspec, resourcelist};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, ScaleInfo, Subresource};

pub struct ReplicationControllerStrategy;

const IS_NEGATIVE: &str = apimachinery::validation::IS_NEGATIVE_ERROR_MSG;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
    ),
    Column::new(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
    ),
    Column::new(
        "Ready",
        "integer",
        "The number of ready replicas for this replication controller.",
    ),
    AGE,
    Column::new("Containers", "string", "Names of each container in the template.").wide(),
    Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
    Column::new(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )
    .wide(),
];

fn nonnegative(value: i64, path: &Path) -> ErrorList {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE)]
    } else {
        Vec::new()
    }
}

fn validate_status(status: &ReplicationControllerStatus) -> ErrorList {
    let path = Path::new("status");
    let replicas = i64::from(status.replicas);
    let fully = i64::from(status.fully_labeled_replicas.unwrap_or(0));
    let ready = i64::from(status.ready_replicas.unwrap_or(0));
    let available = i64::from(status.available_replicas.unwrap_or(0));
    let mut errs = nonnegative(replicas, &path.child("replicas"));
    errs.extend(nonnegative(fully, &path.child("fullyLabeledReplicas")));
    errs.extend(nonnegative(ready, &path.child("readyReplicas")));
    errs.extend(nonnegative(available, &path.child("availableReplicas")));
    errs.extend(nonnegative(
        status.observed_generation.unwrap_or(0),
        &path.child("observedGeneration"),
    ));
    let msg = "cannot be greater than status.replicas";
    for (field, value) in [
        ("fullyLabeledReplicas", fully),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if value > replicas {
            errs.push(FieldError::invalid(&path.child(field), value, msg));
        }
    }
    if available > ready {
        errs.push(FieldError::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

impl TypedStrategy for ReplicationControllerStrategy {
    type Object = ReplicationController;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ReplicationController>()
            .short_names(&["rc"])
            .categories(&["all"])
            .with_status()
            .subresource(Subresource::Scale(ScaleInfo {
                spec_replicas: "spec.replicas",
                status_replicas: "status.replicas",
                selector: "spec.selector",
                selector_is_map: true,
            }))
            .tracks_generation()
    }

    fn default(&self, rc: &mut ReplicationController) {
        let spec = rc.spec.get_or_insert_with(Default::default);
        if let Some(template_labels) = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
        {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(template_labels.clone());
            }
            if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                rc.metadata.labels = Some(template_labels);
            }
        }
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            podspec::default_pod_template_spec(t);
        }
    }

    fn prepare_for_create(&self, rc: &mut ReplicationController) {
        rc.status = Some(ReplicationControllerStatus::default());
    }

    fn prepare_for_update(&self, new: &mut ReplicationController, old: &ReplicationController) {
        new.status = old.status.clone();
    }

    fn validate(&self, rc: &ReplicationController) -> ErrorList {
        let spec = rc.spec.clone().unwrap_or_default();
        let path = Path::new("spec");
        let mut errs = nonnegative(
            i64::from(spec.min_ready_seconds.unwrap_or(0)),
            &path.child("minReadySeconds"),
        );
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required(&path.child("selector"), ""));
        }
        errs.extend(nonnegative(
            i64::from(spec.replicas.unwrap_or(0)),
            &path.child("replicas"),
        ));
        let template_path = path.child("template");
        match &spec.template {
            None => errs.push(FieldError::required(&template_path, "")),
            Some(t) => {
                let template_labels = t
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                if !selector.is_empty()
                    && !labels::Selector::from_set(&selector).matches(&template_labels)
                {
                    errs.push(FieldError::invalid(
                        &template_path.child("metadata").child("labels"),
                        serde_json::to_value(&template_labels).unwrap_or_default(),
                        "`selector` does not match template `labels`",
                    ));
                }
                errs.extend(podspec::validate_pod_template_spec(t, &template_path));
                let tspec = t.spec.clone().unwrap_or_default();
                let restart = tspec.restart_policy.clone().unwrap_or_default();
                if restart != "Always" {
                    errs.push(FieldError::not_supported(
                        &template_path.child("spec").child("restartPolicy"),
                        restart,
                        &["Always"],
                    ));
                }
                if tspec.active_deadline_seconds.is_some() {
                    errs.push(FieldError::forbidden(
                        &template_path.child("spec").child("activeDeadlineSeconds"),
                        "activeDeadlineSeconds in ReplicationController is not Supported",
                    ));
                }
            }
        }
        errs
    }

    fn validate_update(
        &self,
        new: &ReplicationController,
        _old: &ReplicationController,
    ) -> ErrorList {
        let mut errs = self.validate(new);
        errs.extend(validate_status(&new.status.clone().unwrap_or_default()));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, rc: &ReplicationController, raw: &Value) -> Vec<Value> {
        let spec = rc.spec.clone().unwrap_or_default();
        let status = rc.status.clone().unwrap_or_default();
        let (names, images) =
            podspec::container_cells(spec.template.as_ref().and_then(|t| t.spec.as_ref()));
        vec![
            rc.metadata.name.clone().unwrap_or_default().into(),
            Value::from(spec.replicas.unwrap_or(0)),
            Value::from(status.replicas),
            Value::from(status.ready_replicas.unwrap_or(0)),
            table::age(raw),
            names.into(),
            images.into(),
            resourcelist::format_labels(spec.selector.as_ref()).into(),
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

    fn s() -> Typed<ReplicationControllerStrategy> {
        Typed::new(ReplicationControllerStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    fn rc(spec: Value) -> Value {
        let mut obj = s()
            .decode(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
            .unwrap();
        s().prepare_for_create(&mut obj);
        obj
    }

    #[test]
    fn defaults() {
        let obj = rc(json!({"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}));
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(obj["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(obj["status"], json!({"replicas": 0}));
        assert!(
            s().validate(&obj).is_empty(),
            "{:?}",
            messages(&s().validate(&obj))
        );
        let info = s().info().clone();
        assert!(info.tracks_generation);
        assert!(info.scale().is_some_and(|sc| sc.selector_is_map));
        assert_eq!(info.short_names, vec!["rc"]);
    }

    #[test]
    fn selector_must_match_and_replicas_nonnegative() {
        let obj = rc(json!({"replicas": -1, "selector": {"app": "other"},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "nginx"}]}}}));
        let errs = messages(&s().validate(&obj));
        assert_eq!(errs, vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ]);
        let no_selector = rc(json!({}));
        let errs = messages(&s().validate(&no_selector));
        assert_eq!(
            errs,
            vec![
                "spec.selector: Required value",
                "spec.template: Required value"
            ]
        );
    }

    #[test]
    fn row() {
        let mut obj = rc(
            json!({"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}}),
        );
        obj["status"] = json!({"replicas": 2, "readyReplicas": 1});
        let r = s().row(&obj);
        assert_eq!(&r[..4], &[json!("web"), json!(3), json!(2), json!(1)]);
        assert_eq!(
            &r[5..],
            &[json!("a,b"), json!("nginx,busybox"), json!("app=web")]
        );
    }
}
