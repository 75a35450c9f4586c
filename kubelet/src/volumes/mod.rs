//! Volume manager: prepares a pod's volumes on the host under
//! `<root-dir>/pods/<uid>/volumes/<plugin>/<name>` before its containers start, keeps
//! content-backed volumes current, and turns a container's volumeMounts into CRI mounts.
//!
//! Plugins, with upstream's directory names:
//! - `emptyDir` (`kubernetes.io~empty-dir`): a directory (0777) on the kubelet's disk, or
//!   with `medium: Memory` a tmpfs of `sizeLimit` (at most the node's allocatable
//!   memory). A disk emptyDir's `sizeLimit` is enforced by a usage check every
//!   [`USAGE_CHECK_PERIOD`] that reports an [`Eviction`] (upstream's eviction manager).
//! - `hostPath`: the host path itself, after upstream's type checks ([`hostpath`]).
//! - `configMap` (`kubernetes.io~configmap`, on disk), `secret` (`kubernetes.io~secret`),
//!   `downwardAPI` (`kubernetes.io~downward-api`) and `projected`
//!   (`kubernetes.io~projected`, including serviceAccountToken through the TokenRequest
//!   API): written by the [`atomic_writer`] (`..data` symlink swap); secret, downwardAPI
//!   and projected volumes live on a tmpfs, as upstream (never on disk). These are mounted
//!   read-only into containers.
//! - `persistentVolumeClaim` bound to a `hostPath` or `local` PersistentVolume: the PV's
//!   path. An unbound claim fails the setup until it is bound.
//!
//! Live updates: `setup` is idempotent and the pod worker calls it on every sync. On top
//! of that, every ConfigMap and Secret a set-up pod references is watched (one watch per
//! object, `fieldSelector=metadata.name=<name>`, as upstream's `Watch` change detection
//! strategy); a change re-runs the setup of the pods referencing it, so the new content
//! is in the container within about a second instead of upstream's sync period (1 min).
//! Downward API labels/annotations follow the pod: the pod worker's setup on a pod update
//! rewrites them. Service account tokens are requested again once 80% of their lifetime
//! has passed (or after 24 h), on the next setup or by the loop [`VolumeManager::start`]
//! runs.
//!
//! Errors: [`VolumeError`]'s `Display` is upstream's event message
//! (`MountVolume.SetUp failed for volume "x" : configmap "y" not found`) and
//! [`VolumeError::reason`] its event reason (FailedMount for setup errors).
//!
//! With a pod `fsGroup`, emptyDirs and content volumes belong to that group (setgid
//! directories, group-readable files), as upstream's `SetVolumeOwnership`.
//!
//! Known gaps (upstream does these): `runAsUser` ownership of projected tokens
//! (`fsUser`), hostPath/PVC ownership changes (upstream's fsGroupChangePolicy), subPath mounts are checked
//! for symlink escapes but not bind-mounted through `volume-subpaths/` (a TOCTOU window
//! upstream closes), the disk emptyDir sizeLimit check reports [`Eviction`]s that the pod
//! workers still have to act on, CSI/NFS/iSCSI and other plugins, and the attach/detach
//! flow (only hostPath and local PersistentVolumes).

pub mod atomic_writer;
pub mod hostpath;
pub mod mount;
pub mod projection;
pub mod subpath;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use apimachinery::quantity::Quantity;
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use tokio_util::sync::CancellationToken;

use atomic_writer::Payload;
use projection::{NodeAllocatable, DEFAULT_MODE};

/// How often disk emptyDir usage is compared with sizeLimit and tokens are checked for
/// refresh (upstream's eviction manager monitors every 10 s).
pub const USAGE_CHECK_PERIOD: Duration = Duration::from_secs(10);
/// How long the node's allocatable resources are reused before asking again.
const NODE_ALLOCATABLE_TTL: Duration = Duration::from_secs(60);
/// Upstream's default `expirationSeconds` of a serviceAccountToken projection.
const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;
/// Tokens are refreshed after this long whatever their lifetime (upstream's maxTTL).
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
const CONFIG_MAP: &str = "kubernetes.io~configmap";
const SECRET: &str = "kubernetes.io~secret";
const DOWNWARD_API: &str = "kubernetes.io~downward-api";
const PROJECTED: &str = "kubernetes.io~projected";

/// Why a pod's volumes could not be prepared, or a container's mounts not made. The
/// `Display` of each variant is the message upstream's kubelet puts in its event, and
/// [`VolumeError::reason`] the event's reason.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume's SetUp failed (event FailedMount).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Setup { volume: String, message: String },
    /// A volume that cannot be processed yet, e.g. an unbound claim (event FailedMount).
    #[error("Unable to attach or mount volumes: unmounted volumes=[{volume}], unattached volumes=[], failed to process volumes=[{volume}]: {message}")]
    Unprocessable { volume: String, message: String },
    /// A container mounts a volume the pod does not declare.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    UnknownVolume { container: String, volume: String },
    /// A container's mount cannot be made (subPath, propagation): the container cannot be
    /// created (upstream's CreateContainerConfigError).
    #[error("{0}")]
    Mount(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl VolumeError {
    /// The event reason upstream records for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            VolumeError::Setup { .. }
            | VolumeError::Unprocessable { .. }
            | VolumeError::Io { .. } => "FailedMount",
            VolumeError::UnknownVolume { .. } | VolumeError::Mount(_) => "Failed",
        }
    }

    /// The volume the error is about, if any.
    pub fn volume(&self) -> Option<&str> {
        match self {
            VolumeError::Setup { volume, .. }
            | VolumeError::Unprocessable { volume, .. }
            | VolumeError::UnknownVolume { volume, .. } => Some(volume),
            _ => None,
        }
    }

    fn setup(volume: &str, message: impl Into<String>) -> Self {
        VolumeError::Setup {
            volume: volume.to_string(),
            message: message.into(),
        }
    }
}

/// Several messages as one, as upstream's `utilerrors.NewAggregate`.
pub(crate) fn aggregate(messages: &[String]) -> String {
    match messages {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// A volume ready on the host.
#[derive(Debug, Clone)]
pub struct MountedVolume {
    pub host_path: PathBuf,
    pub read_only: bool,
}

/// A pod's volumes, ready to be mounted into its containers.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, MountedVolume>,
    /// The pod the volumes were set up for (subPathExpr reads its fields).
    pub pod: Arc<Pod>,
}

/// A pod whose emptyDir outgrew its sizeLimit; the pod worker evicts it (phase Failed,
/// reason `Evicted`, this message), as upstream's eviction manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// A watched ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectKey {
    kind: &'static str,
    namespace: String,
    name: String,
}

struct Watch {
    pods: HashSet<String>,
    task: tokio::task::AbortHandle,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    pod_uid: String,
    service_account: String,
    audience: String,
    expiration_seconds: i64,
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    refresh_at: Instant,
}

struct Inner {
    root_dir: PathBuf,
    client: kube::Client,
    node_name: String,
    /// Pods set up and not torn down, latest version (for refreshes).
    pods: Mutex<HashMap<String, Arc<Pod>>>,
    /// One lock per pod: setup runs from the pod worker and from refreshes.
    pod_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    watches: Mutex<HashMap<ObjectKey, Watch>>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
    /// tmpfs mounts made (saves reading mountinfo on every sync).
    mounted: Mutex<HashSet<PathBuf>>,
    allocatable: Mutex<Option<(Instant, NodeAllocatable)>>,
    evicted: Mutex<HashSet<String>>,
}

#[derive(Clone)]
pub struct VolumeManager {
    inner: Arc<Inner>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Upstream's kubelet error text for a missing object: `configmap "x" not found`.
fn not_found(kind: &str, name: &str) -> String {
    format!("{kind} {name:?} not found")
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

impl VolumeManager {
    /// `client` reads ConfigMaps, Secrets, claims and volumes and requests tokens;
    /// `node_name` is this node (its allocatable resources size tmpfs volumes and fill in
    /// unset limits of resourceFieldRef).
    pub fn new(root_dir: PathBuf, client: kube::Client, node_name: impl Into<String>) -> Self {
        VolumeManager {
            inner: Arc::new(Inner {
                root_dir,
                client,
                node_name: node_name.into(),
                pods: Mutex::default(),
                pod_locks: Mutex::default(),
                watches: Mutex::default(),
                tokens: Mutex::default(),
                mounted: Mutex::default(),
                allocatable: Mutex::default(),
                evicted: Mutex::default(),
            }),
        }
    }

    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.inner.root_dir.join("pods").join(pod_uid)
    }

    fn volume_dir(&self, pod_uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(pod_uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    }

    /// Runs the periodic checks (disk emptyDir sizeLimit → `evictions`, token refresh)
    /// until `shutdown`. The kubelet calls this once.
    pub fn start(
        &self,
        shutdown: CancellationToken,
        evictions: Option<tokio::sync::mpsc::UnboundedSender<Eviction>>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(USAGE_CHECK_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                this.refresh_tokens().await;
                for eviction in this.check_size_limits().await {
                    tracing::info!(pod = %eviction.name, namespace = %eviction.namespace, message = %eviction.message, "emptyDir over its sizeLimit");
                    if let Some(tx) = &evictions {
                        let _ = tx.send(eviction);
                    }
                }
            }
            // Stop the object watches with the kubelet.
            for (_, w) in lock(&this.inner.watches).drain() {
                w.task.abort();
            }
        })
    }

    /// Idempotent: called on every pod sync, so content-backed volumes stay current.
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        self.setup_if(pod, false)
            .await
            .unwrap_or_else(|| Ok(PodVolumes::default()))
    }

    /// A refresh: the setup again, unless the pod was torn down meanwhile (a refresh
    /// racing with teardown must not mount its volumes again).
    async fn refresh(&self, pod: &Pod) -> Option<Result<PodVolumes, VolumeError>> {
        self.setup_if(pod, true).await
    }

    async fn setup_if(
        &self,
        pod: &Pod,
        only_if_known: bool,
    ) -> Option<Result<PodVolumes, VolumeError>> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_lock = lock(&self.inner.pod_locks)
            .entry(uid.clone())
            .or_default()
            .clone();
        let _guard = pod_lock.lock().await;
        if only_if_known && !lock(&self.inner.pods).contains_key(&uid) {
            return None;
        }
        let pod = Arc::new(pod.clone());
        lock(&self.inner.pods).insert(uid.clone(), Arc::clone(&pod));
        let mut refs = Vec::new();
        let mut out = PodVolumes {
            volumes: BTreeMap::new(),
            pod: Arc::clone(&pod),
        };
        let mut first_error = None;
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            match self.setup_volume(&pod, &uid, volume, &mut refs).await {
                Ok(mounted) => {
                    out.volumes.insert(volume.name.clone(), mounted);
                }
                Err(e) => {
                    tracing::debug!(pod = ?pod.metadata.name, volume = %volume.name, error = %e, "volume setup failed");
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        // Watch what the pod references even when the setup failed: creating a missing
        // ConfigMap then retries at once.
        self.track(&uid, refs);
        Some(match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        })
    }

    async fn setup_volume(
        &self,
        pod: &Pod,
        uid: &str,
        volume: &Volume,
        refs: &mut Vec<ObjectKey>,
    ) -> Result<MountedVolume, VolumeError> {
        let name = volume.name.as_str();
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let fs_group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|c| c.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let writable = |host_path: PathBuf| MountedVolume {
            host_path,
            read_only: false,
        };
        let read_only = |host_path: PathBuf| MountedVolume {
            host_path,
            read_only: true,
        };
        if let Some(empty_dir) = &volume.empty_dir {
            let dir = self.volume_dir(uid, EMPTY_DIR, name);
            match empty_dir.medium.as_deref().unwrap_or_default() {
                "" => {
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    set_empty_dir_owner(&dir, fs_group)?;
                }
                "Memory" => {
                    let limit = empty_dir
                        .size_limit
                        .as_ref()
                        .and_then(|q| Quantity::parse(&q.0).ok())
                        .map(|q| q.value())
                        .filter(|v| *v > 0)
                        .and_then(|v| u64::try_from(v).ok());
                    let node = self.node_memory().await;
                    let size = match (limit, node) {
                        (Some(l), Some(n)) => Some(l.min(n)),
                        (l, n) => l.or(n),
                    };
                    self.tmpfs(&dir, size)
                        .map_err(|e| VolumeError::setup(name, e))?;
                    set_empty_dir_owner(&dir, fs_group)?;
                }
                other => {
                    return Err(VolumeError::setup(
                        name,
                        format!("emptyDir medium {other:?} is not supported by this kubelet"),
                    ))
                }
            }
            return Ok(writable(dir));
        }
        if let Some(host_path) = &volume.host_path {
            let path = PathBuf::from(&host_path.path);
            hostpath::check_type(&path, host_path.type_.as_deref().unwrap_or_default())
                .map_err(|e| VolumeError::setup(name, e))?;
            return Ok(writable(path));
        }
        if let Some(source) = &volume.config_map {
            refs.push(ObjectKey {
                kind: "ConfigMap",
                namespace: namespace.clone(),
                name: source.name.clone(),
            });
            let optional = source.optional.unwrap_or(false);
            let cm = self
                .get_config_map(&namespace, &source.name)
                .await
                .map_err(|e| VolumeError::setup(name, e))?;
            if cm.is_none() && !optional {
                return Err(VolumeError::setup(
                    name,
                    not_found("configmap", &source.name),
                ));
            }
            let payload = projection::config_map_payload(
                cm.as_ref(),
                source.items.as_deref(),
                source.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
            )
            .map_err(|e| VolumeError::setup(name, e))?;
            let dir = self.volume_dir(uid, CONFIG_MAP, name);
            write_atomic(&dir, payload, name, fs_group).await?;
            return Ok(read_only(dir));
        }
        if let Some(source) = &volume.secret {
            let secret_name = source.secret_name.clone().unwrap_or_default();
            refs.push(ObjectKey {
                kind: "Secret",
                namespace: namespace.clone(),
                name: secret_name.clone(),
            });
            let optional = source.optional.unwrap_or(false);
            let secret = self
                .get_secret(&namespace, &secret_name)
                .await
                .map_err(|e| VolumeError::setup(name, e))?;
            if secret.is_none() && !optional {
                return Err(VolumeError::setup(name, not_found("secret", &secret_name)));
            }
            let payload = projection::secret_payload(
                secret.as_ref(),
                source.items.as_deref(),
                source.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
            )
            .map_err(|e| VolumeError::setup(name, e))?;
            let dir = self.volume_dir(uid, SECRET, name);
            let size = self.node_memory().await;
            self.tmpfs(&dir, size)
                .map_err(|e| VolumeError::setup(name, e))?;
            write_atomic(&dir, payload, name, fs_group).await?;
            return Ok(read_only(dir));
        }
        if let Some(source) = &volume.downward_api {
            let node = self.node_allocatable().await;
            let payload = projection::downward_api_payload(
                pod,
                source.items.as_deref().unwrap_or_default(),
                source.default_mode.unwrap_or(DEFAULT_MODE),
                &node,
            )
            .map_err(|e| VolumeError::setup(name, e))?;
            let dir = self.volume_dir(uid, DOWNWARD_API, name);
            self.tmpfs(
                &dir,
                node.memory
                    .as_ref()
                    .and_then(|m| u64::try_from(m.value()).ok()),
            )
            .map_err(|e| VolumeError::setup(name, e))?;
            write_atomic(&dir, payload, name, fs_group).await?;
            return Ok(read_only(dir));
        }
        if let Some(source) = &volume.projected {
            let payload = self
                .projected_payload(pod, uid, &namespace, source, refs)
                .await
                .map_err(|e| VolumeError::setup(name, e))?;
            let dir = self.volume_dir(uid, PROJECTED, name);
            let size = self.node_memory().await;
            self.tmpfs(&dir, size)
                .map_err(|e| VolumeError::setup(name, e))?;
            write_atomic(&dir, payload, name, fs_group).await?;
            return Ok(read_only(dir));
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            let path = self
                .claim_path(&namespace, &claim.claim_name)
                .await
                .map_err(|message| VolumeError::Unprocessable {
                    volume: name.to_string(),
                    message,
                })?;
            return Ok(MountedVolume {
                host_path: path,
                read_only: claim.read_only.unwrap_or(false),
            });
        }
        Err(VolumeError::setup(
            name,
            "volume type is not supported by this kubelet",
        ))
    }

    /// Mounts a tmpfs once per directory.
    fn tmpfs(&self, dir: &Path, size: Option<u64>) -> Result<(), String> {
        if lock(&self.inner.mounted).contains(dir) {
            return Ok(());
        }
        mount::mount_tmpfs(dir, size)
            .map_err(|e| format!("mounting tmpfs on {}: {e}", dir.display()))?;
        lock(&self.inner.mounted).insert(dir.to_path_buf());
        Ok(())
    }

    async fn get_config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.inner.client.clone(), namespace);
        api.get_opt(name).await.map_err(|e| api_message(&e))
    }

    async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), namespace);
        api.get_opt(name).await.map_err(|e| api_message(&e))
    }

    /// The sources of a projected volume, in order; later sources win on equal paths.
    async fn projected_payload(
        &self,
        pod: &Pod,
        uid: &str,
        namespace: &str,
        source: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
        refs: &mut Vec<ObjectKey>,
    ) -> Result<Payload, String> {
        let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        for projection in source.sources.iter().flatten() {
            let part = if let Some(cm) = &projection.config_map {
                refs.push(ObjectKey {
                    kind: "ConfigMap",
                    namespace: namespace.to_string(),
                    name: cm.name.clone(),
                });
                let optional = cm.optional.unwrap_or(false);
                match self.get_config_map(namespace, &cm.name).await {
                    Ok(None) if !optional => Err(not_found("configmap", &cm.name)),
                    Ok(obj) => projection::config_map_payload(
                        obj.as_ref(),
                        cm.items.as_deref(),
                        default_mode,
                        optional,
                    ),
                    Err(e) => Err(e),
                }
            } else if let Some(secret) = &projection.secret {
                refs.push(ObjectKey {
                    kind: "Secret",
                    namespace: namespace.to_string(),
                    name: secret.name.clone(),
                });
                let optional = secret.optional.unwrap_or(false);
                match self.get_secret(namespace, &secret.name).await {
                    Ok(None) if !optional => Err(not_found("secret", &secret.name)),
                    Ok(obj) => projection::secret_payload(
                        obj.as_ref(),
                        secret.items.as_deref(),
                        default_mode,
                        optional,
                    ),
                    Err(e) => Err(e),
                }
            } else if let Some(downward) = &projection.downward_api {
                let node = self.node_allocatable().await;
                projection::downward_api_payload(
                    pod,
                    downward.items.as_deref().unwrap_or_default(),
                    default_mode,
                    &node,
                )
            } else if let Some(token) = &projection.service_account_token {
                self.token(pod, uid, namespace, token).await.map(|t| {
                    let mut p = Payload::new();
                    p.insert(
                        token.path.clone(),
                        atomic_writer::FileProjection {
                            data: t.into_bytes(),
                            mode: u32::try_from(default_mode).unwrap_or(0o644) & 0o7777,
                        },
                    );
                    p
                })
            } else {
                Ok(Payload::new())
            };
            match part {
                Ok(part) => payload.extend(part),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(payload)
        } else {
            Err(aggregate(&errors))
        }
    }

    /// A bound service account token for the pod, from the cache while it is fresh.
    async fn token(
        &self,
        pod: &Pod,
        uid: &str,
        namespace: &str,
        source: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    ) -> Result<String, String> {
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = TokenKey {
            pod_uid: uid.to_string(),
            service_account: service_account.clone(),
            audience: source.audience.clone().unwrap_or_default(),
            expiration_seconds: source
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_EXPIRATION),
        };
        if let Some(cached) = lock(&self.inner.tokens).get(&key) {
            if Instant::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if key.audience.is_empty() {
                    Vec::new()
                } else {
                    vec![key.audience.clone()]
                },
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: Some(uid.to_string()),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.inner.client.clone(), namespace);
        let answer = api
            .create_token_request(&service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {}", api_message(&e)))?;
        let status = answer
            .status
            .ok_or("failed to fetch token: the answer has no status")?;
        // Refresh after 80% of the lifetime the server granted, at most after 24 h.
        let granted = answer
            .spec
            .expiration_seconds
            .unwrap_or(key.expiration_seconds)
            .max(1);
        let lifetime = Duration::from_secs(u64::try_from(granted).unwrap_or(3600));
        let refresh_in = (lifetime * 8 / 10).min(MAX_TOKEN_AGE);
        lock(&self.inner.tokens).insert(
            key,
            CachedToken {
                token: status.token.clone(),
                refresh_at: Instant::now() + refresh_in,
            },
        );
        Ok(status.token)
    }

    /// The host path of the PersistentVolume a claim is bound to (hostPath and local
    /// volumes), with upstream's populator messages when it is not usable yet.
    async fn claim_path(&self, namespace: &str, claim_name: &str) -> Result<PathBuf, String> {
        let processing =
            |why: String| format!("error processing PVC {namespace}/{claim_name}: {why}");
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.inner.client.clone(), namespace);
        let claim = claims
            .get_opt(claim_name)
            .await
            .map_err(|e| processing(api_message(&e)))?
            .ok_or_else(|| processing(format!("failed to fetch PVC from API server: persistentvolumeclaims {claim_name:?} not found")))?;
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if phase != "Bound" || volume_name.is_empty() {
            return Err(processing("PVC is not bound".into()));
        }
        let volumes: Api<PersistentVolume> = Api::all(self.inner.client.clone());
        let pv = volumes
            .get_opt(&volume_name)
            .await
            .map_err(|e| processing(api_message(&e)))?
            .ok_or_else(|| processing(format!("failed to fetch PV {volume_name:?} from API server: persistentvolumes {volume_name:?} not found")))?;
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let claim_uid = claim.metadata.uid.as_deref();
        if claim_ref
            .and_then(|r| r.uid.as_deref())
            .is_some_and(|u| Some(u) != claim_uid)
            || claim_ref
                .and_then(|r| r.name.as_deref())
                .is_some_and(|n| n != claim_name)
        {
            return Err(processing(format!(
                "PV {volume_name:?} is not bound to PVC {claim_name:?}"
            )));
        }
        let spec = pv.spec.as_ref();
        if let Some(host_path) = spec.and_then(|s| s.host_path.as_ref()) {
            let path = PathBuf::from(&host_path.path);
            hostpath::check_type(&path, host_path.type_.as_deref().unwrap_or_default())?;
            return Ok(path);
        }
        if let Some(local) = spec.and_then(|s| s.local.as_ref()) {
            let path = PathBuf::from(&local.path);
            if !path.exists() {
                return Err(format!("path {:?} does not exist", local.path));
            }
            return Ok(path);
        }
        Err(processing(format!(
            "PV {volume_name:?} is neither hostPath nor local, which this kubelet does not support"
        )))
    }

    /// The node's allocatable resources (cached), falling back to the machine's.
    async fn node_allocatable(&self) -> NodeAllocatable {
        if let Some((at, cached)) = lock(&self.inner.allocatable).clone() {
            if at.elapsed() < NODE_ALLOCATABLE_TTL {
                return cached;
            }
        }
        let nodes: Api<Node> = Api::all(self.inner.client.clone());
        let from_api = nodes
            .get_opt(&self.inner.node_name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.status.and_then(|s| s.allocatable));
        let get = |key: &str| {
            from_api
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(|q| Quantity::parse(&q.0).ok())
        };
        let allocatable = NodeAllocatable {
            cpu: get("cpu").or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .and_then(|n| Quantity::parse(&n.get().to_string()).ok())
            }),
            memory: get("memory").or_else(machine_memory),
            ephemeral_storage: get("ephemeral-storage"),
        };
        *lock(&self.inner.allocatable) = Some((Instant::now(), allocatable.clone()));
        allocatable
    }

    async fn node_memory(&self) -> Option<u64> {
        self.node_allocatable()
            .await
            .memory
            .and_then(|m| u64::try_from(m.value()).ok())
    }

    /// Adds the pod's references to the object watches and drops the ones it no longer has.
    fn track(&self, uid: &str, refs: Vec<ObjectKey>) {
        let wanted: HashSet<ObjectKey> = refs.into_iter().collect();
        let mut watches = lock(&self.inner.watches);
        watches.retain(|key, w| {
            if !wanted.contains(key) {
                w.pods.remove(uid);
            }
            if w.pods.is_empty() {
                w.task.abort();
                false
            } else {
                true
            }
        });
        for key in wanted {
            if let Some(w) = watches.get_mut(&key) {
                w.pods.insert(uid.to_string());
                continue;
            }
            let task = match key.kind {
                "ConfigMap" => self.spawn_watch::<ConfigMap>(key.clone()),
                _ => self.spawn_watch::<Secret>(key.clone()),
            };
            watches.insert(
                key,
                Watch {
                    pods: [uid.to_string()].into(),
                    task,
                },
            );
        }
    }

    fn spawn_watch<K>(&self, key: ObjectKey) -> tokio::task::AbortHandle
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let api: Api<K> = Api::namespaced(self.inner.client.clone(), &key.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
        tokio::spawn(async move {
            let mut events = watcher(api, config).default_backoff().boxed();
            let mut synced = false;
            while let Some(event) = events.next().await {
                let changed = match event {
                    // The object as of the (re)list: it may have changed between the
                    // setup's read and the start of this watch, or while the watch was
                    // broken. A refresh of unchanged content writes nothing.
                    Ok(watcher::Event::InitDone) => {
                        synced = true;
                        true
                    }
                    Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::Delete(_)) => synced,
                    Ok(_) => false,
                    Err(e) => {
                        tracing::debug!(kind = key.kind, namespace = %key.namespace, name = %key.name, error = %e, "volume source watch");
                        false
                    }
                };
                if !changed {
                    continue;
                }
                let Some(inner) = weak.upgrade() else { break };
                let manager = VolumeManager { inner };
                manager.refresh_referencing(&key).await;
            }
        })
        .abort_handle()
    }

    /// Re-runs the setup of every pod that references `key`.
    async fn refresh_referencing(&self, key: &ObjectKey) {
        let uids: Vec<String> = lock(&self.inner.watches)
            .get(key)
            .map(|w| w.pods.iter().cloned().collect())
            .unwrap_or_default();
        for uid in uids {
            let pod = lock(&self.inner.pods).get(&uid).cloned();
            if let Some(pod) = pod {
                tracing::debug!(pod = ?pod.metadata.name, kind = key.kind, name = %key.name, "volume source changed");
                if let Some(Err(e)) = self.refresh(&pod).await {
                    tracing::debug!(pod = ?pod.metadata.name, error = %e, "refreshing volumes");
                }
            }
        }
    }

    /// Pods whose cached tokens are due get their volumes set up again.
    async fn refresh_tokens(&self) {
        let now = Instant::now();
        let due: HashSet<String> = lock(&self.inner.tokens)
            .iter()
            .filter(|(_, t)| now >= t.refresh_at)
            .map(|(k, _)| k.pod_uid.clone())
            .collect();
        for uid in due {
            let pod = lock(&self.inner.pods).get(&uid).cloned();
            if let Some(pod) = pod {
                if let Some(Err(e)) = self.refresh(&pod).await {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "refreshing service account token");
                }
            }
        }
    }

    /// Disk emptyDirs above their sizeLimit, once per pod (upstream's
    /// `emptyDirLimitEviction`).
    pub async fn check_size_limits(&self) -> Vec<Eviction> {
        let pods: Vec<Arc<Pod>> = lock(&self.inner.pods).values().cloned().collect();
        let mut out = Vec::new();
        for pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if lock(&self.inner.evicted).contains(&uid) {
                continue;
            }
            for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                let Some(empty_dir) = &volume.empty_dir else {
                    continue;
                };
                if empty_dir.medium.as_deref().unwrap_or_default() != "" {
                    continue;
                }
                let Some(limit) = &empty_dir.size_limit else {
                    continue;
                };
                let Ok(limit_bytes) = Quantity::parse(&limit.0).map(|q| q.value()) else {
                    continue;
                };
                let dir = self.volume_dir(&uid, EMPTY_DIR, &volume.name);
                let usage = tokio::task::spawn_blocking(move || mount::disk_usage(&dir))
                    .await
                    .unwrap_or(0);
                if i64::try_from(usage).unwrap_or(i64::MAX) > limit_bytes {
                    lock(&self.inner.evicted).insert(uid.clone());
                    out.push(Eviction {
                        pod_uid: uid.clone(),
                        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                        name: pod.metadata.name.clone().unwrap_or_default(),
                        message: format!(
                            "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                            volume.name, limit.0
                        ),
                    });
                    break;
                }
            }
        }
        out
    }

    /// Removes everything the pod's volumes left on the host: unmounts its tmpfs
    /// volumes, deletes `pods/<uid>/volumes`, and forgets its watches and tokens.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let pod_lock = lock(&self.inner.pod_locks).get(pod_uid).cloned();
        let _guard = match &pod_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        lock(&self.inner.pods).remove(pod_uid);
        self.track(pod_uid, Vec::new());
        lock(&self.inner.tokens).retain(|k, _| k.pod_uid != pod_uid);
        lock(&self.inner.evicted).remove(pod_uid);
        let dir = self.pod_dir(pod_uid).join("volumes");
        lock(&self.inner.mounted).retain(|p| !p.starts_with(&dir));
        let result = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || -> Result<(), VolumeError> {
                mount::unmount_all_under(&dir).map_err(io(&dir))?;
                // Never delete through a mount that is still there.
                if !mount::mount_points_under(&dir).is_empty() {
                    return Err(VolumeError::Io {
                        path: dir.clone(),
                        source: std::io::Error::other("mounts remain after unmounting"),
                    });
                }
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(e)),
                    _ => Ok(()),
                }
            })
            .await
            .unwrap_or_else(|e| Err(VolumeError::Mount(format!("teardown task: {e}"))))
        };
        drop(_guard);
        lock(&self.inner.pod_locks).remove(pod_uid);
        result
    }
}

/// An emptyDir is world-writable (0777, as upstream); with an `fsGroup` it belongs to
/// that group and is setgid, so that files created in it do too.
fn set_empty_dir_owner(dir: &Path, fs_group: Option<u32>) -> Result<(), VolumeError> {
    let mut mode = 0o777;
    if let Some(gid) = fs_group {
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io(dir))?;
        mode |= 0o2000;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io(dir))
}

/// Writes a payload with the atomic writer off the async threads.
async fn write_atomic(
    dir: &Path,
    payload: Payload,
    volume: &str,
    group: Option<u32>,
) -> Result<(), VolumeError> {
    let target = dir.to_path_buf();
    let result =
        tokio::task::spawn_blocking(move || atomic_writer::write_owned(&target, &payload, group))
            .await
            .map_err(|e| VolumeError::setup(volume, e.to_string()))?;
    result
        .map(drop)
        .map_err(|e| VolumeError::setup(volume, format!("error writing payload to ttl dir: {e}")))
}

/// MemTotal from /proc/meminfo, when the Node object is not available.
fn machine_memory() -> Option<Quantity> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Quantity::parse(&format!("{kib}Ki")).ok()
}

impl PodVolumes {
    /// The CRI mounts of one container: its volumeMounts with subPath/subPathExpr resolved
    /// (sub directories created), readOnly and mountPropagation honoured.
    pub fn container_mounts(
        &self,
        container: &Container,
    ) -> Result<Vec<cri::api::Mount>, VolumeError> {
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let volume = self.volumes.get(&m.name).ok_or_else(|| VolumeError::UnknownVolume {
                    container: container.name.clone(),
                    volume: m.name.clone(),
                })?;
                let mut host_path = volume.host_path.clone();
                if let Some(sub) = subpath::sub_path(
                    &self.pod,
                    container,
                    m.sub_path.as_deref(),
                    m.sub_path_expr.as_deref(),
                )
                .map_err(VolumeError::Mount)?
                {
                    let what = format!("volumeMount {:?} of container {:?}", m.name, container.name);
                    host_path = subpath::prepare(&volume.host_path, &sub, &what).map_err(VolumeError::Mount)?;
                }
                let propagation = match m.mount_propagation.as_deref().unwrap_or("None") {
                    "None" | "" => cri::api::MountPropagation::PropagationPrivate,
                    "HostToContainer" => cri::api::MountPropagation::PropagationHostToContainer,
                    "Bidirectional" if privileged => cri::api::MountPropagation::PropagationBidirectional,
                    "Bidirectional" => {
                        return Err(VolumeError::Mount(
                            "Bidirectional mount propagation is available only to privileged containers".into(),
                        ))
                    }
                    other => {
                        return Err(VolumeError::Mount(format!(
                            "invalid MountPropagation mode: {other}"
                        )))
                    }
                };
                Ok(cri::api::Mount {
                    container_path: m.mount_path.clone(),
                    host_path: host_path.to_string_lossy().into_owned(),
                    readonly: volume.read_only || m.read_only.unwrap_or(false),
                    propagation: propagation as i32,
                    ..Default::default()
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volumes(pod: serde_json::Value, vols: &[(&str, &str, bool)]) -> PodVolumes {
        PodVolumes {
            volumes: vols
                .iter()
                .map(|(n, p, ro)| {
                    (
                        n.to_string(),
                        MountedVolume {
                            host_path: PathBuf::from(p),
                            read_only: *ro,
                        },
                    )
                })
                .collect(),
            pod: Arc::new(serde_json::from_value(pod).unwrap()),
        }
    }

    #[test]
    fn container_mounts_resolve_sub_paths_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("v");
        std::fs::create_dir(&vol).unwrap();
        let pv = volumes(
            json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": []}}),
            &[
                ("data", vol.to_str().unwrap(), false),
                ("cfg", "/cfg", true),
            ],
        );
        let c: Container = serde_json::from_value(json!({
            "name": "c",
            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [
                {"name": "data", "mountPath": "/a", "subPath": "x/y"},
                {"name": "data", "mountPath": "/b", "subPathExpr": "$(POD)", "readOnly": true},
                {"name": "cfg", "mountPath": "/c", "mountPropagation": "HostToContainer"}
            ]
        }))
        .unwrap();
        let mounts = pv.container_mounts(&c).unwrap();
        assert_eq!(mounts[0].host_path, vol.join("x/y").to_str().unwrap());
        assert!(vol.join("x/y").is_dir());
        assert!(!mounts[0].readonly);
        assert_eq!(mounts[1].host_path, vol.join("p").to_str().unwrap());
        assert!(mounts[1].readonly);
        assert_eq!(mounts[2].host_path, "/cfg");
        assert!(mounts[2].readonly);
        assert_eq!(
            mounts[2].propagation,
            cri::api::MountPropagation::PropagationHostToContainer as i32
        );

        let bad: Container = serde_json::from_value(json!({
            "name": "c", "volumeMounts": [{"name": "data", "mountPath": "/a", "subPath": "../x"}]
        }))
        .unwrap();
        assert_eq!(
            pv.container_mounts(&bad).unwrap_err().to_string(),
            "unable to provision SubPath `../x`: must not contain '..'"
        );
        let unknown: Container = serde_json::from_value(json!({
            "name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/a"}]
        }))
        .unwrap();
        assert_eq!(
            pv.container_mounts(&unknown).unwrap_err().to_string(),
            "cannot find volume \"nope\" to mount into container \"c\""
        );
        let bidi: Container = serde_json::from_value(json!({
            "name": "c", "volumeMounts": [{"name": "data", "mountPath": "/a", "mountPropagation": "Bidirectional"}]
        }))
        .unwrap();
        assert!(pv.container_mounts(&bidi).is_err());
    }

    #[test]
    fn errors_read_like_upstream_events() {
        let e = VolumeError::setup("config", not_found("configmap", "y"));
        assert_eq!(
            e.to_string(),
            "MountVolume.SetUp failed for volume \"config\" : configmap \"y\" not found"
        );
        assert_eq!(e.reason(), "FailedMount");
        assert_eq!(e.volume(), Some("config"));
    }
}
