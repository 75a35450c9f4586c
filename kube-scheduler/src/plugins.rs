//! The in-tree plugins' Filter and Score logic, with upstream's reasons and scoring.
//!
//! [`CycleState`] is what PreFilter/PreScore compute once per pod; [`filter`] runs the
//! profile's filters in upstream's order on one node and stops at the first failure, as
//! upstream's `RunFilterPlugins` does; [`score`] gives each plugin's raw scores for the
//! feasible nodes, normalised as upstream's NormalizeScore extension does.

pub mod inter_pod_affinity;
pub mod topology_spread;
pub mod volume_binding;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PreferredSchedulingTerm, Taint, Toleration};

use crate::cache::Cache;
use crate::config::{Plugin, Profile};
use crate::framework::helpers::{first_untolerated, pod_matches_node, term_matches, tolerated};
use crate::framework::types::{HostPort, PendingPod};
use crate::framework::{Code, NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// What the pre-extension points compute once per pod.
pub struct CycleState {
    pub pod: Arc<PendingPod>,
    pub profile: Arc<Profile>,
    pub inter_pod: Option<inter_pod_affinity::PreFilterState>,
    pub spread: Option<topology_spread::PreFilterState>,
    pub volumes: Option<volume_binding::PodVolumes>,
}

/// Pods that other pods were nominated to run on a node, which a lower-priority pod
/// must leave room for (upstream's `addGENominatedPods`).
pub type Nominated<'a> = &'a [Arc<PodInfo>];

fn node_unschedulable(pod: &PendingPod, node: &NodeInfo) -> Status {
    if !node.unschedulable() {
        return Status::success();
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if tolerated(pod.tolerations(), &taint) {
        return Status::success();
    }
    Status::unresolvable(ERR_UNSCHEDULABLE)
}

fn node_name(pod: &PodInfo, node: &NodeInfo) -> Status {
    let wanted = pod.node_name();
    if wanted.is_empty() || wanted == node.name {
        Status::success()
    } else {
        Status::unresolvable(ERR_NODE_NAME)
    }
}

fn taint_toleration(pod: &PendingPod, node: &NodeInfo) -> Status {
    match first_untolerated(
        node.taints(),
        pod.tolerations(),
        &["NoSchedule", "NoExecute"],
    ) {
        None => Status::success(),
        Some(t) => Status::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )),
    }
}

fn node_affinity(pod: &PendingPod, node: &NodeInfo) -> Status {
    if pod_matches_node(&pod.pod, &node.name, node.labels()) {
        Status::success()
    } else {
        Status::unresolvable(ERR_NODE_AFFINITY)
    }
}

fn node_ports(pod: &PodInfo, used: &[HostPort]) -> Status {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| used.iter().any(|u| u.conflicts(want)));
    if conflict {
        Status::unschedulable(ERR_NODE_PORTS)
    } else {
        Status::success()
    }
}

/// NodeResourcesFit's Filter: every insufficient resource is a reason.
pub fn resources_fit(pod: &PodInfo, node: &NodeInfo, extra: Nominated<'_>) -> Status {
    let mut requested = node.requested.clone();
    let mut pods = node.pods.len() as i64;
    for p in extra {
        requested.add(&p.requests);
        pods += 1;
    }
    let alloc = &node.allocatable;
    let mut reasons: Vec<std::borrow::Cow<'static, str>> = Vec::new();
    if pods + 1 > alloc.allowed_pod_number {
        reasons.push("Too many pods".into());
    }
    let want = &pod.requests;
    if want.is_zero() {
        return status_of(reasons);
    }
    if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - requested.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if want.memory > 0 && want.memory > alloc.memory - requested.memory {
        reasons.push("Insufficient memory".into());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > alloc.ephemeral_storage - requested.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, v) in &want.scalar {
        if *v > 0 && *v > alloc.get(name) - requested.get(name) {
            reasons.push(format!("Insufficient {name}").into());
        }
    }
    status_of(reasons)
}

fn status_of(reasons: Vec<std::borrow::Cow<'static, str>>) -> Status {
    if reasons.is_empty() {
        Status::success()
    } else {
        Status {
            code: Code::Unschedulable,
            reasons,
            plugin: "",
        }
    }
}

/// Run the profile's filters on one node, stopping at the first that rejects it.
/// `nominated` are higher-or-equal priority pods nominated to this node.
pub fn filter(
    state: &CycleState,
    cache: &Cache,
    node: &NodeInfo,
    nominated: Nominated<'_>,
) -> Status {
    let pod = &*state.pod;
    for plugin in &state.profile.filters {
        let status = match plugin {
            Plugin::NodeUnschedulable => node_unschedulable(pod, node),
            Plugin::NodeName => node_name(pod, node),
            Plugin::TaintToleration => taint_toleration(pod, node),
            Plugin::NodeAffinity => node_affinity(pod, node),
            Plugin::NodePorts => {
                if pod.host_ports.is_empty() {
                    Status::success()
                } else if nominated.is_empty() {
                    node_ports(pod, &node.used_ports)
                } else {
                    let mut used = node.used_ports.clone();
                    used.extend(nominated.iter().flat_map(|p| p.host_ports.iter().cloned()));
                    node_ports(pod, &used)
                }
            }
            Plugin::NodeResourcesFit => resources_fit(pod, node, nominated),
            Plugin::VolumeBinding => match state.volumes.as_ref() {
                Some(v) => volume_binding::filter(v, node),
                None => Status::success(),
            },
            Plugin::PodTopologySpread => match state.spread.as_ref() {
                Some(s) => topology_spread::filter(s, pod, node),
                None => Status::success(),
            },
            Plugin::InterPodAffinity => match state.inter_pod.as_ref() {
                Some(s) => inter_pod_affinity::filter(s, pod, node, cache),
                None => Status::success(),
            },
            _ => Status::success(),
        };
        if !status.is_success() {
            return status.with_plugin(plugin.name());
        }
    }
    Status::success()
}

/// LeastAllocated over CPU and memory (weights 1 each), on the requests with
/// upstream's defaults for best-effort containers.
fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let score = |requested: i64, capacity: i64| -> i64 {
        if capacity == 0 || requested > capacity {
            return 0;
        }
        (capacity - requested) * MAX_NODE_SCORE / capacity
    };
    let cpu = score(
        node.non_zero_cpu + pod.non_zero_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = score(
        node.non_zero_memory + pod.non_zero_memory,
        node.allocatable.memory,
    );
    (cpu + mem) / 2
}

/// BalancedAllocation: 100 × (1 − the standard deviation of the CPU and memory
/// fractions), on the actual requests.
fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fraction = |requested: i64, capacity: i64| -> f64 {
        if capacity == 0 {
            return 1.0;
        }
        (requested as f64 / capacity as f64).min(1.0)
    };
    let cpu = fraction(
        node.requested.milli_cpu + pod.requests.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = fraction(
        node.requested.memory + pod.requests.memory,
        node.allocatable.memory,
    );
    let std = (cpu - mem).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// TaintToleration's raw score: the PreferNoSchedule taints the pod does not tolerate.
fn taint_score(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations, t))
        .count() as i64
}

fn node_affinity_score(preferred: &[PreferredSchedulingTerm], node: &NodeInfo) -> i64 {
    preferred
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, &node.name, node.labels()))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// Upstream's `DefaultNormalizeScore`.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// The weighted total score of each feasible node (`feasible` indexes `cache.nodes`).
pub fn score(state: &CycleState, cache: &Cache, feasible: &[usize]) -> Vec<i64> {
    let mut total = vec![0i64; feasible.len()];
    if feasible.len() <= 1 {
        return total;
    }
    let pod = &*state.pod;
    let nodes = |f: &dyn Fn(&NodeInfo) -> i64| -> Vec<i64> {
        feasible.iter().map(|i| f(&cache.nodes[*i])).collect()
    };
    for (plugin, weight) in &state.profile.scores {
        let scores = match plugin {
            Plugin::NodeResourcesFit => nodes(&|n| least_allocated(pod, n)),
            Plugin::NodeResourcesBalancedAllocation => {
                // Best-effort pods have nothing to balance (upstream skips them).
                if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
                    continue;
                }
                nodes(&|n| balanced_allocation(pod, n))
            }
            Plugin::TaintToleration => {
                let tolerations: Vec<Toleration> = pod
                    .tolerations()
                    .iter()
                    .filter(|t| {
                        t.effect
                            .as_deref()
                            .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
                    })
                    .cloned()
                    .collect();
                let mut s = nodes(&|n| taint_score(&tolerations, n));
                default_normalize(&mut s, true);
                s
            }
            Plugin::NodeAffinity => {
                let preferred = pod
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.affinity.as_ref())
                    .and_then(|a| a.node_affinity.as_ref())
                    .and_then(|na| {
                        na.preferred_during_scheduling_ignored_during_execution
                            .as_deref()
                    })
                    .unwrap_or(&[]);
                if preferred.is_empty() {
                    continue;
                }
                let mut s = nodes(&|n| node_affinity_score(preferred, n));
                default_normalize(&mut s, false);
                s
            }
            Plugin::InterPodAffinity => match inter_pod_affinity::score(pod, cache, feasible) {
                Some(s) => s,
                None => continue,
            },
            Plugin::PodTopologySpread => match topology_spread::score(pod, cache, feasible) {
                Some(s) => s,
                None => continue,
            },
            _ => continue,
        };
        for (t, s) in total.iter_mut().zip(scores) {
            *t += s * weight;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn node(v: serde_json::Value) -> NodeInfo {
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(v).unwrap();
        let mut ni = NodeInfo::new(n.metadata.name.as_deref().unwrap());
        ni.set_node(Arc::new(crate::framework::types::NodeView::new(&n)));
        ni
    }

    pub(crate) fn pod(v: serde_json::Value) -> Arc<PendingPod> {
        Arc::new(PendingPod::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn resources_reasons() {
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "1"}}}));
        let p = pod(
            json!({"metadata": {"name": "p", "uid": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "2", "memory": "2Gi", "example.com/gpu": "1"}}}]}}),
        );
        let s = resources_fit(&p, &n, &[]);
        assert_eq!(
            s.message(),
            "Insufficient cpu, Insufficient memory, Insufficient example.com/gpu"
        );
        let other = pod(json!({"metadata": {"name": "o", "uid": "o"}, "spec": {"containers": []}}));
        let s = resources_fit(&other, &n, &[Arc::clone(&other.info)]);
        assert_eq!(s.message(), "Too many pods");
    }

    #[test]
    fn taint_message_and_scores() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
        let p = pod(json!({"metadata": {"name": "p", "uid": "p"}, "spec": {"containers": []}}));
        assert_eq!(
            taint_toleration(&p, &n).message(),
            "node(s) had untolerated taint {dedicated: gpu}"
        );
        let mut s = vec![0, 2, 1];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 0, 50]);
    }

    #[test]
    fn least_and_balanced() {
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}));
        let p = pod(
            json!({"metadata": {"name": "p", "uid": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}]}}),
        );
        // cpu (4-2)/4 = 50, memory (8-2)/8 = 75.
        assert_eq!(least_allocated(&p, &n), 62);
        // fractions 0.5 and 0.25: std 0.125.
        assert_eq!(balanced_allocation(&p, &n), 87);
    }
}
