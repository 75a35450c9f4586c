//! limitranges: per-namespace bounds and defaults for container, pod and claim resources,
//! defaulted and validated as upstream's `SetDefaults_LimitRangeItem` and
//! `ValidateLimitRange`. Upstream has no printer for them, so `kubectl get` shows the
//! default NAME and CREATED AT columns.

use std::collections::BTreeSet;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::quantity::Quantity;
use apimachinery::validation;
use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem};
use serde_json::Value;

use crate::object;
use crate::registry::core::resourcelist::{self, ResourceList};
use crate::registry::table::{Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct LimitRangeStrategy;

/// The default table's timestamp column (upstream's `DefaultTableConvertor`).
const CREATED_AT: Column = Column::new("Created At", "date", AGE.description);

const COLUMNS: &[Column] = &[NAME, CREATED_AT];

fn default_item(item: &mut LimitRangeItem) {
    for list in [
        &mut item.default,
        &mut item.default_request,
        &mut item.max,
        &mut item.min,
        &mut item.max_limit_request_ratio,
    ] {
        resourcelist::normalize(list);
    }
    if item.type_ != "Container" {
        return;
    }
    let max = item.max.clone().unwrap_or_default();
    let min = item.min.clone().unwrap_or_default();
    let default = item.default.get_or_insert_with(Default::default);
    // A missing default limit is the max; a missing default request is the default limit,
    // else the min.
    for (k, v) in max {
        default.entry(k).or_insert(v);
    }
    let default = default.clone();
    let request = item.default_request.get_or_insert_with(Default::default);
    for (k, v) in default {
        request.entry(k).or_insert(v);
    }
    for (k, v) in min {
        request.entry(k).or_insert(v);
    }
}

fn validate_type_name(ty: &str, path: &Path) -> ErrorList {
    let errs: ErrorList = validation::is_qualified_name(ty)
        .into_iter()
        .map(|m| FieldError::invalid(path, ty, m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !ty.contains('/') && !["Pod", "Container", "PersistentVolumeClaim"].contains(&ty) {
        return vec![FieldError::invalid(
            path,
            ty,
            "must be a standard limit type or fully qualified",
        )];
    }
    errs
}

fn validate_resource_name(ty: &str, name: &str, path: &Path) -> ErrorList {
    if ty == "Pod" || ty == "Container" {
        resourcelist::validate_container_resource_name(name, path)
    } else {
        resourcelist::validate_resource_name(name, path)
    }
}

/// Upstream's `ValidateLimitRange`.
fn validate(lr: &LimitRange) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec").child("limits");
    let mut types = BTreeSet::new();
    let limits = lr
        .spec
        .as_ref()
        .map(|s| s.limits.as_slice())
        .unwrap_or_default();
    for (i, item) in limits.iter().enumerate() {
        let p = path.index(i);
        let ty = item.type_.as_str();
        errs.extend(validate_type_name(ty, &p.child("type")));
        if !types.insert(ty) {
            errs.push(FieldError::duplicate(&p.child("type"), ty));
        }
        let mut keys = BTreeSet::new();
        let mut collect = |field: &str, list: &Option<ResourceList>, errs: &mut ErrorList| {
            for name in list.iter().flat_map(|l| l.keys()) {
                errs.extend(validate_resource_name(ty, name, &p.child(field).key(name)));
                keys.insert(name.clone());
            }
        };
        collect("max", &item.max, &mut errs);
        collect("min", &item.min, &mut errs);
        if ty == "Pod" {
            if item.default.as_ref().is_some_and(|d| !d.is_empty()) {
                errs.push(FieldError::forbidden(
                    &p.child("default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            if item.default_request.as_ref().is_some_and(|d| !d.is_empty()) {
                errs.push(FieldError::forbidden(
                    &p.child("defaultRequest"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
        } else {
            collect("default", &item.default, &mut errs);
            collect("defaultRequest", &item.default_request, &mut errs);
        }
        if ty == "PersistentVolumeClaim" {
            let has =
                |l: &Option<ResourceList>| l.as_ref().is_some_and(|l| l.contains_key("storage"));
            if !has(&item.min) && !has(&item.max) {
                errs.push(FieldError::required(
                    &p.child("limits"),
                    "either minimum or maximum storage value is required, but neither was provided",
                ));
            }
        }
        collect(
            "maxLimitRequestRatio",
            &item.max_limit_request_ratio,
            &mut errs,
        );
        let get = |l: &Option<ResourceList>, k: &str| -> Option<Quantity> {
            l.as_ref()
                .and_then(|l| l.get(k))
                .and_then(|q| Quantity::try_from(q).ok())
        };
        for k in &keys {
            let min = get(&item.min, k);
            let max = get(&item.max, k);
            let default = if ty == "Pod" {
                None
            } else {
                get(&item.default, k)
            };
            let request = if ty == "Pod" {
                None
            } else {
                get(&item.default_request, k)
            };
            let ratio = get(&item.max_limit_request_ratio, k);
            if let (Some(min), Some(max)) = (&min, &max) {
                if min > max {
                    errs.push(FieldError::invalid(
                        &p.child("min").key(k),
                        min.to_string(),
                        format!("min value {min} is greater than max value {max}"),
                    ));
                }
            }
            if let Some(req) = &request {
                if let Some(min) = min.as_ref().filter(|min| *min > req) {
                    errs.push(FieldError::invalid(
                        &p.child("defaultRequest").key(k),
                        req.to_string(),
                        format!("min value {min} is greater than default request value {req}"),
                    ));
                }
                if let Some(max) = max.as_ref().filter(|max| req > *max) {
                    errs.push(FieldError::invalid(
                        &p.child("defaultRequest").key(k),
                        req.to_string(),
                        format!("default request value {req} is greater than max value {max}"),
                    ));
                }
                if let Some(def) = default.as_ref().filter(|def| req > *def) {
                    errs.push(FieldError::invalid(
                        &p.child("defaultRequest").key(k),
                        req.to_string(),
                        format!(
                            "default request value {req} is greater than default limit value {def}"
                        ),
                    ));
                }
            }
            if let Some(def) = &default {
                if let Some(min) = min.as_ref().filter(|min| *min > def) {
                    errs.push(FieldError::invalid(
                        &p.child("default").key(k),
                        min.to_string(),
                        format!("min value {min} is greater than default value {def}"),
                    ));
                }
                if let Some(max) = max.as_ref().filter(|max| def > *max) {
                    errs.push(FieldError::invalid(
                        &p.child("default").key(k),
                        max.to_string(),
                        format!("default value {def} is greater than max value {max}"),
                    ));
                }
            }
            if let Some(ratio) = &ratio {
                if ratio.cmp_i64(1).is_lt() {
                    errs.push(FieldError::invalid(
                        &p.child("maxLimitRequestRatio").key(k),
                        ratio.to_string(),
                        format!("ratio {ratio} is less than 1"),
                    ));
                }
                if let (Some(min), Some(max)) = (&min, &max) {
                    let limit = max.milli_value() as f64 / min.milli_value() as f64;
                    let value = ratio.milli_value() as f64 / 1000.0;
                    if value > limit {
                        errs.push(FieldError::invalid(
                            &p.child("maxLimitRequestRatio").key(k),
                            ratio.to_string(),
                            format!("ratio {ratio} is greater than max/min = {limit:.6}"),
                        ));
                    }
                }
            }
            if !resourcelist::is_overcommit_allowed(k) {
                if let (Some(def), Some(req)) = (&default, &request) {
                    if def != req {
                        errs.push(FieldError::invalid(
                            &p.child("defaultRequest").key(k),
                            req.to_string(),
                            format!("default value {def} must equal to defaultRequest value {req} in {k}"),
                        ));
                    }
                }
            }
        }
        for list in [
            &item.max,
            &item.min,
            &item.default,
            &item.default_request,
            &item.max_limit_request_ratio,
        ] {
            for (name, q) in list.iter().flatten() {
                if let Err(e) = resourcelist::parse(q, &p.key(name)) {
                    errs.push(e);
                }
            }
        }
    }
    errs
}

impl TypedStrategy for LimitRangeStrategy {
    type Object = LimitRange;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<LimitRange>().short_names(&["limits"])
    }

    fn default(&self, lr: &mut LimitRange) {
        for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
            default_item(item);
        }
    }

    fn validate(&self, lr: &LimitRange) -> ErrorList {
        validate(lr)
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, lr: &LimitRange, raw: &Value) -> Vec<Value> {
        vec![
            lr.metadata.name.clone().unwrap_or_default().into(),
            object::meta_str(raw, "creationTimestamp")
                .map(|t| Value::String(t.to_string()))
                .unwrap_or(Value::Null),
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

    fn s() -> Typed<LimitRangeStrategy> {
        Typed::new(LimitRangeStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn container_defaults_come_from_max_and_min() {
        let obj = s()
            .decode(json!({"metadata": {"name": "lr"}, "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}))
            .unwrap();
        let item = &obj["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "2"}));
        assert_eq!(
            item["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        assert!(
            s().validate(&obj).is_empty(),
            "{:?}",
            messages(&s().validate(&obj))
        );
    }

    #[test]
    fn bounds_must_be_ordered() {
        let obj = s()
            .decode(json!({"metadata": {"name": "lr"}, "spec": {"limits": [
                {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}},
                {"type": "Pod", "default": {"cpu": "1"}},
                {"type": "Bogus"},
                {"type": "PersistentVolumeClaim"}]}}))
            .unwrap();
        let errs = messages(&s().validate(&obj));
        for e in [
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
            "spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": min value 2 is greater than default request value 1",
            "spec.limits[0].default[cpu]: Invalid value: \"2\": min value 2 is greater than default value 1",
            "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
            "spec.limits[2].type: Invalid value: \"Bogus\": must be a standard limit type or fully qualified",
            "spec.limits[3].limits: Required value: either minimum or maximum storage value is required, but neither was provided",
        ] {
            assert!(errs.iter().any(|m| m == e), "missing {e} in {errs:#?}");
        }
    }

    #[test]
    fn row_is_name_and_created_at() {
        let obj = json!({"metadata": {"name": "lr", "creationTimestamp": "2024-05-01T10:00:00Z"}, "spec": {"limits": []}});
        assert_eq!(
            s().row(&obj),
            vec![json!("lr"), json!("2024-05-01T10:00:00Z")]
        );
        assert_eq!(s().columns()[1].kind, "date");
    }
}
