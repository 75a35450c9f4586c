//! `apiserver-profile`: the API server's cost per create, for profiling rather than for
//! the report. Starts its own etcd and kube-apiserver (optionally under a wrapper such as
//! `valgrind --tool=callgrind`), warms up, then sends N ConfigMap creates (the payload of
//! `apiserver-bench`) from C clients and prints the CPU time the API server and etcd used
//! per create. With `--callgrind` the API server runs under callgrind, whose counters are
//! zeroed after the warm-up and dumped after the N creates, so that the dump holds exactly
//! their instructions (repeatable, unlike wall-clock figures on a shared machine):
//! `callgrind_annotate <dump>` shows where they went.

#[allow(dead_code)]
#[path = "../client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../stats.rs"]
mod stats;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;

use crate::client::Conn;
use crate::cluster::{ApiServer, CpuMeter};
use crate::load::{configmap, payload, run_workers};

#[derive(Parser, Debug)]
#[command(about = "Profile kube-apiserver creates (CPU or callgrind instructions per create)")]
struct Args {
    /// The kube-apiserver binary; defaults to the one next to this binary.
    #[arg(long)]
    apiserver_bin: Option<PathBuf>,
    /// Extra kube-apiserver flags (repeat for several).
    #[arg(long = "apiserver-arg", allow_hyphen_values = true)]
    apiserver_args: Vec<String>,
    /// Run the API server under callgrind and dump its counters for the measured creates
    /// to this file.
    #[arg(long)]
    callgrind: Option<PathBuf>,
    /// Creates before measuring (connections, caches and allocator warmed up).
    #[arg(long, default_value_t = 500)]
    warmup: u64,
    /// Creates measured.
    #[arg(long, default_value_t = 2000)]
    creates: u64,
    /// Concurrent clients, each with its own TLS connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Bytes of data per ConfigMap.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
}

async fn creates(
    conns: &Arc<Vec<Conn>>,
    namespace: &str,
    prefix: &str,
    count: u64,
    data: &Arc<str>,
) -> Result<()> {
    let conns = Arc::clone(conns);
    let (ns, prefix, data) = (namespace.to_string(), prefix.to_string(), data.clone());
    let phase = run_workers(
        conns.len(),
        Duration::from_secs(3600),
        count,
        move |w, i| {
            let conn = conns[w].clone();
            let path = format!("/api/v1/namespaces/{ns}/configmaps");
            let body = configmap(&format!("{prefix}{i}"), &ns, &data);
            async move { conn.post(&path, body).await.map(drop) }
        },
    )
    .await;
    if phase.errors > 0 {
        bail!(
            "{} of {count} creates failed: {}",
            phase.errors,
            phase.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

fn callgrind_control(flag: &str, pid: u32) -> Result<()> {
    let status = Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .status()
        .context("running callgrind_control")?;
    if !status.success() {
        bail!("callgrind_control {flag} {pid}: {status}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let binary = match &args.apiserver_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("kube-apiserver"),
    };
    let dir = tempfile::tempdir()?;
    let etcd = storage::testing::EtcdServer::start_async()
        .await
        .context("starting etcd")?;
    let etcd_pid = cluster::find_process(
        "etcd",
        &format!("--data-dir={}", etcd.dir().join("data").display()),
    )
    .unwrap_or(0);
    let pki_dir = dir.path().join("pki");
    cluster::write_pki(&pki_dir)?;
    let tls = client::tls_config(&pki_dir, "admin")?;
    let wrapper: Vec<String> = match &args.callgrind {
        Some(out) => vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()),
            // Only the measured creates: counters are zeroed after the warm-up.
            "--dump-instr=no".into(),
        ],
        None => Vec::new(),
    };
    let server = ApiServer::start_wrapped(
        &wrapper,
        &binary,
        &etcd.endpoint(),
        dir.path(),
        &pki_dir,
        &args.apiserver_args,
        Arc::clone(&tls),
        Duration::from_secs(600),
    )
    .await?;
    let pid = server.pid();
    let mut conns = Vec::new();
    for _ in 0..args.clients.max(1) {
        conns.push(Conn::connect(server.addr, Arc::clone(&tls)).await?);
    }
    let conns = Arc::new(conns);
    let admin = conns[0].clone();
    admin
        .get("/api/v1/configmaps?resourceVersion=0")
        .await
        .context("starting the ConfigMap watch cache")?;
    admin
        .post(
            "/api/v1/namespaces",
            Bytes::from(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"profile"}}"#),
        )
        .await?;
    let data: Arc<str> = payload(args.payload_bytes).into();
    eprintln!("[profile] warm-up: {} creates", args.warmup);
    creates(&conns, "profile", "warm-", args.warmup, &data).await?;
    if args.callgrind.is_some() {
        callgrind_control("-z", pid)?;
    }
    eprintln!("[profile] measuring {} creates", args.creates);
    let meter = CpuMeter::start(&[("apiserver", pid), ("etcd", etcd_pid)]);
    let began = std::time::Instant::now();
    creates(&conns, "profile", "cm-", args.creates, &data).await?;
    let elapsed = began.elapsed();
    let cpu = meter.stop();
    if args.callgrind.is_some() {
        callgrind_control("-d", pid)?;
    }
    println!(
        "{} creates from {} clients in {:.2} s ({:.0}/s)",
        args.creates,
        conns.len(),
        elapsed.as_secs_f64(),
        args.creates as f64 / elapsed.as_secs_f64()
    );
    for (name, used) in cpu {
        println!(
            "  {name}: {:.3} ms CPU per create",
            used.as_secs_f64() * 1e3 / args.creates as f64
        );
    }
    if let Some(out) = &args.callgrind {
        println!(
            "callgrind dump of the measured creates: {}.* (divide Ir by {})",
            out.display(),
            args.creates
        );
    }
    Ok(())
}
