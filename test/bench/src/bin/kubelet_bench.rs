//! `kubelet-bench`: pod startup latency as upstream's pod startup SLO defines it (from the
//! pod's creation until all its containers are started, observed through a watch), for
//! N pods (30) created at once on one real node, then the kubelet's resident memory while
//! it runs them, then how long after a deletion with a 0 s grace period the pods'
//! containers stop running on the node (read through the CRI).
//!
//! Needs a running cluster with our kubelet on containerd: `hack/bench-kubelet.sh` brings
//! one up with hack/local-up-cluster.sh --kubelet and runs this against it. Latencies
//! start at the client's create call (creationTimestamp only has second precision).

// `client` is the bench's HTTP client (cluster.rs needs it); pkg/client is `::client`.
#[allow(dead_code)]
#[path = "../client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../stats.rs"]
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;

use crate::stats::{ms, Samples};

#[derive(Parser, Debug)]
#[command(about = "Pod startup latency, kubelet memory and pod deletion time on one node")]
struct Args {
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The node the pods are bound to (spec.nodeName, so the scheduler is not measured).
    #[arg(long)]
    node: String,
    /// The kubelet's process id, for its resident memory.
    #[arg(long)]
    kubelet_pid: u32,
    /// containerd's CRI endpoint on that node, to see the containers stop.
    #[arg(long)]
    cri_endpoint: String,
    #[arg(long, default_value_t = 30)]
    pods: usize,
    #[arg(long, default_value = "docker.io/library/busybox:1.35")]
    image: String,
    #[arg(long, default_value = "default")]
    namespace: String,
}

fn pod(name: &str, node: &str, image: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "kubelet-bench"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "sleep",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
        },
    }))?)
}

fn all_started(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let want = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    want > 0
        && statuses.len() == want
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

async fn running_containers(cri: &cri::Cri, uid: &str) -> Result<usize> {
    let list = cri
        .runtime
        .clone()
        .list_containers(cri::api::ListContainersRequest {
            filter: Some(cri::api::ContainerFilter {
                state: Some(cri::api::ContainerStateValue {
                    state: cri::api::ContainerState::ContainerRunning as i32,
                }),
                label_selector: [(cri::labels::POD_UID.to_string(), uid.to_string())].into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    Ok(list.containers.len())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = ::client::config::client(Some(&args.kubeconfig), "kubelet-bench").await?;
    let cri = cri::connect(&args.cri_endpoint).await?;
    let pods: Api<Pod> = Api::namespaced(client, &args.namespace);
    let names: Vec<String> = (0..args.pods)
        .map(|i| format!("kubelet-bench-{i}"))
        .collect();

    // Watch first, so no transition is missed; the watcher's initial list is empty.
    let config = watcher::Config::default().labels("app=kubelet-bench");
    let mut events = watcher(pods.clone(), config).boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = futures::future::try_join_all(names.iter().map(|name| {
        let pods = pods.clone();
        let body = pod(name, &args.node, &args.image);
        async move {
            let body = body?;
            let start = Instant::now();
            pods.create(&PostParams::default(), &body).await?;
            anyhow::Ok((name.clone(), start))
        }
    }));
    let begin = Instant::now();
    created.extend(creates.await.context("creating pods")?);

    let mut startup = Samples::default();
    let mut started: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while started.len() < names.len() {
        let next = tokio::time::timeout_at(deadline.into(), events.try_next()).await;
        let event = match next {
            Ok(event) => event?,
            Err(_) => bail!(
                "only {} of {} pods started within 120 s",
                started.len(),
                names.len()
            ),
        };
        let Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = event else {
            continue;
        };
        let name = p.metadata.name.clone().unwrap_or_default();
        if all_started(&p) && !started.contains_key(&name) {
            if let Some(t0) = created.get(&name) {
                let now = Instant::now();
                startup.push(now - *t0);
                started.insert(name, now);
            }
        }
    }
    let all_running = begin.elapsed();

    // Let the first status writes and probes settle before reading memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let memory = cluster::memory_kib(args.kubelet_pid)?;

    let mut uids = HashMap::new();
    for name in &names {
        let p = pods.get(name).await?;
        uids.insert(name.clone(), p.metadata.uid.unwrap_or_default());
    }
    let mut deletion = Samples::default();
    let delete_begin = Instant::now();
    let zero = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    futures::future::try_join_all(names.iter().map(|name| pods.delete(name, &zero))).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut remaining: Vec<String> = uids.values().cloned().collect();
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            bail!(
                "{} pods still have running containers after 120 s",
                remaining.len()
            );
        }
        let mut still = Vec::new();
        for uid in remaining {
            if running_containers(&cri, &uid).await? > 0 {
                still.push(uid);
            } else {
                deletion.push(delete_begin.elapsed());
            }
        }
        remaining = still;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!("pods: {} on node {}", names.len(), args.node);
    println!(
        "startup latency (create -> all containers running, via watch): p50 {} ms, p99 {} ms, all running after {} ms",
        ms(startup.p50()),
        ms(startup.p99()),
        all_running.as_millis()
    );
    println!(
        "kubelet memory with {} pods: RSS {:.1} MiB (peak {:.1} MiB)",
        names.len(),
        memory.rss as f64 / 1024.0,
        memory.peak as f64 / 1024.0
    );
    println!(
        "deletion (grace period 0 -> containers stopped): p50 {} ms, p99 {} ms",
        ms(deletion.p50()),
        ms(deletion.p99())
    );
    Ok(())
}
