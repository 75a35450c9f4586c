//! resourcequotas: hard limits per namespace, with usage in status (written by the quota
//! controller through `/status`); scopes are immutable. `kubectl get quota` prints
//! `used/hard` pairs split into request and limit columns.

use std::collections::BTreeSet;

use apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus};
use serde_json::Value;

use crate::registry::core::resourcelist::{self, ResourceList};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct ResourceQuotaStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    AGE,
    Column::new(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Column::new(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

fn scope_valid_for_resource(scope: &str, resource: &str) -> bool {
    let pod_count = resourcelist::POD_OBJECT_COUNT_RESOURCES.contains(&resource);
    let pod_compute = resourcelist::POD_COMPUTE_RESOURCES.contains(&resource);
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => pod_count || pod_compute,
        "BestEffort" => pod_count,
        _ => true,
    }
}

fn validate_list(list: &Option<ResourceList>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (name, q) in list.iter().flatten() {
        let p = path.key(name);
        errs.extend(resourcelist::validate_quota_resource_name(name, &p));
        errs.extend(resourcelist::validate_quantity_value(name, q, &p));
    }
    errs
}

/// Upstream's `ValidateResourceQuotaSpec`.
fn validate_spec(spec: &ResourceQuotaSpec, path: &Path) -> ErrorList {
    let mut errs = validate_list(&spec.hard, &path.child("hard"));
    let hard: BTreeSet<&str> = spec
        .hard
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let scopes = spec.scopes.clone().unwrap_or_default();
    let scopes_value = || serde_json::to_value(&scopes).unwrap_or_default();
    let scopes_path = path.child("scopes");
    let conflicting = |set: &BTreeSet<&str>| {
        set.contains("BestEffort") && set.contains("NotBestEffort")
            || set.contains("Terminating") && set.contains("NotTerminating")
    };
    let mut seen = BTreeSet::new();
    for scope in &scopes {
        if !SCOPES.contains(&scope.as_str()) {
            errs.push(FieldError::invalid(
                &scopes_path,
                scopes_value(),
                "unsupported scope",
            ));
        }
        for k in &hard {
            if resourcelist::is_standard_quota_resource_name(k)
                && !scope_valid_for_resource(scope, k)
            {
                errs.push(FieldError::invalid(
                    &scopes_path,
                    scopes_value(),
                    "unsupported scope applied to resource",
                ));
            }
        }
        seen.insert(scope.as_str());
    }
    if conflicting(&seen) {
        errs.push(FieldError::invalid(
            &scopes_path,
            scopes_value(),
            "conflicting scopes",
        ));
    }
    if let Some(sel) = &spec.scope_selector {
        let p = path.child("scopeSelector").child("matchExpressions");
        let mut seen = BTreeSet::new();
        for req in sel.match_expressions.iter().flatten() {
            let scope = req.scope_name.as_str();
            if !SCOPES.contains(&scope) {
                errs.push(FieldError::invalid(
                    &p.child("scopeName"),
                    scope,
                    "unsupported scope",
                ));
            }
            for k in &hard {
                if resourcelist::is_standard_quota_resource_name(k)
                    && !scope_valid_for_resource(scope, k)
                {
                    errs.push(FieldError::invalid(
                        &p,
                        serde_json::to_value(sel).unwrap_or_default(),
                        "unsupported scope applied to resource",
                    ));
                }
            }
            if scope != "PriorityClass" && SCOPES.contains(&scope) && req.operator != "Exists" {
                errs.push(FieldError::invalid(
                    &p.child("operator"),
                    req.operator.as_str(),
                    "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
                ));
            }
            let values = req.values.clone().unwrap_or_default();
            match req.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                    &p.child("values"),
                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                )),
                "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::invalid(
                    &p.child("values"),
                    serde_json::to_value(&values).unwrap_or_default(),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => errs.push(FieldError::invalid(
                    &p.child("operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            seen.insert(scope);
        }
        if conflicting(&seen) {
            errs.push(FieldError::invalid(
                &p,
                scopes_value(),
                "conflicting scopes",
            ));
        }
    }
    errs
}

fn validate_status(status: &Option<ResourceQuotaStatus>) -> ErrorList {
    let status = status.clone().unwrap_or_default();
    let path = Path::new("status");
    let mut errs = validate_list(&status.hard, &path.child("hard"));
    errs.extend(validate_list(&status.used, &path.child("used")));
    errs
}

impl TypedStrategy for ResourceQuotaStrategy {
    type Object = ResourceQuota;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ResourceQuota>()
            .short_names(&["quota"])
            .with_status()
    }

    fn default(&self, q: &mut ResourceQuota) {
        if let Some(spec) = q.spec.as_mut() {
            resourcelist::normalize(&mut spec.hard);
        }
        if let Some(status) = q.status.as_mut() {
            resourcelist::normalize(&mut status.hard);
            resourcelist::normalize(&mut status.used);
        }
    }

    fn prepare_for_create(&self, q: &mut ResourceQuota) {
        q.status = None;
    }

    fn prepare_for_update(&self, new: &mut ResourceQuota, old: &ResourceQuota) {
        new.status = old.status.clone();
    }

    fn validate(&self, q: &ResourceQuota) -> ErrorList {
        let mut errs = validate_spec(&q.spec.clone().unwrap_or_default(), &Path::new("spec"));
        errs.extend(validate_status(&q.status));
        errs
    }

    fn validate_update(&self, new: &ResourceQuota, old: &ResourceQuota) -> ErrorList {
        let mut errs = self.validate(new);
        let scopes = |q: &ResourceQuota| -> BTreeSet<String> {
            q.spec
                .as_ref()
                .and_then(|s| s.scopes.clone())
                .unwrap_or_default()
                .into_iter()
                .collect()
        };
        if scopes(new) != scopes(old) {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("scopes"),
                serde_json::to_value(new.spec.as_ref().and_then(|s| s.scopes.clone()))
                    .unwrap_or_default(),
                apimachinery::validation::FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, q: &ResourceQuota, raw: &Value) -> Vec<Value> {
        let status = q.status.clone().unwrap_or_default();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for name in status.hard.iter().flat_map(|h| h.keys()) {
            let used = resourcelist::quantity(status.used.as_ref(), name);
            let hard = resourcelist::quantity(status.hard.as_ref(), name);
            let cell = format!("{name}: {used}/{hard}");
            if name.split('.').next() == Some("limits") && name.contains('.') {
                limits.push(cell);
            } else {
                requests.push(cell);
            }
        }
        vec![
            q.metadata.name.clone().unwrap_or_default().into(),
            table::age(raw),
            requests.join(", ").into(),
            limits.join(", ").into(),
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

    fn s() -> Typed<ResourceQuotaStrategy> {
        Typed::new(ResourceQuotaStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn create_resets_status_and_validates_names() {
        let mut obj = s()
            .decode(json!({"metadata": {"name": "q", "namespace": "ns"},
                "spec": {"hard": {"pods": "10", "requests.cpu": "2", "count/deployments.apps": "3"}},
                "status": {"used": {"pods": "1"}}}))
            .unwrap();
        s().prepare_for_create(&mut obj);
        assert!(obj.get("status").is_none());
        assert!(
            s().validate(&obj).is_empty(),
            "{:?}",
            messages(&s().validate(&obj))
        );

        let bad = s()
            .decode(json!({"metadata": {"name": "q"}, "spec": {"hard": {"bogus": "1", "pods": "1.5", "cpu": "-1"},
                "scopes": ["BestEffort", "NotBestEffort"]}}))
            .unwrap();
        let errs = messages(&s().validate(&bad));
        for e in [
            "spec.hard[bogus]: Invalid value: \"bogus\": must be a standard resource type or fully qualified",
            "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
            "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\"]: conflicting scopes",
        ] {
            assert!(errs.iter().any(|m| m == e), "missing {e} in {errs:#?}");
        }
    }

    #[test]
    fn scopes_are_immutable() {
        let old = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}, "scopes": ["Terminating"]}});
        let mut new = old.clone();
        new["spec"]["scopes"] = json!(["NotTerminating"]);
        let errs = messages(&s().validate_update(&new, &old));
        assert_eq!(
            errs,
            vec!["spec.scopes: Invalid value: [\"NotTerminating\"]: field is immutable"]
        );
    }

    #[test]
    fn row_splits_requests_and_limits() {
        let obj = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4"},
            "used": {"pods": "3", "limits.cpu": "500m"}}});
        let r = s().row(&obj);
        assert_eq!(r[2], "pods: 3/10, requests.cpu: 0/2");
        assert_eq!(r[3], "limits.cpu: 500m/4, limits.memory: 0/2Gi");
    }
}
