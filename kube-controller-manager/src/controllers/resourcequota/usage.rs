//! What objects cost in quota terms (upstream's `pkg/quota/v1/evaluator/core` and the
//! generic object-count evaluator), as the controller recounts it: pods (count,
//! requests and limits, by scope), services (count, node ports, load balancers),
//! claims (count, requested storage) and object counts.

use std::collections::BTreeMap;

use apimachinery::quantity::{Format, Quantity};
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, ResourceQuota, Service};

pub type ResourceList = BTreeMap<String, Quantity>;

/// Quota names charged from pods.
pub fn is_pod_resource(name: &str) -> bool {
    matches!(
        name,
        "pods"
            | "count/pods"
            | "cpu"
            | "memory"
            | "ephemeral-storage"
            | "requests.cpu"
            | "requests.memory"
            | "requests.ephemeral-storage"
            | "limits.cpu"
            | "limits.memory"
            | "limits.ephemeral-storage"
    ) || name.starts_with("requests.hugepages-")
        || name.starts_with("hugepages-")
}

/// Core kinds whose object counts also have a name without `count/`.
pub fn legacy_count(name: &str) -> Option<&'static str> {
    Some(match name {
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        _ => return None,
    })
}

fn add(list: &mut ResourceList, name: &str, q: &Quantity) {
    list.entry(name.to_string())
        .and_modify(|v| v.add(q))
        .or_insert_with(|| q.clone());
}

fn parse(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::try_from(v).ok()?)))
        .collect()
}

/// A pod's requests or limits: the containers' sum, at least the largest init
/// container's, plus the pod overhead.
fn pod_totals(pod: &Pod, limits: bool) -> ResourceList {
    let Some(spec) = pod.spec.as_ref() else {
        return ResourceList::new();
    };
    let of = |c: &Container| {
        let r = c.resources.as_ref();
        parse(if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        })
    };
    let mut sum = ResourceList::new();
    for c in &spec.containers {
        for (k, v) in of(c) {
            add(&mut sum, &k, &v);
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in of(c) {
            let bigger = sum.get(&k).is_none_or(|cur| v.cmp_value(cur).is_gt());
            if bigger {
                sum.insert(k, v);
            }
        }
    }
    for (k, v) in parse(spec.overhead.as_ref()) {
        add(&mut sum, &k, &v);
    }
    sum
}

/// Whether a pod no longer uses quota (finished).
pub fn pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn best_effort(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .all(|c| {
            let r = c.resources.as_ref();
            let none = |l: Option<&BTreeMap<_, _>>| {
                l.is_none_or(|l| !l.contains_key("cpu") && !l.contains_key("memory"))
            };
            none(r.and_then(|r| r.requests.as_ref())) && none(r.and_then(|r| r.limits.as_ref()))
        })
}

/// Whether `pod` falls within the quota's scopes (all must match).
pub fn pod_in_scopes(quota: &ResourceQuota, pod: &Pod) -> bool {
    let spec = quota.spec.as_ref();
    let terminating = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some();
    let scope_ok = |scope: &str| match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        _ => true,
    };
    let scopes_ok = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .all(|s| scope_ok(s));
    let selector_ok = spec
        .and_then(|s| s.scope_selector.as_ref())
        .and_then(|s| s.match_expressions.as_ref())
        .into_iter()
        .flatten()
        .all(|req| {
            if req.scope_name == "PriorityClass" {
                let class = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.priority_class_name.clone())
                    .unwrap_or_default();
                let values = req.values.clone().unwrap_or_default();
                match req.operator.as_str() {
                    "In" => values.contains(&class),
                    "NotIn" => !values.contains(&class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                }
            } else {
                scope_ok(&req.scope_name)
            }
        });
    scopes_ok && selector_ok
}

/// Whether the quota has scopes (then only pods are charged to it).
pub fn scoped(quota: &ResourceQuota) -> bool {
    let spec = quota.spec.as_ref();
    spec.and_then(|s| s.scopes.as_ref())
        .is_some_and(|s| !s.is_empty())
        || spec
            .and_then(|s| s.scope_selector.as_ref())
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|m| !m.is_empty())
}

fn count(n: usize) -> Quantity {
    Quantity::new(i64::try_from(n).unwrap_or(i64::MAX), Format::DecimalSI)
}

/// Usage of pods for the quota names in `wanted`.
pub fn pods_usage(quota: &ResourceQuota, pods: &[&Pod], wanted: &[String]) -> ResourceList {
    let mut used = ResourceList::new();
    let live: Vec<&&Pod> = pods
        .iter()
        .filter(|p| !pod_terminal(p) && pod_in_scopes(quota, p))
        .collect();
    for name in wanted.iter().filter(|n| is_pod_resource(n)) {
        let q = match name.as_str() {
            "pods" | "count/pods" => count(live.len()),
            _ => {
                let (limits, resource) = match name.split_once('.') {
                    Some(("limits", r)) => (true, r),
                    Some(("requests", r)) => (false, r),
                    _ => (false, name.as_str()),
                };
                let mut total = Quantity::new(0, Format::DecimalSI);
                for p in &live {
                    if let Some(v) = pod_totals(p, limits).get(resource) {
                        total.add(v);
                    }
                }
                total
            }
        };
        used.insert(name.clone(), q);
    }
    used
}

pub fn services_usage(services: &[&Service], wanted: &[String]) -> ResourceList {
    let mut used = ResourceList::new();
    for name in wanted {
        let n = match name.as_str() {
            "services" | "count/services" => services.len(),
            "services.loadbalancers" => services
                .iter()
                .filter(|s| {
                    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                })
                .count(),
            "services.nodeports" => services
                .iter()
                .filter(|s| {
                    matches!(
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                        Some("NodePort" | "LoadBalancer")
                    )
                })
                .map(|s| {
                    s.spec
                        .as_ref()
                        .and_then(|s| s.ports.as_ref())
                        .map_or(0, Vec::len)
                })
                .sum(),
            _ => continue,
        };
        used.insert(name.clone(), count(n));
    }
    used
}

pub fn claims_usage(claims: &[&PersistentVolumeClaim], wanted: &[String]) -> ResourceList {
    let mut used = ResourceList::new();
    for name in wanted {
        let q = match name.as_str() {
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => count(claims.len()),
            "requests.storage" => {
                let mut total = Quantity::new(0, Format::BinarySI);
                for c in claims {
                    let req = c
                        .spec
                        .as_ref()
                        .and_then(|s| s.resources.as_ref())
                        .and_then(|r| r.requests.as_ref());
                    if let Some(v) = parse(req).get("storage") {
                        total.add(v);
                    }
                }
                total
            }
            _ => continue,
        };
        used.insert(name.clone(), q);
    }
    used
}

/// `count/<resource>[.<group>]` → (group, resource).
pub fn count_target(name: &str) -> Option<(String, String)> {
    if let Some(r) = legacy_count(name) {
        return Some((String::new(), r.to_string()));
    }
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((resource, group)) => (group.to_string(), resource.to_string()),
        None => (String::new(), rest.to_string()),
    })
}

pub fn count_quantity(n: usize) -> Quantity {
    count(n)
}

/// Whether two lists hold the same values (formats aside).
pub fn equal(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| v.cmp_value(w).is_eq()))
}

pub fn parse_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> ResourceList {
    parse(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceQuotaSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn pod(cpu: &str, mem_limit: Option<&str>, phase: &str, deadline: bool) -> Pod {
        let mut requests = BTreeMap::new();
        requests.insert("cpu".to_string(), Q(cpu.into()));
        let limits = mem_limit.map(|m| [("memory".to_string(), Q(m.into()))].into());
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(requests),
                        limits,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                active_deadline_seconds: deadline.then_some(60),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pods_are_charged_by_count_requests_and_limits_unless_finished() {
        let quota = ResourceQuota::default();
        let a = pod("100m", Some("64Mi"), "Running", false);
        let b = pod("250m", None, "Pending", false);
        let done = pod("1", None, "Succeeded", false);
        let used = pods_usage(
            &quota,
            &[&a, &b, &done],
            &names(&["pods", "requests.cpu", "cpu", "limits.memory", "services"]),
        );
        let show: BTreeMap<&str, String> = used
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        assert_eq!(show["pods"], "2");
        assert_eq!(show["requests.cpu"], "350m");
        assert_eq!(show["cpu"], "350m");
        assert_eq!(show["limits.memory"], "64Mi");
        assert!(!show.contains_key("services"));
    }

    #[test]
    fn scopes_select_pods() {
        let quota = ResourceQuota {
            spec: Some(ResourceQuotaSpec {
                scopes: Some(vec!["Terminating".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = pod("100m", None, "Running", true);
        let b = pod("100m", None, "Running", false);
        assert!(scoped(&quota));
        let used = pods_usage(&quota, &[&a, &b], &names(&["pods"]));
        assert_eq!(used["pods"].to_string(), "1");
    }

    #[test]
    fn count_names_resolve_to_resources() {
        assert_eq!(
            count_target("configmaps"),
            Some((String::new(), "configmaps".into()))
        );
        assert_eq!(
            count_target("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            count_target("count/secrets"),
            Some((String::new(), "secrets".into()))
        );
        assert_eq!(count_target("requests.cpu"), None);
    }
}
