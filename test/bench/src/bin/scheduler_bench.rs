//! `scheduler-bench`: kube-scheduler throughput and latency as upstream's scheduler_perf
//! `SchedulingBasic` measures them: N nodes (Node objects created through the API, 4 CPU
//! / 32 GiB / 110 pods each), a number of pods scheduled first and not measured, then M
//! pods created as fast as the API server takes them and measured from their creation
//! to the moment the pod watch shows them bound. Reports pods/s (overall and the
//! average of per-second samples, as scheduler_perf's SchedulingThroughput), per-pod
//! latency percentiles, the CPU each process used, and the scheduler's resident memory
//! at the end.
//!
//! Everything runs on this machine: etcd, our kube-apiserver and our kube-scheduler
//! (release builds), and this load generator. `hack/bench-scheduler.sh` builds and runs
//! it.

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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::client::Conn;
use crate::cluster::{memory_kib, ApiServer, CpuMeter};
use crate::stats::{ms, Samples};

#[derive(Parser, Debug)]
#[command(about = "Benchmark kube-scheduler as scheduler_perf SchedulingBasic does")]
struct Args {
    /// The kube-apiserver binary; defaults to the one next to this binary.
    #[arg(long, env = "KUBE_APISERVER_BIN")]
    apiserver_bin: Option<PathBuf>,
    /// The kube-scheduler binary; defaults to the one next to this binary.
    #[arg(long, env = "KUBE_SCHEDULER_BIN")]
    scheduler_bin: Option<PathBuf>,
    /// Extra kube-scheduler flags (repeat for several).
    #[arg(long = "scheduler-arg", allow_hyphen_values = true)]
    scheduler_args: Vec<String>,
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods scheduled before the measurement.
    #[arg(long, default_value_t = 1000)]
    init_pods: usize,
    /// Pods measured.
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    /// Concurrent creating clients.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Give up waiting for the measured pods after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// A label printed with the report (date, commit).
    #[arg(long, default_value = "")]
    label: String,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[scheduler-bench] {}", msg.as_ref());
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

fn node_json(name: &str) -> Bytes {
    let quantities = r#"{"pods": "110", "cpu": "4", "memory": "32Gi"}"#;
    Bytes::from(format!(
        r#"{{"apiVersion": "v1", "kind": "Node",
  "metadata": {{"name": "{name}", "labels": {{"kubernetes.io/hostname": "{name}"}}}},
  "status": {{"capacity": {quantities}, "allocatable": {quantities}, "phase": "Running",
    "conditions": [{{"type": "Ready", "status": "True", "reason": "KubeletReady"}}]}}}}"#
    ))
}

fn pod_json(name: &str) -> Bytes {
    let resources = r#"{"cpu": "100m", "memory": "500Mi"}"#;
    Bytes::from(format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
  "spec": {{"containers": [{{"name": "pause", "image": "registry.k8s.io/pause:3.10",
    "resources": {{"requests": {resources}, "limits": {resources}}}}}]}}}}"#
    ))
}

/// Create `count` objects named `prefix-<i>` with `workers` concurrent requests spread
/// over `conns`; returns when each was sent, by name.
async fn create_all(
    conns: &[Conn],
    path: &str,
    prefix: &str,
    count: usize,
    workers: usize,
    body: fn(&str) -> Bytes,
) -> Result<HashMap<String, Instant>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let conn = conns[w % conns.len()].clone();
        let next = Arc::clone(&next);
        let path = path.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(sent);
                }
                let name = format!("{prefix}-{i}");
                let at = Instant::now();
                conn.post(&path, body(&name))
                    .await
                    .with_context(|| format!("creating {name}"))?;
                sent.push((name, at));
            }
        }));
    }
    let mut all = HashMap::with_capacity(count);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

#[derive(Deserialize)]
struct PodLite {
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: PodLite,
}

/// Watch the namespace's pods from `rv` and send (name, when it was seen bound).
async fn watch_bindings(
    conn: Conn,
    ns: &str,
    rv: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
) -> Result<()> {
    let path = format!(
        "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=false"
    );
    let response = conn.send(Method::GET, &path, None).await?;
    if !response.status().is_success() {
        bail!("watch: HTTP {}", response.status());
    }
    let mut body = response.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("watch stream")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        buf.extend_from_slice(&data);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
                continue;
            };
            if event.kind == "ERROR" {
                bail!("watch error: {}", String::from_utf8_lossy(&line));
            }
            let bound = event.object.spec.node_name.is_some_and(|n| !n.is_empty());
            if bound
                && seen.insert(event.object.metadata.name.clone())
                && tx.send((event.object.metadata.name, now)).is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

struct Scheduler {
    child: Child,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_kubeconfig(dir: &Path, pki: &Path, port: u16) -> Result<PathBuf> {
    let path = dir.join("scheduler.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {crt}
    client-key: {key}
contexts:
- name: bench
  context: {{cluster: bench, user: admin}}
current-context: bench
",
            ca = pki.join("ca.crt").display(),
            crt = pki.join("admin.crt").display(),
            key = pki.join("admin.key").display(),
        ),
    )?;
    Ok(path)
}

/// Wait until every name in `want` was seen bound; returns when each was.
async fn wait_bound(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    want: &HashMap<String, Instant>,
    bound: &mut HashMap<String, Instant>,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_report = Instant::now();
    while want.keys().any(|k| !bound.contains_key(k)) {
        let got = tokio::time::timeout_at(deadline, rx.recv()).await;
        match got {
            Ok(Some((name, at))) => {
                bound.insert(name, at);
            }
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => {
                let missing = want.keys().filter(|k| !bound.contains_key(*k)).count();
                bail!("{missing} pods still not bound after {timeout:?}");
            }
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            let done = want.keys().filter(|k| bound.contains_key(*k)).count();
            progress(format!("  {done}/{} bound", want.len()));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let apiserver_bin = match &args.apiserver_bin {
        Some(p) => p.clone(),
        None => sibling("kube-apiserver")?,
    };
    let scheduler_bin = match &args.scheduler_bin {
        Some(p) => p.clone(),
        None => sibling("kube-scheduler")?,
    };
    let dir = tempfile::Builder::new()
        .prefix("scheduler-bench-")
        .tempdir()?;
    let pki = dir.path().join("pki");
    cluster::write_pki(&pki)?;
    let tls = client::tls_config(&pki, "admin")?;
    progress("starting etcd and kube-apiserver");
    let etcd = storage::testing::EtcdServer::start_async()
        .await
        .context("starting etcd")?;
    let etcd_pid = cluster::find_process(
        "etcd",
        &format!("--data-dir={}", etcd.dir().join("data").display()),
    )
    .unwrap_or(0);
    let apiserver = ApiServer::start(
        &apiserver_bin,
        &etcd.endpoint(),
        dir.path(),
        &pki,
        &[],
        Arc::clone(&tls),
    )
    .await?;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Conn::connect(apiserver.addr, Arc::clone(&tls)).await?);
    }
    let ns = "sched-bench";
    conns[0]
        .post(
            "/api/v1/namespaces",
            Bytes::from(format!(
                r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#
            )),
        )
        .await?;
    let sa = conns[0]
        .request(
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            Some(Bytes::from(
                r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}"#,
            )),
        )
        .await?;
    if !sa.status.is_success() && sa.status != http::StatusCode::CONFLICT {
        bail!("creating the default service account: HTTP {}", sa.status);
    }

    progress(format!("creating {} nodes", args.nodes));
    let t = Instant::now();
    create_all(
        &conns,
        "/api/v1/nodes",
        "node",
        args.nodes,
        args.workers,
        node_json,
    )
    .await?;
    progress(format!("  {:.1}s", t.elapsed().as_secs_f64()));

    // The pod watch starts before any pod exists, so no binding is missed.
    let list = conns[0]
        .get(&format!("/api/v1/namespaces/{ns}/pods?limit=1"))
        .await?;
    #[derive(Deserialize)]
    struct List {
        metadata: Meta,
    }
    let rv = serde_json::from_slice::<List>(&list)?
        .metadata
        .resource_version;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watch_conn = Conn::connect(apiserver.addr, Arc::clone(&tls)).await?;
    let watch_ns = ns.to_string();
    tokio::spawn(async move {
        if let Err(e) = watch_bindings(watch_conn, &watch_ns, rv, tx).await {
            progress(format!("pod watch failed: {e:#}"));
        }
    });

    let kubeconfig = write_kubeconfig(dir.path(), &pki, apiserver.addr.port())?;
    let log_path = dir.path().join("kube-scheduler.log");
    let log = std::fs::File::create(&log_path)?;
    progress("starting kube-scheduler");
    let child = Command::new(&scheduler_bin)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--leader-elect=false")
        .arg("--secure-port=0")
        .args(&args.scheduler_args)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SCHEDULER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", scheduler_bin.display()))?;
    let scheduler = Scheduler { child };
    let scheduler_pid = scheduler.child.id();

    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    let mut bound = HashMap::new();
    progress(format!(
        "creating and scheduling {} initial pods",
        args.init_pods
    ));
    let init = create_all(
        &conns,
        &pods_path,
        "init",
        args.init_pods,
        args.workers,
        pod_json,
    )
    .await?;
    wait_bound(
        &mut rx,
        &init,
        &mut bound,
        Duration::from_secs(args.timeout_secs),
    )
    .await
    .with_context(|| std::fs::read_to_string(&log_path).unwrap_or_default())?;

    progress(format!("measuring: {} pods", args.pods));
    let meter = CpuMeter::start(&[
        ("kube-scheduler", scheduler_pid),
        ("kube-apiserver", apiserver.pid()),
        ("etcd", etcd_pid),
        ("bench", std::process::id()),
    ]);
    let start = Instant::now();
    let created = create_all(&conns, &pods_path, "pod", args.pods, args.workers, pod_json).await?;
    let create_secs = start.elapsed().as_secs_f64();
    wait_bound(
        &mut rx,
        &created,
        &mut bound,
        Duration::from_secs(args.timeout_secs),
    )
    .await
    .with_context(|| std::fs::read_to_string(&log_path).unwrap_or_default())?;
    let cpu = meter.stop();
    let mut latencies = Samples::default();
    let mut last = start;
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for (name, at) in &created {
        let b = bound[name];
        latencies.push(b.saturating_duration_since(*at));
        last = last.max(b);
        *per_second
            .entry(b.duration_since(start).as_secs())
            .or_default() += 1;
    }
    let total = last.duration_since(start).as_secs_f64();
    let seconds = total.ceil().max(1.0) as u64;
    let sampled: f64 = (0..seconds)
        .map(|s| per_second.get(&s).copied().unwrap_or(0) as f64)
        .sum::<f64>()
        / seconds as f64;
    let memory = memory_kib(scheduler_pid)?;
    let api_memory = memory_kib(apiserver.pid())?;

    println!(
        "kube-scheduler benchmark (scheduler_perf SchedulingBasic shape) {}",
        args.label
    );
    println!(
        "  nodes {}, initial pods {}, measured pods {}, {} creating clients; machine: {} CPUs",
        args.nodes,
        args.init_pods,
        args.pods,
        args.workers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  pods created in {create_secs:.2}s ({:.0}/s); all bound after {total:.2}s",
        args.pods as f64 / create_secs
    );
    let rate = args.pods as f64 / total;
    println!(
        "  throughput: {rate:.0} pods/s overall, {sampled:.0} pods/s per-second average   (target >= 1000: {})",
        if rate >= 1000.0 { "PASS" } else { "FAIL" }
    );
    println!(
        "  latency creation -> bound: p50 {} ms, p99 {} ms, max {} ms",
        ms(latencies.p50()),
        ms(latencies.p99()),
        ms(latencies.quantile(1.0))
    );
    println!(
        "  kube-scheduler RSS at the end: {:.1} MiB (peak {:.1} MiB)   (target < 150 MiB: {})",
        memory.rss as f64 / 1024.0,
        memory.peak as f64 / 1024.0,
        if memory.rss < 150 * 1024 {
            "PASS"
        } else {
            "FAIL"
        }
    );
    println!(
        "  kube-apiserver RSS at the end: {:.1} MiB",
        api_memory.rss as f64 / 1024.0
    );
    let cpu_line: Vec<String> = cpu
        .iter()
        .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
        .collect();
    println!("  CPU during the measurement: {}", cpu_line.join(", "));
    drop(scheduler);
    drop(apiserver);
    Ok(())
}
