//! The CRI side of a pod sync (upstream's kuberuntime manager): read what the runtime has
//! for a pod, compute what to do (sandbox, init containers in order, containers, restarts
//! with back-off, replacements on spec change), do it, and kill or remove pods.
//!
//! Everything is read back from the runtime on every sync (labels and annotations carry
//! the pod, the container's spec hash and restart count), so a restarted kubelet adopts
//! the containers it finds instead of restarting them.

pub mod backoff;
pub mod container;
pub mod env;
pub mod hash;
pub mod hooks;
pub mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::events::EventSink;
use cri::api::{self, ContainerState, PodSandboxState};
use cri::labels;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, Service};
use kube::api::{Api, ListParams};
use parking_lot::Mutex;

use crate::cm;
use crate::images::ImageManager;
use crate::run::Context;
use crate::volumes::VolumeManager;
use backoff::{Backoff, Decision};

/// upstream's minimumGracePeriodInSeconds.
const MIN_GRACE_SECONDS: i64 = 2;
/// Dead instances kept per container name (the latest is `lastState` and `logs --previous`).
const KEEP_DEAD_PER_CONTAINER: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Cri(#[from] tonic::Status),
}

/// One container as the runtime reports it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub hash: String,
    pub restart_count: i32,
    pub annotations: HashMap<String, String>,
    pub mounts: Vec<api::Mount>,
    pub log_path: String,
}

impl ContainerInfo {
    pub fn running(&self) -> bool {
        self.state == ContainerState::ContainerRunning
    }
    pub fn exited(&self) -> bool {
        self.state == ContainerState::ContainerExited
    }
}

#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    pub ips: Vec<String>,
    pub host_network: bool,
}

/// What the runtime has for one pod, newest first.
#[derive(Debug, Clone, Default)]
pub struct RuntimePod {
    pub sandboxes: Vec<SandboxInfo>,
    pub containers: Vec<ContainerInfo>,
}

impl RuntimePod {
    pub fn current_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.first()
    }

    /// The newest instance of container `name` (any sandbox).
    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The instance before the newest one of `name`.
    pub fn previous(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }

    /// The newest instance of `name` in the current sandbox.
    pub fn latest_in_sandbox(&self, name: &str) -> Option<&ContainerInfo> {
        let sandbox = self.current_sandbox()?;
        self.containers
            .iter()
            .find(|c| c.name == name && c.sandbox_id == sandbox.id)
    }

    pub fn any_running(&self) -> bool {
        self.containers.iter().any(ContainerInfo::running) || self.sandboxes.iter().any(|s| s.ready)
    }
}

/// Why a container is not running, kept between syncs (upstream's reasonCache).
pub type Reasons = HashMap<String, (String, String)>;

/// Per-pod state the worker keeps between syncs.
#[derive(Default)]
pub struct PodSyncState {
    pub reasons: Reasons,
    /// Containers whose liveness or startup probe failed: (name, the prober's reason).
    pub restart_requested: Vec<(String, String)>,
}

/// What a sync asks of the worker.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// Sync again after this long (back-off expiry, retry after an error).
    pub retry_after: Option<Duration>,
}

impl SyncOutcome {
    fn retry(&mut self, d: Duration) {
        self.retry_after = Some(self.retry_after.map_or(d, |r| r.min(d)));
    }
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Should an exited container be started again under the pod's restartPolicy?
pub fn should_restart(pod: &Pod, exit_code: i32) -> bool {
    match restart_policy(pod) {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

pub fn pod_ref(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// `spec.containers{name}` / `spec.initContainers{name}`.
fn container_ref(pod: &Pod, name: &str) -> ObjectReference {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|ic| ic.iter().any(|c| c.name == name));
    let path = if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    };
    pod_ref(pod, Some(path))
}

/// `<name>_<namespace>(<uid>)`, upstream's format.PodDesc.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

pub struct RuntimeManager {
    pub ctx: Context,
    pub images: ImageManager,
    pub volumes: VolumeManager,
    pub events: EventSink,
    backoff: Mutex<Backoff>,
    pub memory_capacity: i64,
    pub allocatable: BTreeMap<String, i64>,
    host_resolv: String,
    host_hosts: String,
}

impl RuntimeManager {
    pub fn new(ctx: Context, events: EventSink) -> Arc<Self> {
        let machine = crate::node::machine::Machine::probe(&ctx.root_dir);
        let allocatable = BTreeMap::from([
            ("cpu".to_string(), machine.cpus as i64),
            ("memory".to_string(), machine.memory_bytes),
            (
                "ephemeral-storage".to_string(),
                machine.ephemeral_storage_bytes,
            ),
        ]);
        Arc::new(RuntimeManager {
            images: ImageManager::new(ctx.cri.clone()),
            volumes: VolumeManager::new(
                ctx.root_dir.clone(),
                ctx.client.clone(),
                ctx.node_name.clone(),
            ),
            events,
            backoff: Mutex::new(Backoff::default()),
            memory_capacity: machine.memory_bytes,
            allocatable,
            host_resolv: std::fs::read_to_string(&ctx.config.resolv_conf).unwrap_or_default(),
            host_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            ctx,
        })
    }

    fn runtime(
        &self,
    ) -> api::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel> {
        self.ctx.cri.runtime.clone()
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.ctx.root_dir.join("pods").join(uid)
    }

    /// Everything the runtime has for pod `uid`.
    pub async fn inspect(&self, uid: &str) -> Result<RuntimePod, RuntimeError> {
        let selector = HashMap::from([(labels::POD_UID.to_string(), uid.to_string())]);
        let mut rt = self.runtime();
        let sandboxes = rt
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(api::PodSandboxFilter {
                    label_selector: selector.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .items;
        let containers = rt
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers;
        let mut out = RuntimePod::default();
        for s in sandboxes {
            let ready = s.state == PodSandboxState::SandboxReady as i32;
            let mut info = SandboxInfo {
                id: s.id.clone(),
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
                ready,
                created_at: s.created_at,
                ips: Vec::new(),
                host_network: false,
            };
            if ready {
                if let Ok(st) = rt
                    .pod_sandbox_status(api::PodSandboxStatusRequest {
                        pod_sandbox_id: s.id.clone(),
                        verbose: false,
                    })
                    .await
                {
                    if let Some(st) = st.into_inner().status {
                        if let Some(net) = &st.network {
                            if !net.ip.is_empty() {
                                info.ips.push(net.ip.clone());
                            }
                            info.ips
                                .extend(net.additional_ips.iter().map(|p| p.ip.clone()));
                        }
                        info.host_network = st
                            .linux
                            .and_then(|l| l.namespaces)
                            .and_then(|n| n.options)
                            .is_some_and(|o| o.network == api::NamespaceMode::Node as i32);
                    }
                }
            }
            out.sandboxes.push(info);
        }
        out.sandboxes
            .sort_by_key(|x| std::cmp::Reverse(x.created_at));
        for c in containers {
            let status = match rt
                .container_status(api::ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await
            {
                Ok(s) => s.into_inner().status,
                // Removed between list and status.
                Err(e) if e.code() == tonic::Code::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(s) = status else { continue };
            let name = c
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            out.containers.push(ContainerInfo {
                id: c.id.clone(),
                sandbox_id: c.pod_sandbox_id.clone(),
                name,
                state: ContainerState::try_from(s.state)
                    .unwrap_or(ContainerState::ContainerUnknown),
                created_at: s.created_at,
                started_at: s.started_at,
                finished_at: s.finished_at,
                exit_code: s.exit_code,
                reason: s.reason.clone(),
                message: s.message.clone(),
                image: s
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
                image_ref: s.image_ref.clone(),
                hash: s
                    .annotations
                    .get(labels::CONTAINER_HASH)
                    .cloned()
                    .unwrap_or_default(),
                restart_count: s
                    .annotations
                    .get(labels::CONTAINER_RESTART_COUNT)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                annotations: s.annotations.clone(),
                mounts: s.mounts.clone(),
                log_path: s.log_path.clone(),
            });
        }
        out.containers
            .sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(out)
    }

    fn cgroup_parent(&self, pod: &Pod) -> String {
        if self.ctx.config.cgroups_per_qos {
            cm::pod_cgroup(&self.ctx.config.cgroup_root, pod)
        } else {
            self.ctx.config.cgroup_root.clone()
        }
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> api::PodSandboxConfig {
        sandbox::sandbox_config(&sandbox::SandboxInputs {
            pod,
            attempt,
            config: &self.ctx.config,
            host_resolv: &self.host_resolv,
            log_directory: sandbox::log_directory(&self.ctx.config.pod_logs_dir, pod),
            cgroup_parent: self.cgroup_parent(pod),
        })
    }

    /// Brings the runtime in line with `pod`. `rp` is what [`Self::inspect`] returned.
    pub async fn sync_pod(
        &self,
        pod: &Pod,
        rp: &RuntimePod,
        state: &mut PodSyncState,
    ) -> SyncOutcome {
        let mut out = SyncOutcome::default();
        let Some(spec) = pod.spec.clone() else {
            return out;
        };
        let host_net = sandbox::host_network(pod);
        let current = rp.current_sandbox();
        let need_sandbox = current.is_none_or(|s| !s.ready || s.host_network != host_net);
        let mut rp = rp.clone();
        if need_sandbox {
            let ran_before = !rp.containers.is_empty();
            if current.is_some() && restart_policy(pod) == "Never" && ran_before {
                // upstream: a Never pod whose sandbox died is not started again.
                self.kill_containers(Some(pod), &rp, None).await;
                return out;
            }
            if let Some(old) = current {
                if old.ready || rp.containers.iter().any(ContainerInfo::running) {
                    self.events.normal(
                        pod_ref(pod, None),
                        "SandboxChanged",
                        "SyncPod",
                        "Pod sandbox changed, it will be killed and re-created.".into(),
                    );
                    self.kill_containers(Some(pod), &rp, None).await;
                }
                for s in rp.sandboxes.iter().filter(|s| s.ready) {
                    let _ = self
                        .runtime()
                        .stop_pod_sandbox(api::StopPodSandboxRequest {
                            pod_sandbox_id: s.id.clone(),
                        })
                        .await;
                }
            }
            if let Err(e) = self.volumes.setup(pod).await {
                self.failed_mount(pod, &e.to_string());
                out.retry(Duration::from_secs(2));
                return out;
            }
            let attempt = current.map_or(0, |s| s.attempt + 1);
            let config = self.sandbox_config(pod, attempt);
            let created = self
                .runtime()
                .run_pod_sandbox(api::RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                })
                .await;
            if let Err(e) = created {
                self.events.warning(
                    pod_ref(pod, None),
                    "FailedCreatePodSandBox",
                    "SyncPod",
                    format!("Failed to create pod sandbox: {}", e.message()),
                );
                out.retry(Duration::from_secs(5));
                return out;
            }
            rp = match self
                .inspect(pod.metadata.uid.as_deref().unwrap_or_default())
                .await
            {
                Ok(rp) => rp,
                Err(e) => {
                    tracing::warn!(pod = %pod_desc(pod), error = %e, "inspecting the new sandbox");
                    out.retry(Duration::from_secs(1));
                    return out;
                }
            };
        } else if let Err(e) = self.volumes.setup(pod).await {
            // Keeps configMap/secret contents current.
            self.failed_mount(pod, &e.to_string());
            out.retry(Duration::from_secs(2));
            return out;
        }
        let Some(sandbox) = rp.current_sandbox().cloned() else {
            return out;
        };
        let pod_ips = if host_net {
            vec![self.ctx.node_ip.to_string()]
        } else {
            sandbox.ips.clone()
        };

        // Init containers, one at a time, each to a successful exit.
        for ic in spec.init_containers.iter().flatten() {
            match rp.latest_in_sandbox(&ic.name) {
                None => {
                    let restarts = rp.latest(&ic.name).map_or(0, |c| c.restart_count + 1);
                    self.start_container(pod, ic, &sandbox, &pod_ips, restarts, state, &mut out)
                        .await;
                    return out;
                }
                Some(c) if c.exited() && c.exit_code == 0 => continue,
                Some(c) if c.exited() => {
                    if restart_policy(pod) == "Never" {
                        return out;
                    }
                    let c = c.clone();
                    self.restart_with_backoff(pod, ic, &c, &sandbox, &pod_ips, state, &mut out)
                        .await;
                    return out;
                }
                Some(c) if c.state == ContainerState::ContainerCreated => {
                    self.remove_container(&c.id).await;
                    out.retry(Duration::from_millis(100));
                    return out;
                }
                Some(_) => return out,
            }
        }

        let restart_requested = std::mem::take(&mut state.restart_requested);
        for c in &spec.containers {
            let current_hash = hash::container_hash(c);
            match rp.latest_in_sandbox(&c.name).cloned() {
                Some(info) if info.running() => {
                    let changed = !info.hash.is_empty() && info.hash != current_hash;
                    let unhealthy = restart_requested.iter().find(|(n, _)| *n == c.name);
                    if changed {
                        let why =
                            format!("Container {} definition changed, will be restarted", c.name);
                        self.kill_container(Some(pod), &info, None, Some(why)).await;
                        self.start_container(
                            pod,
                            c,
                            &sandbox,
                            &pod_ips,
                            info.restart_count + 1,
                            state,
                            &mut out,
                        )
                        .await;
                    } else if let Some((_, reason)) = unhealthy {
                        // Killed now; the next sync restarts it (with back-off) if the
                        // restartPolicy allows, as upstream.
                        let why = format!("{reason}, will be restarted");
                        self.kill_container(Some(pod), &info, None, Some(why)).await;
                        out.retry(Duration::from_millis(100));
                    }
                }
                Some(info) if info.exited() => {
                    if should_restart(pod, info.exit_code) {
                        self.restart_with_backoff(
                            pod, c, &info, &sandbox, &pod_ips, state, &mut out,
                        )
                        .await;
                    }
                }
                Some(info) if info.state == ContainerState::ContainerCreated => {
                    // Created but never started (e.g. the kubelet stopped in between).
                    self.remove_container(&info.id).await;
                    out.retry(Duration::from_millis(100));
                }
                Some(_) => {}
                None => {
                    let previous = rp.latest(&c.name);
                    // After a sandbox change, a container that already succeeded under
                    // OnFailure (or Never) stays done.
                    if let Some(p) = previous {
                        if p.exited() && !should_restart(pod, p.exit_code) {
                            continue;
                        }
                    }
                    let restarts = previous.map_or(0, |p| p.restart_count + 1);
                    self.start_container(pod, c, &sandbox, &pod_ips, restarts, state, &mut out)
                        .await;
                }
            }
        }
        self.gc_dead(&rp).await;
        out
    }

    fn failed_mount(&self, pod: &Pod, message: &str) {
        self.events.warning(
            pod_ref(pod, None),
            "FailedMount",
            "SyncPod",
            // VolumeError's Display is already upstream's whole event message.
            message.to_string(),
        );
    }

    #[allow(clippy::too_many_arguments)]
    async fn restart_with_backoff(
        &self,
        pod: &Pod,
        c: &Container,
        info: &ContainerInfo,
        sandbox: &SandboxInfo,
        pod_ips: &[String],
        state: &mut PodSyncState,
        out: &mut SyncOutcome,
    ) {
        let key = format!(
            "{}/{}",
            pod.metadata.uid.as_deref().unwrap_or_default(),
            c.name
        );
        let decision = self
            .backoff
            .lock()
            .check(&key, info.started_at, info.finished_at, now_ns());
        match decision {
            Decision::Wait { remaining, delay } => {
                let desc = pod_desc(pod);
                state.reasons.insert(
                    c.name.clone(),
                    (
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {} restarting failed container={} pod={desc}",
                            go_duration(delay),
                            c.name
                        ),
                    ),
                );
                self.events.warning(
                    container_ref(pod, &c.name),
                    "BackOff",
                    "SyncPod",
                    format!(
                        "Back-off restarting failed container {} in pod {desc}",
                        c.name
                    ),
                );
                out.retry(remaining + Duration::from_millis(50));
            }
            Decision::Restart => {
                self.start_container(pod, c, sandbox, pod_ips, info.restart_count + 1, state, out)
                    .await;
            }
        }
    }

    /// Pulls (or finds) the image, creates and starts the container, runs postStart.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        sandbox: &SandboxInfo,
        pod_ips: &[String],
        restart_count: i32,
        state: &mut PodSyncState,
        out: &mut SyncOutcome,
    ) {
        let cref = container_ref(pod, &c.name);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (image, image_events) = self.images.ensure_image(&uid, c).await;
        for e in image_events {
            match e.type_ {
                crate::images::EventType::Normal => {
                    self.events
                        .normal(cref.clone(), e.reason, "Pulling", e.message)
                }
                crate::images::EventType::Warning => {
                    self.events
                        .warning(cref.clone(), e.reason, "Pulling", e.message)
                }
            }
        }
        let image_ref = match image {
            Ok(r) => r,
            Err(e) => {
                state
                    .reasons
                    .insert(c.name.clone(), (e.reason().into(), e.waiting_message()));
                out.retry(Duration::from_secs(1));
                return;
            }
        };
        let fail = |state: &mut PodSyncState, reason: &str, message: String| {
            state
                .reasons
                .insert(c.name.clone(), (reason.to_string(), message.clone()));
            self.events.warning(
                container_ref(pod, &c.name),
                "Failed",
                "SyncPod",
                format!("Error: {message}"),
            );
        };
        let pod_volumes = match self.volumes.setup(pod).await {
            Ok(v) => v,
            Err(e) => {
                self.failed_mount(pod, &e.to_string());
                out.retry(Duration::from_secs(2));
                return;
            }
        };
        let mut mounts = match pod_volumes.container_mounts(c) {
            Ok(m) => m,
            Err(e) => {
                fail(state, "CreateContainerConfigError", e.to_string());
                out.retry(Duration::from_secs(2));
                return;
            }
        };
        match self.extra_mounts(pod, c, pod_ips).await {
            Ok(extra) => mounts.extend(extra),
            Err(e) => {
                fail(state, "CreateContainerConfigError", e.to_string());
                out.retry(Duration::from_secs(2));
                return;
            }
        }
        let services = self.service_env(pod).await;
        let env_input = env::EnvInputs {
            pod,
            container: c,
            host_ip: self.ctx.node_ip.to_string(),
            pod_ips: pod_ips.to_vec(),
            service_env: services,
            allocatable: self.allocatable.clone(),
        };
        let env = match env::make_env(&self.ctx.client, &env_input).await {
            Ok(env) => env,
            Err(e) => {
                fail(state, "CreateContainerConfigError", e.to_string());
                out.retry(Duration::from_secs(2));
                return;
            }
        };
        let config = container::container_config(&container::ContainerInputs {
            pod,
            container: c,
            image_ref,
            restart_count: u32::try_from(restart_count).unwrap_or(0),
            env,
            mounts,
            resources: cm::container_resources(pod, c, self.memory_capacity),
        });
        let sandbox_config = self.sandbox_config(pod, sandbox.attempt);
        let created = self
            .runtime()
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                fail(state, "CreateContainerError", e.message().to_string());
                out.retry(Duration::from_secs(5));
                return;
            }
        };
        self.events.normal(
            container_ref(pod, &c.name),
            "Created",
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = self
            .runtime()
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            fail(state, "RunContainerError", e.message().to_string());
            out.retry(Duration::from_secs(1));
            return;
        }
        self.events.normal(
            container_ref(pod, &c.name),
            "Started",
            "Started",
            format!("Started container {}", c.name),
        );
        state.reasons.remove(&c.name);
        if let Some(post_start) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let grace = Duration::from_secs(container::termination_grace_period(pod).max(0) as u64);
            let pod_ip = pod_ips.first().cloned().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if let Err(msg) =
                hooks::run(&self.ctx.cri, &id, c, &name, &pod_ip, post_start, grace).await
            {
                self.events.warning(
                    container_ref(pod, &c.name),
                    "FailedPostStartHook",
                    "SyncPod",
                    msg.clone(),
                );
                let _ = self
                    .runtime()
                    .stop_container(api::StopContainerRequest {
                        container_id: id,
                        timeout: 0,
                    })
                    .await;
                state
                    .reasons
                    .insert(c.name.clone(), ("PostStartHookError".into(), msg));
            }
        }
    }

    /// `/etc/hosts` (kubelet managed) and the termination message file.
    async fn extra_mounts(
        &self,
        pod: &Pod,
        c: &Container,
        pod_ips: &[String],
    ) -> std::io::Result<Vec<api::Mount>> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = self.pod_dir(&uid);
        tokio::fs::create_dir_all(&dir).await?;
        let mut mounts = Vec::new();
        let mounts_etc_hosts = !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts");
        if mounts_etc_hosts {
            let hosts = dir.join("etc-hosts");
            let content = sandbox::hosts_file(
                pod,
                pod_ips,
                &self.ctx.config.cluster_domain,
                &self.host_hosts,
            );
            tokio::fs::write(&hosts, content).await?;
            mounts.push(api::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let path = container::termination_message_path(c);
        let cdir = dir.join("containers").join(&c.name);
        tokio::fs::create_dir_all(&cdir).await?;
        let file = cdir.join(format!("{:08x}", rand::random::<u32>()));
        tokio::fs::write(&file, b"").await?;
        mounts.push(api::Mount {
            container_path: path,
            host_path: file.to_string_lossy().into_owned(),
            ..Default::default()
        });
        Ok(mounts)
    }

    /// Service links for the pod's namespace plus the `kubernetes` service (upstream's
    /// getServiceEnvVarMap with enableServiceLinks).
    async fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut services = Vec::new();
        if links {
            if let Ok(list) = Api::<Service>::namespaced(self.ctx.client.clone(), &ns)
                .list(&ListParams::default())
                .await
            {
                services.extend(list.items.into_iter().filter(|s| {
                    !(ns == "default" && s.metadata.name.as_deref() == Some("kubernetes"))
                }));
            }
        }
        if let Ok(Some(k)) = Api::<Service>::namespaced(self.ctx.client.clone(), "default")
            .get_opt("kubernetes")
            .await
        {
            services.push(k);
        }
        env::service_env(&services)
    }

    async fn remove_container(&self, id: &str) {
        if let Err(e) = self
            .runtime()
            .remove_container(api::RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
        {
            tracing::debug!(container = id, error = %e.message(), "remove container");
        }
    }

    /// Stops one container: preStop hook, then StopContainer with what remains of the
    /// grace period (at least 2 s, as upstream).
    pub async fn kill_container(
        &self,
        pod: Option<&Pod>,
        info: &ContainerInfo,
        grace_override: Option<i64>,
        message: Option<String>,
    ) {
        let grace = grace_override
            .or_else(|| pod.and_then(|p| p.metadata.deletion_grace_period_seconds))
            .or_else(|| pod.map(container::termination_grace_period))
            .or_else(|| {
                info.annotations
                    .get(labels::POD_TERMINATION_GRACE_PERIOD)
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(30)
            .max(0);
        let start = Instant::now();
        let spec_container = pod.and_then(|p| {
            p.spec.as_ref().and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|c| c.name == info.name)
                    .cloned()
            })
        });
        if let Some(p) = pod {
            let note = message.unwrap_or_else(|| format!("Stopping container {}", info.name));
            self.events
                .normal(container_ref(p, &info.name), "Killing", "Killing", note);
        }
        if info.running() && grace > 0 {
            let pre_stop = spec_container
                .as_ref()
                .and_then(|c| c.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.clone())
                .or_else(|| {
                    info.annotations
                        .get(labels::CONTAINER_PRESTOP_HANDLER)
                        .and_then(|j| serde_json::from_str(j).ok())
                });
            if let Some(handler) = pre_stop {
                let c = spec_container.clone().unwrap_or(Container {
                    name: info.name.clone(),
                    ..Default::default()
                });
                let pod_name = pod
                    .and_then(|p| p.metadata.name.clone())
                    .unwrap_or_default();
                let pod_ip = pod
                    .and_then(|p| p.status.as_ref())
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default();
                let budget = Duration::from_secs(grace as u64);
                if let Err(msg) = hooks::run(
                    &self.ctx.cri,
                    &info.id,
                    &c,
                    &pod_name,
                    &pod_ip,
                    &handler,
                    budget,
                )
                .await
                {
                    if let Some(p) = pod {
                        self.events.warning(
                            container_ref(p, &info.name),
                            "FailedPreStopHook",
                            "Killing",
                            msg,
                        );
                    }
                }
            }
        }
        let remaining = (grace - start.elapsed().as_secs() as i64).max(if grace > 0 {
            MIN_GRACE_SECONDS
        } else {
            0
        });
        if info.running() || info.state == ContainerState::ContainerCreated {
            if let Err(e) = self
                .runtime()
                .stop_container(api::StopContainerRequest {
                    container_id: info.id.clone(),
                    timeout: remaining,
                })
                .await
            {
                tracing::warn!(container = %info.id, error = %e.message(), "stop container");
            }
        }
    }

    /// Stops every running container of the pod, in parallel.
    pub async fn kill_containers(&self, pod: Option<&Pod>, rp: &RuntimePod, grace: Option<i64>) {
        let running: Vec<_> = rp
            .containers
            .iter()
            .filter(|c| c.running() || c.state == ContainerState::ContainerCreated)
            .collect();
        futures::future::join_all(
            running
                .into_iter()
                .map(|c| self.kill_container(pod, c, grace, None)),
        )
        .await;
    }

    /// Kills the containers, then stops the sandboxes (network torn down).
    pub async fn kill_pod(&self, pod: Option<&Pod>, rp: &RuntimePod, grace: Option<i64>) {
        self.kill_containers(pod, rp, grace).await;
        for s in rp.sandboxes.iter().filter(|s| s.ready) {
            if let Err(e) = self
                .runtime()
                .stop_pod_sandbox(api::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox = %s.id, error = %e.message(), "stop sandbox");
            }
        }
    }

    /// Removes every container and sandbox of a killed pod, its volumes, files and cgroup.
    pub async fn remove_pod(&self, uid: &str, rp: &RuntimePod, cgroup: Option<String>) {
        for c in &rp.containers {
            self.remove_container(&c.id).await;
        }
        for s in &rp.sandboxes {
            if let Err(e) = self
                .runtime()
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox = %s.id, error = %e.message(), "remove sandbox");
            }
        }
        if let Err(e) = self.volumes.teardown(uid).await {
            tracing::warn!(pod = uid, error = %e, "tearing down volumes");
        }
        let _ = tokio::fs::remove_dir_all(self.pod_dir(uid)).await;
        // Logs go with the pod: `<podLogsDir>/<namespace>_<name>_<uid>`.
        let suffix = format!("_{uid}");
        if let Ok(mut entries) = tokio::fs::read_dir(&self.ctx.config.pod_logs_dir).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = tokio::fs::remove_dir_all(e.path()).await;
                }
            }
        }
        match cgroup {
            Some(cg) => cm::remove_pod_cgroup(&cg),
            // An orphan: its QoS class is unknown, try each.
            None if self.ctx.config.cgroups_per_qos => {
                let root = self.ctx.config.cgroup_root.trim_end_matches('/');
                for qos in ["", "/burstable", "/besteffort"] {
                    cm::remove_pod_cgroup(&format!("{root}/kubepods{qos}/pod{uid}"));
                }
            }
            None => {}
        }
        self.backoff.lock().forget_prefix(&format!("{uid}/"));
    }

    pub fn pod_cgroup(&self, pod: &Pod) -> Option<String> {
        self.ctx
            .config
            .cgroups_per_qos
            .then(|| self.cgroup_parent(pod))
    }

    /// Removes dead instances beyond the newest per container name, and dead sandboxes
    /// other than the current one once their containers are gone (upstream's container GC
    /// with MaxPerPodContainer = 1).
    async fn gc_dead(&self, rp: &RuntimePod) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for c in rp.containers.iter().filter(|c| c.exited()) {
            let n = seen.entry(c.name.as_str()).or_default();
            *n += 1;
            if *n > KEEP_DEAD_PER_CONTAINER {
                self.remove_container(&c.id).await;
            }
        }
        let current = rp.current_sandbox().map(|s| s.id.clone());
        for s in rp.sandboxes.iter().filter(|s| !s.ready) {
            if Some(&s.id) == current.as_ref() {
                continue;
            }
            let has_live = rp
                .containers
                .iter()
                .any(|c| c.sandbox_id == s.id && !c.exited());
            let keeps_last = rp.containers.iter().any(|c| c.sandbox_id == s.id);
            if !has_live && !keeps_last {
                let _ = self
                    .runtime()
                    .remove_pod_sandbox(api::RemovePodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await;
            }
        }
    }

    /// Reads a terminated container's message: the termination message file, or for
    /// FallbackToLogsOnError the log's tail when the file is empty and it failed.
    pub fn termination_message(&self, info: &ContainerInfo, log_dir: Option<&str>) -> String {
        let path = info
            .annotations
            .get(labels::CONTAINER_TERMINATION_MESSAGE_PATH)
            .cloned()
            .unwrap_or_else(|| container::DEFAULT_TERMINATION_MESSAGE_PATH.into());
        let mut msg = info
            .mounts
            .iter()
            .find(|m| m.container_path == path)
            .and_then(|m| std::fs::read(&m.host_path).ok())
            .map(|b| {
                let b = &b[..b.len().min(4096)];
                String::from_utf8_lossy(b).into_owned()
            })
            .unwrap_or_default();
        let fallback = info
            .annotations
            .get(labels::CONTAINER_TERMINATION_MESSAGE_POLICY)
            .is_some_and(|p| p == "FallbackToLogsOnError");
        if msg.is_empty() && fallback && info.exit_code != 0 {
            let log = if info.log_path.starts_with('/') {
                PathBuf::from(&info.log_path)
            } else {
                PathBuf::from(log_dir.unwrap_or_default()).join(&info.log_path)
            };
            if let Ok(text) = std::fs::read_to_string(log) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(80)..];
                let mut joined: String = tail
                    .iter()
                    .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("\n");
                if joined.len() > 2048 {
                    joined = joined[joined.len() - 2048..].to_string();
                }
                msg = joined;
            }
        }
        msg
    }
}

/// Go's Duration.String for whole seconds and minutes ("10s", "5m0s", "2m40s").
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restart_policies() {
        let mk = |p: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {}, "spec": {"restartPolicy": p, "containers": []}}),
            )
            .unwrap()
        };
        assert!(should_restart(&mk("Always"), 0));
        assert!(should_restart(&mk("OnFailure"), 1));
        assert!(!should_restart(&mk("OnFailure"), 0));
        assert!(!should_restart(&mk("Never"), 1));
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(20)), "20s");
    }
}
