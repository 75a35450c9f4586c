//! One real node for tests: our control plane, a private containerd (the fixture) and our
//! kubelet with a private root dir, log dir, cgroup root, ports and manifest directory.
//! Pods are bound by setting spec.nodeName, or by a scheduler the test starts. Needs root.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cri::api;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::{free_port, Containerd, ControlPlane};

/// The cgroup root of one test's kubelet, removed (in every hierarchy) on drop.
pub struct CgroupRoot(pub String);

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        for dir in kubelet::cm::hierarchy_dirs(&self.0) {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// One node: control plane, containerd, kubelet. Field order is drop order: the kubelet
/// (in `cp`) stops first, then containerd removes the pods, then the cgroups go.
pub struct TestNode {
    pub cp: ControlPlane,
    pub ctrd: Containerd,
    pub cgroups: CgroupRoot,
    pub dir: tempfile::TempDir,
    pub name: String,
    pub client: kube::Client,
    pub healthz_port: u16,
}

impl TestNode {
    pub async fn start() -> TestNode {
        let cgroups = CgroupRoot(format!("/k8s-rs-{:08x}", rand_u32()));
        let ctrd = Containerd::start().unwrap();
        let cp = ControlPlane::start().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("k8s-rs-kubelet")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        let name = format!("kubelet-it-{:06x}", rand_u32() & 0xff_ffff);
        let healthz_port = free_port();
        let config = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             containerRuntimeEndpoint: {endpoint}\nstaticPodPath: {manifests}\n\
             podLogsDir: {logs}\ncgroupRoot: {cgroup}\nport: {port}\nhealthzPort: {healthz}\n\
             readOnlyPort: 0\nsyncFrequency: 10s\nfileCheckFrequency: 5s\n\
             nodeStatusUpdateFrequency: 2s\nclusterDomain: cluster.local\n\
             clusterDNS: [10.96.0.10]\npodCIDR: {cidr}\n",
            endpoint = ctrd.endpoint(),
            manifests = dir.path().join("manifests").display(),
            logs = dir.path().join("logs").display(),
            cgroup = cgroups.0,
            port = free_port(),
            healthz = healthz_port,
            cidr = ctrd.subnet(),
        );
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        let client = cp.client().await.unwrap();
        let mut node = TestNode {
            healthz_port,
            cp,
            ctrd,
            cgroups,
            dir,
            name,
            client,
        };
        node.start_kubelet();
        node
    }

    pub fn start_kubelet(&mut self) {
        let config = format!("--config={}", self.dir.path().join("config.yaml").display());
        let root = format!("--root-dir={}", self.dir.path().join("root").display());
        let name = format!("--hostname-override={}", self.name);
        self.cp
            .start_component("kubelet", &[&config, &root, &name, "--node-ip=127.0.0.1"])
            .unwrap();
    }

    pub fn manifest(&self, file: &str) -> PathBuf {
        self.dir.path().join("manifests").join(file)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod bound to this node.
    pub async fn create_pod(&self, mut pod: serde_json::Value) -> Pod {
        pod["spec"]["nodeName"] = json!(self.name);
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Polls the pod until `f` holds; panics with the pod and the kubelet log otherwise.
    pub async fn wait_pod(&self, name: &str, timeout: Duration, f: impl Fn(&Pod) -> bool) -> Pod {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(p) = self.pods().get(name).await {
                if f(&p) {
                    return p;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "timed out waiting for pod {name}: {}\n--- kubelet log ---\n{}",
            serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap(),
            tail(&self.cp.component_log("kubelet"))
        );
    }

    pub async fn containers_of(&self, uid: &str) -> Vec<api::Container> {
        self.ctrd
            .cri()
            .await
            .unwrap()
            .runtime
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: [(cri::labels::POD_UID.to_string(), uid.to_string())].into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .containers
    }

    pub async fn events_for(&self, pod: &str) -> Vec<(String, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), "default");
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// A plain HTTP/1.0 GET (pods answer on their IPs from the host); None when nothing
/// answers within 2 s.
pub async fn http_get_path(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .ok()
        .flatten()
}
