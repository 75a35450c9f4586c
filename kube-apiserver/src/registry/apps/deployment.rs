//! deployments: defaults (`SetDefaults_Deployment`), validation
//! (`ValidateDeploymentSpec`, selector immutability of apps/v1), status and scale.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation;
use k8s_openapi::api::apps::v1::{
    self as apps, Deployment, DeploymentSpec, DeploymentStatus, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::registry::apps::{
    container_cells, int_or_percent_value, int_or_string_value, is_not_more_than_100_percent,
    selector_json, template, validate_collision_count, validate_nonnegative_counts,
    validate_positive_int_or_percent, validate_replica_bounds,
    validate_selector_and_template_labels,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, ScaleInfo, Subresource};

pub struct DeploymentStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "string", "Number of the pod with ready state"),
    Column::new(
        "Up-to-date",
        "string",
        "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
    ),
    Column::new(
        "Available",
        "string",
        "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    Column::new("Containers", "string", "Names of each container in the template.").wide(),
    Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
    Column::new(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
    )
    .wide(),
];

/// The scale subresource of every apps/v1 workload with replicas.
pub(crate) const SCALE: ScaleInfo = ScaleInfo {
    spec_replicas: "spec.replicas",
    status_replicas: "status.replicas",
    selector: "spec.selector",
    selector_is_map: false,
};

impl TypedStrategy for DeploymentStrategy {
    type Object = Deployment;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Deployment>()
            .short_names(&["deploy"])
            .categories(&["all"])
            .with_status()
            .subresource(Subresource::Scale(SCALE))
            .tracks_generation()
    }

    fn default(&self, d: &mut Deployment) {
        let spec = d.spec.get_or_insert_with(DeploymentSpec::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(apps::DeploymentStrategy::default);
        let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if ty == "RollingUpdate" {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            ru.max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            ru.max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        template::default_pod_template(&mut spec.template);
    }

    fn prepare_for_create(&self, d: &mut Deployment) {
        d.status = Some(DeploymentStatus::default());
    }

    fn prepare_for_update(&self, new: &mut Deployment, old: &Deployment) {
        new.status = old.status.clone();
    }

    fn validate(&self, d: &Deployment) -> ErrorList {
        match &d.spec {
            Some(spec) => validate_spec(spec, &Path::new("spec")),
            None => vec![FieldError::required(&Path::new("spec"), "")],
        }
    }

    fn validate_update(&self, new: &Deployment, old: &Deployment) -> ErrorList {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            errs.extend(validation::validate_immutable_field(
                &n.selector,
                &o.selector,
                selector_json(&n.selector),
                &Path::new("spec").child("selector"),
            ));
        }
        errs.extend(validate_status(new, old));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, d: &Deployment, raw: &Value) -> Vec<Value> {
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        let (names, images) = container_cells(
            spec.template
                .spec
                .as_ref()
                .map(|s| &s.containers[..])
                .unwrap_or_default(),
        );
        let selector = match Selector::from_label_selector(&spec.selector) {
            Ok(s) => s.to_string(),
            Err(_) => "<invalid>".to_string(),
        };
        vec![
            Value::String(d.metadata.name.clone().unwrap_or_default()),
            Value::String(format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(0)
            )),
            Value::from(status.updated_replicas.unwrap_or(0)),
            Value::from(status.available_replicas.unwrap_or(0)),
            table::age(raw),
            names,
            images,
            Value::String(selector),
        ]
    }
}

/// What the apps workloads with a pod template share (upstream's
/// `ValidatePodTemplateSpecForReplicaSet`): selector agreement, the pod checks, restart
/// policy Always and no active deadline.
pub(crate) fn validate_template_for_replicas(
    spec_template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    kind_word: &str,
    deadline_kind: &str,
    spec_path: &Path,
) -> ErrorList {
    let labels = spec_template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut errs = validate_selector_and_template_labels(selector, &labels, kind_word, spec_path);
    let tpl_path = spec_path.child("template");
    errs.extend(template::validate_pod_template(spec_template, &tpl_path));
    let pod_spec = spec_template.spec.clone().unwrap_or_default();
    let policy = pod_spec.restart_policy.clone().unwrap_or_default();
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            &tpl_path.child("spec").child("restartPolicy"),
            policy,
            &["Always"],
        ));
    }
    if pod_spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &tpl_path.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {deadline_kind} is not Supported"),
        ));
    }
    errs
}

fn validate_spec(spec: &DeploymentSpec, path: &Path) -> ErrorList {
    let mut errs = validation::validate_nonnegative_field(
        i64::from(spec.replicas.unwrap_or(0)),
        &path.child("replicas"),
    );
    errs.extend(validate_template_for_replicas(
        &spec.template,
        &spec.selector,
        "deployment",
        "ReplicaSet",
        path,
    ));
    errs.extend(validate_strategy(
        spec.strategy.as_ref(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validation::validate_nonnegative_field(
        i64::from(min_ready),
        &path.child("minReadySeconds"),
    ));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(validation::validate_nonnegative_field(
            i64::from(limit),
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        let p = path.child("progressDeadlineSeconds");
        errs.extend(validation::validate_nonnegative_field(
            i64::from(deadline),
            &p,
        ));
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                &p,
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

fn validate_strategy(strategy: Option<&apps::DeploymentStrategy>, path: &Path) -> ErrorList {
    let default = apps::DeploymentStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    let ty = strategy.type_.as_deref().unwrap_or_default();
    match ty {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                return vec![FieldError::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )];
            }
            Vec::new()
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => vec![FieldError::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )],
            Some(ru) => validate_rolling_update(ru, &path.child("rollingUpdate")),
        },
        other => vec![FieldError::not_supported(
            path,
            other,
            &["Recreate", "RollingUpdate"],
        )],
    }
}

fn validate_rolling_update(ru: &RollingUpdateDeployment, path: &Path) -> ErrorList {
    let zero = IntOrString::Int(0);
    let max_unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
    let max_surge = ru.max_surge.as_ref().unwrap_or(&zero);
    let mu_path = path.child("maxUnavailable");
    let mut errs = validate_positive_int_or_percent(max_unavailable, &mu_path);
    errs.extend(validate_positive_int_or_percent(
        max_surge,
        &path.child("maxSurge"),
    ));
    if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
        errs.push(FieldError::invalid(
            &mu_path,
            int_or_string_value(max_unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs.extend(is_not_more_than_100_percent(max_unavailable, &mu_path));
    errs
}

/// Upstream's `ValidateDeploymentStatus` and the collision count rule of status updates.
fn validate_status(new: &Deployment, old: &Deployment) -> ErrorList {
    let status = new.status.clone().unwrap_or_default();
    let path = Path::new("status");
    let replicas = status.replicas.unwrap_or(0);
    let mut errs = validate_nonnegative_counts(
        &[
            ("observedGeneration", status.observed_generation),
            ("replicas", status.replicas.map(i64::from)),
            ("updatedReplicas", status.updated_replicas.map(i64::from)),
            ("readyReplicas", status.ready_replicas.map(i64::from)),
            (
                "availableReplicas",
                status.available_replicas.map(i64::from),
            ),
            (
                "unavailableReplicas",
                status.unavailable_replicas.map(i64::from),
            ),
            ("collisionCount", status.collision_count.map(i64::from)),
        ],
        &path,
    );
    errs.extend(validate_replica_bounds(
        replicas,
        &[
            ("updatedReplicas", status.updated_replicas),
            ("readyReplicas", status.ready_replicas),
            ("availableReplicas", status.available_replicas),
        ],
        &path,
    ));
    let available = status.available_replicas.unwrap_or(0);
    if available > status.ready_replicas.unwrap_or(0) {
        errs.push(FieldError::invalid(
            &path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
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

    fn strategy() -> Typed<DeploymentStrategy> {
        Typed::new(DeploymentStrategy)
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}
                }
            }
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults() {
        let d = strategy().decode(deployment()).unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let info = strategy().info().clone();
        assert_eq!(info.short_names, ["deploy"]);
        assert!(info.tracks_generation && info.has_status() && info.scale().is_some());
    }

    #[test]
    fn valid_and_invalid() {
        let s = strategy();
        let mut d = s.decode(deployment()).unwrap();
        s.prepare_for_create(&mut d);
        assert_eq!(d["status"], json!({}));
        assert!(s.validate(&d).is_empty(), "{:?}", s.validate(&d));

        let mut bad = deployment();
        bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        bad["spec"]["replicas"] = json!(-1);
        let errs = s.validate(&s.decode(bad).unwrap());
        assert_eq!(
            messages(&errs),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            ]
        );

        let mut no_selector = deployment();
        no_selector["spec"]
            .as_object_mut()
            .unwrap()
            .remove("selector");
        let errs = s.validate(&s.decode(no_selector).unwrap());
        assert_eq!(errs[0].field, "spec.selector");
        assert_eq!(errs[0].body(), "Required value");

        let mut zero = deployment();
        zero["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        let errs = s.validate(&s.decode(zero).unwrap());
        assert_eq!(
            messages(&errs),
            ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
        );

        let mut never = deployment();
        never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let errs = s.validate(&s.decode(never).unwrap());
        assert_eq!(
            messages(&errs),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );

        let mut recreate = deployment();
        recreate["spec"]["strategy"] = json!({"type": "Recreate"});
        assert!(s.validate(&s.decode(recreate).unwrap()).is_empty());
    }

    #[test]
    fn update_rules() {
        let s = strategy();
        let mut old = s.decode(deployment()).unwrap();
        old["status"] = json!({"replicas": 2, "readyReplicas": 2});
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "x": "y"});
        new["status"] = json!({});
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["status"]["replicas"], 2);
        let errs = s.validate_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.selector");
        assert!(errs[0].body().ends_with("field is immutable"));

        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(s.validate_update(&scaled, &old).is_empty());
    }

    #[test]
    fn printed_row() {
        let s = strategy();
        let mut d = s.decode(deployment()).unwrap();
        d["status"] = json!({"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        let row = s.row(&d);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(row[0], "web");
        assert_eq!(row[1], "1/1");
        assert_eq!(row[2], 1);
        assert_eq!(row[3], 1);
        assert_eq!(row[5], "nginx");
        assert_eq!(row[6], "nginx:1.27");
        assert_eq!(row[7], "app=web");
        let names: Vec<&str> = s.columns().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }
}
