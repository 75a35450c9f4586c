//! daemonsets: defaults (`SetDefaults_DaemonSet`), validation (`ValidateDaemonSetSpec`,
//! selector immutability of apps/v1) and the template generation upstream keeps in the
//! `deprecated.daemonset.template.generation` annotation of apps/v1 objects.

use std::collections::BTreeMap;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::{self, Selector};
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::registry::apps::{
    container_cells, format_label_selector, int_or_percent_value, int_or_string_value,
    is_not_more_than_100_percent, labels_json, selector_is_unset, selector_json, template,
    validate_collision_count, validate_nonnegative_counts, validate_positive_int_or_percent,
    SELECTOR_MISMATCH,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct DaemonSetStrategy;

/// Where apps/v1 carries the internal `spec.templateGeneration`.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    Column::new(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    Column::new(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    Column::new(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    Column::new(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    Column::new(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    ),
    AGE,
    Column::new("Containers", "string", "Names of each container in the template.").wide(),
    Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
    Column::new(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )
    .wide(),
];

fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(ds: &mut DaemonSet, generation: i64) {
    ds.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            TEMPLATE_GENERATION_ANNOTATION.into(),
            generation.to_string(),
        );
}

impl TypedStrategy for DaemonSetStrategy {
    type Object = DaemonSet;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<DaemonSet>()
            .short_names(&["ds"])
            .categories(&["all"])
            .with_status()
            .tracks_generation()
    }

    fn default(&self, ds: &mut DaemonSet) {
        let spec = ds.spec.get_or_insert_with(DaemonSetSpec::default);
        let strategy = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if ty == "RollingUpdate" {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        template::default_pod_template(&mut spec.template);
    }

    fn prepare_for_create(&self, ds: &mut DaemonSet) {
        ds.status = Some(DaemonSetStatus::default());
        let generation = template_generation(ds).max(1);
        set_template_generation(ds, generation);
    }

    fn prepare_for_update(&self, new: &mut DaemonSet, old: &DaemonSet) {
        new.status = old.status.clone();
        // Clients may not set the template generation; it moves with the template.
        let template_changed =
            new.spec.as_ref().map(|s| &s.template) != old.spec.as_ref().map(|s| &s.template);
        let generation = template_generation(old) + i64::from(template_changed);
        set_template_generation(new, generation);
    }

    fn validate(&self, ds: &DaemonSet) -> ErrorList {
        match &ds.spec {
            Some(spec) => validate_spec(spec, &Path::new("spec")),
            None => vec![FieldError::required(&Path::new("spec"), "")],
        }
    }

    fn validate_update(&self, new: &DaemonSet, old: &DaemonSet) -> ErrorList {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            errs.extend(validation::validate_immutable_field(
                &n.selector,
                &o.selector,
                selector_json(&n.selector),
                &Path::new("spec").child("selector"),
            ));
        }
        let status = new.status.clone().unwrap_or_default();
        errs.extend(validate_nonnegative_counts(
            &[
                (
                    "currentNumberScheduled",
                    Some(i64::from(status.current_number_scheduled)),
                ),
                (
                    "numberMisscheduled",
                    Some(i64::from(status.number_misscheduled)),
                ),
                (
                    "desiredNumberScheduled",
                    Some(i64::from(status.desired_number_scheduled)),
                ),
                ("numberReady", Some(i64::from(status.number_ready))),
                ("observedGeneration", status.observed_generation),
                (
                    "updatedNumberScheduled",
                    status.updated_number_scheduled.map(i64::from),
                ),
                ("numberAvailable", status.number_available.map(i64::from)),
                (
                    "numberUnavailable",
                    status.number_unavailable.map(i64::from),
                ),
                ("collisionCount", status.collision_count.map(i64::from)),
            ],
            &Path::new("status"),
        ));
        errs.extend(validate_collision_count(
            status.collision_count,
            old.status.as_ref().and_then(|s| s.collision_count),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, ds: &DaemonSet, raw: &Value) -> Vec<Value> {
        let spec = ds.spec.clone().unwrap_or_default();
        let status = ds.status.clone().unwrap_or_default();
        let pod_spec = spec.template.spec.clone().unwrap_or_default();
        let (names, images) = container_cells(&pod_spec.containers);
        vec![
            Value::String(ds.metadata.name.clone().unwrap_or_default()),
            Value::from(status.desired_number_scheduled),
            Value::from(status.current_number_scheduled),
            Value::from(status.number_ready),
            Value::from(status.updated_number_scheduled.unwrap_or(0)),
            Value::from(status.number_available.unwrap_or(0)),
            Value::String(labels::format_labels(
                &pod_spec.node_selector.unwrap_or_default(),
            )),
            table::age(raw),
            names,
            images,
            format_label_selector(Some(&spec.selector)),
        ]
    }
}

fn validate_spec(spec: &DaemonSetSpec, path: &Path) -> ErrorList {
    let sel_path = path.child("selector");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let labels_path = path.child("template").child("metadata").child("labels");
    let mut errs = Vec::new();
    if selector_is_unset(&spec.selector) {
        // A nil selector selects nothing, which never matches the template.
        errs.push(FieldError::invalid(
            &labels_path,
            labels_json(&labels),
            SELECTOR_MISMATCH,
        ));
    } else {
        errs.extend(validation::validate_label_selector(
            Some(&spec.selector),
            LabelSelectorValidationOptions::default(),
            &sel_path,
        ));
        if let Ok(sel) = Selector::from_label_selector(&spec.selector) {
            if !sel.matches(&labels) {
                errs.push(FieldError::invalid(
                    &labels_path,
                    labels_json(&labels),
                    SELECTOR_MISMATCH,
                ));
            }
        }
        let count = spec.selector.match_labels.as_ref().map_or(0, |m| m.len())
            + spec.selector.match_expressions.as_ref().map_or(0, Vec::len);
        if count == 0 {
            errs.push(FieldError::invalid(
                &sel_path,
                selector_json(&spec.selector),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    let tpl_path = path.child("template");
    errs.extend(template::validate_pod_template(&spec.template, &tpl_path));
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let restart = pod_spec.restart_policy.clone().unwrap_or_default();
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            &tpl_path.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if pod_spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &tpl_path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    errs.extend(validation::validate_nonnegative_field(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    errs.extend(validate_update_strategy(
        spec.update_strategy.as_ref(),
        &path.child("updateStrategy"),
    ));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(validation::validate_nonnegative_field(
            i64::from(limit),
            &path.child("revisionHistoryLimit"),
        ));
    }
    errs
}

fn validate_update_strategy(strategy: Option<&DaemonSetUpdateStrategy>, path: &Path) -> ErrorList {
    let default = DaemonSetUpdateStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    match strategy.type_.as_deref().unwrap_or_default() {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => match &strategy.rolling_update {
            None => vec![FieldError::required(&path.child("rollingUpdate"), "")],
            Some(ru) => validate_rolling_update(ru, &path.child("rollingUpdate")),
        },
        other => vec![FieldError::not_supported(
            path,
            other,
            &["RollingUpdate", "OnDelete"],
        )],
    }
}

fn validate_rolling_update(ru: &RollingUpdateDaemonSet, path: &Path) -> ErrorList {
    let zero = IntOrString::Int(0);
    let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
    let ms = ru.max_surge.as_ref().unwrap_or(&zero);
    let (mu_path, ms_path) = (path.child("maxUnavailable"), path.child("maxSurge"));
    let mut errs = validate_positive_int_or_percent(mu, &mu_path);
    errs.extend(validate_positive_int_or_percent(ms, &ms_path));
    errs.extend(is_not_more_than_100_percent(mu, &mu_path));
    errs.extend(is_not_more_than_100_percent(ms, &ms_path));
    match (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0) {
        (true, true) => errs.push(FieldError::invalid(
            &ms_path,
            int_or_string_value(ms),
            "may not be set when maxUnavailable is non-zero",
        )),
        (false, false) => errs.push(FieldError::required(
            &mu_path,
            "cannot be 0 when maxSurge is 0",
        )),
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn ds() -> Value {
        json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "a", "image": "agent:1"}]
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_and_template_generation() {
        let s = Typed::new(DaemonSetStrategy);
        let mut obj = s.decode(ds()).unwrap();
        assert_eq!(
            obj["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(obj["spec"]["revisionHistoryLimit"], 10);
        s.prepare_for_create(&mut obj);
        assert_eq!(
            obj["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "1"
        );
        assert_eq!(obj["status"]["numberReady"], 0);
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));

        let mut same = obj.clone();
        same["metadata"]["annotations"] = json!({});
        s.prepare_for_update(&mut same, &obj);
        assert_eq!(
            same["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "1"
        );
        let mut changed = obj.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        s.prepare_for_update(&mut changed, &obj);
        assert_eq!(
            changed["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "2"
        );
    }

    #[test]
    fn invalid_objects() {
        let s = Typed::new(DaemonSetStrategy);
        let mut both = ds();
        both["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
        let errs = s.validate(&s.decode(both).unwrap());
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.updateStrategy.rollingUpdate.maxSurge");
        assert_eq!(
            errs[0].body(),
            "Invalid value: 1: may not be set when maxUnavailable is non-zero"
        );

        let mut neither = ds();
        neither["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        let errs = s.validate(&s.decode(neither).unwrap());
        assert_eq!(
            errs[0].body(),
            "Required value: cannot be 0 when maxSurge is 0"
        );

        let obj = s.decode(ds()).unwrap();
        let mut moved = obj.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "v": "2"}});
        moved["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
        let errs = s.validate_update(&moved, &obj);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.selector");
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(DaemonSetStrategy);
        let mut obj = s.decode(ds()).unwrap();
        obj["status"] = json!({
            "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
            "numberMisscheduled": 0, "updatedNumberScheduled": 3, "numberAvailable": 2
        });
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(
            &row[..7],
            &[
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(
            &row[8..],
            &[json!("a"), json!("agent:1"), json!("app=agent")]
        );
        assert_eq!(s.info().short_names, ["ds"]);
        assert!(s.info().scale().is_none());
    }
}
