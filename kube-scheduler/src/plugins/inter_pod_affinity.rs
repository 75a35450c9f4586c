//! InterPodAffinity: required pod affinity and anti-affinity (the incoming pod's and the
//! existing pods'), and the preferred terms' score, counted per topology domain as
//! upstream does (`topologyToMatchedTermCount`).

use std::collections::HashMap;

use crate::cache::Cache;
use crate::framework::types::{AffinityTerm, NO_LABELS};
use crate::framework::{NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Upstream's `hardPodAffinityWeight` default.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Counts = HashMap<(String, String), i64>;

pub struct PreFilterState {
    existing_anti: Counts,
    affinity: Counts,
    anti: Counts,
}

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels().get(key) {
        *counts.entry((key.to_string(), v.clone())).or_default() += by;
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, &NO_LABELS))
}

/// PreFilter; `None` when neither the pod nor any existing pod has required terms.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> Option<PreFilterState> {
    let mut state = PreFilterState {
        existing_anti: Counts::new(),
        affinity: Counts::new(),
        anti: Counts::new(),
    };
    let own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
    let mut any_existing = false;
    for node in &cache.nodes {
        for existing in &node.pods_with_required_anti_affinity {
            any_existing = true;
            for t in &existing.required_anti_affinity {
                if t.matches(pod, &NO_LABELS) {
                    bump(&mut state.existing_anti, node, &t.topology_key, 1);
                }
            }
        }
        if !own {
            continue;
        }
        for existing in &node.pods {
            if matches_all(&pod.required_affinity, existing) {
                for t in &pod.required_affinity {
                    bump(&mut state.affinity, node, &t.topology_key, 1);
                }
            }
            for t in &pod.required_anti_affinity {
                if t.matches(existing, &NO_LABELS) {
                    bump(&mut state.anti, node, &t.topology_key, 1);
                }
            }
        }
    }
    (own || any_existing).then_some(state)
}

fn count(counts: &Counts, key: &str, node: &NodeInfo) -> Option<i64> {
    let v = node.labels().get(key)?;
    Some(
        counts
            .get(&(key.to_string(), v.clone()))
            .copied()
            .unwrap_or(0),
    )
}

pub fn filter(state: &PreFilterState, pod: &PodInfo, node: &NodeInfo, _cache: &Cache) -> Status {
    if !pod.required_affinity.is_empty() {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match count(&state.affinity, &t.topology_key, node) {
                None => return Status::unresolvable(ERR_AFFINITY),
                Some(c) if c <= 0 => pods_exist = false,
                Some(_) => {}
            }
        }
        // The first pod of a group with affinity to itself may go anywhere that has the
        // topology labels.
        let first_of_group = state.affinity.is_empty() && matches_all(&pod.required_affinity, pod);
        if !(pods_exist || first_of_group) {
            return Status::unresolvable(ERR_AFFINITY);
        }
    }
    for t in &pod.required_anti_affinity {
        if count(&state.anti, &t.topology_key, node).is_some_and(|c| c > 0) {
            return Status::unschedulable(ERR_ANTI_AFFINITY);
        }
    }
    for ((key, value), c) in &state.existing_anti {
        if *c > 0 && node.labels().get(key) == Some(value) {
            return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
        }
    }
    Status::success()
}

/// Score (normalised); `None` when nothing has preferred or required terms to score.
pub fn score(pod: &PodInfo, cache: &Cache, feasible: &[usize]) -> Option<Vec<i64>> {
    let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    let mut topology: Counts = Counts::new();
    let mut any = false;
    for node in &cache.nodes {
        let existing_pods = if own {
            &node.pods
        } else {
            &node.pods_with_affinity
        };
        for existing in existing_pods {
            any = true;
            for w in &pod.preferred_affinity {
                if w.term.matches(existing, &NO_LABELS) {
                    bump(
                        &mut topology,
                        node,
                        &w.term.topology_key,
                        i64::from(w.weight),
                    );
                }
            }
            for w in &pod.preferred_anti_affinity {
                if w.term.matches(existing, &NO_LABELS) {
                    bump(
                        &mut topology,
                        node,
                        &w.term.topology_key,
                        -i64::from(w.weight),
                    );
                }
            }
            for t in &existing.required_affinity {
                if t.matches(pod, &NO_LABELS) {
                    bump(
                        &mut topology,
                        node,
                        &t.topology_key,
                        HARD_POD_AFFINITY_WEIGHT,
                    );
                }
            }
            for w in &existing.preferred_affinity {
                if w.term.matches(pod, &NO_LABELS) {
                    bump(
                        &mut topology,
                        node,
                        &w.term.topology_key,
                        i64::from(w.weight),
                    );
                }
            }
            for w in &existing.preferred_anti_affinity {
                if w.term.matches(pod, &NO_LABELS) {
                    bump(
                        &mut topology,
                        node,
                        &w.term.topology_key,
                        -i64::from(w.weight),
                    );
                }
            }
        }
    }
    if !any || topology.is_empty() {
        return None;
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|i| {
            let labels = cache.nodes[*i].labels();
            topology
                .iter()
                .filter(|((k, v), _)| labels.get(k) == Some(v))
                .map(|(_, s)| *s)
                .sum()
        })
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    Some(
        raw.into_iter()
            .map(|s| {
                if diff > 0 {
                    (MAX_NODE_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64
                } else {
                    0
                }
            })
            .collect(),
    )
}
