//! Starting the scheduler: configuration, health endpoint, leader election, the pod and
//! node watches feeding the cache and the queue, the storage and PDB caches, and the
//! scheduling thread, until SIGTERM or the loss of the lease.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use client::leader::LeaderElection;
use client::serving::{self, Health};
use client::SharedInformers;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::{Configuration, Plugin};
use crate::framework::types::{NodeView, PendingPod};
use crate::framework::PodInfo;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::plugins::volume_binding;
use crate::scheduler::Scheduler;

/// This replica's identity in the lease (upstream: `<hostname>_<uuid>`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = match &options.config {
        Some(path) => Configuration::load(path)?,
        None => Configuration::default(),
    };
    if let Some(le) = options.leader_elect {
        config.leader_election.leader_elect = le;
    }
    if let Some(n) = &options.leader_elect_resource_name {
        config.leader_election.resource_name = n.clone();
    }
    if let Some(n) = &options.leader_elect_resource_namespace {
        config.leader_election.resource_namespace = n.clone();
    }
    let kubeconfig = options
        .kubeconfig
        .clone()
        .or_else(|| config.kubeconfig.clone().map(PathBuf::from));
    let client = client::config::client(kubeconfig.as_deref(), "kube-scheduler").await?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let health = Health::new(registry);
    let addr = SocketAddr::new(options.bind_address, options.secure_port);
    let (bound, _server) = serving::serve(
        addr,
        "kube-scheduler",
        health.clone(),
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(%bound, "serving /healthz and /metrics");
    let identity = format!("{}_{}", hostname(), uuid::Uuid::new_v4());
    let le = config.leader_election.clone();
    let work = run_scheduler(
        client.clone(),
        config,
        metrics,
        health,
        shutdown,
        hostname(),
    );
    if !le.leader_elect {
        return work.await;
    }
    let mut election = LeaderElection::new(&le.resource_name, identity);
    election.namespace = le.resource_namespace.clone();
    if let Ok(d) = apimachinery::duration::parse_go_duration(&le.lease_duration) {
        election.lease_duration = d;
    }
    let work = async {
        if let Err(e) = work.await {
            tracing::error!(error = format!("{e:#}"), "scheduler failed");
        }
    };
    election.run(client, work).await.map_err(Into::into)
}

/// Move unschedulable pods waiting on `plugin` whenever `changes` yields.
fn trigger<S>(sched: &Arc<Scheduler>, changes: S, plugin: Plugin)
where
    S: Stream + Send + 'static,
{
    let sched = Arc::clone(sched);
    tokio::spawn(async move {
        let mut changes = std::pin::pin!(changes);
        while changes.next().await.is_some() {
            sched.queue.move_unschedulable(plugin.bit());
        }
    });
}

async fn run_scheduler(
    client: Client,
    config: Configuration,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
    host: String,
) -> anyhow::Result<()> {
    let informers = SharedInformers::new(client.clone());
    let claims = informers.get::<PersistentVolumeClaim>();
    let volumes = informers.get::<PersistentVolume>();
    let classes = informers.get::<StorageClass>();
    let pdbs = informers.get::<PodDisruptionBudget>();
    let claim_changes = claims.subscribe()?;
    let volume_changes = volumes.subscribe()?;
    let class_changes = classes.subscribe()?;
    let stores = volume_binding::Stores {
        claims: claims.store().clone(),
        volumes: volumes.store().clone(),
        classes: classes.store().clone(),
    };
    informers.start();
    let sched = Scheduler::new(
        config,
        client.clone(),
        stores.clone(),
        pdbs.store().clone(),
        metrics,
        &host,
        tokio::runtime::Handle::current(),
    );
    trigger(&sched, claim_changes, Plugin::VolumeBinding);
    trigger(&sched, volume_changes, Plugin::VolumeBinding);
    trigger(&sched, class_changes, Plugin::VolumeBinding);
    let (nodes_synced, nodes_ready) = oneshot::channel();
    let (pods_synced, pods_ready) = oneshot::channel();
    tokio::spawn(watch_nodes(
        Arc::clone(&sched),
        client.clone(),
        nodes_synced,
    ));
    tokio::spawn(watch_pods(Arc::clone(&sched), client.clone(), pods_synced));
    tokio::select! {
        _ = async {
            let _ = nodes_ready.await;
            let _ = pods_ready.await;
            let _ = client::informers::synced(&stores.claims).await;
            let _ = client::informers::synced(&stores.volumes).await;
            let _ = client::informers::synced(&stores.classes).await;
        } => {}
        () = shutdown.cancelled() => return Ok(()),
    }
    {
        let cache = sched.cache.read();
        tracing::info!(
            nodes = cache.nodes.len(),
            pods = cache.pod_count(),
            "caches synced; scheduling"
        );
    }
    health.set_ready(true);
    let worker = Arc::clone(&sched);
    let thread = std::thread::Builder::new()
        .name("scheduling".into())
        .spawn(move || worker.run())
        .context("starting the scheduling thread")?;
    shutdown.cancelled().await;
    sched.queue.close();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Ok(())
}

async fn watch_nodes(sched: Arc<Scheduler>, client: Client, synced: oneshot::Sender<()>) {
    let api: Api<Node> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut synced = Some(synced);
    let mut seen: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
            Ok(watcher::Event::Init) => seen = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(node)) | Ok(watcher::Event::Apply(node)) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                // The cache keeps what the plugins read of the node, not the object.
                let view = NodeView::new(&node);
                drop(node);
                // A new node, or a change in what the plugins read (upstream's node
                // update events: allocatable, labels, taints, unschedulable), may let a
                // pending pod fit.
                if sched.cache.write().set_node(&name, view) {
                    sched.queue.move_unschedulable(u32::MAX);
                }
                if let Some(seen) = seen.as_mut() {
                    seen.insert(name);
                }
            }
            Ok(watcher::Event::Delete(node)) => {
                sched
                    .cache
                    .write()
                    .remove_node(node.metadata.name.as_deref().unwrap_or(""));
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = seen.take() {
                    let mut cache = sched.cache.write();
                    let gone: Vec<String> = cache
                        .nodes
                        .iter()
                        .filter(|n| !seen.contains(&n.name))
                        .map(|n| n.name.clone())
                        .collect();
                    for name in gone {
                        cache.remove_node(&name);
                    }
                }
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn on_pod(sched: &Scheduler, mut pod: Pod) {
    // managedFields are never read here and are a large part of each object (upstream's
    // informers strip them too).
    pod.metadata.managed_fields = None;
    if terminal(&pod) {
        on_pod_delete(sched, &pod);
        return;
    }
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if bound {
        // The cache keeps what the plugins read of pods on nodes, not the object.
        let info = Arc::new(PodInfo::new(&pod));
        drop(pod);
        sched.queue.delete(&info.uid);
        let new = {
            let mut cache = sched.cache.write();
            cache.clear_nominated(&info.uid);
            cache.add_or_update_pod(Arc::clone(&info))
        };
        if new {
            // Another pod in a domain may satisfy a pending pod's affinity or spread.
            sched.queue.move_unschedulable(
                Plugin::InterPodAffinity.bit() | Plugin::PodTopologySpread.bit(),
            );
        }
        return;
    }
    let info = Arc::new(PendingPod::new(pod));
    if !sched.is_ours(&info) {
        return;
    }
    {
        let mut cache = sched.cache.write();
        // Our own pod between assume and the bound version reaching the watch.
        if cache.is_assumed(&info.uid) {
            return;
        }
        if info.is_terminating() {
            cache.clear_nominated(&info.uid);
        } else {
            let nominated = info.nominated_node_name().to_string();
            cache.set_nominated(&info.info, &nominated);
        }
    }
    if info.is_terminating() {
        sched.queue.delete(&info.uid);
    } else {
        sched.queue.add_or_update(info);
    }
}

fn on_pod_delete(sched: &Scheduler, pod: &Pod) {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    sched.queue.delete(uid);
    let removed = {
        let mut cache = sched.cache.write();
        cache.clear_nominated(uid);
        cache.remove_pod(uid)
    };
    if removed.is_some() {
        sched.queue.move_unschedulable(u32::MAX);
    }
}

async fn watch_pods(sched: Arc<Scheduler>, client: Client, synced: oneshot::Sender<()>) {
    let api: Api<Pod> = Api::all(client);
    // Finished pods hold no resources; upstream's informer leaves them out too.
    let config = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut synced = Some(synced);
    let mut seen: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            Ok(watcher::Event::Init) => seen = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) | Ok(watcher::Event::Apply(pod)) => {
                if let Some(seen) = seen.as_mut() {
                    seen.insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                on_pod(&sched, pod);
            }
            Ok(watcher::Event::Delete(pod)) => on_pod_delete(&sched, &pod),
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = seen.take() {
                    let mut cache = sched.cache.write();
                    for uid in cache.bound_pod_uids() {
                        if !seen.contains(&uid) {
                            cache.remove_pod(&uid);
                        }
                    }
                }
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
}
