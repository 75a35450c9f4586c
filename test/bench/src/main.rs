//! `apiserver-bench`: our kube-apiserver measured against the etcd under it, on the same
//! machine and with the same payloads (ConfigMaps carrying 1 KiB of data).
//!
//! One run starts its own etcd (`storage::testing::EtcdServer`), measures raw etcd create
//! transactions through `etcd-client`, then starts the kube-apiserver binary on the same
//! etcd with a private PKI and measures, over HTTPS with an admin client certificate:
//! create throughput, get / list / update latency, watch fan-out delivery latency, and the
//! server's resident memory idle and with N ConfigMaps stored. It prints one report with
//! the project's targets and PASS/FAIL per figure; `hack/bench-apiserver.sh` builds and
//! runs it.
//!
//! Client model: every load worker is its own client with its own TLS connection
//! (HTTP/2, one request in flight at a time), like N independent controllers or kubectl
//! processes; watchers are multiplexed as HTTP/2 streams over a few connections, like the
//! informers of a few client processes. The raw etcd workers share one `etcd-client`
//! connection, as the API server's storage layer does. Progress goes to stderr, the report
//! to stdout.

mod client;
mod cluster;
mod fanout;
mod load;
mod raw_etcd;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;

use crate::client::Conn;
use crate::cluster::{memory_kib, ApiServer, CpuMeter};
use crate::load::{configmap, payload, run_workers};
use crate::stats::{ms, Phase, Samples};

#[derive(Parser, Debug)]
#[command(about = "Benchmark kube-apiserver against raw etcd")]
struct Args {
    /// The kube-apiserver binary (a release build); defaults to the one next to this binary.
    #[arg(long, env = "KUBE_APISERVER_BIN")]
    apiserver_bin: Option<PathBuf>,
    /// Extra kube-apiserver flags (repeat for several).
    #[arg(long = "apiserver-arg", allow_hyphen_values = true)]
    apiserver_args: Vec<String>,
    /// Concurrent clients for the throughput comparison.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds per throughput measurement (each stops earlier at its operation cap).
    #[arg(long, default_value_t = 5.0)]
    throughput_secs: f64,
    /// Most creates per API server throughput measurement.
    #[arg(long, default_value_t = 100_000)]
    max_creates: u64,
    /// Most transactions per raw etcd throughput measurement.
    #[arg(long, default_value_t = 100_000)]
    max_raw_txns: u64,
    /// Concurrent clients for the latency measurements.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    latency_clients: Vec<usize>,
    /// Seconds per latency measurement.
    #[arg(long, default_value_t = 3.0)]
    latency_secs: f64,
    /// Objects in the namespace listed by the namespace list measurement.
    #[arg(long, default_value_t = 100)]
    list_size: usize,
    /// Concurrent watches for the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// HTTP/2 connections the watches are spread over.
    #[arg(long, default_value_t = 10)]
    watch_connections: usize,
    /// Updates whose delivery to every watcher is timed.
    #[arg(long, default_value_t = 20)]
    watch_updates: usize,
    /// Milliseconds between those updates.
    #[arg(long, default_value_t = 100)]
    watch_interval_ms: u64,
    /// ConfigMaps stored for the loaded memory figure and the full list.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Bytes of data per ConfigMap.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Full (all namespaces) lists timed per kind.
    #[arg(long, default_value_t = 3)]
    full_lists: usize,
    /// Also measure raw etcd with the API server's request pattern per create (two
    /// linearizable reads for admission, then the transaction): a diagnostic.
    #[arg(long)]
    raw_with_admission_reads: bool,
    /// Keep the temporary directory (kube-apiserver.log, PKI) and print its path.
    #[arg(long)]
    keep_dir: bool,
    /// A line printed at the top of the report (date, commit).
    #[arg(long)]
    label: Option<String>,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.1))
}

/// Creates `count` ConfigMaps named `<prefix><i>` in `namespace` with `workers` clients.
async fn create_many(
    conns: &[Conn],
    namespace: &str,
    prefix: &str,
    count: usize,
    workers: usize,
    data: &Arc<str>,
) -> Result<()> {
    let conns = Arc::new(conns.to_vec());
    let (ns, prefix, data) = (namespace.to_string(), prefix.to_string(), data.clone());
    let phase = run_workers(
        workers.clamp(1, conns.len()),
        Duration::from_secs(600),
        count as u64,
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
            "{} of {count} creates in {namespace} failed: {}",
            phase.errors,
            phase.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn create_namespace(conn: &Conn, name: &str) -> Result<()> {
    let body =
        format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
    conn.post("/api/v1/namespaces", Bytes::from(body))
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// How many ConfigMaps the server stores (a one-item list and its remainingItemCount).
async fn count_configmaps(conn: &Conn) -> Result<usize> {
    let body = conn.get("/api/v1/configmaps?limit=1").await?;
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let items = list["items"].as_array().map(Vec::len).unwrap_or(0);
    let remaining = list["metadata"]["remainingItemCount"].as_u64().unwrap_or(0);
    Ok(items + usize::try_from(remaining)?)
}

/// Times `reps` sequential GETs of `path`, checking the item count of the first.
async fn time_gets(conn: &Conn, path: &str, reps: usize) -> Result<(Samples, usize)> {
    let mut samples = Samples::default();
    let mut items = 0;
    for i in 0..reps {
        let began = Instant::now();
        let body = conn.get(path).await?;
        samples.push(began.elapsed());
        if i == 0 {
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            items = list["items"].as_array().map(Vec::len).unwrap_or(0);
        }
    }
    Ok((samples, items))
}

/// Timings of a full list and the items it returned, or why it failed.
type FullList = std::result::Result<(Samples, usize), String>;

struct LatencyRow {
    request: String,
    clients: usize,
    phase: Phase,
    /// p99 target in milliseconds, for mutating requests at 16 clients.
    target_ms: Option<f64>,
}

struct Report {
    label: Option<String>,
    machine: String,
    loadavg: String,
    etcd_version: String,
    payload_bytes: usize,
    body_bytes: usize,
    throughput: Vec<(usize, Phase, Phase)>,
    raw_with_reads: Vec<(usize, Phase)>,
    latency: Vec<LatencyRow>,
    fanout: Option<fanout::Outcome>,
    fanout_error: Option<String>,
    fanout_settings: (usize, usize, usize, u64),
    idle: cluster::Memory,
    loaded: cluster::Memory,
    objects: usize,
    peak_kib: u64,
    peak_after_lists_kib: u64,
    full_lists: Vec<(String, FullList)>,
}

const RATIO_TARGET: f64 = 0.70;
const MUTATING_P99_MS: f64 = 25.0;
const FANOUT_P99_MS: f64 = 100.0;
const RSS_IDLE_MIB: f64 = 40.0;
const RSS_LOADED_MIB: f64 = 150.0;

fn verdict(pass: bool, tally: &mut (u32, u32)) -> &'static str {
    if pass {
        tally.0 += 1;
        "PASS"
    } else {
        tally.1 += 1;
        "FAIL"
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    fn print(&self) {
        let mut tally = (0u32, 0u32);
        println!("kube-apiserver benchmark");
        if let Some(label) = &self.label {
            println!("{label}");
        }
        println!(
            "{}; etcd {} (one member, same instance and flags for both measurements)",
            self.machine, self.etcd_version
        );
        println!("load average before the run: {}", self.loadavg);
        println!(
            "payload: ConfigMaps with {} bytes of data ({} bytes of JSON per create)",
            self.payload_bytes, self.body_bytes
        );
        println!();
        println!("Create throughput (closed loop; raw = etcd-client txn create-if-absent, one gRPC connection;");
        println!("apiserver = POST over HTTPS/HTTP2, one TLS connection per client)");
        println!(
            "{:>8} {:>14} {:>16} {:>7} {:>8} {:>7}",
            "clients", "raw etcd txn/s", "apiserver cr/s", "ratio", "target", "result"
        );
        for (clients, raw, api) in &self.throughput {
            let ratio = if raw.rate() > 0.0 {
                api.rate() / raw.rate()
            } else {
                0.0
            };
            println!(
                "{:>8} {:>14.0} {:>16.0} {:>6.0}% {:>8} {:>7}",
                clients,
                raw.rate(),
                api.rate(),
                ratio * 100.0,
                format!(">={:.0}%", RATIO_TARGET * 100.0),
                verdict(ratio >= RATIO_TARGET && api.errors == 0, &mut tally)
            );
        }
        for (clients, raw, api) in &self.throughput {
            for (who, phase) in [("raw etcd", raw), ("apiserver", api)] {
                let cpu = phase.cpu_summary();
                if !cpu.is_empty() {
                    println!("  {who:<9} {clients:>3} clients: {cpu}");
                }
            }
        }
        for (clients, phase) in &self.raw_with_reads {
            println!(
                "  diagnostic: raw etcd get + list + create txn, {clients} clients: {:.0}/s; {}",
                phase.rate(),
                phase.cpu_summary()
            );
        }
        for (clients, raw, api) in &self.throughput {
            for (who, phase) in [("raw etcd", raw), ("apiserver", api)] {
                if phase.errors > 0 {
                    println!(
                        "  {who} at {clients} clients: {} errors, first: {}",
                        phase.errors,
                        phase.first_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        println!();
        println!("Request latency in ms (closed loop, each client one request at a time)");
        println!(
            "{:<34} {:>7} {:>7} {:>8} {:>8} {:>9} {:>7}",
            "request", "clients", "count", "p50", "p99", "target", "result"
        );
        for row in &self.latency {
            let p99 = row.phase.latencies.p99();
            let (target, result) = match row.target_ms {
                Some(t) => {
                    let pass =
                        p99.is_some_and(|d| d.as_secs_f64() * 1000.0 < t) && row.phase.errors == 0;
                    (format!("p99<{t:.0}"), verdict(pass, &mut tally))
                }
                None => ("-".to_string(), ""),
            };
            println!(
                "{:<34} {:>7} {:>7} {:>8} {:>8} {:>9} {:>7}",
                row.request,
                row.clients,
                row.phase.latencies.len(),
                ms(row.phase.latencies.p50()),
                ms(p99),
                target,
                result
            );
            if row.phase.errors > 0 {
                println!(
                    "  {} errors, first: {}",
                    row.phase.errors,
                    row.phase.first_error.as_deref().unwrap_or("")
                );
            }
        }
        for (name, outcome) in &self.full_lists {
            match outcome {
                Ok((samples, items)) => println!(
                    "{:<34} {:>7} {:>7} {:>8} {:>8} {:>9} {:>7}",
                    format!("{name} ({items})"),
                    1,
                    samples.len(),
                    ms(samples.p50()),
                    ms(samples.quantile(1.0)),
                    "(max)",
                    ""
                ),
                Err(e) => {
                    let excerpt: String = e.chars().take(240).collect();
                    println!("{name}: FAILED: {excerpt}");
                }
            }
        }
        println!();
        let (watchers, conns, updates, interval) = self.fanout_settings;
        println!(
            "Watch fan-out: {watchers} watches of one namespace's ConfigMaps over {conns} HTTP/2 connections, {updates} updates {interval} ms apart"
        );
        match (&self.fanout, &self.fanout_error) {
            (Some(f), _) => {
                println!(
                    "  delivered {} of {} events; watches connected: {}",
                    f.from_completion.len(),
                    f.expected,
                    f.watchers_connected
                );
                println!(
                    "  update latency p50 {} ms, p99 {} ms",
                    ms(f.write.p50()),
                    ms(f.write.p99())
                );
                println!(
                    "  delivery after the update's send:       p50 {:>8} ms  p99 {:>8} ms",
                    ms(f.from_send.p50()),
                    ms(f.from_send.p99())
                );
                let p99 = f.from_completion.p99();
                let pass = p99.is_some_and(|d| d.as_secs_f64() * 1000.0 < FANOUT_P99_MS)
                    && f.from_completion.len() == f.expected;
                println!(
                    "  delivery after the update's completion: p50 {:>8} ms  p99 {:>8} ms  target p99<{FANOUT_P99_MS:.0}  {}",
                    ms(f.from_completion.p50()),
                    ms(p99),
                    verdict(pass, &mut tally)
                );
            }
            (None, Some(e)) => {
                println!(
                    "  failed: {e}  target p99<{FANOUT_P99_MS:.0}  {}",
                    verdict(false, &mut tally)
                );
            }
            (None, None) => println!("  not run"),
        }
        println!();
        println!("kube-apiserver memory (VmRSS)");
        println!(
            "  idle after startup:          {:>7.1} MiB ({:.1} anonymous)  target <{RSS_IDLE_MIB:.0}   {}",
            mib(self.idle.rss),
            mib(self.idle.anon),
            verdict(mib(self.idle.rss) < RSS_IDLE_MIB, &mut tally)
        );
        println!(
            "  with {:>6} ConfigMaps:     {:>7.1} MiB ({:.1} anonymous)  target <{RSS_LOADED_MIB:.0}  {}",
            self.objects,
            mib(self.loaded.rss),
            mib(self.loaded.anon),
            verdict(mib(self.loaded.rss) < RSS_LOADED_MIB, &mut tally)
        );
        println!(
            "  peak (VmHWM) after storing them {:.1} MiB, after the full lists {:.1} MiB, at the end {:.1} MiB",
            mib(self.loaded.peak),
            mib(self.peak_after_lists_kib),
            mib(self.peak_kib)
        );
        println!();
        println!("{} PASS, {} FAIL", tally.0, tally.1);
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model})")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let binary = match &args.apiserver_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory around this binary")?
            .join("kube-apiserver"),
    };
    if !binary.is_file() {
        bail!(
            "no kube-apiserver binary at {} (set --apiserver-bin or KUBE_APISERVER_BIN)",
            binary.display()
        );
    }
    let max_clients = args
        .concurrency
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(args.latency_clients.iter().copied().max().unwrap_or(1));
    let data: Arc<str> = Arc::from(payload(args.payload_bytes));
    let dir = tempfile::Builder::new()
        .prefix("apiserver-bench-")
        .tempdir()?;

    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    progress("starting etcd");
    let etcd = storage::testing::EtcdServer::start_async()
        .await
        .context("starting etcd")?;
    let etcd_client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .context("connecting to etcd")?;
    let etcd_version = raw_etcd::version(&etcd_client).await?;
    let etcd_pid = cluster::find_process(
        "etcd",
        &format!("--data-dir={}", etcd.dir().join("data").display()),
    )
    .unwrap_or(0);
    let bench_pid = std::process::id();

    // Raw etcd: the same bytes the client would send for a create.
    let raw_value = Arc::new(configmap("raw", "raw", &data).to_vec());
    let body_bytes = raw_value.len();
    let mut raw = Vec::new();
    for &c in &args.concurrency {
        progress(format!("raw etcd create transactions, {c} clients"));
        let meter = CpuMeter::start(&[("etcd", etcd_pid), ("bench", bench_pid)]);
        let mut phase = raw_etcd::create_throughput(
            &etcd_client,
            &format!("/bench-raw/configmaps/c{c}/cm-"),
            Arc::clone(&raw_value),
            c,
            secs(args.throughput_secs),
            args.max_raw_txns,
        )
        .await;
        phase.cpu = meter.stop();
        progress(format!(
            "  {:.0} txn/s; {}",
            phase.rate(),
            phase.cpu_summary()
        ));
        raw.push(phase);
    }
    let mut raw_with_reads = Vec::new();
    if args.raw_with_admission_reads {
        for &c in &args.concurrency {
            progress(format!(
                "raw etcd get + list + create transaction, {c} clients"
            ));
            let meter = CpuMeter::start(&[("etcd", etcd_pid), ("bench", bench_pid)]);
            let mut phase = raw_etcd::create_with_reads_throughput(
                &etcd_client,
                &format!("/bench-raw-reads/c{c}/"),
                Arc::clone(&raw_value),
                c,
                secs(args.throughput_secs),
                args.max_raw_txns,
            )
            .await;
            phase.cpu = meter.stop();
            progress(format!(
                "  {:.0} creates/s; {}",
                phase.rate(),
                phase.cpu_summary()
            ));
            raw_with_reads.push((c, phase));
        }
    }

    progress("starting kube-apiserver");
    let pki_dir = dir.path().join("pki");
    cluster::write_pki(&pki_dir)?;
    let tls = client::tls_config(&pki_dir, "admin")?;
    let server = ApiServer::start(
        &binary,
        &etcd.endpoint(),
        dir.path(),
        &pki_dir,
        &args.apiserver_args,
        Arc::clone(&tls),
    )
    .await?;
    let pid = server.pid();
    // Let bootstrap and the first cache fills finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = memory_kib(pid)?;
    progress(format!(
        "idle RSS {:.1} MiB ({:.1} MiB anonymous)",
        mib(idle.rss),
        mib(idle.anon)
    ));

    let procs = [("apiserver", pid), ("etcd", etcd_pid), ("bench", bench_pid)];
    let result = measure_apiserver(&args, &server, tls, &data, max_clients, &procs).await;
    let measured = match result {
        Ok(m) => m,
        Err(e) => {
            bail!(
                "{e:#}\nkube-apiserver log (last lines):\n{}",
                server.log_tail()
            );
        }
    };

    let throughput = args
        .concurrency
        .iter()
        .copied()
        .zip(raw)
        .zip(measured.creates)
        .map(|((c, r), a)| (c, r, a))
        .collect();
    let report = Report {
        label: args.label.clone(),
        machine: machine(),
        loadavg,
        etcd_version,
        payload_bytes: args.payload_bytes,
        body_bytes,
        throughput,
        raw_with_reads,
        latency: measured.latency,
        fanout: measured.fanout,
        fanout_error: measured.fanout_error,
        fanout_settings: (
            args.watchers,
            args.watch_connections,
            args.watch_updates,
            args.watch_interval_ms,
        ),
        idle,
        loaded: measured.loaded,
        objects: measured.objects,
        peak_kib: measured.peak_kib,
        peak_after_lists_kib: measured.peak_after_lists_kib,
        full_lists: measured.full_lists,
    };
    drop(server);
    drop(etcd);
    if args.keep_dir {
        let kept = dir.keep();
        progress(format!("kept {}", kept.display()));
    }
    report.print();
    Ok(())
}

struct Measured {
    creates: Vec<Phase>,
    latency: Vec<LatencyRow>,
    fanout: Option<fanout::Outcome>,
    fanout_error: Option<String>,
    loaded: cluster::Memory,
    objects: usize,
    peak_kib: u64,
    peak_after_lists_kib: u64,
    full_lists: Vec<(String, FullList)>,
}

async fn measure_apiserver(
    args: &Args,
    server: &ApiServer,
    tls: Arc<rustls::ClientConfig>,
    data: &Arc<str>,
    max_clients: usize,
    procs: &[(&'static str, u32)],
) -> Result<Measured> {
    let mut conns = Vec::with_capacity(max_clients);
    for _ in 0..max_clients {
        conns.push(Conn::connect(server.addr, Arc::clone(&tls)).await?);
    }
    let conns = Arc::new(conns);
    let admin = conns[0].clone();
    // In a cluster kubelets and controllers watch ConfigMaps from the start, so the
    // ConfigMap watch cache is filled (and kept current) from here on, as it would be.
    admin
        .get("/api/v1/configmaps?resourceVersion=0")
        .await
        .context("starting the ConfigMap watch cache")?;

    // Fill up to `objects` ConfigMaps, then memory and full lists. Done first, so that the
    // memory figure counts exactly those objects and the later phases run against a
    // populated store, as in a cluster.
    let stored = count_configmaps(&admin).await?;
    if stored < args.objects {
        progress(format!(
            "storing {} more ConfigMaps (to {})",
            args.objects - stored,
            args.objects
        ));
        create_namespace(&admin, "bench-fill").await?;
        create_many(&conns, "bench-fill", "cm-", args.objects - stored, 16, data).await?;
    }
    let objects = count_configmaps(&admin).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = memory_kib(server.pid())?;
    progress(format!(
        "RSS with {objects} ConfigMaps {:.1} MiB",
        mib(loaded.rss)
    ));

    let mut full_lists = Vec::new();
    if args.full_lists > 0 {
        progress("full lists");
        for (name, path) in [
            ("full list, etcd", "/api/v1/configmaps"),
            (
                "full list, rv=0 cache",
                "/api/v1/configmaps?resourceVersion=0",
            ),
        ] {
            let outcome = time_gets(&admin, path, args.full_lists)
                .await
                .map_err(|e| format!("{e:#}"));
            full_lists.push((name.to_string(), outcome));
        }
    }
    let peak_after_lists_kib = memory_kib(server.pid())?.peak;
    // Create throughput, one namespace per concurrency.
    let mut creates = Vec::new();
    for &c in &args.concurrency {
        let namespace = format!("bench-create-{c}");
        create_namespace(&admin, &namespace).await?;
        progress(format!("kube-apiserver creates, {c} clients"));
        let conns = Arc::clone(&conns);
        let data = data.clone();
        let meter = CpuMeter::start(procs);
        let mut phase = run_workers(
            c,
            secs(args.throughput_secs),
            args.max_creates,
            move |w, i| {
                let conn = conns[w % conns.len()].clone();
                let path = format!("/api/v1/namespaces/{namespace}/configmaps");
                let body = configmap(&format!("cm-{i}"), &namespace, &data);
                async move { conn.post(&path, body).await.map(drop) }
            },
        )
        .await;
        phase.cpu = meter.stop();
        progress(format!(
            "  {:.0} creates/s, p99 {} ms, {} errors; {}",
            phase.rate(),
            ms(phase.latencies.p99()),
            phase.errors,
            phase.cpu_summary()
        ));
        creates.push(phase);
    }

    // Latency: get and list in a namespace of `list_size` objects, update of one object
    // per client.
    let mut latency = Vec::new();
    create_namespace(&admin, "bench-read").await?;
    create_many(&conns, "bench-read", "cm-", args.list_size, 16, data).await?;
    create_namespace(&admin, "bench-update").await?;
    let mut owned = Vec::new();
    let update_clients = args.latency_clients.iter().copied().max().unwrap_or(1);
    for w in 0..update_clients {
        let body = configmap(&format!("cm-{w}"), "bench-update", data);
        let reply = admin
            .post("/api/v1/namespaces/bench-update/configmaps", body)
            .await?;
        let obj: serde_json::Value = serde_json::from_slice(&reply)?;
        owned.push(tokio::sync::Mutex::new(obj));
    }
    let owned = Arc::new(owned);
    let duration = secs(args.latency_secs);
    for &c in &args.latency_clients {
        if let Some(pos) = args.concurrency.iter().position(|&x| x == c) {
            latency.push(LatencyRow {
                request: "create (from the throughput run)".into(),
                clients: c,
                phase: creates[pos].clone(),
                target_ms: (c == 16).then_some(MUTATING_P99_MS),
            });
        }
        progress(format!("get latency, {c} clients"));
        let list_size = args.list_size.max(1) as u64;
        let cs = Arc::clone(&conns);
        let phase = run_workers(c, duration, u64::MAX, move |w, i| {
            let conn = cs[w % cs.len()].clone();
            let path = format!(
                "/api/v1/namespaces/bench-read/configmaps/cm-{}",
                i % list_size
            );
            async move { conn.get(&path).await.map(drop) }
        })
        .await;
        latency.push(LatencyRow {
            request: "get".into(),
            clients: c,
            phase,
            target_ms: None,
        });

        progress(format!("list latency, {c} clients"));
        let cs = Arc::clone(&conns);
        let phase = run_workers(c, duration, u64::MAX, move |w, _| {
            let conn = cs[w % cs.len()].clone();
            async move {
                conn.get("/api/v1/namespaces/bench-read/configmaps")
                    .await
                    .map(drop)
            }
        })
        .await;
        latency.push(LatencyRow {
            request: format!("list namespace ({} items)", args.list_size),
            clients: c,
            phase,
            target_ms: None,
        });

        progress(format!("update latency, {c} clients"));
        let cs = Arc::clone(&conns);
        let state = Arc::clone(&owned);
        let phase = run_workers(c, duration, u64::MAX, move |w, i| {
            let conn = cs[w % cs.len()].clone();
            let state = Arc::clone(&state);
            async move {
                let slot = state.get(w).context("no object for this client")?;
                let mut obj = slot.lock().await;
                obj["data"]["seq"] = serde_json::Value::String(i.to_string());
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let path = format!("/api/v1/namespaces/bench-update/configmaps/{name}");
                let reply = conn
                    .put(&path, Bytes::from(serde_json::to_vec(&*obj)?))
                    .await?;
                *obj = serde_json::from_slice(&reply)?;
                Ok(())
            }
        })
        .await;
        latency.push(LatencyRow {
            request: "update".into(),
            clients: c,
            phase,
            target_ms: (c == 16).then_some(MUTATING_P99_MS),
        });
    }

    // Watch fan-out.
    progress(format!(
        "watch fan-out: {} watches, {} updates",
        args.watchers, args.watch_updates
    ));
    create_namespace(&admin, "bench-watch").await?;
    let reply = admin
        .post(
            "/api/v1/namespaces/bench-watch/configmaps",
            configmap("fanout", "bench-watch", data),
        )
        .await?;
    let object: serde_json::Value = serde_json::from_slice(&reply)?;
    let settings = fanout::Settings {
        watchers: args.watchers,
        connections: args.watch_connections,
        updates: args.watch_updates,
        interval: Duration::from_millis(args.watch_interval_ms),
    };
    let (fanout, fanout_error) = match fanout::run(
        server.addr,
        Arc::clone(&tls),
        "bench-watch",
        object,
        &settings,
    )
    .await
    {
        Ok(outcome) => {
            progress(format!(
                "  delivery p99 {} ms",
                ms(outcome.from_completion.p99())
            ));
            (Some(outcome), None)
        }
        Err(e) => {
            progress(format!("  fan-out failed: {e:#}"));
            (None, Some(format!("{e:#}")))
        }
    };

    let peak_kib = memory_kib(server.pid())?.peak;
    Ok(Measured {
        creates,
        latency,
        fanout,
        fanout_error,
        loaded,
        objects,
        peak_kib,
        peak_after_lists_kib,
        full_lists,
    })
}
