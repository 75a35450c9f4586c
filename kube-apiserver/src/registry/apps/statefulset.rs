//! statefulsets: defaults (`SetDefaults_StatefulSet`, with the embedded claim templates
//! defaulted as claims), validation (`ValidateStatefulSetSpec`, the update rule that only a
//! few spec fields may change), status and scale.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PersistentVolumeClaimStatus};
use serde_json::Value;

use crate::registry::apps::deployment::SCALE;
use crate::registry::apps::{
    container_cells, int_or_percent_value, int_or_string_value, is_not_more_than_100_percent,
    labels_json, selector_is_unset, selector_json, template, validate_collision_count,
    validate_nonnegative_counts, validate_positive_int_or_percent, validate_replica_bounds,
    SELECTOR_MISMATCH,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, Subresource};

pub struct StatefulSetStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "string", "Number of the pod with ready state"),
    AGE,
    Column::new(
        "Containers",
        "string",
        "Names of each container in the template.",
    )
    .wide(),
    Column::new(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    )
    .wide(),
];

const RETENTION_POLICIES: &[&str] = &["Retain", "Delete"];

impl TypedStrategy for StatefulSetStrategy {
    type Object = StatefulSet;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<StatefulSet>()
            .short_names(&["sts"])
            .categories(&["all"])
            .with_status()
            .subresource(Subresource::Scale(SCALE))
            .tracks_generation()
    }

    fn default(&self, sts: &mut StatefulSet) {
        let spec = sts.spec.get_or_insert_with(StatefulSetSpec::default);
        spec.pod_management_policy
            .get_or_insert_with(|| "OrderedReady".into());
        let strategy = spec
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        if strategy.type_.as_deref().unwrap_or_default().is_empty() {
            strategy.type_ = Some("RollingUpdate".into());
            strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            if let Some(ru) = strategy.rolling_update.as_mut() {
                ru.partition.get_or_insert(0);
            }
        }
        let retention = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        for policy in [&mut retention.when_deleted, &mut retention.when_scaled] {
            if policy.as_deref().unwrap_or_default().is_empty() {
                *policy = Some("Retain".into());
            }
        }
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        template::default_pod_template(&mut spec.template);
        // Claim templates are claims, defaulted as claims are.
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            let claim_spec = claim
                .spec
                .get_or_insert_with(PersistentVolumeClaimSpec::default);
            claim_spec
                .volume_mode
                .get_or_insert_with(|| "Filesystem".into());
            let status = claim
                .status
                .get_or_insert_with(PersistentVolumeClaimStatus::default);
            status.phase.get_or_insert_with(|| "Pending".into());
        }
    }

    fn prepare_for_create(&self, sts: &mut StatefulSet) {
        sts.status = Some(StatefulSetStatus {
            available_replicas: Some(0),
            ..Default::default()
        });
    }

    fn prepare_for_update(&self, new: &mut StatefulSet, old: &StatefulSet) {
        new.status = old.status.clone();
    }

    fn validate(&self, sts: &StatefulSet) -> ErrorList {
        match &sts.spec {
            Some(spec) => validate_spec(spec, &Path::new("spec")),
            None => vec![FieldError::required(&Path::new("spec"), "")],
        }
    }

    fn validate_update(&self, new: &StatefulSet, old: &StatefulSet) -> ErrorList {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            // Only these fields may change; everything else must stay as it was.
            let mut clone = n.clone();
            clone.replicas = o.replicas;
            clone.template = o.template.clone();
            clone.update_strategy = o.update_strategy.clone();
            clone.min_ready_seconds = o.min_ready_seconds;
            clone.ordinals = o.ordinals.clone();
            clone.persistent_volume_claim_retention_policy =
                o.persistent_volume_claim_retention_policy.clone();
            if &clone != o {
                errs.push(FieldError::forbidden(
                    &Path::new("spec"),
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        errs.extend(validate_status(new, old));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, sts: &StatefulSet, raw: &Value) -> Vec<Value> {
        let spec = sts.spec.clone().unwrap_or_default();
        let status = sts.status.clone().unwrap_or_default();
        let (names, images) = container_cells(
            spec.template
                .spec
                .as_ref()
                .map(|s| &s.containers[..])
                .unwrap_or_default(),
        );
        vec![
            Value::String(sts.metadata.name.clone().unwrap_or_default()),
            Value::String(format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(0)
            )),
            table::age(raw),
            names,
            images,
        ]
    }
}

fn validate_spec(spec: &StatefulSetSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    match spec.pod_management_policy.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required(&path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            &path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    errs.extend(validate_update_strategy(
        spec.update_strategy.as_ref(),
        &path.child("updateStrategy"),
    ));
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let p = path.child("persistentVolumeClaimRetentionPolicy");
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            let value = value.as_deref().unwrap_or_default();
            if !RETENTION_POLICIES.contains(&value) {
                errs.push(FieldError::not_supported(
                    &p.child(field),
                    value,
                    RETENTION_POLICIES,
                ));
            }
        }
    }
    errs.extend(validation::validate_nonnegative_field(
        i64::from(spec.replicas.unwrap_or(0)),
        &path.child("replicas"),
    ));
    errs.extend(validation::validate_nonnegative_field(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    if let Some(ordinals) = &spec.ordinals {
        errs.extend(validation::validate_nonnegative_field(
            i64::from(ordinals.start.unwrap_or(0)),
            &path.child("ordinals.start"),
        ));
    }
    let sel_path = path.child("selector");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let labels_path = path.child("template").child("metadata").child("labels");
    if selector_is_unset(&spec.selector) {
        errs.push(FieldError::required(&sel_path, ""));
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
        let count = spec.selector.match_labels.as_ref().map_or(0, |m| m.len())
            + spec.selector.match_expressions.as_ref().map_or(0, Vec::len);
        if count == 0 {
            errs.push(FieldError::invalid(
                &sel_path,
                selector_json(&spec.selector),
                "empty selector is invalid for statefulset",
            ));
        }
        match Selector::from_label_selector(&spec.selector) {
            Ok(sel) if !sel.is_empty() && !sel.matches(&labels) => errs.push(FieldError::invalid(
                &labels_path,
                labels_json(&labels),
                SELECTOR_MISMATCH,
            )),
            Ok(_) => {}
            Err(_) => errs.push(FieldError::invalid(
                &sel_path,
                selector_json(&spec.selector),
                "",
            )),
        }
    }
    // Upstream checks only the template's metadata here, not the pod spec.
    if let Some(meta) = &spec.template.metadata {
        let meta_path = path.child("template").child("labels");
        if let Some(labels) = &meta.labels {
            errs.extend(validation::validate_labels(labels, &meta_path));
        }
        if let Some(annotations) = &meta.annotations {
            errs.extend(validation::validate_annotations(
                annotations,
                &path.child("template").child("annotations"),
            ));
        }
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let tpl_spec_path = path.child("template").child("spec");
    let restart = pod_spec.restart_policy.clone().unwrap_or_default();
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            &tpl_spec_path.child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if pod_spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &tpl_spec_path.child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    errs
}

fn validate_update_strategy(
    strategy: Option<&StatefulSetUpdateStrategy>,
    path: &Path,
) -> ErrorList {
    let default = StatefulSetUpdateStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    match strategy.type_.as_deref().unwrap_or_default() {
        "" => vec![FieldError::required(path, "")],
        "OnDelete" => match &strategy.rolling_update {
            Some(ru) => vec![FieldError::invalid(
                &path.child("rollingUpdate"),
                serde_json::to_value(ru).unwrap_or(Value::Null),
                "only allowed for updateStrategy 'RollingUpdate'",
            )],
            None => Vec::new(),
        },
        "RollingUpdate" => match &strategy.rolling_update {
            Some(ru) => validate_rolling_update(ru, &path.child("rollingUpdate")),
            None => Vec::new(),
        },
        _ => vec![FieldError::invalid(
            path,
            serde_json::to_value(strategy).unwrap_or(Value::Null),
            "must be 'RollingUpdate' or 'OnDelete'",
        )],
    }
}

fn validate_rolling_update(ru: &RollingUpdateStatefulSetStrategy, path: &Path) -> ErrorList {
    let mut errs = validation::validate_nonnegative_field(
        i64::from(ru.partition.unwrap_or(0)),
        &path.child("partition"),
    );
    if let Some(mu) = &ru.max_unavailable {
        let p = path.child("maxUnavailable");
        errs.extend(validate_positive_int_or_percent(mu, &p));
        if int_or_percent_value(mu) == 0 {
            errs.push(FieldError::invalid(
                &p,
                int_or_string_value(mu),
                "cannot be 0",
            ));
        }
        errs.extend(is_not_more_than_100_percent(mu, &p));
    }
    errs
}

/// Upstream's `ValidateStatefulSetStatus` and the collision count rule.
fn validate_status(new: &StatefulSet, old: &StatefulSet) -> ErrorList {
    let status = new.status.clone().unwrap_or_default();
    let path = Path::new("status");
    let mut errs = validate_nonnegative_counts(
        &[
            ("replicas", Some(i64::from(status.replicas))),
            ("readyReplicas", status.ready_replicas.map(i64::from)),
            ("currentReplicas", status.current_replicas.map(i64::from)),
            ("updatedReplicas", status.updated_replicas.map(i64::from)),
            (
                "availableReplicas",
                status.available_replicas.map(i64::from),
            ),
            ("observedGeneration", status.observed_generation),
            ("collisionCount", status.collision_count.map(i64::from)),
        ],
        &path,
    );
    errs.extend(validate_replica_bounds(
        status.replicas,
        &[
            ("readyReplicas", status.ready_replicas),
            ("currentReplicas", status.current_replicas),
            ("updatedReplicas", status.updated_replicas),
            ("availableReplicas", status.available_replicas),
        ],
        &path,
    ));
    let available = status.available_replicas.unwrap_or(0);
    if available > status.ready_replicas.unwrap_or(0) {
        errs.push(FieldError::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than status.readyReplicas",
        ));
    }
    errs.extend(validate_collision_count(
        status.collision_count,
        old.status.as_ref().and_then(|s| s.collision_count),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn sts() -> Value {
        json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }]
            }
        })
    }

    #[test]
    fn defaults() {
        let s = Typed::new(StatefulSetStrategy);
        let obj = s.decode(sts()).unwrap();
        let spec = &obj["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
        assert_eq!(s.info().short_names, ["sts"]);
    }

    #[test]
    fn invalid_objects() {
        let s = Typed::new(StatefulSetStrategy);
        let mut bad = sts();
        bad["spec"]["podManagementPolicy"] = json!("Random");
        bad["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Keep"});
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        let errs = s.validate(&s.decode(bad).unwrap());
        let msgs: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(
            msgs,
            [
                "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn update_rules() {
        let s = Typed::new(StatefulSetStrategy);
        let old = s.decode(sts()).unwrap();
        let mut ok = old.clone();
        ok["spec"]["replicas"] = json!(3);
        ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:18");
        ok["spec"]["minReadySeconds"] = json!(5);
        assert!(s.validate_update(&ok, &old).is_empty());
        let mut bad = old.clone();
        bad["spec"]["serviceName"] = json!("other");
        let errs = s.validate_update(&bad, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0]
            .body()
            .starts_with("Forbidden: updates to statefulset spec"));
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(StatefulSetStrategy);
        let mut obj = s.decode(sts()).unwrap();
        obj["status"] = json!({"replicas": 1, "readyReplicas": 1});
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(row[0], "db");
        assert_eq!(row[1], "1/1");
        assert_eq!(row[3], "pg");
        assert_eq!(row[4], "postgres:17");
    }
}
