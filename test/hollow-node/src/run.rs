//! The process: register the nodes, then keep their Leases and status fresh and run
//! the pods bound to them until told to stop.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::ipam::PodIps;
use crate::node;
use crate::options::Options;
use crate::pods::{Phase, Track};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("no free pod IP on node {0}")]
    NoIp(String),
}

struct Hollow {
    client: Client,
    options: Options,
    /// Node name → index.
    names: Arc<HashMap<String, usize>>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    tracks: Mutex<HashMap<String, Track>>,
    /// Pods being deleted: uid → when this process first saw the deletion.
    deleting: Mutex<HashMap<String, Instant>>,
    ips: Mutex<PodIps>,
    /// When the nodes were registered (the conditions' lastTransitionTime).
    since: Time,
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = client::config::client(options.kubeconfig.as_deref(), "hollow-node").await?;
    let names: Arc<HashMap<String, usize>> = Arc::new(
        (0..options.nodes)
            .map(|i| (node::name(&options.name_prefix, i), i))
            .collect(),
    );
    let since = now_time();
    let started = Instant::now();
    let registered = futures::stream::iter(0..options.nodes)
        .map(|i| register(&client, &options, i, &since, &shutdown))
        .buffer_unordered(options.concurrency.max(1) as usize)
        .try_collect::<Vec<()>>()
        .await;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    registered?;
    tracing::info!(
        nodes = options.nodes,
        elapsed = ?started.elapsed(),
        "registered nodes and their leases"
    );

    // One watch of all nodes, keeping ours: their pod CIDRs, and whether someone (the
    // node lifecycle controller) marked them not ready while this process is alive.
    let (nodes, node_writer) = reflector::store();
    let (not_ready_tx, not_ready_rx) = mpsc::unbounded_channel::<String>();
    let ours = names.clone();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .try_filter(move |ev| {
            let keep = match ev {
                watcher::Event::Apply(n)
                | watcher::Event::InitApply(n)
                | watcher::Event::Delete(n) => n
                    .metadata
                    .name
                    .as_ref()
                    .is_some_and(|n| ours.contains_key(n)),
                watcher::Event::Init | watcher::Event::InitDone => true,
            };
            std::future::ready(keep)
        })
        .reflect(node_writer)
        .applied_objects();
    let node_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(node_stream);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    item = stream.next() => match item {
                        Some(Ok(n)) => {
                            let ready = n.status.as_ref()
                                .and_then(|s| s.conditions.as_ref())
                                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                                .is_some_and(|c| c.status == "True");
                            if !ready {
                                if let Some(name) = n.metadata.name.clone() {
                                    let _ = not_ready_tx.send(name);
                                }
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "node watch"),
                        None => return,
                    }
                }
            }
        })
    };
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = nodes.wait_until_ready() => r?,
    }

    let (pods, pod_writer) = reflector::store();
    let hollow = Arc::new(Hollow {
        client: client.clone(),
        options: options.clone(),
        names: names.clone(),
        nodes,
        pods: pods.clone(),
        tracks: Mutex::new(HashMap::new()),
        deleting: Mutex::new(HashMap::new()),
        ips: Mutex::new(PodIps::default()),
        since,
    });

    let lease_task = tokio::spawn(spread(
        options.nodes,
        options.lease_renew_interval,
        options.concurrency,
        shutdown.clone(),
        {
            let h = hollow.clone();
            move |i| {
                let h = h.clone();
                async move { h.renew_lease(i).await }
            }
        },
    ));
    let status_task = tokio::spawn(spread(
        options.nodes,
        options.node_status_update_frequency,
        options.concurrency,
        shutdown.clone(),
        {
            let h = hollow.clone();
            move |i| {
                let h = h.clone();
                async move { h.post_status(i).await }
            }
        },
    ));
    let recover_task = {
        let h = hollow.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { h.repost_not_ready(not_ready_rx, shutdown).await })
    };

    // One watch of all pods, keeping those bound to our nodes (nodeName never changes
    // once set, so a pod is either ours for good or never).
    let ours = names.clone();
    let forget = hollow.clone();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .try_filter(move |ev| {
            let keep = match ev {
                watcher::Event::Apply(p)
                | watcher::Event::InitApply(p)
                | watcher::Event::Delete(p) => p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| ours.contains_key(n)),
                watcher::Event::Init | watcher::Event::InitDone => true,
            };
            std::future::ready(keep)
        })
        .map_ok(move |ev| {
            if let watcher::Event::Delete(p) = &ev {
                if let Some(uid) = p.metadata.uid.as_deref() {
                    forget.forget(uid);
                }
            }
            ev
        })
        .reflect(pod_writer)
        .applied_objects();
    Controller::for_stream(pod_stream, pods)
        .with_config(ControllerConfig::default().concurrency(options.concurrency))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, hollow.clone())
        .for_each(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "pod reconcile");
            }
            std::future::ready(())
        })
        .await;

    shutdown.cancel();
    for task in [lease_task, status_task, recover_task, node_task] {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Register node `i` and its Lease; an existing node is taken over (its status is
/// posted as this process sees it). Retries until it works or the process stops.
async fn register(
    client: &Client,
    o: &Options,
    i: usize,
    since: &Time,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), node::LEASE_NAMESPACE);
    let name = node::name(&o.name_prefix, i);
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let uid = match nodes
                .create(&PostParams::default(), &node::node(o, i, since))
                .await
            {
                Ok(n) => n.metadata.uid,
                Err(e) if is_status(&e, 409) => {
                    let patch = node::status_patch(o, i, &now_time(), since);
                    nodes
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?
                        .metadata
                        .uid
                }
                Err(e) => return Err(e),
            }
            .unwrap_or_default();
            let now = MicroTime(jiff::Timestamp::now());
            let lease = node::lease(&name, &uid, o.node_lease_duration_seconds, now.clone());
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(e) if is_status(&e, 409) => {
                    let patch = serde_json::json!({
                        "metadata": { "ownerReferences": lease.metadata.owner_references },
                        "spec": node::renew_patch(&name, o.node_lease_duration_seconds, now)["spec"],
                    });
                    leases
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                }
                Err(e) => Err(e),
            }
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "registering node, will retry");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Call `f(i)` for each of `n` nodes every `interval`, node i at offset
/// `interval * i / n` within each round, with at most `concurrency` calls in flight
/// (a slow API server delays the rounds rather than piling up requests).
async fn spread<F, Fut>(
    n: usize,
    interval: Duration,
    concurrency: u16,
    shutdown: CancellationToken,
    f: F,
) where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if n == 0 || interval.is_zero() {
        return;
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1) as usize));
    let start = tokio::time::Instant::now();
    for round in 1u32.. {
        let round_start = start + interval * round;
        for i in 0..n {
            let at = round_start + interval.mul_f64(i as f64 / n as f64);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let fut = f(i);
            tokio::spawn(async move {
                fut.await;
                drop(permit);
            });
        }
    }
}

impl Hollow {
    fn name(&self, i: usize) -> String {
        node::name(&self.options.name_prefix, i)
    }

    async fn renew_lease(&self, i: usize) {
        let name = self.name(i);
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), node::LEASE_NAMESPACE);
        let now = MicroTime(jiff::Timestamp::now());
        let patch = node::renew_patch(&name, self.options.node_lease_duration_seconds, now.clone());
        match leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                // Deleted (with its node, or by hand): the kubelet makes a new one.
                let uid = self
                    .nodes
                    .get(&ObjectRef::new(&name))
                    .and_then(|n| n.metadata.uid.clone());
                if let Some(uid) = uid {
                    let lease =
                        node::lease(&name, &uid, self.options.node_lease_duration_seconds, now);
                    if let Err(e) = leases.create(&PostParams::default(), &lease).await {
                        tracing::warn!(node = %name, error = %e, "recreating lease");
                    }
                }
            }
            Err(e) => tracing::warn!(node = %name, error = %e, "renewing lease"),
        }
    }

    async fn post_status(&self, i: usize) {
        let name = self.name(i);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = node::status_patch(&self.options, i, &now_time(), &self.since);
        match nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                // The node object was deleted: register again, as the kubelet does.
                let n = node::node(&self.options, i, &self.since);
                if let Err(e) = nodes.create(&PostParams::default(), &n).await {
                    tracing::warn!(node = %name, error = %e, "re-registering node");
                }
            }
            Err(e) => tracing::warn!(node = %name, error = %e, "posting node status"),
        }
    }

    /// A node of ours shown not ready (the node lifecycle controller saw its Lease go
    /// stale, e.g. while the API server was down): the kubelet notices on its next
    /// status check and posts its real status.
    async fn repost_not_ready(
        &self,
        mut rx: mpsc::UnboundedReceiver<String>,
        shutdown: CancellationToken,
    ) {
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            let name = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = rx.recv() => match n { Some(n) => n, None => return },
            };
            let Some(&i) = self.names.get(&name) else {
                continue;
            };
            // At most once every few seconds per node, so a fight with someone who
            // keeps writing NotReady stays cheap.
            if last
                .get(&name)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
            {
                continue;
            }
            last.insert(name.clone(), Instant::now());
            tracing::info!(node = %name, "node shown not ready, posting status");
            self.post_status(i).await;
        }
    }

    /// The pod CIDRs of node `i`: its spec.podCIDRs once the node-ipam controller set
    /// them, else its fake /24.
    fn cidrs(&self, node_name: &str, i: usize) -> Vec<IpNet> {
        let from_spec: Vec<IpNet> = self
            .nodes
            .get(&ObjectRef::new(node_name))
            .and_then(|n| {
                let spec = n.spec.as_ref()?;
                let list = spec
                    .pod_cidrs
                    .clone()
                    .or_else(|| spec.pod_cidr.clone().map(|c| vec![c]))?;
                Some(list.iter().filter_map(|c| c.parse().ok()).collect())
            })
            .unwrap_or_default();
        if !from_spec.is_empty() {
            return from_spec;
        }
        let base = u32::from(self.options.pod_cidr_base).wrapping_add((i as u32) << 8);
        Ipv4Net::new(Ipv4Addr::from(base), 24)
            .map(|n| vec![IpNet::V4(n)])
            .unwrap_or_default()
    }

    fn forget(&self, uid: &str) {
        self.tracks.lock().remove(uid);
        self.deleting.lock().remove(uid);
        self.ips.lock().release(uid);
    }

    /// A pod marked for deletion: once its containers stopped (at once when they are
    /// not running; else after the stop duration, capped by the grace period), the
    /// kubelet deletes it for good.
    async fn terminate(&self, pod: &Pod, uid: &str) -> Result<Action, Error> {
        let running = match self.tracks.lock().get(uid) {
            Some(t) => t.phase == Phase::Running,
            None => pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        };
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .map_or(Duration::ZERO, |s| {
                Duration::from_secs(s.max(0).unsigned_abs())
            });
        let wait = if running {
            grace.min(self.options.pod_stop_duration)
        } else {
            Duration::ZERO
        };
        let seen = *self
            .deleting
            .lock()
            .entry(uid.to_string())
            .or_insert_with(Instant::now);
        let elapsed = seen.elapsed();
        if elapsed < wait {
            return Ok(Action::requeue(wait - elapsed));
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
            Err(e) => return Err(e.into()),
        }
        self.forget(uid);
        Ok(Action::await_change())
    }
}

async fn reconcile(pod: Arc<Pod>, h: Arc<Hollow>) -> Result<Action, Error> {
    let Some((node_name, i)) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .and_then(|n| h.names.get(n).map(|i| (n, *i)))
    else {
        return Ok(Action::await_change());
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return h.terminate(&pod, &uid).await;
    }
    let host_ip = node::internal_ip(&h.options, i).to_string();
    let existing = h.tracks.lock().get(&uid).cloned();
    let mut track = match existing {
        Some(t) => t,
        None => match Track::recover(&pod) {
            Some(t) => {
                let cidrs = h.cidrs(node_name, i);
                if t.phase == Phase::Running {
                    h.ips.lock().reserve(&uid, node_name, &cidrs, &t.ips);
                }
                t
            }
            None => {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if matches!(phase, Some("Succeeded" | "Failed")) {
                    // Finished by someone else (e.g. evicted or failed by a
                    // controller): nothing left to run.
                    return Ok(Action::await_change());
                }
                let host_network = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.host_network)
                    .unwrap_or(false);
                let ips = if host_network {
                    host_ip
                        .parse::<IpAddr>()
                        .map(|ip| vec![ip])
                        .unwrap_or_default()
                } else {
                    let cidrs = h.cidrs(node_name, i);
                    let mut ips = h.ips.lock();
                    match ips.allocate(&uid, node_name, &cidrs) {
                        Some(a) => a,
                        None => {
                            // Full: release addresses of pods gone while the watch
                            // was re-listing, then try once more.
                            let pods = h.pods.clone();
                            ips.sweep(|u| {
                                pods.state()
                                    .iter()
                                    .any(|p| p.metadata.uid.as_deref() == Some(u))
                            });
                            ips.allocate(&uid, node_name, &cidrs)
                                .ok_or_else(|| Error::NoIp(node_name.to_string()))?
                        }
                    }
                };
                Track::new(ips, host_ip, jiff::Timestamp::now())
            }
        },
    };
    let next = track.advance(&pod, h.options.pod_run_duration, jiff::Timestamp::now());
    if track.phase != Phase::Running {
        h.ips.lock().release(&uid);
    }
    if !track.written(&pod) {
        let api: Api<Pod> = Api::namespaced(
            h.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(track.status_patch(&pod)),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                h.forget(&uid);
                return Ok(Action::await_change());
            }
            Err(e) => {
                // Keep what was decided (IPs, exit) so the retry writes the same.
                h.tracks.lock().insert(uid, track);
                return Err(e.into());
            }
        }
    }
    h.tracks.lock().insert(uid, track);
    Ok(match next {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn error_policy(pod: Arc<Pod>, e: &Error, _h: Arc<Hollow>) -> Action {
    tracing::warn!(
        pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()),
        error = %e,
        "updating pod, will retry"
    );
    Action::requeue(Duration::from_secs(1))
}
