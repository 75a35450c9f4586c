//! horizontalpodautoscalers in autoscaling/v2, the storage version: defaults
//! (`SetDefaults_HorizontalPodAutoscaler` with the behavior defaults), validation
//! (`ValidateHorizontalPodAutoscaler`) and printing.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::quantity::Quantity as Q;
use apimachinery::validation;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus, MetricIdentifier, MetricSpec,
    MetricStatus, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct HorizontalPodAutoscalerStrategy;

/// The CPU utilization an HPA without metrics targets.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;
/// Upstream's bounds on scaling policies.
const MAX_PERIOD_SECONDS: i32 = 1800;
const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;

const METRIC_SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];
const SELECT_POLICIES: &[&str] = &["Disabled", "Max", "Min"];
const POLICY_TYPES: &[&str] = &["Percent", "Pods"];

pub(crate) const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Reference",
        "string",
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
    ),
    Column::new(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.",
    ),
    Column::new(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.",
    ),
    Column::new(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.",
    ),
    Column::new(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
    ),
    AGE,
];

/// The metric an HPA without metrics gets: 80% average CPU utilization.
pub(crate) fn cpu_metric(utilization: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(utilization),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// Upstream's v2 defaults, which also apply to objects written through autoscaling/v1.
pub(crate) fn set_defaults(hpa: &mut HorizontalPodAutoscaler) {
    let spec = hpa
        .spec
        .get_or_insert_with(HorizontalPodAutoscalerSpec::default);
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![cpu_metric(DEFAULT_CPU_UTILIZATION)]);
    }
    // A behavior that is given is completed with the defaults of what it leaves out.
    if let Some(behavior) = spec.behavior.as_mut() {
        behavior.scale_up = Some(fill_rules(behavior.scale_up.take(), scale_up_defaults()));
        behavior.scale_down = Some(fill_rules(
            behavior.scale_down.take(),
            scale_down_defaults(),
        ));
    }
}

fn scale_up_defaults() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
        ]),
        ..Default::default()
    }
}

/// The scale-down window stays unset: the controller's flag decides it.
fn scale_down_defaults() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: None,
        select_policy: Some("Max".into()),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }]),
        ..Default::default()
    }
}

fn fill_rules(given: Option<HPAScalingRules>, mut defaults: HPAScalingRules) -> HPAScalingRules {
    let Some(given) = given else {
        return defaults;
    };
    if given.select_policy.is_some() {
        defaults.select_policy = given.select_policy;
    }
    if given.stabilization_window_seconds.is_some() {
        defaults.stabilization_window_seconds = given.stabilization_window_seconds;
    }
    if given.policies.is_some() {
        defaults.policies = given.policies;
    }
    if given.tolerance.is_some() {
        defaults.tolerance = given.tolerance;
    }
    defaults
}

impl TypedStrategy for HorizontalPodAutoscalerStrategy {
    type Object = HorizontalPodAutoscaler;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<HorizontalPodAutoscaler>()
            .short_names(&["hpa"])
            .categories(&["all"])
            .with_status()
    }

    fn default(&self, hpa: &mut HorizontalPodAutoscaler) {
        set_defaults(hpa);
    }

    fn prepare_for_create(&self, hpa: &mut HorizontalPodAutoscaler) {
        hpa.status = Some(HorizontalPodAutoscalerStatus::default());
    }

    fn prepare_for_update(&self, new: &mut HorizontalPodAutoscaler, old: &HorizontalPodAutoscaler) {
        new.status = old.status.clone();
    }

    fn validate(&self, hpa: &HorizontalPodAutoscaler) -> ErrorList {
        validate_hpa(hpa, 1)
    }

    fn validate_update(
        &self,
        new: &HorizontalPodAutoscaler,
        old: &HorizontalPodAutoscaler,
    ) -> ErrorList {
        validate_hpa_update(new, old)
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, hpa: &HorizontalPodAutoscaler, raw: &Value) -> Vec<Value> {
        hpa_row(hpa, raw)
    }
}

/// Upstream's `ValidateHorizontalPodAutoscaler` with the given lower bound of minReplicas.
pub(crate) fn validate_hpa(hpa: &HorizontalPodAutoscaler, min_lower_bound: i32) -> ErrorList {
    let path = Path::new("spec");
    let Some(spec) = &hpa.spec else {
        return vec![FieldError::required(&path, "")];
    };
    let mut errs = Vec::new();
    if let Some(min) = spec.min_replicas.filter(|m| *m < min_lower_bound) {
        errs.push(FieldError::invalid(
            &path.child("minReplicas"),
            min,
            format!("must be greater than or equal to {min_lower_bound}"),
        ));
    }
    if spec.max_replicas < 1 {
        errs.push(FieldError::invalid(
            &path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than 0",
        ));
    }
    if spec.min_replicas.is_some_and(|min| spec.max_replicas < min) {
        errs.push(FieldError::invalid(
            &path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    errs.extend(validate_object_reference(
        &spec.scale_target_ref,
        &path.child("scaleTargetRef"),
    ));
    let metrics = spec.metrics.as_deref().unwrap_or_default();
    let metrics_path = path.child("metrics");
    for (i, m) in metrics.iter().enumerate() {
        errs.extend(validate_metric_spec(m, &metrics_path.index(i)));
    }
    if spec.min_replicas == Some(0)
        && !metrics
            .iter()
            .any(|m| m.type_ == "Object" || m.type_ == "External")
    {
        errs.push(FieldError::forbidden(
            &metrics_path,
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    if let Some(behavior) = &spec.behavior {
        let bp = path.child("behavior");
        for (field, rules) in [
            ("scaleUp", &behavior.scale_up),
            ("scaleDown", &behavior.scale_down),
        ] {
            if let Some(rules) = rules {
                errs.extend(validate_scaling_rules(rules, &bp.child(field)));
            }
        }
    }
    errs
}

/// Updates keep a minReplicas of 0 valid when the object already had it; status writes
/// may not make counts negative.
pub(crate) fn validate_hpa_update(
    new: &HorizontalPodAutoscaler,
    old: &HorizontalPodAutoscaler,
) -> ErrorList {
    let old_min = old.spec.as_ref().and_then(|s| s.min_replicas);
    let mut errs = validate_hpa(new, if old_min == Some(0) { 0 } else { 1 });
    let status = new.status.clone().unwrap_or_default();
    let sp = Path::new("status");
    errs.extend(validation::validate_nonnegative_field(
        i64::from(status.current_replicas.unwrap_or(0)),
        &sp.child("currentReplicas"),
    ));
    errs.extend(validation::validate_nonnegative_field(
        i64::from(status.desired_replicas),
        &sp.child("desiredReplicas"),
    ));
    errs
}

fn validate_object_reference(r: &CrossVersionObjectReference, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (field, value) in [("kind", &r.kind), ("name", &r.name)] {
        let p = path.child(field);
        if value.is_empty() {
            errs.push(FieldError::required(&p, ""));
        } else {
            for msg in validation::is_valid_path_segment_name(value) {
                errs.push(FieldError::invalid(&p, value.as_str(), msg));
            }
        }
    }
    errs
}

fn validate_metric_spec(spec: &MetricSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let type_path = path.child("type");
    if spec.type_.is_empty() {
        errs.push(FieldError::required(
            &type_path,
            "must specify a metric source type",
        ));
    }
    if !METRIC_SOURCE_TYPES.contains(&spec.type_.as_str()) {
        errs.push(FieldError::not_supported(
            &type_path,
            spec.type_.as_str(),
            METRIC_SOURCE_TYPES,
        ));
    }
    let mut present = Vec::new();
    if let Some(o) = &spec.object {
        present.push("object");
        if present.len() == 1 {
            let p = path.child("object");
            errs.extend(validate_object_reference(
                &o.described_object,
                &p.child("describedObject"),
            ));
            errs.extend(validate_metric_identifier(&o.metric, &p.child("metric")));
            errs.extend(validate_metric_target(&o.target, &p.child("target")));
            if o.target.value.is_none() && o.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &p.child("target").child("averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
    }
    if let Some(e) = &spec.external {
        present.push("external");
        if present.len() == 1 {
            let p = path.child("external");
            errs.extend(validate_metric_identifier(&e.metric, &p.child("metric")));
            errs.extend(validate_metric_target(&e.target, &p.child("target")));
            let tp = p.child("target");
            match (&e.target.value, &e.target.average_value) {
                (None, None) => errs.push(FieldError::required(
                    &tp.child("averageValue"),
                    "must set either a target value for metric or a per-pod target",
                )),
                (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                    &tp.child("value"),
                    "may not set both a target value for metric and a per-pod target",
                )),
                _ => {}
            }
        }
    }
    if let Some(pods) = &spec.pods {
        present.push("pods");
        if present.len() == 1 {
            let p = path.child("pods");
            errs.extend(validate_metric_identifier(&pods.metric, &p.child("metric")));
            errs.extend(validate_metric_target(&pods.target, &p.child("target")));
            if pods.target.average_value.is_none() {
                errs.push(FieldError::required(
                    &p.child("target").child("averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
    }
    if let Some(r) = &spec.resource {
        present.push("resource");
        if present.len() == 1 {
            let p = path.child("resource");
            if r.name.is_empty() {
                errs.push(FieldError::required(
                    &p.child("name"),
                    "must specify a resource name",
                ));
            }
            errs.extend(validate_resource_target(&r.target, &p.child("target")));
        }
    }
    if let Some(c) = &spec.container_resource {
        present.push("containerResource");
        if present.len() == 1 {
            let p = path.child("containerResource");
            let np = p.child("name");
            if c.name.is_empty() {
                errs.push(FieldError::required(&np, "must specify a resource name"));
            } else if !c.name.contains('/')
                && !matches!(c.name.as_str(), "cpu" | "memory" | "ephemeral-storage")
                && !c.name.starts_with("hugepages-")
            {
                errs.push(FieldError::invalid(
                    &np,
                    c.name.as_str(),
                    "must be a standard resource for containers",
                ));
            }
            let cp = p.child("container");
            if c.container.is_empty() {
                errs.push(FieldError::required(&cp, "must specify a container"));
            } else {
                for msg in validation::is_dns1123_label(&c.container) {
                    errs.push(FieldError::invalid(&cp, c.container.as_str(), msg));
                }
            }
            errs.extend(validate_resource_target(&c.target, &p.child("target")));
        }
    }
    let expected = match spec.type_.as_str() {
        "Object" => Some(("object", spec.object.is_none())),
        "Pods" => Some(("pods", spec.pods.is_none())),
        "Resource" => Some(("resource", spec.resource.is_none())),
        "External" => Some(("external", spec.external.is_none())),
        "ContainerResource" => Some(("containerResource", spec.container_resource.is_none())),
        _ => None,
    };
    match expected {
        Some((field, true)) => errs.push(FieldError::required(
            &path.child(field),
            "must populate information for the given metric source",
        )),
        Some(_) => {}
        None => errs.push(FieldError::not_supported(
            &type_path,
            spec.type_.as_str(),
            METRIC_SOURCE_TYPES,
        )),
    }
    if present.len() != 1 {
        for field in present
            .iter()
            .filter(|f| Some(**f) != expected.map(|(e, _)| e))
        {
            errs.push(FieldError::forbidden(
                &path.child(field),
                "must populate the given metric source only",
            ));
        }
    }
    errs
}

fn validate_resource_target(t: &MetricTarget, path: &Path) -> ErrorList {
    let mut errs = validate_metric_target(t, path);
    match (t.average_utilization, &t.average_value) {
        (None, None) => errs.push(FieldError::required(
            &path.child("averageUtilization"),
            "must set either a target raw value or a target utilization",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            &path.child("averageValue"),
            "may not set both a target raw value and a target utilization",
        )),
        _ => {}
    }
    errs
}

fn quantity_sign(q: &Quantity) -> i32 {
    Q::parse(&q.0).map(|q| q.sign()).unwrap_or(0)
}

fn validate_metric_target(t: &MetricTarget, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let tp = path.child("type");
    if t.type_.is_empty() {
        errs.push(FieldError::required(
            &tp,
            "must specify a metric target type",
        ));
    }
    if !matches!(t.type_.as_str(), "Utilization" | "Value" | "AverageValue") {
        errs.push(FieldError::invalid(
            &tp,
            t.type_.as_str(),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (field, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
        if let Some(q) = q.as_ref().filter(|q| quantity_sign(q) != 1) {
            errs.push(FieldError::invalid(
                &path.child(field),
                q.0.as_str(),
                "must be positive",
            ));
        }
    }
    if let Some(u) = t.average_utilization.filter(|u| *u < 1) {
        errs.push(FieldError::invalid(
            &path.child("averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
    errs
}

fn validate_metric_identifier(id: &MetricIdentifier, path: &Path) -> ErrorList {
    let p = path.child("name");
    if id.name.is_empty() {
        return vec![FieldError::required(&p, "must specify a metric name")];
    }
    validation::is_valid_path_segment_name(&id.name)
        .into_iter()
        .map(|msg| FieldError::invalid(&p, id.name.as_str(), msg))
        .collect()
}

fn validate_scaling_rules(rules: &HPAScalingRules, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(w) = rules.stabilization_window_seconds {
        let p = path.child("stabilizationWindowSeconds");
        if w < 0 {
            errs.push(FieldError::invalid(
                &p,
                w,
                "must be greater than or equal to zero",
            ));
        }
        if w > MAX_STABILIZATION_WINDOW_SECONDS {
            errs.push(FieldError::invalid(
                &p,
                w,
                format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    if let Some(sp) = rules.select_policy.as_deref() {
        if !SELECT_POLICIES.contains(&sp) {
            errs.push(FieldError::not_supported(
                &path.child("selectPolicy"),
                sp,
                SELECT_POLICIES,
            ));
        }
    }
    let pp = path.child("policies");
    let policies = rules.policies.as_deref().unwrap_or_default();
    if policies.is_empty() {
        errs.push(FieldError::required(
            &pp,
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let p = pp.index(i);
        if !POLICY_TYPES.contains(&policy.type_.as_str()) {
            errs.push(FieldError::not_supported(
                &p.child("type"),
                policy.type_.as_str(),
                POLICY_TYPES,
            ));
        }
        if policy.value <= 0 {
            errs.push(FieldError::invalid(
                &p.child("value"),
                policy.value,
                "must be greater than zero",
            ));
        }
        let period = p.child("periodSeconds");
        if policy.period_seconds <= 0 {
            errs.push(FieldError::invalid(
                &period,
                policy.period_seconds,
                "must be greater than zero",
            ));
        }
        if policy.period_seconds > MAX_PERIOD_SECONDS {
            errs.push(FieldError::invalid(
                &period,
                policy.period_seconds,
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
    errs
}

/// A quantity as Go's `Quantity.String()` prints it (canonical form).
fn q(quantity: &Quantity) -> String {
    Q::parse(&quantity.0)
        .map(|q| q.canonical_string())
        .unwrap_or_else(|_| quantity.0.clone())
}

fn q_or_zero(quantity: Option<&Quantity>) -> String {
    quantity.map(q).unwrap_or_else(|| "0".into())
}

/// Upstream's `formatHPAMetrics`: `current/target` per metric, at most two, then
/// `+ N more...`.
fn format_metrics(specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    const UNKNOWN: &str = "<unknown>";
    let status = |i: usize| statuses.get(i);
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| match spec.type_.as_str() {
            "External" => {
                let Some(src) = &spec.external else {
                    return "<unknown type>".into();
                };
                let cur = status(i)
                    .and_then(|s| s.external.as_ref())
                    .map(|e| &e.current);
                match &src.target.average_value {
                    Some(avg) => {
                        let current = cur
                            .and_then(|c| c.average_value.as_ref())
                            .map(q)
                            .unwrap_or_else(|| UNKNOWN.into());
                        format!("{current}/{} (avg)", q(avg))
                    }
                    None => {
                        let current = cur
                            .map(|c| q_or_zero(c.value.as_ref()))
                            .unwrap_or_else(|| UNKNOWN.into());
                        format!("{current}/{}", q_or_zero(src.target.value.as_ref()))
                    }
                }
            }
            "Pods" => {
                let Some(src) = &spec.pods else {
                    return "<unknown type>".into();
                };
                let current = status(i)
                    .and_then(|s| s.pods.as_ref())
                    .map(|p| q_or_zero(p.current.average_value.as_ref()))
                    .unwrap_or_else(|| UNKNOWN.into());
                format!("{current}/{}", q_or_zero(src.target.average_value.as_ref()))
            }
            "Object" => {
                let Some(src) = &spec.object else {
                    return "<unknown type>".into();
                };
                let cur = status(i)
                    .and_then(|s| s.object.as_ref())
                    .map(|o| &o.current);
                match &src.target.average_value {
                    Some(avg) => {
                        let current = cur
                            .and_then(|c| c.average_value.as_ref())
                            .map(q)
                            .unwrap_or_else(|| UNKNOWN.into());
                        format!("{current}/{} (avg)", q(avg))
                    }
                    None => {
                        let current = cur
                            .map(|c| q_or_zero(c.value.as_ref()))
                            .unwrap_or_else(|| UNKNOWN.into());
                        format!("{current}/{}", q_or_zero(src.target.value.as_ref()))
                    }
                }
            }
            "Resource" | "ContainerResource" => {
                let (name, target, current) = if spec.type_ == "Resource" {
                    let Some(src) = &spec.resource else {
                        return "<unknown type>".into();
                    };
                    let cur = status(i)
                        .and_then(|s| s.resource.as_ref())
                        .map(|r| r.current.clone());
                    (src.name.clone(), src.target.clone(), cur)
                } else {
                    let Some(src) = &spec.container_resource else {
                        return "<unknown type>".into();
                    };
                    let cur = status(i)
                        .and_then(|s| s.container_resource.as_ref())
                        .map(|r| r.current.clone());
                    (src.name.clone(), src.target.clone(), cur)
                };
                match &target.average_value {
                    Some(avg) => {
                        let current = current
                            .map(|c| q_or_zero(c.average_value.as_ref()))
                            .unwrap_or_else(|| UNKNOWN.into());
                        format!("{name}: {current}/{}", q(avg))
                    }
                    None => {
                        let current = current
                            .and_then(|c| c.average_utilization)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| UNKNOWN.into());
                        let target = target
                            .average_utilization
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<auto>".into());
                        format!("{name}: {current}/{target}")
                    }
                }
            }
            _ => "<unknown type>".into(),
        })
        .collect();
    const MAXIMUM: usize = 2;
    if list.len() > MAXIMUM {
        format!(
            "{} + {} more...",
            list[..MAXIMUM].join(", "),
            list.len() - MAXIMUM
        )
    } else {
        list.join(", ")
    }
}

/// The printed row of an HPA of any version, from its v2 form.
pub(crate) fn hpa_row(hpa: &HorizontalPodAutoscaler, raw: &Value) -> Vec<Value> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let reference = format!(
        "{}/{}",
        spec.scale_target_ref.kind, spec.scale_target_ref.name
    );
    let metrics = format_metrics(
        spec.metrics.as_deref().unwrap_or_default(),
        status.current_metrics.as_deref().unwrap_or_default(),
    );
    let min_pods = spec
        .min_replicas
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".into());
    vec![
        Value::String(hpa.metadata.name.clone().unwrap_or_default()),
        Value::String(reference),
        Value::String(metrics),
        Value::String(min_pods),
        Value::from(spec.max_replicas),
        Value::from(status.current_replicas.unwrap_or(0)),
        table::age(raw),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    pub(crate) fn hpa() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5
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
        let s = Typed::new(HorizontalPodAutoscalerStrategy);
        let obj = s.decode(hpa()).unwrap();
        assert_eq!(obj["spec"]["minReplicas"], 1);
        assert_eq!(
            obj["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert!(obj["spec"].get("behavior").is_none());

        let mut with_behavior = hpa();
        with_behavior["spec"]["behavior"] =
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
        let obj = s.decode(with_behavior).unwrap();
        assert_eq!(
            obj["spec"]["behavior"],
            json!({
                "scaleDown": {
                    "stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]
                },
                "scaleUp": {
                    "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [
                        {"type": "Pods", "value": 4, "periodSeconds": 15},
                        {"type": "Percent", "value": 100, "periodSeconds": 15}
                    ]
                }
            })
        );
        let info = s.info().clone();
        assert_eq!(info.short_names, ["hpa"]);
        assert_eq!(info.categories, ["all"]);
        assert_eq!(info.version, "v2");
    }

    #[test]
    fn validation() {
        let s = Typed::new(HorizontalPodAutoscalerStrategy);
        let obj = s.decode(hpa()).unwrap();
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));

        let mut bad = hpa();
        bad["spec"]["minReplicas"] = json!(3);
        bad["spec"]["maxReplicas"] = json!(2);
        bad["spec"]["scaleTargetRef"] = json!({"kind": "", "name": "web"});
        bad["spec"]["metrics"] = json!([{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue"}}}]);
        let errs = s.validate(&s.decode(bad).unwrap());
        assert_eq!(
            messages(&errs),
            [
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Required value",
                "spec.metrics[0].pods.target.averageValue: Required value: must specify a positive target averageValue",
            ]
        );

        let mut zero = hpa();
        zero["spec"]["minReplicas"] = json!(0);
        let errs = s.validate(&s.decode(zero).unwrap());
        assert_eq!(
            errs[0].body(),
            "Invalid value: 0: must be greater than or equal to 1"
        );

        let mut util = hpa();
        util["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]);
        let errs = s.validate(&s.decode(util).unwrap());
        assert_eq!(
            messages(&errs),
            ["spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"]
        );
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(HorizontalPodAutoscalerStrategy);
        let mut obj = s.decode(hpa()).unwrap();
        obj["status"] = json!({
            "currentReplicas": 2, "desiredReplicas": 2,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "100m"}}}]
        });
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(
            &row[..6],
            &[
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 35%/80%"),
                json!("1"),
                json!(5),
                json!(2)
            ]
        );
        obj["status"] = json!({"desiredReplicas": 0});
        assert_eq!(s.row(&obj)[2], "cpu: <unknown>/80%");
        obj["spec"]["metrics"] = json!([
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}
        ]);
        assert_eq!(
            s.row(&obj)[2],
            "memory: <unknown>/100Mi, <unknown>/1k + 1 more..."
        );
    }
}
