//! replicasets: defaults, validation (`ValidateReplicaSetSpec`, selector immutability of
//! apps/v1), status and scale.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::registry::apps::deployment::{validate_template_for_replicas, SCALE};
use crate::registry::apps::{
    container_cells, format_label_selector, selector_json, template, validate_nonnegative_counts,
    validate_replica_bounds,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField, Subresource};

pub struct ReplicaSetStrategy;

/// Upstream's `ReplicaSetToSelectableFields`.
const FIELDS: &[SelectableField] = &[SelectableField::new("status.replicas").with_default("0")];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Desired",
        "integer",
        "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    ),
    Column::new(
        "Current",
        "integer",
        "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    ),
    Column::new(
        "Ready",
        "integer",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    AGE,
    Column::new("Containers", "string", "Names of each container in the template.").wide(),
    Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
    Column::new(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )
    .wide(),
];

impl TypedStrategy for ReplicaSetStrategy {
    type Object = ReplicaSet;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ReplicaSet>()
            .short_names(&["rs"])
            .categories(&["all"])
            .with_status()
            .subresource(Subresource::Scale(SCALE))
            .tracks_generation()
    }

    fn default(&self, rs: &mut ReplicaSet) {
        let spec = rs.spec.get_or_insert_with(ReplicaSetSpec::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            template::default_pod_template(t);
        }
    }

    fn prepare_for_create(&self, rs: &mut ReplicaSet) {
        rs.status = Some(ReplicaSetStatus::default());
    }

    fn prepare_for_update(&self, new: &mut ReplicaSet, old: &ReplicaSet) {
        new.status = old.status.clone();
    }

    fn validate(&self, rs: &ReplicaSet) -> ErrorList {
        let path = Path::new("spec");
        let Some(spec) = &rs.spec else {
            return vec![FieldError::required(&path, "")];
        };
        let mut errs = validation::validate_nonnegative_field(
            i64::from(spec.replicas.unwrap_or(0)),
            &path.child("replicas"),
        );
        errs.extend(validation::validate_nonnegative_field(
            i64::from(spec.min_ready_seconds.unwrap_or(0)),
            &path.child("minReadySeconds"),
        ));
        let tpl = spec
            .template
            .clone()
            .unwrap_or_else(PodTemplateSpec::default);
        // Upstream's message names deployments for ReplicaSets too.
        errs.extend(validate_template_for_replicas(
            &tpl,
            &spec.selector,
            "deployment",
            "ReplicaSet",
            &path,
        ));
        errs
    }

    fn validate_update(&self, new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            errs.extend(validation::validate_immutable_field(
                &n.selector,
                &o.selector,
                selector_json(&n.selector),
                &Path::new("spec").child("selector"),
            ));
        }
        errs.extend(validate_status(
            &new.status.clone().unwrap_or_default(),
            &Path::new("status"),
        ));
        errs
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, rs: &ReplicaSet, raw: &Value) -> Vec<Value> {
        let spec = rs.spec.clone().unwrap_or_default();
        let status = rs.status.clone().unwrap_or_default();
        let containers = spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let (names, images) = container_cells(&containers);
        vec![
            Value::String(rs.metadata.name.clone().unwrap_or_default()),
            Value::from(spec.replicas.unwrap_or(0)),
            Value::from(status.replicas),
            Value::from(status.ready_replicas.unwrap_or(0)),
            table::age(raw),
            names,
            images,
            format_label_selector(Some(&spec.selector)),
        ]
    }
}

/// Upstream's `ValidateReplicaSetStatus`.
fn validate_status(status: &ReplicaSetStatus, path: &Path) -> ErrorList {
    let mut errs = validate_nonnegative_counts(
        &[
            ("replicas", Some(i64::from(status.replicas))),
            (
                "fullyLabeledReplicas",
                status.fully_labeled_replicas.map(i64::from),
            ),
            ("readyReplicas", status.ready_replicas.map(i64::from)),
            (
                "availableReplicas",
                status.available_replicas.map(i64::from),
            ),
            ("observedGeneration", status.observed_generation),
        ],
        path,
    );
    errs.extend(validate_replica_bounds(
        status.replicas,
        &[
            ("fullyLabeledReplicas", status.fully_labeled_replicas),
            ("readyReplicas", status.ready_replicas),
            ("availableReplicas", status.available_replicas),
        ],
        path,
    ));
    let available = status.available_replicas.unwrap_or(0);
    if available > status.ready_replicas.unwrap_or(0) {
        errs.push(FieldError::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn rs() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}
                }
            }
        })
    }

    #[test]
    fn defaults_validation_and_row() {
        let s = Typed::new(ReplicaSetStrategy);
        let mut obj = s.decode(rs()).unwrap();
        assert_eq!(obj["spec"]["replicas"], 1);
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["status"], json!({"replicas": 0}));
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));

        let mut empty = rs();
        empty["spec"]["selector"] = json!({"matchLabels": {}});
        let errs = s.validate(&s.decode(empty).unwrap());
        assert_eq!(
            errs[0].body(),
            "Invalid value: {\"matchLabels\":{}}: empty selector is invalid for deployment"
        );

        let mut changed = obj.clone();
        changed["spec"]["selector"]["matchLabels"]["tier"] = json!("fe");
        changed["spec"]["template"]["metadata"]["labels"]["tier"] = json!("fe");
        let errs = s.validate_update(&changed, &obj);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.selector");

        let mut bad_status = obj.clone();
        bad_status["status"] = json!({"replicas": 1, "readyReplicas": 2});
        let errs = s.validate_update(&bad_status, &obj);
        assert_eq!(errs[0].field, "status.readyReplicas");
        assert!(errs[0]
            .body()
            .ends_with("cannot be greater than status.replicas"));

        obj["status"] = json!({"replicas": 1, "readyReplicas": 1});
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(&row[..4], &[json!("web-1"), json!(1), json!(1), json!(1)]);
        assert_eq!(&row[5..], &[json!("c"), json!("busybox"), json!("app=web")]);
        assert_eq!(s.info().short_names, ["rs"]);
        assert_eq!(s.selectable_fields()[0].value(&obj), "1");
    }
}
