//! The taint-eviction controller (upstream `taint-eviction-controller`, a controller of
//! its own since 1.29): pods on a node with `NoExecute` taints they do not tolerate are
//! deleted at once; pods that tolerate them for `tolerationSeconds` are deleted when the
//! shortest of those runs out (counted from when this controller saw the taint); pods
//! that tolerate them forever stay. A scheduled deletion is cancelled when the taint
//! goes, the pod goes, or its tolerations change to cover the taint. Before deleting,
//! the pod gets the `DisruptionTarget` condition ("DeletionByTaintManager").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use client::events::EventSink;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::controllers::util::taints::{self, NO_EXECUTE};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "taint-eviction-controller";
/// Attempts at deleting one pod (upstream's `retries`).
const RETRIES: usize = 5;
/// How often the controller looks for deleted nodes and pods, which its change streams
/// do not report.
const RESYNC: Duration = Duration::from_secs(10);

/// `namespace/name`, the key of scheduled work.
type PodKey = String;

struct Scheduled {
    uid: String,
    created_at: Instant,
    fire_at: Instant,
    abort: AbortHandle,
}

#[derive(Default)]
struct State {
    /// The NoExecute taints of each tainted node.
    tainted: HashMap<String, Vec<Taint>>,
    scheduled: HashMap<PodKey, Scheduled>,
}

struct TaintEviction {
    client: kube::Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    events: EventSink,
    state: Mutex<State>,
    deletions: Counter,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let node_informer = ctx.informers.get::<Node>();
    let pod_informer = ctx.informers.get::<Pod>();
    let node_changes = triggers::changes(&node_informer)?;
    let pod_changes = triggers::changes(&pod_informer)?;
    let te = Arc::new(TaintEviction {
        client: ctx.client.clone(),
        nodes: node_informer.store().clone(),
        pods: pod_informer.store().clone(),
        events: ctx.events(NAME),
        state: Mutex::new(State::default()),
        deletions: Counter::default(),
    });
    ctx.metrics
        .lock()
        .sub_registry_with_prefix("taint_eviction_controller")
        .register(
            "pod_deletions",
            "Total number of Pods deleted by TaintEvictionController since its start.",
            te.deletions.clone(),
        );
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        te.run(node_changes, pod_changes, shutdown).await
    }))
}

/// The NoExecute taints among `taints`.
pub fn no_execute(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// The shortest `tolerationSeconds` of the tolerations used, `None` for forever
/// (upstream's `getMinTolerationTime`: no tolerations or a non-positive time means now).
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Some(Duration::ZERO);
            }
            min = Some(min.map_or(s, |m: i64| m.min(s)));
        }
    }
    min.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// What to do with a pod on a tainted node.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// No taints or tolerated forever: no deletion.
    Keep,
    /// Delete after this long.
    DeleteAfter(Duration),
}

pub fn decide(taints: &[Taint], tolerations: &[Toleration]) -> Decision {
    if taints.is_empty() {
        return Decision::Keep;
    }
    let (all, used) = taints::matching_tolerations(taints, tolerations);
    if !all {
        return Decision::DeleteAfter(Duration::ZERO);
    }
    match min_toleration_time(&used) {
        None => Decision::Keep,
        Some(d) => Decision::DeleteAfter(d),
    }
}

fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn pod_ref(key: &str, uid: &str) -> ObjectReference {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.to_string()),
        name: Some(name.to_string()),
        uid: Some(uid.to_string()),
        ..Default::default()
    }
}

impl TaintEviction {
    async fn run(
        self: Arc<Self>,
        node_changes: impl futures::Stream<Item = Arc<Node>> + Send,
        pod_changes: impl futures::Stream<Item = Arc<Pod>> + Send,
        shutdown: CancellationToken,
    ) {
        if !client::informers::synced(&self.nodes).await
            || !client::informers::synced(&self.pods).await
        {
            return;
        }
        tracing::info!(controller = NAME, "caches synced");
        let mut node_changes = std::pin::pin!(node_changes);
        let mut pod_changes = std::pin::pin!(pod_changes);
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Node changes first, so pods are judged against their node's latest taints.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                node = node_changes.next() => match node {
                    Some(node) => self.node_updated(&node),
                    None => break,
                },
                pod = pod_changes.next() => match pod {
                    Some(pod) => self.pod_updated(&pod),
                    None => break,
                },
                _ = resync.tick() => self.resync(),
            }
        }
        let mut st = self.state.lock();
        for (_, s) in st.scheduled.drain() {
            s.abort.abort();
        }
    }

    /// Forget deleted nodes and cancel work for pods that are gone.
    fn resync(self: &Arc<Self>) {
        let gone_nodes: Vec<String> = {
            let st = self.state.lock();
            st.tainted
                .keys()
                .filter(|n| self.nodes.get(&ObjectRef::new(n)).is_none())
                .cloned()
                .collect()
        };
        for name in gone_nodes {
            tracing::debug!(node = %name, "noticed node deletion");
            self.state.lock().tainted.remove(&name);
        }
        let keys: Vec<(PodKey, String)> = self
            .state
            .lock()
            .scheduled
            .iter()
            .map(|(k, s)| (k.clone(), s.uid.clone()))
            .collect();
        for (key, uid) in keys {
            let (ns, name) = key.split_once('/').unwrap_or_default();
            let live = self
                .pods
                .get(&ObjectRef::new(name).within(ns))
                .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
            if !live {
                self.cancel(&key, false);
            }
        }
    }

    fn node_updated(self: &Arc<Self>, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints = no_execute(taints::node_taints(node));
        {
            let mut st = self.state.lock();
            let old = st.tainted.get(&name).cloned().unwrap_or_default();
            if old == taints {
                return;
            }
            if taints.is_empty() {
                st.tainted.remove(&name);
            } else {
                st.tainted.insert(name.clone(), taints.clone());
            }
        }
        // The taint map is updated before the pods are listed: a pod bound later is
        // judged by `pod_updated` against the new taints.
        let pods = self.pods.state_filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
        });
        let now = Instant::now();
        for pod in pods {
            if taints.is_empty() {
                self.cancel(&pod_key(&pod), true);
            } else {
                self.process_pod(&pod, &taints, now);
            }
        }
    }

    fn pod_updated(self: &Arc<Self>, pod: &Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            return;
        };
        let taints = self.state.lock().tainted.get(node).cloned();
        match taints {
            Some(taints) => self.process_pod(pod, &taints, Instant::now()),
            // Taints were removed or the node is gone: nothing may be pending.
            None => self.cancel(&pod_key(pod), true),
        }
    }

    fn process_pod(self: &Arc<Self>, pod: &Pod, taints: &[Taint], now: Instant) {
        let key = pod_key(pod);
        // A pod already being deleted needs no second deletion.
        if pod.metadata.deletion_timestamp.is_some() {
            self.cancel(&key, false);
            return;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let delay = match decide(taints, tolerations) {
            Decision::Keep => {
                self.cancel(&key, true);
                return;
            }
            Decision::DeleteAfter(d) => d,
        };
        // Time is counted from when the taint was first seen for this pod: a change of
        // its tolerations moves the deadline, a repeated look does not.
        let mut start = now;
        let mut rescheduling = false;
        {
            let st = self.state.lock();
            if let Some(existing) = st.scheduled.get(&key) {
                if existing.uid == uid {
                    if existing.fire_at == existing.created_at + delay {
                        return;
                    }
                    start = existing.created_at;
                    rescheduling = true;
                }
            }
        }
        self.cancel(&key, !rescheduling);
        let fire_at = start + delay;
        tracing::debug!(pod = %key, ?delay, "scheduling deletion");
        let te = Arc::clone(self);
        let task_key = key.clone();
        let task_uid = uid.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(fire_at).await;
            te.delete_pod(&task_key, &task_uid).await;
            let mut st = te.state.lock();
            if st
                .scheduled
                .get(&task_key)
                .is_some_and(|s| s.uid == task_uid && s.fire_at == fire_at)
            {
                st.scheduled.remove(&task_key);
            }
        });
        self.state.lock().scheduled.insert(
            key,
            Scheduled {
                uid,
                created_at: start,
                fire_at,
                abort: task.abort_handle(),
            },
        );
    }

    /// Cancel scheduled work for a pod, with a `TaintManagerEviction` event when asked.
    fn cancel(&self, key: &str, with_event: bool) {
        let removed = self.state.lock().scheduled.remove(key);
        if let Some(s) = removed {
            s.abort.abort();
            if with_event {
                self.event(key, &s.uid, format!("Cancelling deletion of Pod {key}"));
            }
        }
    }

    fn event(&self, key: &str, uid: &str, note: String) {
        self.events
            .normal(pod_ref(key, uid), "TaintManagerEviction", "Delete", note);
    }

    async fn delete_pod(&self, key: &str, uid: &str) {
        tracing::info!(controller = NAME, pod = %key, "deleting pod");
        self.event(key, uid, format!("Marking for deletion Pod {key}"));
        let (ns, name) = key.split_once('/').unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for attempt in 0..RETRIES {
            match add_condition_and_delete(&api, name, uid).await {
                Ok(()) => {
                    self.deletions.inc();
                    return;
                }
                Err(e) => {
                    tracing::debug!(pod = %key, attempt, error = %e, "failed to delete pod");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        tracing::warn!(pod = %key, "giving up deleting pod after {RETRIES} attempts");
    }
}

/// Mark the pod as a disruption target, then delete it (with its default grace period);
/// the uid precondition keeps a new pod of the same name safe.
async fn add_condition_and_delete(
    api: &Api<Pod>,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let Some(pod) = api.get_opt(name).await? else {
        return Ok(());
    };
    if pod.metadata.uid.as_deref() != Some(uid) {
        return Ok(());
    }
    let has = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("DeletionByTaintManager")
            })
        });
    if !has {
        let patch = json!({
            "metadata": {"uid": uid},
            "status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": Time(jiff::Timestamp::now()),
            }]},
        });
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn decisions_follow_upstream() {
        let unreachable = vec![taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE)];
        // No toleration: now.
        assert_eq!(
            decide(&unreachable, &[]),
            Decision::DeleteAfter(Duration::ZERO)
        );
        // The API server's default: 300 s.
        assert_eq!(
            decide(
                &unreachable,
                &[tol(taints::TAINT_NODE_UNREACHABLE, Some(300))]
            ),
            Decision::DeleteAfter(Duration::from_secs(300))
        );
        // Forever.
        assert_eq!(
            decide(&unreachable, &[tol(taints::TAINT_NODE_UNREACHABLE, None)]),
            Decision::Keep
        );
        // The shortest of the used tolerations counts.
        let two = vec![
            unreachable[0].clone(),
            taints::taint("maintenance", NO_EXECUTE),
        ];
        assert_eq!(
            decide(
                &two,
                &[
                    tol(taints::TAINT_NODE_UNREACHABLE, Some(30)),
                    tol("maintenance", Some(10))
                ]
            ),
            Decision::DeleteAfter(Duration::from_secs(10))
        );
        assert_eq!(
            decide(
                &two,
                &[
                    tol(taints::TAINT_NODE_UNREACHABLE, None),
                    tol("maintenance", Some(-5))
                ]
            ),
            Decision::DeleteAfter(Duration::ZERO)
        );
        // Untolerated second taint: now.
        assert_eq!(
            decide(&two, &[tol(taints::TAINT_NODE_UNREACHABLE, None)]),
            Decision::DeleteAfter(Duration::ZERO)
        );
        assert_eq!(decide(&[], &[]), Decision::Keep);
    }

    #[test]
    fn only_no_execute_taints_count() {
        let ts = vec![
            taints::taint("a", "NoSchedule"),
            taints::taint("b", NO_EXECUTE),
        ];
        assert_eq!(no_execute(&ts), vec![taints::taint("b", NO_EXECUTE)]);
    }
}
