//! horizontalpodautoscalers served as autoscaling/v1 over the autoscaling/v2 storage.
//!
//! v1 holds only a CPU utilization target; everything else of v2 travels in annotations,
//! exactly as upstream's conversion does, so that a v1 client's read-modify-write keeps
//! the v2 metrics, behavior, current metrics and conditions:
//!
//! - `autoscaling.alpha.kubernetes.io/metrics`: the metrics other than the CPU
//!   utilization target, in the legacy (v2beta1-shaped) form of `autoscaling/v1`;
//! - `autoscaling.alpha.kubernetes.io/current-metrics`: all current metrics, same form;
//! - `autoscaling.alpha.kubernetes.io/conditions`: the status conditions;
//! - `autoscaling.alpha.kubernetes.io/behavior`: the v2 behavior.
//!
//! Validation, defaults and printing are v2's, applied to the converted object, which
//! is what upstream does on its internal version.

use std::borrow::Cow;
use std::collections::BTreeMap;

use apimachinery::field::ErrorList;
use k8s_openapi::api::autoscaling::v1;
use k8s_openapi::api::autoscaling::v2;
use serde_json::{json, Map, Value};

use crate::registry::autoscaling::hpa::{self, cpu_metric};
use crate::registry::table::Column;
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP_ANNOTATIONS: &[&str] = &[
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

pub struct HorizontalPodAutoscalerV1Strategy;

impl TypedStrategy for HorizontalPodAutoscalerV1Strategy {
    type Object = v1::HorizontalPodAutoscaler;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<v1::HorizontalPodAutoscaler>()
            .short_names(&["hpa"])
            .categories(&["all"])
            .storage_path("horizontalpodautoscalers")
            .with_status()
    }

    fn default(&self, hpa: &mut v1::HorizontalPodAutoscaler) {
        hpa.spec
            .get_or_insert_with(Default::default)
            .min_replicas
            .get_or_insert(1);
    }

    fn decode_storage_version(&self, obj: Value) -> Value {
        match serde_json::from_value::<v2::HorizontalPodAutoscaler>(obj.clone()) {
            Ok(stored) => serde_json::to_value(to_v1(&stored)).unwrap_or(obj),
            Err(_) => obj,
        }
    }

    fn encode_storage_version<'a>(&self, obj: Cow<'a, Value>) -> Cow<'a, Value> {
        match serde_json::from_value::<v1::HorizontalPodAutoscaler>(obj.clone().into_owned()) {
            Ok(v1) => serde_json::to_value(to_v2(&v1)).map_or(obj, Cow::Owned),
            Err(_) => obj,
        }
    }

    fn prepare_for_create(&self, hpa: &mut v1::HorizontalPodAutoscaler) {
        hpa.status = Some(v1::HorizontalPodAutoscalerStatus::default());
        if let Some(a) = hpa.metadata.annotations.as_mut() {
            a.remove(METRIC_STATUSES_ANNOTATION);
            a.remove(CONDITIONS_ANNOTATION);
        }
    }

    fn prepare_for_update(
        &self,
        new: &mut v1::HorizontalPodAutoscaler,
        old: &v1::HorizontalPodAutoscaler,
    ) {
        new.status = old.status.clone();
        // The part of the v2 status that v1 keeps in annotations is status too.
        let old_annotations = old.metadata.annotations.clone().unwrap_or_default();
        let annotations = new.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for key in [METRIC_STATUSES_ANNOTATION, CONDITIONS_ANNOTATION] {
            match old_annotations.get(key) {
                Some(v) => annotations.insert(key.into(), v.clone()),
                None => annotations.remove(key),
            };
        }
        if annotations.is_empty() {
            new.metadata.annotations = None;
        }
    }

    fn validate(&self, hpa: &v1::HorizontalPodAutoscaler) -> ErrorList {
        hpa::validate_hpa(&to_v2(hpa), 1)
    }

    fn validate_update(
        &self,
        new: &v1::HorizontalPodAutoscaler,
        old: &v1::HorizontalPodAutoscaler,
    ) -> ErrorList {
        hpa::validate_hpa_update(&to_v2(new), &to_v2(old))
    }

    fn columns(&self) -> &'static [Column] {
        hpa::COLUMNS
    }

    fn row(&self, hpa: &v1::HorizontalPodAutoscaler, raw: &Value) -> Vec<Value> {
        hpa::hpa_row(&to_v2(hpa), raw)
    }
}

fn quantity_json(q: Option<&Value>) -> Value {
    // Go's zero Quantity, which v1's non-pointer quantities print when v2 has none.
    q.cloned().unwrap_or_else(|| Value::String("0".into()))
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        map.insert(key.into(), v.clone());
    }
}

/// A v2 metric source as the legacy v1 annotation stores it.
fn legacy_metric_spec(m: &v2::MetricSpec) -> Value {
    let m = serde_json::to_value(m).unwrap_or(Value::Null);
    let get = |path: &str| crate::object::path(&m, path);
    let mut out = Map::new();
    let ty = get("type").and_then(Value::as_str).unwrap_or_default();
    out.insert("type".into(), Value::String(ty.into()));
    let mut src = Map::new();
    let key = match ty {
        "Object" => {
            insert_some(&mut src, "target", get("object.describedObject"));
            insert_some(&mut src, "metricName", get("object.metric.name"));
            src.insert(
                "targetValue".into(),
                quantity_json(get("object.target.value")),
            );
            insert_some(&mut src, "selector", get("object.metric.selector"));
            insert_some(&mut src, "averageValue", get("object.target.averageValue"));
            "object"
        }
        "Pods" => {
            insert_some(&mut src, "metricName", get("pods.metric.name"));
            src.insert(
                "targetAverageValue".into(),
                quantity_json(get("pods.target.averageValue")),
            );
            insert_some(&mut src, "selector", get("pods.metric.selector"));
            "pods"
        }
        "Resource" | "ContainerResource" => {
            let base = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            insert_some(&mut src, "name", get(&format!("{base}.name")));
            insert_some(
                &mut src,
                "targetAverageUtilization",
                get(&format!("{base}.target.averageUtilization")),
            );
            insert_some(
                &mut src,
                "targetAverageValue",
                get(&format!("{base}.target.averageValue")),
            );
            insert_some(&mut src, "container", get(&format!("{base}.container")));
            base
        }
        "External" => {
            insert_some(&mut src, "metricName", get("external.metric.name"));
            insert_some(&mut src, "metricSelector", get("external.metric.selector"));
            insert_some(&mut src, "targetValue", get("external.target.value"));
            insert_some(
                &mut src,
                "targetAverageValue",
                get("external.target.averageValue"),
            );
            "external"
        }
        _ => return Value::Object(out),
    };
    out.insert(key.into(), Value::Object(src));
    Value::Object(out)
}

/// A legacy v1 annotation metric source in v2 form.
fn from_legacy_metric_spec(m: &Value) -> Option<v2::MetricSpec> {
    let get = |path: &str| {
        crate::object::path(m, path)
            .filter(|v| !v.is_null())
            .cloned()
    };
    let ty = get("type")?.as_str()?.to_string();
    let target = |util: Option<Value>, avg: Option<Value>, value: Option<Value>, ty: &str| {
        let mut t = json!({"type": ty});
        if let Some(u) = util {
            t["averageUtilization"] = u;
        }
        if let Some(a) = avg {
            t["averageValue"] = a;
        }
        if let Some(v) = value {
            t["value"] = v;
        }
        t
    };
    let metric = |name: Option<Value>, selector: Option<Value>| {
        let mut id = json!({"name": name.unwrap_or(Value::String(String::new()))});
        if let Some(s) = selector {
            id["selector"] = s;
        }
        id
    };
    let v2 = match ty.as_str() {
        "Object" => {
            let avg = get("object.averageValue");
            let kind = if avg.is_some() {
                "AverageValue"
            } else {
                "Value"
            };
            json!({"type": "Object", "object": {
                "describedObject": get("object.target").unwrap_or_else(|| json!({"kind": "", "name": ""})),
                "metric": metric(get("object.metricName"), get("object.selector")),
                "target": target(None, avg, Some(quantity_json(get("object.targetValue").as_ref())), kind),
            }})
        }
        "Pods" => json!({"type": "Pods", "pods": {
            "metric": metric(get("pods.metricName"), get("pods.selector")),
            "target": target(None, Some(quantity_json(get("pods.targetAverageValue").as_ref())), None, "AverageValue"),
        }}),
        "Resource" | "ContainerResource" => {
            let base = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let util = get(&format!("{base}.targetAverageUtilization"));
            let kind = if util.is_some() {
                "Utilization"
            } else {
                "AverageValue"
            };
            let mut src = json!({
                "name": get(&format!("{base}.name")).unwrap_or(Value::String(String::new())),
                "target": target(util, get(&format!("{base}.targetAverageValue")), None, kind),
            });
            if let Some(c) = get(&format!("{base}.container")) {
                src["container"] = c;
            }
            keyed(&ty, base, src)
        }
        "External" => {
            let value = get("external.targetValue");
            let kind = if value.is_some() {
                "Value"
            } else {
                "AverageValue"
            };
            json!({"type": "External", "external": {
                "metric": metric(get("external.metricName"), get("external.metricSelector")),
                "target": target(None, get("external.targetAverageValue"), value, kind),
            }})
        }
        _ => json!({"type": ty}),
    };
    serde_json::from_value(v2).ok()
}

/// A v2 current metric as the legacy v1 annotation stores it.
fn legacy_metric_status(m: &v2::MetricStatus) -> Value {
    let m = serde_json::to_value(m).unwrap_or(Value::Null);
    let get = |path: &str| crate::object::path(&m, path);
    let ty = get("type").and_then(Value::as_str).unwrap_or_default();
    let mut src = Map::new();
    let key = match ty {
        "Object" => {
            insert_some(&mut src, "target", get("object.describedObject"));
            insert_some(&mut src, "metricName", get("object.metric.name"));
            src.insert(
                "currentValue".into(),
                quantity_json(get("object.current.value")),
            );
            insert_some(&mut src, "selector", get("object.metric.selector"));
            insert_some(&mut src, "averageValue", get("object.current.averageValue"));
            "object"
        }
        "Pods" => {
            insert_some(&mut src, "metricName", get("pods.metric.name"));
            src.insert(
                "currentAverageValue".into(),
                quantity_json(get("pods.current.averageValue")),
            );
            insert_some(&mut src, "selector", get("pods.metric.selector"));
            "pods"
        }
        "Resource" | "ContainerResource" => {
            let base = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            insert_some(&mut src, "name", get(&format!("{base}.name")));
            insert_some(
                &mut src,
                "currentAverageUtilization",
                get(&format!("{base}.current.averageUtilization")),
            );
            src.insert(
                "currentAverageValue".into(),
                quantity_json(get(&format!("{base}.current.averageValue"))),
            );
            insert_some(&mut src, "container", get(&format!("{base}.container")));
            base
        }
        "External" => {
            insert_some(&mut src, "metricName", get("external.metric.name"));
            insert_some(&mut src, "metricSelector", get("external.metric.selector"));
            src.insert(
                "currentValue".into(),
                quantity_json(get("external.current.value")),
            );
            insert_some(
                &mut src,
                "currentAverageValue",
                get("external.current.averageValue"),
            );
            "external"
        }
        _ => return json!({"type": ty}),
    };
    keyed(ty, key, Value::Object(src))
}

/// A legacy v1 annotation current metric in v2 form.
fn from_legacy_metric_status(m: &Value) -> Option<v2::MetricStatus> {
    let get = |path: &str| {
        crate::object::path(m, path)
            .filter(|v| !v.is_null())
            .cloned()
    };
    let ty = get("type")?.as_str()?.to_string();
    let current = |util: Option<Value>, avg: Option<Value>, value: Option<Value>| {
        let mut c = json!({});
        if let Some(u) = util {
            c["averageUtilization"] = u;
        }
        if let Some(a) = avg {
            c["averageValue"] = a;
        }
        if let Some(v) = value {
            c["value"] = v;
        }
        c
    };
    let metric = |name: Option<Value>, selector: Option<Value>| {
        let mut id = json!({"name": name.unwrap_or(Value::String(String::new()))});
        if let Some(s) = selector {
            id["selector"] = s;
        }
        id
    };
    let v2 = match ty.as_str() {
        "Object" => json!({"type": "Object", "object": {
            "describedObject": get("object.target").unwrap_or_else(|| json!({"kind": "", "name": ""})),
            "metric": metric(get("object.metricName"), get("object.selector")),
            "current": current(None, get("object.averageValue"), Some(quantity_json(get("object.currentValue").as_ref()))),
        }}),
        "Pods" => json!({"type": "Pods", "pods": {
            "metric": metric(get("pods.metricName"), get("pods.selector")),
            "current": current(None, Some(quantity_json(get("pods.currentAverageValue").as_ref())), None),
        }}),
        "Resource" | "ContainerResource" => {
            let base = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let mut src = json!({
                "name": get(&format!("{base}.name")).unwrap_or(Value::String(String::new())),
                "current": current(
                    get(&format!("{base}.currentAverageUtilization")),
                    Some(quantity_json(get(&format!("{base}.currentAverageValue")).as_ref())),
                    None,
                ),
            });
            if let Some(c) = get(&format!("{base}.container")) {
                src["container"] = c;
            }
            keyed(&ty, base, src)
        }
        "External" => json!({"type": "External", "external": {
            "metric": metric(get("external.metricName"), get("external.metricSelector")),
            "current": current(None, get("external.currentAverageValue"), Some(quantity_json(get("external.currentValue").as_ref()))),
        }}),
        _ => json!({"type": ty}),
    };
    serde_json::from_value(v2).ok()
}

/// `{"type": <ty>, <key>: <src>}`.
fn keyed(ty: &str, key: &str, src: Value) -> Value {
    let mut map = Map::new();
    map.insert("type".into(), Value::String(ty.into()));
    map.insert(key.into(), src);
    Value::Object(map)
}

fn is_cpu_resource(m: &v2::MetricSpec) -> Option<&v2::ResourceMetricSource> {
    m.resource
        .as_ref()
        .filter(|r| m.type_ == "Resource" && r.name == "cpu")
}

/// The v1 view of a stored v2 object (upstream's internal → v1 conversion).
pub fn to_v1(hpa: &v2::HorizontalPodAutoscaler) -> v1::HorizontalPodAutoscaler {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone();
    let mut annotations = hpa.metadata.annotations.clone().unwrap_or_default();
    // Only what this conversion writes may be there.
    for key in ROUND_TRIP_ANNOTATIONS {
        annotations.remove(*key);
    }
    let metrics = spec.metrics.clone().unwrap_or_default();
    let target_cpu = metrics
        .iter()
        .find_map(is_cpu_resource)
        .and_then(|r| r.target.average_utilization);
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| is_cpu_resource(m).is_none_or(|r| r.target.average_utilization.is_none()))
        .map(legacy_metric_spec)
        .collect();
    if !others.is_empty() {
        annotations.insert(
            METRIC_SPECS_ANNOTATION.into(),
            Value::Array(others).to_string(),
        );
    }
    if let Some(behavior) = &spec.behavior {
        annotations.insert(
            BEHAVIOR_ANNOTATION.into(),
            serde_json::to_string(behavior).unwrap_or_default(),
        );
    }
    let v1_status = status.as_ref().map(|s| {
        let current = s.current_metrics.clone().unwrap_or_default();
        if !current.is_empty() {
            let legacy: Vec<Value> = current.iter().map(legacy_metric_status).collect();
            annotations.insert(
                METRIC_STATUSES_ANNOTATION.into(),
                Value::Array(legacy).to_string(),
            );
        }
        let conditions = s.conditions.clone().unwrap_or_default();
        if !conditions.is_empty() {
            annotations.insert(
                CONDITIONS_ANNOTATION.into(),
                serde_json::to_string(&conditions).unwrap_or_default(),
            );
        }
        v1::HorizontalPodAutoscalerStatus {
            current_cpu_utilization_percentage: current
                .iter()
                .filter(|m| m.type_ == "Resource")
                .filter_map(|m| m.resource.as_ref())
                .filter(|r| r.name == "cpu")
                .filter_map(|r| r.current.average_utilization)
                .next_back(),
            current_replicas: s.current_replicas.unwrap_or(0),
            desired_replicas: s.desired_replicas,
            last_scale_time: s.last_scale_time.clone(),
            observed_generation: s.observed_generation,
        }
    });
    let mut metadata = hpa.metadata.clone();
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    v1::HorizontalPodAutoscaler {
        metadata,
        spec: Some(v1::HorizontalPodAutoscalerSpec {
            max_replicas: spec.max_replicas,
            min_replicas: spec.min_replicas,
            scale_target_ref: v1::CrossVersionObjectReference {
                api_version: spec.scale_target_ref.api_version.clone(),
                kind: spec.scale_target_ref.kind.clone(),
                name: spec.scale_target_ref.name.clone(),
            },
            target_cpu_utilization_percentage: target_cpu,
        }),
        status: v1_status,
    }
}

fn take_annotation(annotations: &mut BTreeMap<String, String>, key: &str) -> Option<Value> {
    annotations
        .remove(key)
        .and_then(|v| serde_json::from_str(&v).ok())
}

/// The stored v2 form of a v1 object (upstream's v1 → internal conversion), with the v2
/// defaults the storage version would apply.
pub fn to_v2(hpa: &v1::HorizontalPodAutoscaler) -> v2::HorizontalPodAutoscaler {
    let spec = hpa.spec.clone().unwrap_or_default();
    let mut annotations = hpa.metadata.annotations.clone().unwrap_or_default();
    let mut metrics: Vec<v2::MetricSpec> =
        match take_annotation(&mut annotations, METRIC_SPECS_ANNOTATION) {
            Some(Value::Array(items)) => items.iter().filter_map(from_legacy_metric_spec).collect(),
            _ => Vec::new(),
        };
    if let Some(cpu) = spec.target_cpu_utilization_percentage {
        metrics.push(cpu_metric(cpu));
    }
    let behavior = take_annotation(&mut annotations, BEHAVIOR_ANNOTATION)
        .and_then(|v| serde_json::from_value::<v2::HorizontalPodAutoscalerBehavior>(v).ok());
    let current_from_annotation = take_annotation(&mut annotations, METRIC_STATUSES_ANNOTATION);
    let conditions = take_annotation(&mut annotations, CONDITIONS_ANNOTATION)
        .and_then(|v| serde_json::from_value::<Vec<v2::HorizontalPodAutoscalerCondition>>(v).ok());
    let status = hpa.status.as_ref().map(|s| {
        // The annotation has more than the CPU percentage; it wins when present.
        let current_metrics = match &current_from_annotation {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(from_legacy_metric_status)
                    .collect::<Vec<_>>(),
            ),
            _ => s.current_cpu_utilization_percentage.map(|u| {
                vec![v2::MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(v2::ResourceMetricStatus {
                        name: "cpu".into(),
                        current: v2::MetricValueStatus {
                            average_utilization: Some(u),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                }]
            }),
        };
        v2::HorizontalPodAutoscalerStatus {
            conditions: conditions.clone().filter(|c| !c.is_empty()),
            current_metrics: current_metrics.filter(|m| !m.is_empty()),
            current_replicas: Some(s.current_replicas).filter(|r| *r != 0),
            desired_replicas: s.desired_replicas,
            last_scale_time: s.last_scale_time.clone(),
            observed_generation: s.observed_generation,
        }
    });
    let mut metadata = hpa.metadata.clone();
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let mut out = v2::HorizontalPodAutoscaler {
        metadata,
        spec: Some(v2::HorizontalPodAutoscalerSpec {
            behavior,
            max_replicas: spec.max_replicas,
            metrics: Some(metrics),
            min_replicas: spec.min_replicas,
            scale_target_ref: v2::CrossVersionObjectReference {
                api_version: spec.scale_target_ref.api_version.clone(),
                kind: spec.scale_target_ref.kind.clone(),
                name: spec.scale_target_ref.name.clone(),
            },
        }),
        status,
    };
    hpa::set_defaults(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::autoscaling::hpa::HorizontalPodAutoscalerStrategy;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;

    fn v2_hpa() -> Value {
        let s = Typed::new(HorizontalPodAutoscalerStrategy);
        let mut obj = s
            .decode(json!({
                "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2,
                    "maxReplicas": 10,
                    "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                        {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}}, "target": {"type": "Value", "value": "30"}}},
                        {"type": "Object", "object": {"describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}, "metric": {"name": "rps"}, "target": {"type": "Value", "value": "10k"}}}
                    ],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}
                }
            }))
            .unwrap();
        obj["status"] = json!({
            "currentReplicas": 3, "desiredReplicas": 4,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "350m"}}}],
            "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2025-01-01T00:00:00Z"}]
        });
        obj
    }

    #[test]
    fn v2_to_v1_and_back_is_lossless() {
        let v1s = Typed::new(HorizontalPodAutoscalerV1Strategy);
        let stored = v2_hpa();
        let v1 = v1s.decode_storage_version(stored.clone());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentReplicas"], 3);
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let legacy: Value =
            serde_json::from_str(ann[METRIC_SPECS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(
            legacy[0],
            json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}})
        );
        assert_eq!(
            legacy[1],
            json!({"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}})
        );
        assert!(ann.get(CONDITIONS_ANNOTATION).is_some());
        assert!(ann.get(BEHAVIOR_ANNOTATION).is_some());

        let back = v1s.encode_storage_version(Cow::Owned(v1)).into_owned();
        assert_eq!(back["apiVersion"], "autoscaling/v2");
        assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
        // The CPU target comes last, after the ones kept in the annotation.
        let mut expected = stored["spec"]["metrics"].as_array().unwrap().clone();
        let cpu = expected.remove(0);
        expected.push(cpu);
        assert_eq!(back["spec"]["metrics"], Value::Array(expected));
        assert_eq!(back["spec"]["behavior"], stored["spec"]["behavior"]);
        assert_eq!(back["status"], stored["status"]);
    }

    #[test]
    fn v1_objects_get_v2_defaults_and_validation() {
        let v1s = Typed::new(HorizontalPodAutoscalerV1Strategy);
        let obj = v1s
            .decode(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}
            }))
            .unwrap();
        assert_eq!(obj["spec"]["minReplicas"], 1);
        assert!(v1s.validate(&obj).is_empty());
        let stored = v1s
            .encode_storage_version(Cow::Owned(obj.clone()))
            .into_owned();
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let read = v1s.decode_storage_version(stored);
        assert_eq!(read["spec"]["targetCPUUtilizationPercentage"], 80);
        assert!(read["metadata"].get("annotations").is_none());

        let mut bad = obj.clone();
        bad["spec"]["targetCPUUtilizationPercentage"] = json!(0);
        bad["spec"]["maxReplicas"] = json!(0);
        let errs = v1s.validate(&bad);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.maxReplicas",
                "spec.maxReplicas",
                "spec.metrics[0].resource.target.averageUtilization"
            ]
        );
        let row = v1s.row(&read_with_status(&v1s));
        assert_eq!(row[2], "cpu: 20%/80%");
        let info = v1s.info().clone();
        assert_eq!(
            (info.version, info.storage_path),
            ("v1", "horizontalpodautoscalers")
        );
    }

    fn read_with_status(v1s: &Typed<HorizontalPodAutoscalerV1Strategy>) -> Value {
        let mut stored = v2_hpa();
        stored["spec"]["metrics"] = json!([]);
        stored["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] =
            json!(20);
        let mut v2 = serde_json::from_value::<v2::HorizontalPodAutoscaler>(stored).unwrap();
        hpa::set_defaults(&mut v2);
        v1s.decode_storage_version(serde_json::to_value(v2).unwrap())
    }

    #[test]
    fn v1_update_keeps_status_annotations() {
        let v1s = Typed::new(HorizontalPodAutoscalerV1Strategy);
        let old = v1s.decode_storage_version(v2_hpa());
        let mut new = old.clone();
        new["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(CONDITIONS_ANNOTATION);
        new["spec"]["maxReplicas"] = json!(12);
        v1s.prepare_for_update(&mut new, &old);
        assert_eq!(
            new["metadata"]["annotations"][CONDITIONS_ANNOTATION],
            old["metadata"]["annotations"][CONDITIONS_ANNOTATION]
        );
        let stored = v1s.encode_storage_version(Cow::Owned(new)).into_owned();
        assert_eq!(stored["spec"]["maxReplicas"], 12);
        assert_eq!(stored["spec"]["metrics"].as_array().unwrap().len(), 5);
        assert_eq!(stored["status"]["conditions"][0]["type"], "AbleToScale");
    }
}
