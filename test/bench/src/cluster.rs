//! The system under test: a private PKI and a kube-apiserver process on an etcd the
//! benchmark started, as `test/integration` starts its control plane.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::Conn;

/// A CA, the API server's serving certificate and an admin client certificate
/// (`system:masters`) under `dir`.
pub fn write_pki(dir: &Path) -> Result<()> {
    let ca = pki::Ca::generate("kubernetes")?;
    ca.pair().write(dir, "ca")?;
    ca.issue(&pki::CertSpec::server(
        "kube-apiserver",
        &["localhost", "127.0.0.1"],
    ))?
    .write(dir, "apiserver")?;
    ca.issue(&pki::CertSpec::client(
        "kubernetes-admin",
        &["system:masters"],
    ))?
    .write(dir, "admin")?;
    Ok(())
}

/// A running kube-apiserver, killed on drop.
pub struct ApiServer {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ApiServer {
    /// Starts `binary` against etcd at `etcd_endpoint`, with its PKI in `pki_dir` and its
    /// log in `dir/kube-apiserver.log`, and waits until `/readyz` answers 200.
    pub async fn start(
        binary: &Path,
        etcd_endpoint: &str,
        dir: &Path,
        pki_dir: &Path,
        extra_args: &[String],
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self> {
        Self::start_wrapped(
            &[],
            binary,
            etcd_endpoint,
            dir,
            pki_dir,
            extra_args,
            tls,
            Duration::from_secs(60),
        )
        .await
    }

    /// Like [`ApiServer::start`], with the binary run by `wrapper` (e.g. `valgrind
    /// --tool=callgrind`, which keeps the process id) and a longer wait for readiness.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_wrapped(
        wrapper: &[String],
        binary: &Path,
        etcd_endpoint: &str,
        dir: &Path,
        pki_dir: &Path,
        extra_args: &[String],
        tls: Arc<rustls::ClientConfig>,
        ready_timeout: Duration,
    ) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("picking a free port")?
            .port();
        let log = dir.join("kube-apiserver.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .arg(format!("--etcd-servers={etcd_endpoint}"))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .arg(format!(
                "--tls-cert-file={}",
                pki_dir.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki_dir.join("apiserver.key").display()
            ))
            .arg(format!(
                "--client-ca-file={}",
                pki_dir.join("ca.crt").display()
            ))
            .args(extra_args)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_APISERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = ApiServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        server.wait_ready(tls, ready_timeout).await?;
        Ok(server)
    }

    async fn wait_ready(
        &mut self,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "kube-apiserver exited with {status}; log:\n{}",
                    self.log_tail()
                );
            }
            let attempt = async {
                let conn = Conn::connect(self.addr, Arc::clone(&tls)).await?;
                conn.get("/readyz").await
            };
            let last_error = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => "no answer within 2s".to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {timeout:?}: {last_error}; log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's memory from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most ever resident.
    pub peak: u64,
    /// `RssAnon`: resident heap and stacks (the rest is mapped files: the binary, libraries).
    pub anon: u64,
}

pub fn memory_kib(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
        anon: field("RssAnon:")?,
    })
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in USER_HZ, which is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// The process running `program` (the file name of its argv[0]) with `needle` as one of
/// its arguments.
pub fn find_process(program: &str, needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0);
            let argv0 = args.next()?;
            let name = argv0.rsplit(|b| *b == b'/').next()?;
            (name == program.as_bytes() && args.any(|arg| arg == needle.as_bytes())).then_some(pid)
        })
}

/// CPU time the whole machine has been busy (not idle or waiting for I/O), from the
/// first line of `/proc/stat`.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// CPU time used by a few processes between two points, and by everything else on the
/// machine (`others`: builds or tests running beside the benchmark disturb it).
pub struct CpuMeter {
    procs: Vec<(&'static str, u32, Option<Duration>)>,
    machine: Option<Duration>,
}

impl CpuMeter {
    pub fn start(procs: &[(&'static str, u32)]) -> Self {
        CpuMeter {
            procs: procs
                .iter()
                .map(|&(name, pid)| (name, pid, cpu_time(pid)))
                .collect(),
            machine: machine_busy(),
        }
    }

    /// CPU time per process since `start`, then `others`.
    pub fn stop(&self) -> Vec<(&'static str, Duration)> {
        let mut used: Vec<(&'static str, Duration)> = self
            .procs
            .iter()
            .filter_map(|&(name, pid, before)| {
                let used = cpu_time(pid)?.checked_sub(before?)?;
                Some((name, used))
            })
            .collect();
        if let (Some(before), Some(now)) = (self.machine, machine_busy()) {
            let ours: Duration = used.iter().map(|(_, d)| *d).sum();
            let others = now.saturating_sub(before).saturating_sub(ours);
            used.push((OTHERS, others));
        }
        used
    }
}

/// The name [`CpuMeter::stop`] gives everything else on the machine.
pub const OTHERS: &str = "others";
