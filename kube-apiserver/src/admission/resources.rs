//! Resource lists (`cpu: 100m, memory: 1Gi`) with exact arithmetic, as the admission
//! plugins that reason about them (LimitRanger, ResourceQuota) need: upstream's
//! `quota/v1` list helpers and `component-helpers/resource` pod aggregation.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::quantity::{Format, Quantity};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// Resource name to amount, sorted by name as upstream prints them.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The typed form of an API resource list. Entries that do not parse are left out:
/// object validation rejects them before they could matter.
pub fn parse_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::try_from(v).ok().map(|q| (k.clone(), q)))
        .collect()
}

/// The API form of a resource list.
pub fn to_api(list: &ResourceList) -> BTreeMap<String, ApiQuantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), ApiQuantity::from(v)))
        .collect()
}

/// `0`, printed as upstream's `resource.Quantity{Format: DecimalSI}`.
pub fn zero() -> Quantity {
    Quantity::new(0, Format::DecimalSI)
}

/// Whole units in DecimalSI (upstream's `resource.NewQuantity(n, DecimalSI)`).
pub fn count(n: i64) -> Quantity {
    Quantity::new(n, Format::DecimalSI)
}

/// `list[name] += q`, inserting `q` when absent (upstream's `addResourceList`).
pub fn add_into(list: &mut ResourceList, name: &str, q: &Quantity) {
    match list.get_mut(name) {
        Some(existing) => existing.add(q),
        None => {
            list.insert(name.to_string(), q.clone());
        }
    }
}

/// Every entry of `other` added into `list`.
pub fn add_all(list: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        add_into(list, name, q);
    }
}

/// `a + b` over the union of their names (upstream's `quota.Add`).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    add_all(&mut out, b);
    out
}

/// `list[name] = max(list[name], q)` for each entry (upstream's `maxResourceList`).
pub fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        match list.get_mut(name) {
            Some(existing) if q.cmp_value(existing).is_gt() => *existing = q.clone(),
            Some(_) => {}
            None => {
                list.insert(name.clone(), q.clone());
            }
        }
    }
}

/// `a - b`, never below zero, over the union of names (upstream's
/// `quota.SubtractWithNonNegativeResult`).
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (name, q) in a {
        let mut q = q.clone();
        if let Some(other) = b.get(name) {
            q.sub(other);
        }
        out.insert(name.clone(), if q.sign() > 0 { q } else { zero() });
    }
    for name in b.keys() {
        out.entry(name.clone()).or_insert_with(zero);
    }
    out
}

/// Only the entries whose names are in `names` (upstream's `quota.Mask`).
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    let names: BTreeSet<&String> = names.into_iter().collect();
    list.iter()
        .filter(|(k, _)| names.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether every entry of `a` that `b` names is at most `b`'s; the names that are not
/// (upstream's `quota.LessThanOrEqual`).
pub fn exceeded(a: &ResourceList, b: &ResourceList) -> Vec<String> {
    a.iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|limit| v.cmp_value(limit).is_gt()))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether every entry is zero (upstream's `quota.IsZero`).
pub fn is_zero(list: &ResourceList) -> bool {
    list.values().all(Quantity::is_zero)
}

/// The names with negative amounts (upstream's `quota.IsNegative`).
pub fn negative(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, v)| v.sign() < 0)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Equal names and values, whatever the formats (upstream's `quota.Equals`).
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|o| o.cmp_value(v).is_eq()))
}

/// `a=1,b=2`, sorted by name (upstream's `prettyPrint` of quota errors).
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn container_requests(c: &Container) -> ResourceList {
    parse_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn container_limits(c: &Container) -> ResourceList {
    parse_list(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// What the pod's containers need together: regular and sidecar containers add up;
/// each init container runs alone beside the sidecars started before it, so the larger
/// of the two counts (upstream's `AggregateContainerRequests`/`Limits`).
fn aggregate(pod: &Pod, of: fn(&Container) -> ResourceList) -> ResourceList {
    let Some(spec) = pod.spec.as_ref() else {
        return ResourceList::new();
    };
    let mut total = ResourceList::new();
    for c in &spec.containers {
        add_all(&mut total, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let own = of(c);
        let needed = if is_sidecar(c) {
            add_all(&mut total, &own);
            add_all(&mut sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init, &needed);
    }
    max_into(&mut total, &init);
    total
}

/// The pod's effective requests (upstream's `PodRequests`), with `spec.overhead` added
/// when `overhead` is set.
pub fn pod_requests(pod: &Pod, overhead: bool) -> ResourceList {
    let mut requests = aggregate(pod, container_requests);
    if overhead {
        let extra = parse_list(pod.spec.as_ref().and_then(|s| s.overhead.as_ref()));
        add_all(&mut requests, &extra);
    }
    requests
}

/// The pod's effective limits (upstream's `PodLimits`); overhead only raises limits
/// that are set.
pub fn pod_limits(pod: &Pod, overhead: bool) -> ResourceList {
    let mut limits = aggregate(pod, container_limits);
    if overhead {
        let extra = parse_list(pod.spec.as_ref().and_then(|s| s.overhead.as_ref()));
        for (name, q) in &extra {
            if let Some(limit) = limits.get_mut(name) {
                limit.add(q);
            }
        }
    }
    limits
}

/// Whether the pod asks for no cpu or memory at all (upstream's QoS class BestEffort).
pub fn is_best_effort(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let compute = |list: ResourceList| {
        list.iter()
            .any(|(k, v)| (k == "cpu" || k == "memory") && v.sign() > 0)
    };
    !spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| compute(container_requests(c)) || compute(container_limits(c)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn list_arithmetic_follows_upstream() {
        let a = list(&[("cpu", "500m"), ("memory", "1Gi")]);
        let b = list(&[("cpu", "700m"), ("pods", "1")]);
        let sum = add(&a, &b);
        assert_eq!(pretty_print(&sum), "cpu=1200m,memory=1Gi,pods=1");
        let diff = subtract_non_negative(&a, &b);
        assert_eq!(pretty_print(&diff), "cpu=0,memory=1Gi,pods=0");
        assert_eq!(exceeded(&sum, &list(&[("cpu", "1")])), vec!["cpu"]);
        assert!(exceeded(&sum, &list(&[("cpu", "1200m")])).is_empty());
        assert!(!is_zero(&diff) && is_zero(&list(&[("cpu", "0")])));
        assert_eq!(negative(&list(&[("cpu", "-1")])), vec!["cpu"]);
        assert!(equals(&list(&[("cpu", "1")]), &list(&[("cpu", "1000m")])));
        assert_eq!(pretty_print(&mask(&sum, &["pods".to_string()])), "pods=1");
    }

    #[test]
    fn sums_of_zero_take_the_added_format() {
        let mut used = ResourceList::new();
        used.insert("requests.memory".into(), zero());
        add_into(&mut used, "requests.memory", &q("600Mi"));
        assert_eq!(used["requests.memory"].to_string(), "600Mi");
    }

    #[test]
    fn pod_requests_handle_init_and_sidecar_containers() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
            ],
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "1"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
            ],
            "overhead": {"cpu": "10m"}
        }));
        let r = pod_requests(&p, false);
        // Sidecar 50m joins the regular 200m; the first init container alone needs 1.
        assert_eq!(pretty_print(&r), "cpu=1,memory=64Mi");
        assert_eq!(
            pretty_print(&pod_requests(&p, true)),
            "cpu=1010m,memory=64Mi"
        );
        assert_eq!(pretty_print(&pod_limits(&p, true)), "cpu=210m");
    }

    #[test]
    fn best_effort_means_no_cpu_or_memory() {
        assert!(is_best_effort(&pod(json!({"containers": [{"name": "a"}]}))));
        assert!(is_best_effort(&pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}
        ]}))));
        assert!(!is_best_effort(&pod(json!({"containers": [
            {"name": "a", "resources": {"limits": {"memory": "1Gi"}}}
        ]}))));
    }
}
