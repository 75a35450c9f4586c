//! A throwaway etcd for tests (feature `testing`).
//!
//! [`EtcdServer::start`] runs `/usr/bin/etcd` (or `$ETCD_BIN`) on free loopback ports with
//! a data directory in a fresh temporary directory, waits until it reports healthy, and
//! stops it and removes the directory when dropped. etcd's output goes to `etcd.log` in
//! that directory; set `ETCD_TEST_KEEP_DIR=1` to keep the directory for debugging.
//!
//! etcd is started through a small `sh` watchdog whose stdin is a pipe from the test
//! process: when the test process exits for any reason, even without running destructors
//! (a server kept in a `static`, a panic with `panic = "abort"`, a SIGKILL), the pipe
//! closes and the watchdog stops etcd and removes the directory, so no etcd outlives its
//! test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a test etcd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    #[error("cannot prepare the etcd test directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("etcd did not become healthy within {timeout:?}; last lines of {log}:\n{tail}")]
    NotHealthy {
        timeout: Duration,
        log: String,
        tail: String,
    },
}

/// A running etcd, stopped and cleaned up on drop. See the [module docs](self).
pub struct EtcdServer {
    watchdog: Child,
    /// Closing it tells the watchdog to stop etcd.
    stdin: Option<ChildStdin>,
    etcd_pid: Option<u32>,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    client_addr: SocketAddr,
}

const WATCHDOG: &str = r#"
dir="$1"; shift
"$@" >"$dir/etcd.log" 2>&1 </dev/null &
etcd=$!
echo "$etcd"
# A signal to the whole process group (Ctrl-C, `timeout`) stops etcd but not the cleanup.
trap '' INT TERM HUP
exec 3<&0
# Our stdin is a pipe from the test process; it reaches end of file when the EtcdServer is
# dropped or the test process dies, whichever comes first.
{ cat <&3 >/dev/null; kill "$etcd" 2>/dev/null; } &
wait "$etcd"
echo "$?" >"$dir/etcd.exit"
wait
if [ -z "$ETCD_TEST_KEEP_DIR" ]; then rm -rf "$dir"; fi
"#;

impl EtcdServer {
    /// Starts an etcd tuned for tests (fast elections, so leases of one second work).
    /// Blocks until etcd is healthy (about a second).
    pub fn start() -> Result<Self, EtcdServerError> {
        Self::start_with_args(&[])
    }

    /// [`EtcdServer::start`] on a blocking thread, for async code that should not stall
    /// its runtime for the second or so etcd takes to start.
    pub async fn start_async() -> Result<Self, EtcdServerError> {
        tokio::task::spawn_blocking(Self::start)
            .await
            .map_err(|e| EtcdServerError::Io(std::io::Error::other(e)))?
    }

    /// Starts an etcd with extra command-line arguments, e.g.
    /// `--experimental-watch-progress-notify-interval=1s`.
    pub fn start_with_args(extra: &[&str]) -> Result<Self, EtcdServerError> {
        // The ports are free when we pick them but another process may take them before
        // etcd binds them; then etcd exits and we try again with new ones.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(extra) {
                Ok(server) => return Ok(server),
                Err(e) if attempt < 5 => {
                    tracing::warn!(attempt, error = %e, "test etcd did not start; retrying")
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_start(extra: &[&str]) -> Result<Self, EtcdServerError> {
        let dir = tempfile::Builder::new().prefix("etcd-test-").tempdir()?;
        let dir_path = dir.path().to_path_buf();
        let client_addr = free_port()?;
        let peer_addr = free_port()?;
        let client_url = format!("http://{client_addr}");
        let peer_url = format!("http://{peer_addr}");
        let binary = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string());
        let mut args: Vec<String> = vec![
            binary,
            "--name=test".into(),
            format!("--data-dir={}", dir_path.join("data").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=test={peer_url}"),
            "--initial-cluster-state=new".into(),
            // Fast elections; also lowers etcd's minimum lease TTL to one second.
            "--heartbeat-interval=10".into(),
            "--election-timeout=100".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));

        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&dir_path)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = watchdog.stdin.take();
        let etcd_pid = watchdog.stdout.take().and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).ok()?;
            line.trim().parse().ok()
        });
        let mut server = EtcdServer {
            watchdog,
            stdin,
            etcd_pid,
            dir: Some(dir),
            dir_path,
            client_addr,
        };
        server.wait_healthy(Duration::from_secs(20))?;
        tracing::debug!(endpoint = %server.endpoint(), dir = %server.dir_path.display(), "test etcd is up");
        Ok(server)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client_addr)
    }

    /// The client address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The temporary directory holding `data/` and `etcd.log`.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Freeze etcd (SIGSTOP): connections stay open but nothing answers, as when etcd
    /// hangs or is cut off. [`EtcdServer::resume`] undoes it.
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal("-STOP")
    }

    /// Let a paused etcd run again (SIGCONT).
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> std::io::Result<()> {
        let pid = self
            .etcd_pid
            .ok_or_else(|| std::io::Error::other("etcd pid unknown"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill {signal} {pid} failed: {status}"
            )))
        }
    }

    /// etcd's log so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir_path.join("etcd.log")).unwrap_or_default()
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), EtcdServerError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.dir_path.join("etcd.exit").exists() {
                break;
            }
            if health(self.client_addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.dir_path.join("etcd.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        Err(EtcdServerError::NotHealthy {
            timeout,
            log: log.display().to_string(),
            tail,
        })
    }
}

/// Asks etcd's `/health` endpoint over plain HTTP/1.0.
fn health(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let ok_status = response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200");
    ok_status && response.contains("\"health\":\"true\"")
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // A paused etcd would not act on the watchdog's SIGTERM.
        let _ = self.resume();
        // End of file on the watchdog's stdin: it stops etcd and waits for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    tracing::warn!("test etcd did not stop in time; killing it");
                    if let Some(pid) = self.etcd_pid {
                        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                    }
                    let _ = self.watchdog.kill();
                    let _ = self.watchdog.wait();
                    break;
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var_os("ETCD_TEST_KEEP_DIR").is_some() {
                let kept = dir.keep();
                eprintln!("kept the test etcd directory {}", kept.display());
            }
        }
    }
}
