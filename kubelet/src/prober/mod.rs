//! Container probes, as upstream's pkg/kubelet/prober: one worker per (container, probe
//! kind) runs the probe every `periodSeconds` after `initialDelaySeconds`, with
//! `timeoutSeconds`, and flips the result only after `successThreshold` successes or
//! `failureThreshold` failures in a row.
//!
//! - startup: until it succeeds, liveness and readiness are not run; reaching its failure
//!   threshold fails the container (restart), like liveness.
//! - liveness: reaching the failure threshold fails the container; the worker then holds
//!   until the kubelet restarts it (a new container id through [`ProbeManager::add_container`]).
//! - readiness: drives the container's `ready`; starts as not ready.
//!
//! Liveness/startup failures and readiness/started changes are announced with the pod's
//! uid on the kubelet's update channel, so its pod worker resyncs. Every failed attempt
//! is an `Unhealthy` event (`Liveness probe failed: HTTP probe failed with statuscode:
//! 500`), as upstream.

pub mod probes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cri::Cri;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

pub use probes::{Handler, ProbeResult, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeType {
    /// As upstream's events say it ("Liveness probe failed: ...").
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeType::Startup => "Startup",
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
        }
    }
}

/// An event for the pod about one of its containers (involved object field path
/// `spec.containers{<container>}`), upstream's reason `Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub container: String,
    /// Always "Warning".
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// The probe timing fields with upstream's defaults and minimums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn from_probe(probe: &Probe, kind: ProbeType) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        // Liveness and startup must have a success threshold of 1 (API validation).
        let success = match kind {
            ProbeType::Readiness => probe.success_threshold.unwrap_or(1).max(1) as u32,
            _ => 1,
        };
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: success,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

#[derive(Debug, Default)]
struct ContainerState {
    container_id: String,
    has_readiness: bool,
    started: bool,
    ready: bool,
    /// Set when liveness or startup reached its failure threshold: the kill message.
    failed: Option<String>,
    workers: Vec<AbortHandle>,
}

impl Drop for ContainerState {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

struct Inner {
    cri: Cri,
    updates: UnboundedSender<String>,
    events: Option<UnboundedSender<ProbeEvent>>,
    /// (pod uid, container name) → state.
    containers: Mutex<HashMap<(String, String), ContainerState>>,
}

/// Runs the probes of the kubelet's containers. Clones share the state.
#[derive(Clone)]
pub struct ProbeManager {
    inner: Arc<Inner>,
}

impl ProbeManager {
    /// `updates` receives a pod's uid whenever one of its containers' liveness or startup
    /// fails, or its readiness or started state changes.
    pub fn new(cri: Cri, updates: UnboundedSender<String>) -> Self {
        Self::with_events(cri, updates, None)
    }

    /// As [`ProbeManager::new`], with `Unhealthy` events sent to `events`.
    pub fn with_events(
        cri: Cri,
        updates: UnboundedSender<String>,
        events: Option<UnboundedSender<ProbeEvent>>,
    ) -> Self {
        ProbeManager {
            inner: Arc::new(Inner {
                cri,
                updates,
                events,
                containers: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ContainerState>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Starts probing a running container (call it for every started container, and
    /// again after each restart: a new `container_id` resets its results and restarts its
    /// workers; the same id is a no-op; a container without probes costs nothing). Must
    /// be called inside a tokio runtime.
    pub fn add_container(
        &self,
        pod: &Pod,
        container: &Container,
        container_id: &str,
        pod_ip: &str,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), container.name.clone());
        let mut containers = self.lock();
        if containers
            .get(&key)
            .is_some_and(|s| s.container_id == container_id)
        {
            return;
        }
        let mut state = ContainerState {
            container_id: container_id.to_string(),
            has_readiness: container.readiness_probe.is_some(),
            started: container.startup_probe.is_none(),
            ready: false,
            failed: None,
            workers: Vec::new(),
        };
        let target = Target {
            cri: self.inner.cri.clone(),
            container_id: container_id.to_string(),
            pod_ip: pod_ip.to_string(),
            container: container.clone(),
        };
        let probes = [
            (ProbeType::Startup, &container.startup_probe),
            (ProbeType::Liveness, &container.liveness_probe),
            (ProbeType::Readiness, &container.readiness_probe),
        ];
        for (kind, probe) in probes {
            let Some(probe) = probe.clone() else { continue };
            let worker = Worker {
                manager: self.clone(),
                kind,
                probe,
                target: target.clone(),
                key: key.clone(),
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod_name: pod.metadata.name.clone().unwrap_or_default(),
            };
            state
                .workers
                .push(tokio::spawn(worker.run()).abort_handle());
        }
        // Replacing the old state aborts its workers (Drop).
        containers.insert(key, state);
    }

    /// Stops probing one container (e.g. it exited and will not be restarted).
    pub fn remove_container(&self, pod_uid: &str, container: &str) {
        self.lock()
            .remove(&(pod_uid.to_string(), container.to_string()));
    }

    /// Stops every worker of the pod and forgets its results.
    pub fn remove_pod(&self, pod_uid: &str) {
        self.lock().retain(|(uid, _), _| uid != pod_uid);
    }

    /// The (running) container's `ready`: started, and its readiness probe (if any)
    /// succeeded. As upstream, a container without a worker (never added: no probes) is
    /// ready; so add every container that has probes, also adopted ones after a restart.
    pub fn ready(&self, pod_uid: &str, container: &str) -> bool {
        self.lock()
            .get(&(pod_uid.to_string(), container.to_string()))
            .is_none_or(|s| s.started && (!s.has_readiness || s.ready) && s.failed.is_none())
    }

    /// The (running) container's `started`: its startup probe (if any) succeeded. True
    /// for containers never added, as upstream.
    pub fn started(&self, pod_uid: &str, container: &str) -> bool {
        self.lock()
            .get(&(pod_uid.to_string(), container.to_string()))
            .is_none_or(|s| s.started)
    }

    /// Whether the manager probes this container (it was added and not removed).
    pub fn is_tracked(&self, pod_uid: &str, container: &str) -> bool {
        self.lock()
            .contains_key(&(pod_uid.to_string(), container.to_string()))
    }

    /// When the container's liveness or startup probe failed: the reason to restart it,
    /// as upstream words it ("Container web failed liveness probe"; its Killing event
    /// adds ", will be restarted"). Cleared when the restarted container is added.
    pub fn failed(&self, pod_uid: &str, container: &str) -> Option<String> {
        self.lock()
            .get(&(pod_uid.to_string(), container.to_string()))
            .and_then(|s| s.failed.clone())
    }

    /// Records a worker's settled result; returns false when the worker is stale (its
    /// container was replaced or removed) and must stop.
    fn set_result(
        &self,
        key: &(String, String),
        container_id: &str,
        kind: ProbeType,
        result: ProbeResult,
    ) -> bool {
        let mut containers = self.lock();
        let Some(state) = containers.get_mut(key) else {
            return false;
        };
        if state.container_id != container_id {
            return false;
        }
        let ok = result == ProbeResult::Success;
        let changed = match kind {
            ProbeType::Readiness => std::mem::replace(&mut state.ready, ok) != ok,
            ProbeType::Startup if ok => !std::mem::replace(&mut state.started, true),
            ProbeType::Liveness | ProbeType::Startup if !ok => {
                let what = if kind == ProbeType::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                state.failed = Some(format!("Container {} failed {what} probe", key.1));
                true
            }
            _ => false,
        };
        drop(containers);
        if changed {
            let _ = self.inner.updates.send(key.0.clone());
        }
        true
    }

    fn is_started(&self, key: &(String, String), container_id: &str) -> Option<bool> {
        self.lock()
            .get(key)
            .filter(|s| s.container_id == container_id)
            .map(|s| s.started)
    }

    fn event(&self, event: ProbeEvent) {
        if let Some(tx) = &self.inner.events {
            let _ = tx.send(event);
        }
    }
}

/// The pod workers' view of the results (`kubelet::status::ProbeResults`).
impl crate::status::ProbeResults for ProbeManager {
    fn ready(&self, uid: &str, container: &str) -> bool {
        ProbeManager::ready(self, uid, container)
    }
    fn started(&self, uid: &str, container: &str) -> bool {
        ProbeManager::started(self, uid, container)
    }
}

struct Worker {
    manager: ProbeManager,
    kind: ProbeType,
    probe: Probe,
    target: Target,
    key: (String, String),
    namespace: String,
    pod_name: String,
}

/// When the container started, from the runtime (so a restarted kubelet honours
/// initialDelaySeconds relative to the real start), else now.
async fn container_started_at(target: &Target) -> Instant {
    let now = Instant::now();
    let status = target
        .cri
        .runtime
        .clone()
        .container_status(cri::api::ContainerStatusRequest {
            container_id: target.container_id.clone(),
            verbose: false,
        })
        .await;
    let Some(started_ns) = status
        .ok()
        .and_then(|s| s.into_inner().status)
        .map(|s| s.started_at)
        .filter(|ns| *ns > 0)
    else {
        return now;
    };
    let wall_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    let ago = Duration::from_nanos(wall_now.saturating_sub(started_ns).max(0) as u64);
    now.checked_sub(ago).unwrap_or(now)
}

impl Worker {
    async fn run(self) {
        let timing = Timing::from_probe(&self.probe, self.kind);
        let started_at = container_started_at(&self.target).await;
        let handler = Handler::from_probe(&self.probe, &self.target.container, &self.target.pod_ip);
        let mut last: Option<ProbeResult> = None;
        let mut run_length = 0u32;
        let mut tick = tokio::time::interval(timing.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(started) = self
                .manager
                .is_started(&self.key, &self.target.container_id)
            else {
                return; // container replaced or removed
            };
            match self.kind {
                // Startup is done once it succeeded.
                ProbeType::Startup if started => return,
                // Liveness and readiness wait for the startup probe.
                ProbeType::Liveness | ProbeType::Readiness if !started => continue,
                _ => {}
            }
            if started_at.elapsed() < timing.initial_delay {
                continue;
            }
            let outcome = match &handler {
                Ok(h) => probes::run(h, &self.target, timing.timeout).await,
                Err(e) => Err(e.clone()),
            };
            let result = match outcome {
                Ok((result, output)) => {
                    if result == ProbeResult::Failure {
                        self.unhealthy(format!("{} probe failed: {}", self.kind.as_str(), output));
                    }
                    result
                }
                Err(e) => {
                    // Neither success nor failure: the previous result stands.
                    tracing::warn!(pod = %self.pod_name, container = %self.key.1, probe = self.kind.as_str(), "probe errored: {e}");
                    self.unhealthy(format!("{} probe errored: {e}", self.kind.as_str()));
                    continue;
                }
            };
            if last == Some(result) {
                run_length = run_length.saturating_add(1);
            } else {
                last = Some(result);
                run_length = 1;
            }
            let threshold = match result {
                ProbeResult::Success => timing.success_threshold,
                ProbeResult::Failure => timing.failure_threshold,
            };
            if run_length < threshold {
                continue;
            }
            if !self
                .manager
                .set_result(&self.key, &self.target.container_id, self.kind, result)
            {
                return;
            }
            // A failed liveness or startup probe holds until the container is replaced.
            if result == ProbeResult::Failure && self.kind != ProbeType::Readiness {
                return;
            }
        }
    }

    fn unhealthy(&self, message: String) {
        self.manager.event(ProbeEvent {
            namespace: self.namespace.clone(),
            pod_name: self.pod_name.clone(),
            pod_uid: self.key.0.clone(),
            container: self.key.1.clone(),
            type_: "Warning",
            reason: "Unhealthy",
            message,
        });
    }
}

#[cfg(test)]
mod tests;
