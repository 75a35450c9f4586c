//! DefaultPreemption (PostFilter): when no node fits a pod, look for a node where
//! removing pods of lower priority makes it fit; keep as many of those pods as still
//! allows the fit (the ones whose removal would violate a PodDisruptionBudget are
//! tried first), pick the node with upstream's criteria (fewest PDB violations, lowest
//! highest victim priority, smallest priority sum, fewest victims, latest start), and
//! report the message upstream's evaluator gives when nothing helps.
//!
//! The simulation re-runs the filters on a copy of the node without the victims; the
//! pod-affinity and topology-spread counts of the cycle are not adjusted for them.

use std::sync::Arc;

use apimachinery::labels::Selector;

use crate::cache::Cache;
use crate::framework::{Code, NodeInfo, PodInfo, Status};
use crate::plugins::{self, CycleState};
use crate::scheduler::{histogram, Diagnosis, Scheduler};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

pub struct PreemptionResult {
    pub chosen: Option<Candidate>,
    /// The PostFilter's message (without the "preemption: " prefix) when it failed.
    pub message: Option<String>,
}

/// Upstream's `MoreImportantPod`: higher priority, then the earlier start.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.start_time().cmp(&b.start_time()))
}

struct Budget {
    namespace: String,
    selector: Selector,
    allowed: i64,
}

fn budgets(sched: &Scheduler) -> Vec<Budget> {
    sched
        .pdbs
        .state()
        .iter()
        .filter_map(|pdb| {
            let sel = pdb.spec.as_ref()?.selector.as_ref()?;
            let selector = Selector::from_label_selector(sel).ok()?;
            if selector.is_empty() {
                return None;
            }
            Some(Budget {
                namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
                selector,
                allowed: i64::from(pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)),
            })
        })
        .collect()
}

fn fits(state: &CycleState, cache: &Cache, node: &NodeInfo) -> Status {
    plugins::filter(state, cache, node, &[])
}

/// Upstream's `SelectVictimsOnNode`.
fn select_victims(
    state: &CycleState,
    cache: &Cache,
    node: &NodeInfo,
    budgets: &[Budget],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let pod = &state.pod;
    let mut candidates: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    let mut reduced = node.clone();
    for p in &candidates {
        reduced.remove_pod(&p.uid);
    }
    let status = fits(state, cache, &reduced);
    if !status.is_success() {
        return Err(status);
    }
    candidates.sort_by(|a, b| more_important(a, b));
    let mut allowed: Vec<i64> = budgets.iter().map(|b| b.allowed).collect();
    let (mut violating, mut non_violating) = (Vec::new(), Vec::new());
    for p in candidates {
        let mut violates = false;
        for (i, b) in budgets.iter().enumerate() {
            if b.namespace == p.namespace() && b.selector.matches(p.labels()) {
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violates = true;
                }
            }
        }
        if violates {
            violating.push(p);
        } else {
            non_violating.push(p);
        }
    }
    let mut victims = Vec::new();
    let mut violations = 0;
    for (list, counts) in [(violating, true), (non_violating, false)] {
        for p in list {
            reduced.add_pod(Arc::clone(&p));
            if !fits(state, cache, &reduced).is_success() {
                reduced.remove_pod(&p.uid);
                if counts {
                    violations += 1;
                }
                victims.push(p);
            }
        }
    }
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption`.
fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        // Among the highest-priority victims, the latest start is best (negated).
        let latest_start = c
            .victims
            .iter()
            .filter(|v| v.priority == highest)
            .filter_map(|v| v.start_time())
            .min()
            .map_or(0, |t| -t.as_second());
        (
            c.pdb_violations,
            highest,
            sum,
            c.victims.len(),
            latest_start,
        )
    };
    candidates.sort_by_key(key);
    candidates.into_iter().next()
}

pub fn preempt(
    sched: &Scheduler,
    cache: &Cache,
    state: &CycleState,
    diag: &Diagnosis,
) -> PreemptionResult {
    let pod = &state.pod;
    let policy = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        .unwrap_or("PreemptLowerPriority");
    if policy == "Never" {
        return PreemptionResult {
            chosen: None,
            message: Some("not eligible due to preemptionPolicy=Never.".into()),
        };
    }
    let nominated = pod.nominated_node_name();
    if !nominated.is_empty() {
        // A victim of an earlier preemption is still going away: wait for it.
        let waiting = diag
            .node_statuses
            .iter()
            .find(|(i, _)| cache.nodes[*i].name == nominated)
            .is_some_and(|(_, s)| s.code == Code::Unschedulable);
        let terminating = cache.node(nominated).is_some_and(|n| {
            n.pods
                .iter()
                .any(|p| p.is_terminating() && p.priority < pod.priority)
        });
        if waiting && terminating {
            return PreemptionResult {
                chosen: None,
                message: Some(
                    "not eligible due to a terminating pod on the nominated node.".into(),
                ),
            };
        }
    }
    let num_all = cache.nodes.len();
    let potential: Vec<usize> = if diag.pre_filter_msg.is_some() {
        Vec::new()
    } else {
        diag.node_statuses
            .iter()
            .filter(|(_, s)| s.code == Code::Unschedulable)
            .map(|(i, _)| *i)
            .collect()
    };
    let budgets = budgets(sched);
    let wanted = (num_all * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(num_all);
    let mut candidates = Vec::new();
    let mut statuses: Vec<Status> = Vec::new();
    for i in &potential {
        let node = &cache.nodes[*i];
        match select_victims(state, cache, node, &budgets) {
            Ok((victims, pdb_violations)) if !victims.is_empty() => {
                candidates.push(Candidate {
                    node: node.name.clone(),
                    victims,
                    pdb_violations,
                });
                if candidates.len() >= wanted {
                    break;
                }
            }
            Ok(_) => statuses.push(Status::unresolvable(NO_VICTIMS)),
            Err(s) => statuses.push(s),
        }
    }
    if let Some(chosen) = pick(candidates) {
        return PreemptionResult {
            chosen: Some(chosen),
            message: None,
        };
    }
    let not_helpful = Status::unresolvable(NOT_HELPFUL);
    let absent = num_all.saturating_sub(statuses.len());
    let all = statuses
        .iter()
        .chain(std::iter::repeat_n(&not_helpful, absent));
    PreemptionResult {
        chosen: None,
        message: Some(format!(
            "0/{num_all} nodes are available:{}",
            histogram(all)
        )),
    }
}
