//! The scheduling loop (upstream's `ScheduleOne`): pop the next pod, run PreFilter,
//! Filter over the nodes (round-robin from where the last cycle stopped, until enough
//! feasible nodes are found), Score, pick the best node, assume the pod there, and hand
//! the binding to an async task so the next pod is scheduled at once. Failures run
//! PostFilter (preemption), update the pod's PodScheduled condition, record a
//! FailedScheduling event and requeue the pod.
//!
//! The loop runs on its own thread; it reads the cache under a read lock for a whole
//! cycle (watch updates wait for at most one cycle).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use parking_lot::RwLock;
use rand::Rng;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::cache::Cache;
use crate::config::{Configuration, Plugin, Profile};
use crate::framework::types::PendingPod;
use crate::framework::{NodeInfo, PodInfo, Status};
use crate::metrics::Metrics;
use crate::plugins::{self, inter_pod_affinity, topology_spread, volume_binding, CycleState};
use crate::preemption;
use crate::queue::{QueuedPod, SchedulingQueue};
use client::events::EventSink;
use tokio_util::sync::CancellationToken;

/// Upstream's bounds on how many nodes a cycle looks for.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
const DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE: usize = 50;
/// Bindings in flight at once.
const MAX_CONCURRENT_BINDINGS: usize = 32;
/// How long PreBind waits for the claims of a pod to be bound (upstream's
/// `bindTimeoutSeconds` default).
const VOLUME_BIND_TIMEOUT: Duration = Duration::from_secs(600);

pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Upstream's `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(percentage: i32, num_all: usize) -> usize {
    if num_all < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all;
    }
    let mut pct = usize::try_from(percentage).unwrap_or(0);
    if pct == 0 {
        pct = (DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE.saturating_sub(num_all / 125))
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let n = num_all * pct.min(100) / 100;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why no node was found: the statuses of the rejecting nodes (upstream's Diagnosis).
#[derive(Debug, Default)]
pub struct Diagnosis {
    pub num_all_nodes: usize,
    /// A PreFilter rejection applies to every node.
    pub pre_filter_msg: Option<String>,
    pub node_statuses: Vec<(usize, Status)>,
    pub post_filter_msg: Option<String>,
}

impl Diagnosis {
    /// Upstream's `FitError.Error()`.
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(pre) = &self.pre_filter_msg {
            msg.push_str(&format!(" {pre}."));
        } else {
            msg.push_str(&histogram(self.node_statuses.iter().map(|(_, s)| s)));
        }
        // The PostFilter message is a FitError message itself, already ending in ".".
        if let Some(post) = &self.post_filter_msg {
            msg.push(' ');
            msg.push_str(post);
        }
        msg
    }

    /// The plugins whose rejection the pod waits on.
    pub fn rejected_by(&self) -> u32 {
        self.node_statuses
            .iter()
            .filter_map(|(_, s)| Plugin::from_name(s.plugin))
            .fold(0, |m, p| m | p.bit())
    }
}

/// " 1 Insufficient cpu, 2 node(s) ...." : each reason with the number of nodes giving
/// it, sorted as strings.
pub fn histogram<'a>(statuses: impl Iterator<Item = &'a Status>) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in statuses {
        for r in &s.reasons {
            *counts.entry(r.as_ref()).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(" {}.", parts.join(", "))
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Volumes(String),
}

pub enum Outcome {
    Feasible {
        node: String,
        volumes: Option<volume_binding::PodVolumes>,
    },
    Unschedulable(Diagnosis),
    Error(String),
}

pub struct Scheduler {
    pub cache: RwLock<Cache>,
    pub queue: SchedulingQueue,
    pub config: Configuration,
    pub profiles: HashMap<String, (Arc<Profile>, EventSink)>,
    pub client: Client,
    pub volumes: volume_binding::Stores,
    pub pdbs: Store<PodDisruptionBudget>,
    pub metrics: Metrics,
    rt: tokio::runtime::Handle,
    bindings: Arc<Semaphore>,
    next_start: AtomicUsize,
}

impl Scheduler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Configuration,
        client: Client,
        volumes: volume_binding::Stores,
        pdbs: Store<PodDisruptionBudget>,
        metrics: Metrics,
        identity: &str,
        rt: tokio::runtime::Handle,
    ) -> Arc<Scheduler> {
        let profiles = config
            .profiles
            .iter()
            .map(|p| {
                // The sink's task ends when the scheduler (its last sender) is dropped.
                let sink = EventSink::new(
                    client.clone(),
                    &p.scheduler_name,
                    &format!("{}-{identity}", p.scheduler_name),
                    &rt,
                    CancellationToken::new(),
                );
                (p.scheduler_name.clone(), (Arc::new(p.clone()), sink))
            })
            .collect();
        Arc::new(Scheduler {
            cache: RwLock::new(Cache::default()),
            queue: SchedulingQueue::new(config.pod_initial_backoff, config.pod_max_backoff),
            config,
            profiles,
            client,
            volumes,
            pdbs,
            metrics,
            rt,
            bindings: Arc::new(Semaphore::new(MAX_CONCURRENT_BINDINGS)),
            next_start: AtomicUsize::new(0),
        })
    }

    pub fn is_ours(&self, pod: &PendingPod) -> bool {
        self.profiles.contains_key(pod.scheduler_name())
    }

    /// Schedule pods until the queue closes.
    pub fn run(self: &Arc<Self>) {
        while let Some(popped) = self.queue.pop() {
            self.schedule_one(popped.pod, popped.cycle);
        }
    }

    fn schedule_one(self: &Arc<Self>, queued: QueuedPod, cycle: u64) {
        let pod = Arc::clone(&queued.info);
        let Some((profile, sink)) = self.profiles.get(pod.scheduler_name()).cloned() else {
            self.queue.done(&pod.uid);
            return;
        };
        if pod.is_terminating() || self.cache.read().contains_pod(&pod.uid) {
            self.queue.done(&pod.uid);
            return;
        }
        let started = Instant::now();
        let (outcome, preemption) = {
            let cache = self.cache.read();
            let (outcome, state) = self.find_node(&cache, &profile, &pod);
            let preemption = match (&outcome, state) {
                (Outcome::Unschedulable(diag), Some(state)) if profile.preemption => {
                    Some(preemption::preempt(self, &cache, &state, diag))
                }
                _ => None,
            };
            (outcome, preemption)
        };
        match outcome {
            Outcome::Feasible { node, volumes } => {
                self.metrics
                    .attempt("scheduled", &profile.scheduler_name, started.elapsed());
                self.assume_and_bind(queued, cycle, node, volumes, sink);
            }
            Outcome::Unschedulable(mut diag) => {
                self.metrics
                    .attempt("unschedulable", &profile.scheduler_name, started.elapsed());
                let mut nominated = None;
                if let Some(result) = preemption {
                    diag.post_filter_msg = result.message.map(|m| format!("preemption: {m}"));
                    if let Some(p) = result.chosen {
                        nominated = Some(p.node.clone());
                        self.execute_preemption(&pod, p, &sink);
                    }
                }
                let mut queued = queued;
                queued.rejected_by = diag.rejected_by();
                let message = diag.message();
                tracing::info!(pod = %pod.key, %message, "unable to schedule pod");
                self.record_failure(&pod, "Unschedulable", message, nominated, &sink);
                self.queue.requeue_failed(queued, cycle, true);
            }
            Outcome::Error(message) => {
                self.metrics
                    .attempt("error", &profile.scheduler_name, started.elapsed());
                tracing::info!(pod = %pod.key, %message, "error scheduling pod");
                let reason = if message == NO_NODES_AVAILABLE {
                    "Unschedulable"
                } else {
                    "SchedulerError"
                };
                self.record_failure(&pod, reason, message, None, &sink);
                self.queue.requeue_failed(queued, cycle, false);
            }
        }
    }

    /// PreFilter, Filter and Score: the chosen node, or why there is none.
    pub fn find_node(
        &self,
        cache: &Cache,
        profile: &Arc<Profile>,
        pod: &Arc<PendingPod>,
    ) -> (Outcome, Option<CycleState>) {
        let num_all = cache.nodes.len();
        if num_all == 0 {
            return (Outcome::Error(NO_NODES_AVAILABLE.into()), None);
        }
        let mut state = CycleState {
            pod: Arc::clone(pod),
            profile: Arc::clone(profile),
            inter_pod: None,
            spread: None,
            volumes: None,
        };
        if profile.filters(Plugin::VolumeBinding) {
            match volume_binding::pre_filter(pod, &self.volumes) {
                Ok(v) => state.volumes = v,
                Err(status) => {
                    let status = status.with_plugin(Plugin::VolumeBinding.name());
                    let diag = Diagnosis {
                        num_all_nodes: num_all,
                        pre_filter_msg: Some(status.message()),
                        node_statuses: (0..num_all).map(|i| (i, status.clone())).collect(),
                        post_filter_msg: None,
                    };
                    return (Outcome::Unschedulable(diag), Some(state));
                }
            }
        }
        if profile.filters(Plugin::InterPodAffinity) {
            state.inter_pod = inter_pod_affinity::pre_filter(pod, cache);
        }
        if profile.filters(Plugin::PodTopologySpread) {
            state.spread = topology_spread::pre_filter(pod, cache);
        }
        let has_nominations = cache.has_nominations();
        let check = |node: &NodeInfo| -> Status {
            if has_nominations {
                let extra = cache.nominated_for(&node.name, &pod.uid, pod.priority);
                if !extra.is_empty() {
                    return plugins::filter(&state, cache, node, &extra);
                }
            }
            plugins::filter(&state, cache, node, &[])
        };
        // A pod nominated by an earlier preemption tries its node first.
        let nominated = pod.nominated_node_name();
        if !nominated.is_empty() {
            if let Some(ni) = cache.node(nominated) {
                if check(ni).is_success() {
                    return (
                        Outcome::Feasible {
                            node: nominated.to_string(),
                            volumes: state.volumes.take(),
                        },
                        Some(state),
                    );
                }
            }
        }
        let pct = profile
            .percentage_of_nodes_to_score
            .unwrap_or(self.config.percentage_of_nodes_to_score);
        let want = num_feasible_nodes_to_find(pct, num_all);
        let start = self.next_start.load(Ordering::Relaxed) % num_all;
        let mut feasible: Vec<usize> = Vec::with_capacity(want);
        let mut statuses: Vec<(usize, Status)> = Vec::new();
        let mut processed = 0;
        for k in 0..num_all {
            let i = (start + k) % num_all;
            processed += 1;
            let status = check(&cache.nodes[i]);
            if status.is_success() {
                feasible.push(i);
                if feasible.len() >= want {
                    break;
                }
            } else {
                statuses.push((i, status));
            }
        }
        self.next_start
            .store((start + processed) % num_all, Ordering::Relaxed);
        if feasible.is_empty() {
            let diag = Diagnosis {
                num_all_nodes: num_all,
                pre_filter_msg: None,
                node_statuses: statuses,
                post_filter_msg: None,
            };
            return (Outcome::Unschedulable(diag), Some(state));
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            let scores = plugins::score(&state, cache, &feasible);
            select_host(&feasible, &scores)
        };
        (
            Outcome::Feasible {
                node: cache.nodes[chosen].name.clone(),
                volumes: state.volumes.take(),
            },
            Some(state),
        )
    }

    fn assume_and_bind(
        self: &Arc<Self>,
        queued: QueuedPod,
        cycle: u64,
        node: String,
        volumes: Option<volume_binding::PodVolumes>,
        sink: EventSink,
    ) {
        let pod = Arc::clone(&queued.info);
        // The assumed copy names its node, as the bound pod will.
        let assumed = Arc::new(pod.info.on_node(&node));
        {
            let mut cache = self.cache.write();
            cache.assume(assumed);
            cache.clear_nominated(&pod.uid);
        }
        self.queue.done(&pod.uid);
        // Bound the bindings in flight: wait here when the API server falls behind.
        let permit = match self.rt.block_on(Arc::clone(&self.bindings).acquire_owned()) {
            Ok(p) => p,
            Err(_) => return,
        };
        let this = Arc::clone(self);
        self.rt.spawn(async move {
            let result = this.bind(&pod, &node, volumes.as_ref()).await;
            drop(permit);
            match result {
                Ok(()) => {
                    this.metrics.bound();
                    sink.normal(
                        pod.reference(),
                        "Scheduled",
                        "Binding",
                        format!("Successfully assigned {} to {node}", pod.key),
                    );
                }
                Err(e) => {
                    this.cache.write().forget(&pod.uid);
                    let gone = matches!(&e, BindError::Api(kube::Error::Api(s)) if s.code == 404);
                    if gone {
                        return;
                    }
                    let message = format!("Binding rejected: {e}");
                    tracing::warn!(pod = %pod.key, node, %message, "binding failed");
                    this.record_failure(&pod, "SchedulerError", message, None, &sink);
                    this.queue.requeue_failed(queued, cycle, false);
                }
            }
        });
    }

    /// PreBind (volumes) and Bind (`pods/binding`).
    async fn bind(
        &self,
        pod: &PodInfo,
        node: &str,
        volumes: Option<&volume_binding::PodVolumes>,
    ) -> Result<(), BindError> {
        if let Some(v) = volumes.filter(|v| !v.delayed.is_empty()) {
            self.bind_volumes(pod, node, v).await?;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace());
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name(), "namespace": pod.namespace(), "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        api.create_subresource::<_, serde_json::Value>(
            "binding",
            pod.name(),
            &PostParams::default(),
            &binding,
        )
        .await?;
        Ok(())
    }

    /// Bind each delayed claim to the chosen volume (or ask for provisioning on the
    /// node), then wait until every claim of the pod is bound.
    async fn bind_volumes(
        &self,
        pod: &PodInfo,
        node: &str,
        v: &volume_binding::PodVolumes,
    ) -> Result<(), BindError> {
        let node_info = self.cache.read().node(node).cloned();
        let Some(node_info) = node_info else {
            return Err(BindError::Volumes(format!("node {node} disappeared")));
        };
        let decisions = volume_binding::decide(v, &node_info).unwrap_or_default();
        let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), pod.namespace());
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        for (d, pick) in v.delayed.iter().zip(decisions) {
            let name = d.claim.metadata.name.clone().unwrap_or_default();
            match pick {
                Some(pv) => {
                    let pv_name = pv.metadata.name.clone().unwrap_or_default();
                    let claim_ref = json!({"spec": {"claimRef": {
                        "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                        "namespace": pod.namespace(), "name": name,
                        "uid": d.claim.metadata.uid,
                        "resourceVersion": d.claim.metadata.resource_version}},
                        "metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}}});
                    pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&claim_ref))
                        .await?;
                    let volume = json!({"spec": {"volumeName": pv_name},
                        "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                            "pv.kubernetes.io/bound-by-controller": "yes"}}});
                    claims
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&volume))
                        .await?;
                }
                None => {
                    let annotate = json!({"metadata": {"annotations": {
                        volume_binding::SELECTED_NODE_ANNOTATION: node}}});
                    claims
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
                        .await?;
                }
            }
        }
        let deadline = Instant::now() + VOLUME_BIND_TIMEOUT;
        loop {
            let mut all_bound = true;
            for d in &v.delayed {
                let name = d.claim.metadata.name.clone().unwrap_or_default();
                let claim = claims.get(&name).await?;
                if claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_deref())
                    .unwrap_or("")
                    .is_empty()
                {
                    all_bound = false;
                }
            }
            if all_bound {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BindError::Volumes(
                    "binding volumes: context deadline exceeded".into(),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn execute_preemption(
        self: &Arc<Self>,
        pod: &Arc<PendingPod>,
        chosen: preemption::Candidate,
        sink: &EventSink,
    ) {
        let cleared: Vec<Arc<PodInfo>> = {
            let mut cache = self.cache.write();
            let lower: Vec<Arc<PodInfo>> = cache
                .nominated_on(&chosen.node)
                .iter()
                .filter(|p| p.priority < pod.priority)
                .cloned()
                .collect();
            for p in &lower {
                cache.clear_nominated(&p.uid);
            }
            cache.set_nominated(&pod.info, &chosen.node);
            lower
        };
        let this = Arc::clone(self);
        let pod = Arc::clone(pod);
        let sink = sink.clone();
        self.rt.spawn(async move {
            for victim in &chosen.victims {
                let api: Api<Pod> = Api::namespaced(this.client.clone(), victim.namespace());
                sink.normal(
                    victim.reference(),
                    "Preempted",
                    "Preempting",
                    format!("Preempted by pod {} on node {}", pod.uid, chosen.node),
                );
                if let Err(e) = api.delete(victim.name(), &Default::default()).await {
                    tracing::warn!(victim = %victim.key, error = %e, "could not delete preemption victim");
                }
            }
            for p in cleared {
                let api: Api<Pod> = Api::namespaced(this.client.clone(), p.namespace());
                let patch = json!({"status": {"nominatedNodeName": null}});
                let _ = api
                    .patch_status(p.name(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        });
    }

    /// PodScheduled=False with the reason and message (and the nominated node), and a
    /// FailedScheduling event.
    fn record_failure(
        self: &Arc<Self>,
        pod: &Arc<PendingPod>,
        reason: &str,
        message: String,
        nominated: Option<String>,
        sink: &EventSink,
    ) {
        sink.warning(
            pod.reference(),
            "FailedScheduling",
            "Scheduling",
            message.clone(),
        );
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        if same && nominated.is_none() {
            return;
        }
        let mut status = BTreeMap::new();
        status.insert(
            "conditions",
            json!([{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]),
        );
        if let Some(n) = nominated {
            status.insert("nominatedNodeName", json!(n));
        }
        let patch = json!({"status": status});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace());
        let name = pod.name().to_string();
        self.rt.spawn(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = name, error = %e, "could not update pod status");
            }
        });
    }
}

/// The highest-scoring node; ties broken at random, as upstream's `selectHost`.
fn select_host(feasible: &[usize], scores: &[i64]) -> usize {
    let mut best = feasible[0];
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    let mut rng = rand::rng();
    for (i, s) in feasible.iter().zip(scores) {
        if *s > best_score {
            best_score = *s;
            best = *i;
            ties = 1;
        } else if *s == best_score {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = *i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_follow_upstream() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(0, 200), 100);
        assert_eq!(num_feasible_nodes_to_find(0, 100_000), 5000);
        assert_eq!(num_feasible_nodes_to_find(30, 1000), 300);
    }

    #[test]
    fn fit_error_message_is_upstreams() {
        let taint = Status::unresolvable("node(s) had untolerated taint {key: value}");
        let diag = Diagnosis {
            num_all_nodes: 3,
            pre_filter_msg: None,
            node_statuses: vec![
                (0, Status::unschedulable("Insufficient cpu")),
                (1, taint.clone()),
                (2, taint),
            ],
            post_filter_msg: Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                    .into(),
            ),
        };
        assert_eq!(
            diag.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {key: value}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn select_host_prefers_the_highest() {
        assert_eq!(select_host(&[4, 7, 9], &[10, 30, 20]), 7);
    }
}
