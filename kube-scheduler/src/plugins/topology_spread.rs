//! PodTopologySpread: `whenUnsatisfiable: DoNotSchedule` constraints filter (skew of the
//! matching pods across the topology's domains may not exceed maxSkew), and
//! `ScheduleAnyway` constraints score (fewer matching pods in the node's domain scores
//! higher), counted as upstream does. Cluster-level default constraints are not applied.

use std::collections::{BTreeMap, HashMap};

use apimachinery::labels::Selector;
use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use crate::cache::Cache;
use crate::framework::helpers::pod_matches_node;
use crate::framework::types::PendingPod;
use crate::framework::{NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

struct Constraint {
    max_skew: i64,
    key: String,
    selector: Selector,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &PendingPod, action: &str) -> Vec<Constraint> {
    let list: &[TopologySpreadConstraint] = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    list.iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = c
                .label_selector
                .as_ref()
                .map(|s| Selector::from_label_selector(s).unwrap_or_else(|_| Selector::nothing()))
                .unwrap_or_else(Selector::nothing);
            // matchLabelKeys: the pod's own values for these keys join the selector.
            let mut extra = BTreeMap::new();
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = pod.labels().get(k) {
                    extra.insert(k.clone(), v.clone());
                }
            }
            if !extra.is_empty() && !selector.matches_nothing() {
                selector = selector.add(Selector::from_set(&extra).requirements().to_vec());
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                selector,
                min_domains: i64::from(c.min_domains.unwrap_or(1)),
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn count_matching(node: &NodeInfo, pod: &PodInfo, selector: &Selector) -> i64 {
    node.pods
        .iter()
        .filter(|p| {
            !p.is_terminating() && p.namespace() == pod.namespace() && selector.matches(p.labels())
        })
        .count() as i64
}

fn node_counts(c: &Constraint, pod: &PendingPod, node: &NodeInfo) -> bool {
    if c.honor_affinity && !pod_matches_node(&pod.pod, &node.name, node.labels()) {
        return false;
    }
    if c.honor_taints
        && crate::framework::helpers::first_untolerated(
            node.taints(),
            pod.tolerations(),
            &["NoSchedule", "NoExecute"],
        )
        .is_some()
    {
        return false;
    }
    true
}

pub struct PreFilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: matching pods per domain value.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over the domains (0 below minDomains).
    min: Vec<i64>,
}

pub fn pre_filter(pod: &PendingPod, cache: &Cache) -> Option<PreFilterState> {
    let constraints = constraints(pod, "DoNotSchedule");
    if constraints.is_empty() {
        return None;
    }
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for node in &cache.nodes {
        let labels = node.labels();
        if constraints.iter().any(|c| !labels.contains_key(&c.key)) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if !node_counts(c, pod, node) {
                continue;
            }
            let value = labels.get(&c.key).cloned().unwrap_or_default();
            *counts[i].entry(value).or_default() += count_matching(node, pod, &c.selector);
        }
    }
    let min = constraints
        .iter()
        .zip(&counts)
        .map(|(c, domains)| {
            if (domains.len() as i64) < c.min_domains {
                0
            } else {
                domains.values().copied().min().unwrap_or(0)
            }
        })
        .collect();
    Some(PreFilterState {
        constraints,
        counts,
        min,
    })
}

pub fn filter(state: &PreFilterState, pod: &PodInfo, node: &NodeInfo) -> Status {
    let labels = node.labels();
    for (i, c) in state.constraints.iter().enumerate() {
        let Some(value) = labels.get(&c.key) else {
            return Status::unresolvable(ERR_MISSING_LABEL);
        };
        let self_match = i64::from(c.selector.matches(pod.labels()));
        let matched = state.counts[i].get(value).copied().unwrap_or(0);
        if matched + self_match - state.min[i] > c.max_skew {
            return Status::unschedulable(ERR_CONSTRAINTS);
        }
    }
    Status::success()
}

/// Score (normalised) for ScheduleAnyway constraints; `None` without any.
pub fn score(pod: &PendingPod, cache: &Cache, feasible: &[usize]) -> Option<Vec<i64>> {
    let constraints = constraints(pod, "ScheduleAnyway");
    if constraints.is_empty() {
        return None;
    }
    // Domains are those of the feasible nodes; counts come from every node in them.
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|i| {
            let labels = cache.nodes[*i].labels();
            constraints.iter().any(|c| !labels.contains_key(&c.key))
        })
        .collect();
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for (n, i) in feasible.iter().enumerate() {
        if ignored[n] {
            continue;
        }
        let labels = cache.nodes[*i].labels();
        for (ci, c) in constraints.iter().enumerate() {
            if let Some(v) = labels.get(&c.key) {
                counts[ci].entry(v.clone()).or_insert(0);
            }
        }
    }
    for node in &cache.nodes {
        let labels = node.labels();
        for (ci, c) in constraints.iter().enumerate() {
            let Some(v) = labels.get(&c.key) else {
                continue;
            };
            if !counts[ci].contains_key(v) || !node_counts(c, pod, node) {
                continue;
            }
            let n = count_matching(node, pod, &c.selector);
            if let Some(slot) = counts[ci].get_mut(v) {
                *slot += n;
            }
        }
    }
    let weights: Vec<f64> = counts.iter().map(|d| ((d.len() + 2) as f64).ln()).collect();
    let raw: Vec<i64> = feasible
        .iter()
        .enumerate()
        .map(|(n, i)| {
            if ignored[n] {
                return 0;
            }
            let labels = cache.nodes[*i].labels();
            let mut s = 0.0;
            for (ci, c) in constraints.iter().enumerate() {
                let v = labels
                    .get(&c.key)
                    .and_then(|v| counts[ci].get(v))
                    .copied()
                    .unwrap_or(0);
                s += v as f64 * weights[ci] + (c.max_skew - 1) as f64;
            }
            s.round() as i64
        })
        .collect();
    let considered = raw
        .iter()
        .zip(&ignored)
        .filter(|(_, ig)| !**ig)
        .map(|(s, _)| *s);
    let max = considered.clone().max().unwrap_or(0);
    let min = considered.min().unwrap_or(0);
    Some(
        raw.iter()
            .zip(&ignored)
            .map(|(s, ig)| {
                if *ig {
                    0
                } else if max == 0 {
                    MAX_NODE_SCORE
                } else {
                    MAX_NODE_SCORE * (max + min - s) / max
                }
            })
            .collect(),
    )
}
