//! A real control plane for tests: etcd and our kube-apiserver as processes, with a
//! private PKI, and helpers to drive them with the real `kubectl` and with kube-rs.
//!
//! Everything lives in a temporary directory and is torn down on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod containerd;
pub mod node;
pub use containerd::Containerd;

/// The kube-apiserver binary under test: `$KUBE_APISERVER_BIN`, or the one built next to
/// this test binary.
pub fn apiserver_binary() -> PathBuf {
    if let Ok(p) = std::env::var("KUBE_APISERVER_BIN") {
        return PathBuf::from(p);
    }
    binary("kube-apiserver")
}

/// A workspace binary built next to this test binary (`hack/test.sh` builds them all):
/// target/<profile>/deps/<test> → target/<profile>/<name>; or in `$INTEGRATION_BIN_DIR`
/// (for a target dir shared by several checkouts, whose binaries overwrite each other).
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("INTEGRATION_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target dir")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// etcd plus one kube-apiserver.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub etcd: storage::testing::EtcdServer,
    apiserver: Option<Child>,
    pub port: u16,
    pub kubeconfig: PathBuf,
    extra_args: Vec<String>,
    /// Other components started with [`ControlPlane::start_component`], by name.
    components: Vec<(String, Child)>,
}

impl ControlPlane {
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Start with extra kube-apiserver flags.
    pub fn start_with(extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("k8s-rs-it").tempdir()?;
        let etcd = storage::testing::EtcdServer::start().context("starting etcd")?;
        let pki_dir = dir.path().join("pki");
        let ca = pki::Ca::generate("kubernetes")?;
        ca.pair().write(&pki_dir, "ca")?;
        ca.issue(&pki::CertSpec::server(
            "kube-apiserver",
            &["localhost", "127.0.0.1"],
        ))?
        .write(&pki_dir, "apiserver")?;
        let admin = ca.issue(&pki::CertSpec::client(
            "kubernetes-admin",
            &["system:masters"],
        ))?;
        admin.write(&pki_dir, "admin")?;
        // As kubeadm: the API server's client certificate towards kubelets.
        ca.issue(&pki::CertSpec::client(
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins"],
        ))?
        .write(&pki_dir, "apiserver-kubelet-client")?;
        let port = free_port();
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(port, &ca.cert_pem, &admin.cert_pem, &admin.key_pem),
        )?;
        let mut cp = ControlPlane {
            dir,
            etcd,
            apiserver: None,
            port,
            kubeconfig,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            components: Vec::new(),
        };
        cp.start_apiserver()?;
        Ok(cp)
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// (Re)start the API server process and wait until it is ready.
    pub fn start_apiserver(&mut self) -> Result<()> {
        let pki = self.pki_dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("kube-apiserver.log"))?;
        let mut cmd = Command::new(apiserver_binary());
        cmd.arg(format!("--etcd-servers={}", self.etcd.endpoint()))
            .arg(format!("--secure-port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--cert-dir={}",
                self.dir.path().join("certs").display()
            ))
            .arg(format!(
                "--tls-cert-file={}",
                pki.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", pki.join("ca.crt").display()))
            .arg(format!(
                "--kubelet-client-certificate={}",
                pki.join("apiserver-kubelet-client.crt").display()
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                pki.join("apiserver-kubelet-client.key").display()
            ))
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", apiserver_binary().display()))?;
        self.apiserver = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.apiserver.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("kube-apiserver exited with {status}; log:\n{}", self.log());
                }
            }
            let out = self.kubectl(&["get", "--raw", "/readyz"])?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready: {}\nlog:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Start another component of the workspace (`kube-controller-manager`,
    /// `kube-scheduler`, ...) with the admin kubeconfig and `args`; its output goes to
    /// `<name>.log` in the control plane's directory. Stopped on drop.
    pub fn start_component(&mut self, name: &str, args: &[&str]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))?;
        let child = Command::new(binary(name))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", binary(name).display()))?;
        self.components.push((name.to_string(), child));
        Ok(())
    }

    /// A component's log so far.
    pub fn component_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stop a component with SIGTERM and return its exit status.
    pub fn stop_component(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<std::process::ExitStatus> {
        let index = self
            .components
            .iter()
            .position(|(n, _)| n == name)
            .context("no such component")?;
        let (_, child) = self.components.remove(index);
        terminate(child, timeout)
    }

    /// SIGKILL the first-started instance of a component (to simulate losing what it
    /// runs, e.g. a hollow node's nodes) and wait for it to die.
    pub fn kill_component(&mut self, name: &str) -> Result<()> {
        let index = self
            .components
            .iter()
            .position(|(n, _)| n == name)
            .context("no such component")?;
        let (_, mut child) = self.components.remove(index);
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kube-apiserver.log")).unwrap_or_default()
    }

    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.as_ref().map(Child::id)
    }

    /// Send SIGTERM and return the exit status.
    pub fn terminate_apiserver(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.apiserver.take().context("no apiserver running")?;
        terminate(child, timeout)
    }
}

/// SIGTERM, then wait for the exit (SIGKILL after `timeout`).
fn terminate(mut child: Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    {
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("process did not exit within {timeout:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl ControlPlane {
    /// Run the real kubectl against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.kubectl_cmd(args).output().context("running kubectl")
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        cmd
    }

    /// kubectl with input on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<Output> {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {:?} failed: {}{}",
                args,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -` of `yaml`, which must succeed; returns stdout.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], yaml)?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl <args> -o jsonpath=<path>`, which must succeed.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> Result<String> {
        let expr = format!("jsonpath={path}");
        let mut full = args.to_vec();
        full.extend(["-o", &expr]);
        self.kubectl_ok(&full)
    }

    pub async fn client(&self) -> Result<kube::Client> {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for (_, mut child) in self.components.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn b64(pem: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

/// A kubeconfig with embedded certificates.
pub fn kubeconfig_yaml(port: u16, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {}
users:
- name: admin
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: test
  context:
    cluster: test
    user: admin
current-context: test
",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}
