//! A private containerd for tests: its own root, state, socket, CNI configuration
//! (bridge + host-local + portmap + loopback with a bridge name and /24 subnet of its
//! own), with the cluster's standard images (pause, busybox) imported into the `k8s.io`
//! namespace. Needs root.
//!
//! Drop tears everything down: pod sandboxes are removed through the CRI (so CNI DEL
//! releases IPs and iptables/portmap rules), containerd is stopped, leftover runc
//! containers and shims of this instance are killed, mounts under its directories are
//! detached, its bridge is deleted and its temp dir removed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where instance locks live: /run is a tmpfs, so a reboot frees them all, and a crashed
/// test's lock is released by the kernel when its process dies.
const LOCK_DIR: &str = "/run/k8s-rs-cni";
/// Bridge names are `k8srs<N>` and subnets `10.222.<N>.0/24`, N in 0..=254.
const BRIDGE_PREFIX: &str = "k8srs";
const INSTANCES: u32 = 255;

/// A pod started by [`Containerd::run_busybox_pod`].
#[derive(Debug, Clone)]
pub struct TestPod {
    pub sandbox_id: String,
    pub container_id: String,
    pub ip: String,
}

pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    process: Option<Child>,
    instance: u32,
    /// Held for the instance's lifetime: no other fixture takes the same bridge/subnet.
    lock: File,
    registry: Option<RegistryHandle>,
}

/// The local registry's thread; dropping the sender stops it.
struct RegistryHandle {
    addr: std::net::SocketAddr,
    registry: image_builder::registry::Registry,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RegistryHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the images dir on a free loopback port, on a thread of its own (the fixture is
/// usable from sync code).
fn start_registry(images_dir: PathBuf) -> Result<RegistryHandle> {
    let registry = image_builder::registry::Registry::new(images_dir)?;
    let served = registry.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let addr = registry.spawn(([127, 0, 0, 1], 0).into()).await;
            let ok = addr.is_ok();
            let _ = addr_tx.send(addr);
            if ok {
                let _ = stop_rx.await;
            }
        });
    });
    let addr = addr_rx
        .recv()
        .context("registry thread died")?
        .context("starting the local registry")?;
    Ok(RegistryHandle {
        addr,
        registry: served,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The cargo target dir this test binary was built in (target/<profile>/deps/<test>).
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("test binary is not inside a cargo target dir")
}

/// Builds the standard image archives if missing or stale (once per run in practice: the
/// builder locks the images dir), returns their paths.
pub fn standard_images() -> Result<Vec<PathBuf>> {
    let pause = crate::binary("pause");
    if !pause.exists() {
        bail!(
            "{} missing: run `cargo build --bins` before the containerd tests",
            pause.display()
        );
    }
    let dir = image_builder::standard::images_dir(&target_dir()?);
    Ok(image_builder::standard::ensure(&dir, &pause)?)
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a future to completion on a runtime of its own, on a thread of its own: usable
/// from sync code and from inside a test's tokio runtime alike (e.g. in Drop).
fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("CRI thread panicked"))?
    .context("tokio runtime")
}

fn bridge_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Takes the first free instance number: lock free, and neither its bridge nor its subnet
/// in use on the host (a bridge left by a crashed test whose lock is free is ours to
/// delete: only this fixture uses the prefix).
fn allocate_instance() -> Result<(u32, File)> {
    use std::io::Read;
    std::fs::create_dir_all(LOCK_DIR)?;
    let routes = run(Command::new("ip").args(["-4", "route", "show", "table", "all"]))?
        + &run(Command::new("ip").args(["-4", "addr"]))?;
    // Spread parallel test processes over the range so they rarely contend.
    let start = std::process::id() % INSTANCES;
    for i in 0..INSTANCES {
        let n = (start + i) % INSTANCES;
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(format!("{LOCK_DIR}/{n}.lock"))?;
        if lock.try_lock().is_err() {
            continue;
        }
        let bridge = format!("{BRIDGE_PREFIX}{n}");
        // The lock file names the directory of the instance that held it: a test killed
        // before its Drop ran left its containerd, shims, mounts and bridge behind.
        let mut previous = String::new();
        lock.read_to_string(&mut previous)?;
        let previous = PathBuf::from(previous.trim());
        if previous.starts_with(std::env::temp_dir()) && previous.exists() {
            eprintln!(
                "containerd fixture: cleaning up {} left by a killed test",
                previous.display()
            );
            teardown_dir(&previous, &bridge, &format!("10.222.{n}."));
        }
        if bridge_exists(&bridge) {
            let _ = Command::new("ip")
                .args(["link", "delete", &bridge])
                .status();
        }
        let subnet_prefix = format!("10.222.{n}.");
        if routes
            .lines()
            .any(|l| l.contains(&subnet_prefix) && !l.contains(&bridge))
            || bridge_exists(&bridge)
        {
            continue;
        }
        return Ok((n, lock));
    }
    bail!("no free containerd test instance (bridge/subnet) left")
}

/// Force-removes an instance's leftovers by its directory: containerd and its shims
/// (every process naming its socket), runc containers, mounts, bridge, directory.
fn teardown_dir(dir: &Path, bridge: &str, subnet_prefix: &str) {
    let socket = dir.join("containerd.sock").display().to_string();
    for pid in pids_with_arg(&socket) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    kill_runc_containers(&dir.join("state/runc"));
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    // The pods' network namespaces (containerd pins them under /var/run/netns): ours
    // are those with an address in this instance's subnet.
    if let Ok(entries) = std::fs::read_dir("/var/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let addrs = run(Command::new("ip").args(["-n", &name, "-4", "-o", "addr", "show"]))
                .unwrap_or_default();
            if addrs.contains(&format!(" {subnet_prefix}")) {
                let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(n) = bridge.strip_prefix(BRIDGE_PREFIX) {
        remove_masquerade_rules(&format!("k8s-rs-{n}"));
    }
    if bridge_exists(bridge) {
        let _ = Command::new("ip").args(["link", "delete", bridge]).status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the bridge plugin's ipMasq rules of CNI network `network` (a POSTROUTING
/// jump per pod to a `CNI-<hash>` chain, commented `name: "<network>" id: "<sandbox>"`),
/// which only CNI DEL removes otherwise.
fn remove_masquerade_rules(network: &str) {
    let Ok(save) = run(Command::new("iptables-save").args(["-t", "nat"])) else {
        return;
    };
    let marker = format!("--comment \"name: \\\"{network}\\\" ");
    for line in save.lines() {
        let Some(rest) = line.strip_prefix("-A POSTROUTING -s ") else {
            continue;
        };
        if !line.contains(&marker) {
            continue;
        }
        let (Some(source), Some(comment), Some(chain)) = (
            rest.split_whitespace().next(),
            line.split_once("--comment \"")
                .and_then(|(_, c)| c.rsplit_once("\" -j "))
                .map(|(c, _)| c.replace("\\\"", "\"")),
            line.rsplit_once(" -j ").map(|(_, c)| c.trim().to_string()),
        ) else {
            continue;
        };
        let _ = run(Command::new("iptables").args([
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            source,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            &chain,
        ]));
        if chain.starts_with("CNI-") {
            let _ = run(Command::new("iptables").args(["-t", "nat", "-F", &chain]));
            let _ = run(Command::new("iptables").args(["-t", "nat", "-X", &chain]));
        }
    }
}

/// Deletes (killing their processes) the containers runc knows under `runc_root` (one
/// dir per containerd namespace).
fn kill_runc_containers(runc_root: &Path) {
    let Ok(namespaces) = std::fs::read_dir(runc_root) else {
        return;
    };
    for ns in namespaces.flatten() {
        let root = ns.path();
        let Ok(list) = run(Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"]))
        else {
            continue;
        };
        for id in list.lines().filter(|l| !l.is_empty()) {
            let _ = run(Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id]));
        }
    }
}

impl Containerd {
    pub fn start() -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self")?.uid() != 0 {
            bail!("the containerd fixture needs root (containerd, runc, bridges, netns)");
        }
        let images = standard_images()?;
        let (instance, lock) = allocate_instance()?;
        let dir = tempfile::Builder::new().prefix("k8s-rs-ctrd").tempdir()?;
        {
            use std::io::Write;
            let mut lock = &lock;
            lock.set_len(0)?;
            write!(lock, "{}", dir.path().display())?;
        }
        let mut c = Containerd {
            dir: Some(dir),
            process: None,
            instance,
            lock,
            registry: Some(start_registry(image_builder::standard::images_dir(
                &target_dir()?,
            ))?),
        };
        image_builder::registry::write_hosts(&c.path("certs.d"), c.registry_addr())?;
        std::fs::create_dir_all(c.cni_conf_dir())?;
        std::fs::write(
            c.cni_conf_dir().join("10-k8s-rs.conflist"),
            c.cni_conflist(),
        )?;
        std::fs::write(c.path("config.toml"), c.config_toml())?;
        let log = File::create(c.path("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(c.path("config.toml"))
            .arg("--root")
            .arg(c.path("root"))
            .arg("--state")
            .arg(c.path("state"))
            .arg("--address")
            .arg(c.socket())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd (hack/install-deps.sh installs it)")?;
        c.process = Some(child);
        c.wait_ready(Duration::from_secs(30))?;
        for archive in &images {
            c.import(archive)?;
        }
        Ok(c)
    }

    /// The local registry serving the images dir (docker.io and registry.k8s.io pulls of
    /// this containerd go there).
    pub fn registry_addr(&self) -> std::net::SocketAddr {
        self.registry
            .as_ref()
            .map(|r| r.addr)
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
    }

    /// The requests the local registry served ("GET /v2/library/busybox/manifests/1.35").
    pub fn registry_requests(&self) -> Vec<String> {
        self.registry
            .as_ref()
            .map(|r| r.registry.requests())
            .unwrap_or_default()
    }

    /// Imports an OCI archive into the `k8s.io` namespace.
    pub fn import(&self, archive: &Path) -> Result<()> {
        run(Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io", "images", "import"])
            .arg(archive))
        .with_context(|| format!("importing {}", archive.display()))?;
        Ok(())
    }

    /// Builds (once; the first build downloads Debian's nginx packages) and imports
    /// `docker.io/library/nginx:1.22` (and `:latest`).
    pub fn import_nginx(&self) -> Result<()> {
        let dir = image_builder::standard::images_dir(&target_dir()?);
        let archive = image_builder::standard::ensure_nginx(&dir)?;
        self.import(&archive)
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("containerd.sock")
    }

    /// `unix:///...`: the kubelet's `--container-runtime-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.path("net.d")
    }

    /// The pod subnet of this instance (`10.222.N.0/24`).
    pub fn subnet(&self) -> String {
        format!("10.222.{}.0/24", self.instance)
    }

    pub fn bridge(&self) -> String {
        format!("{BRIDGE_PREFIX}{}", self.instance)
    }

    pub fn root_dir(&self) -> PathBuf {
        self.path("root")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// containerd's own log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// A CRI client for this instance.
    pub async fn cri(&self) -> Result<cri::Cri> {
        Ok(cri::connect(&self.endpoint()).await?)
    }

    /// Runs a pod sandbox named `name` with one busybox container `main` running
    /// `sh -c script`, through the CRI (for tests that need a live container).
    pub async fn run_busybox_pod(&self, name: &str, script: &str) -> Result<TestPod> {
        self.run_pod(
            name,
            image_builder::standard::BUSYBOX_IMAGE,
            &["sh", "-c", script],
        )
        .await
    }

    /// Runs a pod sandbox named `name` with one container `main` of `image`, running
    /// `command` (empty: the image's entrypoint and cmd).
    pub async fn run_pod(&self, name: &str, image: &str, command: &[&str]) -> Result<TestPod> {
        use cri::api;
        let mut runtime = self.cri().await?.runtime;
        let logs = self.path("pod-logs").join(name);
        std::fs::create_dir_all(&logs)?;
        let sandbox_config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            linux: Some(api::LinuxPodSandboxConfig::default()),
            ..Default::default()
        };
        let sandbox_id = runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(sandbox_config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| format!("RunPodSandbox:\n{}", self.log()))?
            .into_inner()
            .pod_sandbox_id;
        let ip = runtime
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        let container_id = runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(api::ContainerConfig {
                    metadata: Some(api::ContainerMetadata {
                        name: "main".into(),
                        attempt: 0,
                    }),
                    image: Some(api::ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    log_path: "main/0.log".into(),
                    linux: Some(api::LinuxContainerConfig::default()),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .with_context(|| format!("CreateContainer:\n{}", self.log()))?
            .into_inner()
            .container_id;
        runtime
            .start_container(api::StartContainerRequest {
                container_id: container_id.clone(),
            })
            .await?;
        Ok(TestPod {
            sandbox_id,
            container_id,
            ip,
        })
    }

    fn cni_conflist(&self) -> String {
        let n = self.instance;
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("k8s-rs-{n}"),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge(),
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet(), "gateway": format!("10.222.{n}.1")}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.path("cni-ipam").display().to_string(),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "loopback"}
            ]
        })
        .to_string()
    }

    fn config_toml(&self) -> String {
        format!(
            r#"version = 2
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  # No CAP_SYS_RESOURCE here: runc must not lower oom_score_adj.
  restrict_oom_score_adj = true
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  # runc's state under this instance's state dir, not the host-wide /run/containerd/runc.
  Root = "{runc_root}"
  SystemdCgroup = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri".registry]
  # docker.io and registry.k8s.io resolve to the local registry only: pulls never
  # leave the machine.
  config_path = "{certs}"
"#,
            certs = self.path("certs.d").display(),
            opt = self.path("opt").display(),
            pause = image_builder::standard::PAUSE_IMAGE,
            runc_root = self.runc_root().display(),
            conf_dir = self.cni_conf_dir().display(),
        )
    }

    fn runc_root(&self) -> PathBuf {
        self.path("state/runc")
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let endpoint = self.endpoint();
        loop {
            if let Some(p) = self.process.as_mut() {
                if let Some(status) = p.try_wait()? {
                    bail!("containerd exited ({status}):\n{}", self.log());
                }
            }
            if self.socket().exists() {
                let endpoint = endpoint.clone();
                let version = block_on(async move {
                    let cri = cri::connect(&endpoint).await?;
                    cri.version().await
                })?;
                if version.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd's CRI not ready after {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops and removes every pod sandbox (and so its containers and network) through
    /// the CRI.
    fn remove_sandboxes(&self) -> Result<()> {
        let endpoint = self.endpoint();
        block_on(async move {
            let cri = cri::connect(&endpoint).await?;
            let mut runtime = cri.runtime.clone();
            let sandboxes = runtime
                .list_pod_sandbox(cri::api::ListPodSandboxRequest { filter: None })
                .await?
                .into_inner()
                .items;
            for s in sandboxes {
                let stop = runtime
                    .stop_pod_sandbox(cri::api::StopPodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await;
                if let Err(e) = stop {
                    eprintln!("containerd fixture: stopping sandbox {}: {e}", s.id);
                }
                runtime
                    .remove_pod_sandbox(cri::api::RemovePodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })?
    }

    fn stop_containerd(&mut self) {
        let Some(mut child) = self.process.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Simulates a test killed before Drop: releases the instance's lock and leaves
    /// containerd, its shims, mounts, bridge and directory behind. Returns the directory
    /// and containerd's pid. The next fixture that takes the instance cleans up.
    #[doc(hidden)]
    pub fn abandon(mut self) -> (PathBuf, u32) {
        let dir = self.dir.take().map(|d| d.keep()).unwrap_or_default();
        let pid = self.process.take().map(|p| p.id()).unwrap_or(0);
        let _ = self.lock.unlock();
        // Drop would clean up: skip it (leaks one descriptor and the Child handle).
        std::mem::forget(self);
        (dir, pid)
    }

    /// Processes whose command line names this instance's socket: its shims.
    pub fn shim_pids(&self) -> Vec<i32> {
        let socket = self.socket().display().to_string();
        pids_with_arg(&socket)
    }

    /// Mount points under this instance's directory, deepest first.
    pub fn mounts(&self) -> Vec<PathBuf> {
        mounts_under(self.dir())
    }
}

/// Processes (other than this one) with `arg` in their command line.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Mount points at or under `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes spaces etc. as octal; our paths have none.
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.process.is_some() {
            if let Err(e) = self.remove_sandboxes() {
                eprintln!("containerd fixture: removing sandboxes: {e:#}");
            }
        }
        self.stop_containerd();
        drop(self.registry.take());
        kill_runc_containers(&self.runc_root());
        for pid in self.shim_pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for m in self.mounts() {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("containerd fixture: unmounting {}: {e}", m.display());
            }
        }
        // Normally gone with CNI DEL; a sandbox that failed to be removed leaves them.
        remove_masquerade_rules(&format!("k8s-rs-{}", self.instance));
        let bridge = self.bridge();
        if bridge_exists(&bridge) {
            let _ = Command::new("ip")
                .args(["link", "delete", &bridge])
                .status();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("containerd fixture: removing {}: {e}", path.display());
            }
        }
        let _ = self.lock.set_len(0);
    }
}
