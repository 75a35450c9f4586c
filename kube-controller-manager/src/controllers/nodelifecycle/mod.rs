//! The node lifecycle controller (upstream `nodelifecycle`, the "node-controller"):
//!
//! - **Health.** Every `--node-monitor-period` it checks that each node's kubelet is
//!   alive: a renewed Lease in `kube-node-lease` or a new heartbeat in the Ready
//!   condition. A node silent for `--node-monitor-grace-period` (`--node-startup-grace-
//!   period` before its first status) gets Ready, MemoryPressure, DiskPressure and
//!   PIDPressure set to Unknown ("NodeStatusUnknown", "Kubelet stopped posting node
//!   status."), a `NodeNotReady` event, and the Ready condition of its pods set to False.
//! - **NoExecute taints.** A node whose Ready condition is False gets
//!   `node.kubernetes.io/not-ready:NoExecute`, Unknown gets
//!   `node.kubernetes.io/unreachable:NoExecute`, at a rate limited per zone
//!   (`--node-eviction-rate`, `--secondary-node-eviction-rate` when most of a zone
//!   failed, none when every zone failed); a Ready node loses both at once. The
//!   taint-eviction controller then deletes the pods that do not tolerate them.
//! - **NoSchedule taints** (TaintNodesByCondition): not-ready / unreachable,
//!   memory-, disk-, pid-pressure, network-unavailable from the conditions, and
//!   unschedulable from `spec.unschedulable`, kept in step with every node change.
//! - The beta `os` / `arch` labels follow the stable ones.

pub mod health;
pub mod zones;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::events::EventSink;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::json;

use self::health::{NodeHealth, Timing};
use self::zones::{RateLimitedTimedQueue, ZoneState};
use crate::context::Context;
use crate::controllers::util::taints::{self, NO_EXECUTE, NO_SCHEDULE};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

/// The name events are reported under (upstream's event source component).
pub const COMPONENT: &str = "node-controller";
/// How often the NoExecute taint queues are worked (upstream's `NodeEvictionPeriod`).
const EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Attempts to post a node's status before giving up for this pass
/// (upstream's `NodeHealthUpdateRetry`).
const HEALTH_UPDATE_RETRIES: usize = 5;
/// Nodes looked at concurrently in one pass (upstream's `nodeUpdateWorkerSize`).
const NODE_UPDATE_WORKERS: usize = 8;
/// The label that keeps a node out of the zone disruption counts.
const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Which condition status means which NoSchedule taint (upstream's
/// `nodeConditionToTaintKeyStatusMap`).
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", taints::TAINT_NODE_NOT_READY),
    ("Ready", "Unknown", taints::TAINT_NODE_UNREACHABLE),
    ("MemoryPressure", "True", taints::TAINT_NODE_MEMORY_PRESSURE),
    ("DiskPressure", "True", taints::TAINT_NODE_DISK_PRESSURE),
    (
        "NetworkUnavailable",
        "True",
        taints::TAINT_NODE_NETWORK_UNAVAILABLE,
    ),
    ("PIDPressure", "True", taints::TAINT_NODE_PID_PRESSURE),
];

/// The beta labels kept equal to the stable ones (upstream's `labelReconcileInfo`).
const LABEL_RECONCILE: &[(&str, &str)] = &[
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("updating node {node}: {source}")]
    Node { node: String, source: kube::Error },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabel {
    zone: String,
}

#[derive(Default)]
struct Metrics {
    zone_health: Family<ZoneLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    zone_size: Family<ZoneLabel, Gauge>,
    unhealthy_nodes: Family<ZoneLabel, Gauge>,
    evictions: Family<ZoneLabel, Counter>,
}

/// The controller's settings, from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub monitor_period: Duration,
    pub monitor_grace: Duration,
    pub startup_grace: Duration,
    pub eviction_qps: f64,
    pub secondary_eviction_qps: f64,
    pub large_cluster_threshold: usize,
    pub unhealthy_zone_threshold: f32,
}

#[derive(Default)]
struct State {
    health: HashMap<String, NodeHealth>,
    /// Nodes seen in the last pass: name → uid.
    known: HashMap<String, String>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, RateLimitedTimedQueue>,
    /// Nodes whose pods still have to be marked not ready.
    retry: HashSet<String>,
}

struct Lifecycle {
    nodes_api: Api<Node>,
    client: kube::Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    leases: Store<Lease>,
    events: EventSink,
    settings: Settings,
    state: Mutex<State>,
    metrics: Metrics,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let node_informer = ctx.informers.get::<Node>();
    let pod_informer = ctx.informers.get::<Pod>();
    let lease_informer = ctx.informers.get::<Lease>();
    let node_changes = triggers::changes(&node_informer)?;
    let pod_changes = triggers::changes(&pod_informer)?;
    let o = &ctx.options;
    let settings = Settings {
        monitor_period: o.node_monitor_period,
        monitor_grace: o.node_monitor_grace_period,
        startup_grace: o.node_startup_grace_period,
        eviction_qps: f64::from(o.node_eviction_rate),
        secondary_eviction_qps: f64::from(o.secondary_node_eviction_rate),
        large_cluster_threshold: o.large_cluster_size_threshold as usize,
        unhealthy_zone_threshold: o.unhealthy_zone_threshold,
    };
    let lc = Arc::new(Lifecycle {
        nodes_api: Api::all(ctx.client.clone()),
        client: ctx.client.clone(),
        nodes: node_informer.store().clone(),
        pods: pod_informer.store().clone(),
        leases: lease_informer.store().clone(),
        events: ctx.events(COMPONENT),
        settings,
        state: Mutex::new(State::default()),
        metrics: Metrics::default(),
    });
    {
        let mut registry = ctx.metrics.lock();
        let sub = registry.sub_registry_with_prefix("node_collector");
        sub.register(
            "zone_health",
            "Gauge measuring percentage of healthy nodes per zone.",
            lc.metrics.zone_health.clone(),
        );
        sub.register(
            "zone_size",
            "Gauge measuring number of registered Nodes per zones.",
            lc.metrics.zone_size.clone(),
        );
        sub.register(
            "unhealthy_nodes_in_zone",
            "Gauge measuring number of not Ready Nodes per zones.",
            lc.metrics.unhealthy_nodes.clone(),
        );
        sub.register("evictions", "Number of Node evictions that happened since current instance of NodeController started.", lc.metrics.evictions.clone());
    }
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        if !client::informers::synced(&lc.nodes).await
            || !client::informers::synced(&lc.pods).await
            || !client::informers::synced(&lc.leases).await
        {
            return;
        }
        tracing::info!(controller = "nodelifecycle", "caches synced");
        let no_schedule = Controller::for_shared_stream(node_changes, lc.nodes.clone())
            .with_config(controller::Config::default().concurrency(NODE_UPDATE_WORKERS as u16))
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(reconcile_node, node_error_policy, Arc::clone(&lc))
            .for_each(|_| async {});
        tokio::join!(
            no_schedule,
            Arc::clone(&lc).monitor_loop(shutdown.clone()),
            Arc::clone(&lc).no_execute_loop(shutdown.clone()),
            Arc::clone(&lc).pod_loop(pod_changes, shutdown.clone()),
        );
    }))
}

/// The NoSchedule taints and the beta labels of one node (upstream's
/// `doNoScheduleTaintingPass` and `reconcileNodeLabels`).
async fn reconcile_node(node: Arc<Node>, lc: Arc<Lifecycle>) -> Result<Action, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let (add, remove) = no_schedule_taint_changes(&node);
    if !add.is_empty() || !remove.is_empty() {
        taints::update_node_taints(&lc.nodes_api, &name, Some(&node), &add, &remove)
            .await
            .map_err(|source| Error::Node {
                node: name.clone(),
                source,
            })?;
    }
    let labels = label_changes(&node);
    if !labels.is_empty() {
        let patch = json!({"metadata": {"labels": labels}});
        match lc
            .nodes_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(Error::Node { node: name, source }),
        }
    }
    Ok(Action::await_change())
}

fn node_error_policy(node: Arc<Node>, error: &Error, _: Arc<Lifecycle>) -> Action {
    tracing::warn!(node = node.metadata.name.as_deref().unwrap_or_default(), %error, "failed to reconcile NoSchedule taints; requeueing");
    Action::requeue(Duration::from_secs(5))
}

/// The NoSchedule taints to add and remove so that the node's taints mirror its
/// conditions and `spec.unschedulable`; taints of other keys are never touched.
pub fn no_schedule_taint_changes(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut wanted: Vec<Taint> = Vec::new();
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        for (type_, status, key) in CONDITION_TAINTS {
            if c.type_ == *type_ && c.status == *status {
                wanted.push(taints::taint(key, NO_SCHEDULE));
            }
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        wanted.push(taints::taint(taints::TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE));
    }
    let managed = |t: &Taint| {
        t.effect == NO_SCHEDULE
            && (t.key == taints::TAINT_NODE_UNSCHEDULABLE
                || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
    };
    let current: Vec<&Taint> = taints::node_taints(node)
        .iter()
        .filter(|t| managed(t))
        .collect();
    let add = wanted
        .iter()
        .filter(|w| !current.iter().any(|c| taints::same_taint(c, w)))
        .cloned()
        .collect();
    let remove = current
        .into_iter()
        .filter(|c| !wanted.iter().any(|w| taints::same_taint(c, w)))
        .cloned()
        .collect();
    (add, remove)
}

fn label_changes(node: &Node) -> serde_json::Map<String, serde_json::Value> {
    let mut changes = serde_json::Map::new();
    let Some(labels) = node.metadata.labels.as_ref() else {
        return changes;
    };
    for (primary, secondary) in LABEL_RECONCILE {
        if let Some(value) = labels.get(*primary) {
            if labels.get(*secondary) != Some(value) {
                changes.insert(secondary.to_string(), json!(value));
            }
        }
    }
    changes
}

fn node_ref(name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_string()),
        uid: Some(uid.to_string()),
        ..Default::default()
    }
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Record an event without holding up the caller.
fn emit(
    events: &EventSink,
    type_: EventType,
    reason: &str,
    note: String,
    regarding: ObjectReference,
) {
    match type_ {
        EventType::Normal => events.normal(regarding, reason, reason, note),
        EventType::Warning => events.warning(regarding, reason, reason, note),
    }
}

fn ready_status(node: &Node) -> Option<&str> {
    health::condition(node, "Ready").map(|c| c.status.as_str())
}

fn hash_of(uid: &str, node: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (uid, node).hash(&mut h);
    h.finish()
}

impl Lifecycle {
    fn api_pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn monitor_loop(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.monitor_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.monitor_node_health().await,
            }
        }
    }

    /// One health pass over every node (upstream's `monitorNodeHealth`).
    async fn monitor_node_health(self: &Arc<Self>) {
        let nodes = self.nodes.state();
        let now = Instant::now();
        let (added, deleted) = {
            let mut st = self.state.lock();
            let present: HashSet<&str> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            let deleted: Vec<(String, String)> = st
                .known
                .iter()
                .filter(|(n, _)| !present.contains(n.as_str()))
                .map(|(n, u)| (n.clone(), u.clone()))
                .collect();
            for (name, _) in &deleted {
                st.known.remove(name);
                st.health.remove(name);
                st.retry.remove(name);
            }
            let mut added = Vec::new();
            for node in &nodes {
                let name = node.metadata.name.clone().unwrap_or_default();
                let zone = zones::zone_key(node);
                self.add_zone(&mut st, &zone, now);
                if let std::collections::hash_map::Entry::Vacant(e) = st.known.entry(name) {
                    e.insert(node.metadata.uid.clone().unwrap_or_default());
                    added.push(Arc::clone(node));
                }
            }
            (added, deleted)
        };
        for (name, uid) in deleted {
            tracing::info!(node = %name, "controller observed a Node deletion");
            let note = format!("Node {name} event: Removing Node {name} from Controller");
            emit(
                &self.events,
                EventType::Normal,
                "RemovingNode",
                note,
                node_ref(&name, &uid),
            );
        }
        for node in &added {
            let name = node.metadata.name.clone().unwrap_or_default();
            tracing::info!(node = %name, "controller observed a new Node");
            let note = format!("Node {name} event: Registered Node {name} in Controller");
            emit(
                &self.events,
                EventType::Normal,
                "RegisteredNode",
                note,
                node_ref(&name, node.metadata.uid.as_deref().unwrap_or_default()),
            );
            if let Err(e) = self.mark_node_as_reachable(node).await {
                tracing::warn!(node = %name, error = %e, "failed to remove NoExecute taints from a new node");
            }
        }

        let results: Vec<Option<(Arc<Node>, health::Observation)>> =
            futures::stream::iter(nodes.iter().cloned())
                .map(|node| {
                    let lc = Arc::clone(self);
                    async move { lc.update_node_health(node).await }
                })
                .buffer_unordered(NODE_UPDATE_WORKERS)
                .collect()
                .await;

        let mut zone_ready: HashMap<String, Vec<Option<String>>> = HashMap::new();
        let mut mark_pods: Vec<(String, String)> = Vec::new();
        for (node, obs) in results.into_iter().flatten() {
            let name = node.metadata.name.clone().unwrap_or_default();
            let excluded = node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_DISRUPTION));
            let current = obs.current_ready().map(str::to_string);
            if !excluded {
                zone_ready
                    .entry(zones::zone_key(&node))
                    .or_default()
                    .push(current.clone());
            }
            let Some(current) = current else { continue };
            self.process_taint_based_eviction(&node, &obs.observed_ready)
                .await;
            let needs_retry = self.state.lock().retry.contains(&name);
            if current != "True" && obs.observed_ready == "True" {
                let note = format!("Node {name} status is now: NodeNotReady");
                emit(
                    &self.events,
                    EventType::Normal,
                    "NodeNotReady",
                    note,
                    node_ref(&name, node.metadata.uid.as_deref().unwrap_or_default()),
                );
                mark_pods.push((name, current));
            } else if needs_retry && obs.observed_ready != "True" {
                mark_pods.push((name, current));
            } else {
                self.state.lock().retry.remove(&name);
            }
        }
        if !mark_pods.is_empty() {
            let wanted: HashSet<&str> = mark_pods.iter().map(|(n, _)| n.as_str()).collect();
            let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
            for pod in self.pods.state() {
                if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                    if wanted.contains(n) {
                        by_node
                            .entry(n.to_string())
                            .or_default()
                            .push(Arc::clone(&pod));
                    }
                }
            }
            for (name, _) in &mark_pods {
                let pods = by_node.remove(name).unwrap_or_default();
                let ok = self.mark_pods_not_ready(&pods, name).await;
                let mut st = self.state.lock();
                if ok {
                    st.retry.remove(name);
                } else {
                    st.retry.insert(name.clone());
                }
            }
        }
        self.handle_disruption(zone_ready, &nodes).await;
    }

    fn add_zone(&self, st: &mut State, zone: &str, now: Instant) {
        if !st.zone_states.contains_key(zone) {
            tracing::info!(zone = %zone.replace('\0', ""), "initializing eviction metric for zone");
            st.zone_states.insert(zone.to_string(), ZoneState::Initial);
            st.tainters.insert(
                zone.to_string(),
                RateLimitedTimedQueue::new(self.settings.eviction_qps, now),
            );
            let _ = self.metrics.evictions.get_or_create(&ZoneLabel {
                zone: zone.to_string(),
            });
        }
    }

    /// Observe one node and post Unknown conditions when it went silent. `None` when the
    /// status could not be written (the node is skipped this pass, as upstream does).
    async fn update_node_health(
        self: Arc<Self>,
        node: Arc<Node>,
    ) -> Option<(Arc<Node>, health::Observation)> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut node = node;
        for attempt in 0..HEALTH_UPDATE_RETRIES {
            let lease = self
                .leases
                .get(&ObjectRef::new(&name).within(NODE_LEASE_NAMESPACE));
            let renew = lease
                .as_ref()
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.renew_time.clone());
            let timing = Timing {
                now: Instant::now(),
                wall_now: jiff::Timestamp::now(),
                monitor_grace: self.settings.monitor_grace,
                startup_grace: self.settings.startup_grace,
            };
            let obs = {
                let mut st = self.state.lock();
                let obs = health::observe(st.health.get(&name), &node, renew.as_ref(), &timing);
                st.health.insert(name.clone(), obs.health.clone());
                obs
            };
            let Some(conditions) = obs.new_conditions.clone() else {
                return Some((node, obs));
            };
            tracing::info!(node = %name, "node stopped posting status; setting its conditions to Unknown");
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "status": {"conditions": conditions},
            });
            match self
                .nodes_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Some((node, obs)),
                Err(e) => {
                    tracing::debug!(node = %name, attempt, error = %e, "failed to update node health");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    match self.nodes_api.get_opt(&name).await {
                        Ok(Some(fresh)) => node = Arc::new(fresh),
                        Ok(None) => return None,
                        Err(e) => {
                            tracing::warn!(node = %name, error = %e, "failed to get a node to retry updating its health");
                            return None;
                        }
                    }
                }
            }
        }
        tracing::warn!(node = %name, "failed to update node health; skipping it this pass, no pods will be evicted");
        None
    }

    /// Queue a not-ready or unreachable node for its NoExecute taint, swap the taint at
    /// once when it has the other one, or clear both when it is Ready again.
    async fn process_taint_based_eviction(&self, node: &Node, observed_ready: &str) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let not_ready = taints::taint(taints::TAINT_NODE_NOT_READY, NO_EXECUTE);
        let unreachable = taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE);
        let (wanted, opposite) = match observed_ready {
            "False" => (not_ready, unreachable),
            "Unknown" => (unreachable, not_ready),
            "True" => {
                if let Err(e) = self.mark_node_as_reachable(node).await {
                    tracing::warn!(node = %name, error = %e, "failed to remove taints from node; will retry");
                }
                return;
            }
            _ => return,
        };
        if taints::taint_exists(taints::node_taints(node), &opposite) {
            if let Err(e) = taints::update_node_taints(
                &self.nodes_api,
                &name,
                Some(node),
                &[wanted],
                &[opposite],
            )
            .await
            {
                tracing::warn!(node = %name, error = %e, "failed to swap NoExecute taints; will retry");
            }
            return;
        }
        let zone = zones::zone_key(node);
        let has_wanted = taints::taint_exists(taints::node_taints(node), &wanted);
        let mut st = self.state.lock();
        let Some(queue) = st.tainters.get_mut(&zone) else {
            return;
        };
        if !has_wanted {
            // The node lost the taint (or never had it): let it be queued again.
            queue.remove(&name);
        }
        if queue.add(
            &name,
            node.metadata.uid.as_deref().unwrap_or_default(),
            Instant::now(),
        ) {
            tracing::info!(node = %name, ready = observed_ready, "node is not ready; queued for its NoExecute taint");
        }
    }

    async fn mark_node_as_reachable(&self, node: &Node) -> Result<(), kube::Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let remove = [
            taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE),
            taints::taint(taints::TAINT_NODE_NOT_READY, NO_EXECUTE),
        ];
        if remove
            .iter()
            .any(|t| taints::taint_exists(taints::node_taints(node), t))
        {
            taints::update_node_taints(&self.nodes_api, &name, Some(node), &[], &remove).await?;
            tracing::info!(node = %name, "node is healthy again; removed its NoExecute taints");
        }
        let zone = zones::zone_key(node);
        if let Some(q) = self.state.lock().tainters.get_mut(&zone) {
            q.remove(&name);
        }
        Ok(())
    }

    async fn no_execute_loop(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(EVICTION_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.no_execute_tainting_pass().await,
            }
        }
    }

    /// Taint the nodes whose turn has come in each zone's queue (upstream's
    /// `doNoExecuteTaintingPass`).
    async fn no_execute_tainting_pass(&self) {
        let now = Instant::now();
        let due: Vec<(String, Vec<zones::TimedValue>)> = {
            let mut st = self.state.lock();
            st.tainters
                .iter_mut()
                .map(|(z, q)| (z.clone(), q.take_due(now)))
                .filter(|(_, d)| !d.is_empty())
                .collect()
        };
        for (zone, values) in due {
            for value in values {
                let retry = self.taint_queued_node(&zone, &value).await;
                if let Some(wait) = retry {
                    if let Some(q) = self.state.lock().tainters.get_mut(&zone) {
                        q.retry(value, wait, Instant::now());
                    }
                }
            }
        }
    }

    /// Taint one queued node; `Some(wait)` to try again later.
    async fn taint_queued_node(&self, zone: &str, value: &zones::TimedValue) -> Option<Duration> {
        let node = self.nodes.get(&ObjectRef::new(&value.node))?;
        let not_ready = taints::taint(taints::TAINT_NODE_NOT_READY, NO_EXECUTE);
        let unreachable = taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE);
        // not-ready and unreachable are exclusive, mirroring the Ready condition.
        let (add, remove) = match ready_status(&node) {
            None => return Some(Duration::from_millis(50)),
            Some("False") => (not_ready, unreachable),
            Some("Unknown") => (unreachable, not_ready),
            Some(_) => return None,
        };
        match taints::update_node_taints(
            &self.nodes_api,
            &value.node,
            Some(&node),
            std::slice::from_ref(&add),
            &[remove],
        )
        .await
        {
            Ok(_) => {
                tracing::info!(node = %value.node, taint = %add.key, "tainted node NoExecute");
                self.metrics
                    .evictions
                    .get_or_create(&ZoneLabel {
                        zone: zone.to_string(),
                    })
                    .inc();
                None
            }
            Err(e) => {
                tracing::warn!(node = %value.node, error = %e, "failed to taint node");
                Some(Duration::ZERO)
            }
        }
    }

    /// Set the Ready condition of the pods on a node to False (upstream's
    /// `MarkPodsNotReady`), with a `NodeNotReady` event on each. Returns whether all
    /// writes succeeded.
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> bool {
        let mut ok = true;
        let now = Time(jiff::Timestamp::now());
        for pod in pods {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            // Pods without a Ready condition, or already not ready, are left alone.
            if ready.is_none_or(|c| c.status == "False") {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let patch = json!({
                "metadata": {"uid": pod.metadata.uid},
                "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]},
            });
            match self
                .api_pods(&ns)
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %format!("{ns}/{name}"), node, "updated ready status of pod to false");
                    emit(
                        &self.events,
                        EventType::Warning,
                        "NodeNotReady",
                        "Node is not ready".into(),
                        pod_ref(pod),
                    );
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "failed to update status for pod");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Pods newly bound to a node that is not ready are marked not ready too (upstream's
    /// `podUpdated` / `processPod`). Only a new binding counts, so a live kubelet that
    /// reports its own pods' readiness is not fought with.
    async fn pod_loop(
        self: Arc<Self>,
        changes: impl futures::Stream<Item = Arc<Pod>> + Send,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut changes = std::pin::pin!(changes);
        let mut seen: HashSet<u64> = HashSet::new();
        // The change stream only carries live objects; forget deleted pods now and then.
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = prune.tick() => {
                    let live: HashSet<u64> = self.pods.state().iter().filter_map(|p| {
                        let node = p.spec.as_ref()?.node_name.as_deref()?;
                        Some(hash_of(p.metadata.uid.as_deref().unwrap_or_default(), node))
                    }).collect();
                    seen.retain(|h| live.contains(h));
                }
                pod = changes.next() => {
                    let Some(pod) = pod else { return };
                    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
                    if !seen.insert(hash_of(pod.metadata.uid.as_deref().unwrap_or_default(), &node)) {
                        continue;
                    }
                    let not_ready = {
                        let st = self.state.lock();
                        st.health.get(&node).is_some_and(|h| !h.ready_status.is_empty() && h.ready_status != "True")
                    };
                    if not_ready && self.nodes.get(&ObjectRef::new(&node)).is_some() && !self.mark_pods_not_ready(&[pod], &node).await {
                        // Try again with the next change or the next pass over the node.
                        self.state.lock().retry.insert(node);
                    }
                }
            }
        }
    }

    /// Adjust each zone's eviction rate to its state (upstream's `handleDisruption`).
    async fn handle_disruption(
        &self,
        zone_ready: HashMap<String, Vec<Option<String>>>,
        nodes: &[Arc<Node>],
    ) {
        let threshold = self.settings.unhealthy_zone_threshold;
        let mut new_states: HashMap<String, (ZoneState, usize)> = HashMap::new();
        let mut all_fully_disrupted = true;
        for (zone, ready) in &zone_ready {
            let statuses: Vec<Option<&str>> = ready.iter().map(|s| s.as_deref()).collect();
            let (unhealthy, state) = zones::compute_zone_state(&statuses, threshold);
            let label = ZoneLabel { zone: zone.clone() };
            self.metrics
                .zone_size
                .get_or_create(&label)
                .set(ready.len() as i64);
            self.metrics
                .unhealthy_nodes
                .get_or_create(&label)
                .set(unhealthy as i64);
            self.metrics
                .zone_health
                .get_or_create(&label)
                .set(100.0 * (ready.len() - unhealthy) as f64 / ready.len().max(1) as f64);
            if state != ZoneState::FullDisruption {
                all_fully_disrupted = false;
            }
            new_states.insert(zone.clone(), (state, ready.len()));
        }
        let entering = {
            let mut st = self.state.lock();
            for zone in zone_ready.keys() {
                st.zone_states
                    .entry(zone.clone())
                    .or_insert(ZoneState::Initial);
            }
            st.zone_states
                .retain(|zone, _| zone_ready.contains_key(zone));
            let all_were_fully_disrupted = st
                .zone_states
                .values()
                .all(|s| *s == ZoneState::FullDisruption);
            if all_fully_disrupted && all_were_fully_disrupted {
                return;
            }
            let now = Instant::now();
            if all_fully_disrupted {
                tracing::info!("controller detected that all Nodes are not-Ready; entering master disruption mode");
                let State {
                    zone_states,
                    tainters,
                    ..
                } = &mut *st;
                for (zone, state) in zone_states.iter_mut() {
                    if let Some(q) = tainters.get_mut(zone) {
                        q.swap_limiter(0.0, now);
                    }
                    *state = ZoneState::FullDisruption;
                }
                true
            } else {
                if all_were_fully_disrupted && !st.zone_states.is_empty() {
                    tracing::info!("controller detected that some Nodes are Ready; exiting master disruption mode");
                    // Everyone gets a fresh grace period: the outage may have been ours.
                    for h in st.health.values_mut() {
                        h.probe = now;
                        h.ready_transition = now;
                    }
                }
                let zones: Vec<String> = st.zone_states.keys().cloned().collect();
                for zone in zones {
                    let Some(&(state, size)) = new_states.get(&zone) else {
                        continue;
                    };
                    if !all_were_fully_disrupted && st.zone_states.get(&zone) == Some(&state) {
                        continue;
                    }
                    if !all_were_fully_disrupted {
                        tracing::info!(zone = %zone.replace('\0', ""), state = state.as_str(), "controller detected that zone is now in new state");
                    }
                    let qps = match state {
                        ZoneState::Normal | ZoneState::FullDisruption | ZoneState::Initial => {
                            self.settings.eviction_qps
                        }
                        ZoneState::PartialDisruption => {
                            if size > self.settings.large_cluster_threshold {
                                self.settings.secondary_eviction_qps
                            } else {
                                0.0
                            }
                        }
                    };
                    if let Some(q) = st.tainters.get_mut(&zone) {
                        q.swap_limiter(qps, now);
                    }
                    st.zone_states.insert(zone, state);
                }
                false
            }
        };
        if entering {
            for node in nodes {
                if let Err(e) = self.mark_node_as_reachable(node).await {
                    tracing::warn!(node = node.metadata.name.as_deref().unwrap_or_default(), error = %e, "failed to remove taints from node");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(conds: &[(&str, &str)], unschedulable: bool, taints: Vec<Taint>) -> Node {
        Node {
            metadata: Default::default(),
            spec: Some(NodeSpec {
                unschedulable: Some(unschedulable),
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conds
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn keys(ts: &[Taint]) -> Vec<&str> {
        ts.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn no_schedule_taints_mirror_conditions() {
        let n = node(
            &[
                ("Ready", "Unknown"),
                ("MemoryPressure", "True"),
                ("DiskPressure", "False"),
            ],
            true,
            vec![taints::taint("user", NO_SCHEDULE)],
        );
        let (add, remove) = no_schedule_taint_changes(&n);
        assert_eq!(
            keys(&add),
            vec![
                taints::TAINT_NODE_UNREACHABLE,
                taints::TAINT_NODE_MEMORY_PRESSURE,
                taints::TAINT_NODE_UNSCHEDULABLE
            ]
        );
        assert!(remove.is_empty());
        // Ready again and schedulable: the managed taints go, the user's and the
        // NoExecute ones (another pass's business) stay.
        let n = node(
            &[("Ready", "True")],
            false,
            vec![
                taints::taint("user", NO_SCHEDULE),
                taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_SCHEDULE),
                taints::taint(taints::TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE),
                taints::taint(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE),
            ],
        );
        let (add, remove) = no_schedule_taint_changes(&n);
        assert!(add.is_empty());
        assert_eq!(
            keys(&remove),
            vec![
                taints::TAINT_NODE_UNREACHABLE,
                taints::TAINT_NODE_UNSCHEDULABLE
            ]
        );
        assert!(remove.iter().all(|t| t.effect == NO_SCHEDULE));
    }

    #[test]
    fn beta_labels_follow_stable_ones() {
        let mut n = node(&[], false, vec![]);
        n.metadata.labels = Some(
            [
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("beta.kubernetes.io/arch".to_string(), "arm64".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ]
            .into(),
        );
        let changes = label_changes(&n);
        assert_eq!(changes.get("beta.kubernetes.io/os"), Some(&json!("linux")));
        assert_eq!(
            changes.get("beta.kubernetes.io/arch"),
            Some(&json!("amd64"))
        );
    }
}
