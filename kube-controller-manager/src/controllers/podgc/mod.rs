//! The pod garbage collector (upstream `podgc`), every 20 s:
//! - terminated pods (Succeeded/Failed) beyond `--terminated-pod-gc-threshold` are
//!   deleted, oldest first (0 turns this off);
//! - pods bound to a node that has been gone for the 40 s quarantine (and that the API
//!   server confirms is gone) get the `DisruptionTarget` condition ("DeletionByPodGC"),
//!   phase Failed, and are deleted at once;
//! - pods marked for deletion that were never scheduled are deleted at once;
//! - pods terminating on a NotReady node tainted `node.kubernetes.io/out-of-service`
//!   are deleted at once.
//!
//! "At once" is a deletion with grace period 0, as upstream forces them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::context::Context;
use crate::controllers::util::taints;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "podgc";
const CHECK_PERIOD: Duration = Duration::from_secs(20);
const QUARANTINE: Duration = Duration::from_secs(40);
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let pods = ctx.informers.get::<Pod>().store().clone();
    let nodes = ctx.informers.get::<Node>().store().clone();
    let gc = PodGc {
        client: ctx.client.clone(),
        pods,
        nodes,
        threshold: ctx.options.terminated_pod_gc_threshold,
        missing_since: parking_lot::Mutex::new(HashMap::new()),
    };
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        if !client::informers::synced(&gc.pods).await || !client::informers::synced(&gc.nodes).await
        {
            return;
        }
        let mut tick = tokio::time::interval(CHECK_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => gc.gc().await,
            }
        }
    }))
}

struct PodGc {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    threshold: usize,
    /// Nodes that pods are bound to but the cache does not hold, since when.
    missing_since: parking_lot::Mutex<HashMap<String, Instant>>,
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn is_terminated(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn is_evicted(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// The terminated pods to delete to get down to `threshold` (0: none), evicted pods
/// first, then oldest first.
pub fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut terminated: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| is_terminated(p) && p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    let excess = terminated.len() - threshold;
    terminated.sort_by_key(|p| {
        (
            !is_evicted(p),
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    terminated.truncate(excess);
    terminated
}

/// Pods marked for deletion that never got a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_of(p).is_none())
        .cloned()
        .collect()
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl PodGc {
    async fn gc(&self) {
        let pods = self.pods.state();
        for p in terminated_to_delete(&pods, self.threshold) {
            self.mark_failed_and_delete(&p, None).await;
        }
        self.gc_orphaned(&pods).await;
        for p in unscheduled_terminating(&pods) {
            self.mark_failed_and_delete(&p, None).await;
        }
        // Terminating pods on out-of-service nodes that are not ready.
        for p in pods.iter().filter(|p| {
            p.metadata.deletion_timestamp.is_some()
                && node_of(p).is_some_and(|n| {
                    self.nodes.get(&ObjectRef::new(n)).is_some_and(|node| {
                        !node_ready(&node)
                            && taints::node_taints(&node)
                                .iter()
                                .any(|t| t.key == OUT_OF_SERVICE)
                    })
                })
        }) {
            self.mark_failed_and_delete(p, Some("PodGC: node is out-of-service"))
                .await;
        }
    }

    async fn gc_orphaned(&self, pods: &[Arc<Pod>]) {
        let missing: HashSet<String> = pods
            .iter()
            .filter_map(|p| node_of(p))
            .filter(|n| self.nodes.get(&ObjectRef::new(n)).is_none())
            .map(str::to_string)
            .collect();
        let now = Instant::now();
        let due: Vec<String> = {
            let mut since = self.missing_since.lock();
            since.retain(|n, _| missing.contains(n));
            for n in &missing {
                since.entry(n.clone()).or_insert(now);
            }
            since
                .iter()
                .filter(|(_, t)| now.duration_since(**t) >= QUARANTINE)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        for node in due {
            // The cache may lag: only a node the API server does not have is gone.
            match nodes_api.get_opt(&node).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    self.missing_since.lock().remove(&node);
                    continue;
                }
                Err(e) => {
                    tracing::info!(controller = NAME, %node, error = %e, "node lookup failed");
                    continue;
                }
            }
            for p in pods.iter().filter(|p| node_of(p) == Some(node.as_str())) {
                tracing::info!(controller = NAME, pod = ?p.metadata.name, %node, "deleting orphaned pod");
                self.mark_failed_and_delete(p, Some("PodGC: node no longer exists"))
                    .await;
            }
        }
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`: a pod not yet finished gets
    /// phase Failed (and the DisruptionTarget condition when there is a message), then
    /// it is deleted with grace period 0.
    async fn mark_failed_and_delete(&self, pod: &Pod, message: Option<&str>) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if !is_terminated(pod) {
            let mut status = json!({"phase": "Failed"});
            if let Some(m) = message {
                status["conditions"] = json!([{
                    "type": "DisruptionTarget", "status": "True",
                    "reason": "DeletionByPodGC", "message": m,
                    "lastTransitionTime": Time(Timestamp::now()),
                }]);
            }
            let patch = json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
            if let Err(e) = api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::debug!(controller = NAME, pod = name, error = %e, "marking failed");
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {
                tracing::info!(controller = NAME, pod = %format!("{ns}/{name}"), "deleted pod")
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::info!(controller = NAME, pod = name, error = %e, "delete failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn pod(name: &str, phase: &str, created: i64, node: Option<&str>) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p.spec = Some(PodSpec {
            node_name: node.map(str::to_string),
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        Arc::new(p)
    }

    fn names(ps: &[Arc<Pod>]) -> Vec<&str> {
        ps.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_oldest_first() {
        let mut evicted = (*pod("evicted", "Failed", 50, None)).clone();
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            pod("new", "Succeeded", 30, None),
            pod("old", "Failed", 10, None),
            pod("running", "Running", 1, None),
            pod("mid", "Succeeded", 20, None),
            Arc::new(evicted),
        ];
        assert_eq!(
            names(&terminated_to_delete(&pods, 2)),
            vec!["evicted", "old"]
        );
        assert!(terminated_to_delete(&pods, 0).is_empty());
        assert!(terminated_to_delete(&pods, 4).is_empty());
    }

    #[test]
    fn only_unscheduled_terminating_pods_are_forced() {
        let mut a = (*pod("a", "Pending", 1, None)).clone();
        a.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let mut b = (*pod("b", "Running", 1, Some("n1"))).clone();
        b.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let pods = vec![Arc::new(a), Arc::new(b), pod("c", "Pending", 1, None)];
        assert_eq!(names(&unscheduled_terminating(&pods)), vec!["a"]);
    }
}
