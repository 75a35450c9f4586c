//! The replica controllers' decisions, free of I/O: how many pods to create per batch,
//! which pods to delete first, and the status to report.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controllers::util::pods::{is_active, is_ready};

/// At most this many pods are created or deleted in one sync (upstream's
/// `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first creation batch (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// The annotation that lowers or raises a pod's priority for deletion.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The batch sizes in which `count` creations are attempted: `initial`, then doubling,
/// so that a failing create (quota, admission) fails once rather than `count` times.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut remaining = count;
    let mut size = remaining.min(initial.max(1));
    while size > 0 {
        sizes.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    sizes
}

/// Run `count` calls of `f` in slow-start batches (each batch concurrently), stopping
/// after the first batch with a failure. Returns the results that succeeded and the
/// first error.
pub async fn slow_start<T, E, F, Fut>(count: usize, initial: usize, f: F) -> (Vec<T>, Option<E>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut done = Vec::new();
    for size in slow_start_batches(count, initial) {
        let results = futures::future::join_all((0..size).map(|_| f())).await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(v) => done.push(v),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (done, first_error);
        }
    }
    (done, None)
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `IsPodAvailable`: Ready for at least `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_time(pod)
        .is_some_and(|t| t + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) < now)
}

/// How long until the first Ready pod that is not yet available becomes available (so
/// the controller can look again then), if any.
pub fn next_available_in(
    pods: &[Arc<Pod>],
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| is_ready(p) && !is_available(p, min_ready_seconds, now))
        .map(|p| {
            let at = ready_time(p).unwrap_or(now)
                + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
            let wait = at.duration_since(now);
            Duration::try_from(wait).unwrap_or_default()
        })
        .min()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        // Pending and anything else sort first, as upstream's map lookup defaults to 0.
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Go's `math.Log2` bucket of how long ago `t` was, -1 for the future.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.duration_since(t).as_nanos();
    if nanos > 0 {
        // The float's integer part is the bucket; it is far below i64::MAX.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let r = (nanos as f64).log2() as i64;
        r
    } else {
        -1
    }
}

/// Compare two timestamps where the more recent one (or an absent one) comes first, in
/// logarithmic buckets, with the uid as the tie breaker inside a bucket (upstream's
/// LogarithmicScaleDown, on by default).
fn newer_first(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    a_uid: &str,
    b_uid: &str,
    now: Timestamp,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) if a == b => Ordering::Equal,
        (Some(a), Some(b)) => match log_rank(a, now).cmp(&log_rank(b, now)) {
            Ordering::Equal => a_uid.cmp(b_uid),
            other => other,
        },
    }
}

/// Upstream's `ActivePodsWithRanks` order: the pods to delete first come first.
/// `rank_*` is the number of related active pods on the pod's node.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    // 1. Unassigned before assigned.
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa.cmp(&pb);
    }
    // 3. Not ready before ready.
    let (ra, rb) = (is_ready(a), is_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower deletion cost first.
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    // 5. More pods of the family on the same node first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    let uid_a = a.metadata.uid.as_deref().unwrap_or("");
    let uid_b = b.metadata.uid.as_deref().unwrap_or("");
    // 6. Ready for a shorter time first.
    if ra && rb {
        let order = newer_first(ready_time(a), ready_time(b), uid_a, uid_b, now);
        if order != Ordering::Equal {
            return order;
        }
    }
    // 7. More container restarts first.
    let (xa, xb) = (max_restarts(a), max_restarts(b));
    if xa != xb {
        return xb.cmp(&xa);
    }
    // 8. Created more recently first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    newer_first(created(a), created(b), uid_a, uid_b, now)
}

/// The `diff` pods to delete, preferring those least far along in starting up (upstream's
/// `getPodsToDelete`). `related` are the active pods of the whole family (all replica
/// sets of one Deployment), used to prefer nodes running several of them.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *per_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(&Arc<Pod>, usize)> = pods
        .iter()
        .map(|p| (p, per_node.get(node(p)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb, now));
    ranked
        .into_iter()
        .take(diff)
        .map(|(p, _)| Arc::clone(p))
        .collect()
}

/// A replica-set-like condition (ReplicaSet and ReplicationController conditions have
/// the same fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaCondition {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
}

/// The status both replica controllers report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaStatus {
    pub replicas: i32,
    pub fully_labeled_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: i64,
    pub conditions: Vec<ReplicaCondition>,
}

pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Why a sync could not create or delete pods: feeds the ReplicaFailure condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageFailure {
    pub message: String,
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Upstream's `calculateStatus`: counts over the claimed active `pods`, and the
/// ReplicaFailure condition set on a failed create/delete (kept while it persists) and
/// removed after a sync that had none. `observed_generation` is left as it was.
pub fn calculate_status(
    current: &ReplicaStatus,
    replicas: i32,
    template_labels: &BTreeMap<String, String>,
    min_ready_seconds: i32,
    pods: &[Arc<Pod>],
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaStatus {
    let mut status = current.clone();
    let empty = BTreeMap::new();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| is_available(p, min_ready_seconds, now))
        .count();
    let has_failure = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(f) if !has_failure => {
            let diff = to_i32(pods.len()) - replicas;
            let reason = match diff.cmp(&0) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            status.conditions.push(ReplicaCondition {
                type_: REPLICA_FAILURE.to_string(),
                status: "True".to_string(),
                reason: Some(reason.to_string()),
                message: Some(f.message.clone()),
                last_transition_time: Some(Time(
                    Timestamp::from_second(now.as_second()).unwrap_or(now),
                )),
            });
        }
        None if has_failure => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status.replicas = to_i32(pods.len());
    status.fully_labeled_replicas = to_i32(fully_labeled);
    status.ready_replicas = to_i32(ready);
    status.available_replicas = to_i32(available);
    status
}

/// Whether `new` must be written: counts or conditions changed, or the generation was
/// not observed yet (upstream's steady-state check in `updateReplicaSetStatus`).
pub fn status_needs_update(current: &ReplicaStatus, new: &ReplicaStatus, generation: i64) -> bool {
    current.replicas != new.replicas
        || current.fully_labeled_replicas != new.fully_labeled_replicas
        || current.ready_replicas != new.ready_replicas
        || current.available_replicas != new.available_replicas
        || current.observed_generation != generation
        || current.conditions != new.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_since: Option<i64>,
        created: i64,
        restarts: i32,
        cost: Option<&'static str>,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                name: "p",
                node: "n1",
                phase: "Running",
                ready_since: Some(0),
                created: 0,
                restarts: 0,
                cost: None,
            }
        }
    }

    fn pod(p: P) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(p.name.into());
        pod.metadata.uid = Some(format!("uid-{}", p.name));
        pod.metadata.creation_timestamp = Some(Time(ts(p.created)));
        if let Some(c) = p.cost {
            pod.metadata.annotations =
                Some([(POD_DELETION_COST.to_string(), c.to_string())].into());
        }
        pod.spec = Some(PodSpec {
            node_name: (!p.node.is_empty()).then(|| p.node.to_string()),
            ..Default::default()
        });
        let conditions = vec![PodCondition {
            type_: "Ready".into(),
            status: if p.ready_since.is_some() {
                "True".into()
            } else {
                "False".into()
            },
            last_transition_time: p.ready_since.map(|s| Time(ts(s))),
            ..Default::default()
        }];
        pod.status = Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: Some(conditions),
            container_statuses: Some(vec![ContainerStatus {
                restart_count: p.restarts,
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(pod)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn slow_start_doubles_from_one() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(
            slow_start_batches(500, 1),
            vec![1, 2, 4, 8, 16, 32, 64, 128, 245]
        );
        assert_eq!(slow_start_batches(7, 1).iter().sum::<usize>(), 7);
    }

    #[tokio::test]
    async fn slow_start_stops_after_a_failing_batch() {
        let calls = AtomicUsize::new(0);
        // The 4th call fails: batches 1, 2 succeed, the batch of 4 has one failure.
        let (ok, err) = slow_start(20, 1, || {
            let n = calls.fetch_add(1, AtomicOrdering::SeqCst);
            async move {
                if n == 3 {
                    Err("quota")
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(err, Some("quota"));
        assert_eq!(ok.len(), 6);
        assert_eq!(calls.load(AtomicOrdering::SeqCst), 7);
        let (ok, err) = slow_start(5, 1, || async { Ok::<_, ()>(()) }).await;
        assert_eq!((ok.len(), err), (5, None));
    }

    #[test]
    fn delete_preference_follows_upstream() {
        let now = ts(100_000);
        let pods = vec![
            pod(P {
                name: "old-ready",
                ready_since: Some(0),
                created: 0,
                ..Default::default()
            }),
            pod(P {
                name: "unscheduled",
                node: "",
                phase: "Pending",
                ready_since: None,
                ..Default::default()
            }),
            pod(P {
                name: "pending",
                phase: "Pending",
                ready_since: None,
                ..Default::default()
            }),
            pod(P {
                name: "not-ready",
                ready_since: None,
                ..Default::default()
            }),
            pod(P {
                name: "recently-ready",
                ready_since: Some(99_990),
                created: 0,
                ..Default::default()
            }),
            pod(P {
                name: "unknown",
                phase: "Unknown",
                ready_since: None,
                ..Default::default()
            }),
            pod(P {
                name: "restarting",
                ready_since: Some(0),
                restarts: 5,
                ..Default::default()
            }),
            pod(P {
                name: "expensive",
                ready_since: None,
                cost: Some("100"),
                ..Default::default()
            }),
        ];
        let order = pods_to_delete(&pods, &pods, 7, now);
        assert_eq!(
            names(&order),
            vec![
                "unscheduled",
                "pending",
                "unknown",
                "not-ready",
                "expensive",
                "recently-ready",
                "restarting"
            ]
        );
        // Asking for all of them returns all, unsorted work skipped.
        assert_eq!(pods_to_delete(&pods, &pods, 8, now).len(), 8);
    }

    #[test]
    fn doubled_up_nodes_lose_pods_first_and_newer_pods_go_first() {
        let now = ts(100_000);
        let a = pod(P {
            name: "alone",
            node: "n1",
            ..Default::default()
        });
        let b = pod(P {
            name: "crowded",
            node: "n2",
            ..Default::default()
        });
        let sibling = pod(P {
            name: "sibling",
            node: "n2",
            ..Default::default()
        });
        assert_eq!(
            names(&pods_to_delete(
                &[a.clone(), b.clone()],
                &[a, b, sibling],
                1,
                now
            )),
            vec!["crowded"]
        );
        // Same everything but creation time, far apart in logarithmic buckets.
        let old = pod(P {
            name: "old",
            ready_since: Some(0),
            created: 0,
            ..Default::default()
        });
        let new = pod(P {
            name: "new",
            ready_since: Some(0),
            created: 99_000,
            ..Default::default()
        });
        assert_eq!(
            names(&pods_to_delete(&[old.clone(), new.clone()], &[], 1, now)),
            vec!["new"]
        );
        assert_eq!(deletion_order(&old, 0, &old, 0, now), Ordering::Equal);
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod(P {
            ready_since: Some(0),
            ..Default::default()
        });
        assert!(is_available(&p, 0, ts(0)));
        assert!(!is_available(&p, 10, ts(5)));
        assert!(!is_available(&p, 10, ts(10)));
        assert!(is_available(&p, 10, ts(11)));
        let not_ready = pod(P {
            ready_since: None,
            ..Default::default()
        });
        assert!(!is_available(&not_ready, 0, ts(0)));
        assert_eq!(
            next_available_in(&[p.clone(), not_ready], 10, ts(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(next_available_in(&[p], 10, ts(20)), None);
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let mut labeled = (*pod(P {
            name: "a",
            ready_since: Some(0),
            ..Default::default()
        }))
        .clone();
        labeled.metadata.labels = Some(labels.clone());
        let pods = vec![
            Arc::new(labeled),
            pod(P {
                name: "b",
                ready_since: Some(95),
                ..Default::default()
            }),
            pod(P {
                name: "c",
                ready_since: None,
                ..Default::default()
            }),
        ];
        let now = ts(100);
        let s = calculate_status(&ReplicaStatus::default(), 5, &labels, 10, &pods, None, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (3, 1, 2, 1)
        );
        assert!(s.conditions.is_empty());
        assert!(status_needs_update(&ReplicaStatus::default(), &s, 0));

        let failure = ManageFailure {
            message: "pods \"x\" is forbidden: exceeded quota".into(),
        };
        let failed = calculate_status(&s, 5, &labels, 10, &pods, Some(&failure), now);
        assert_eq!(failed.conditions.len(), 1);
        let c = &failed.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("ReplicaFailure", "True", Some("FailedCreate"))
        );
        // Kept as is while failures continue, removed after a clean sync.
        let again = calculate_status(&failed, 5, &labels, 10, &pods, Some(&failure), ts(200));
        assert_eq!(again.conditions, failed.conditions);
        let healed = calculate_status(&failed, 5, &labels, 10, &pods, None, now);
        assert!(healed.conditions.is_empty());
        let failed_delete = calculate_status(&s, 1, &labels, 10, &pods, Some(&failure), now);
        assert_eq!(
            failed_delete.conditions[0].reason.as_deref(),
            Some("FailedDelete")
        );

        // Steady state: nothing to write once the generation is observed.
        let mut steady = s.clone();
        steady.observed_generation = 3;
        assert!(!status_needs_update(&steady, &s, 3));
        assert!(status_needs_update(&steady, &s, 4));
    }
}
