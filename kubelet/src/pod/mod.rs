//! Pods the kubelet runs and the workers running them (upstream's pod config, pod
//! manager and pod workers):
//! - sources: the API (pods with spec.nodeName = this node, watched; `source`) and static
//!   pod files (`file`); mirror pods in the API stand for static pods (`mirror`);
//! - one worker task per pod, level-triggered: it syncs on every change, on runtime events
//!   (`pleg`, a relist every second), on back-off expiry and every syncFrequency;
//! - pods the runtime has but no source knows (after both sources listed once) are
//!   removed.

pub mod file;
pub mod mirror;
pub mod pleg;
pub mod source;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::kuberuntime::RuntimeManager;
use crate::prober::ProbeManager;
use crate::run::Context;
use crate::status::{ProbeResults, StatusManager};

pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION))
}

pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s != "api")
}

/// `namespace/name`.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

struct Entry {
    pod: Pod,
    /// Gone from its source: kill, clean up, stop the worker.
    removed: bool,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// Mirror pods in the API, by full name.
    mirrors: HashMap<String, Pod>,
}

/// Callback invoked when a pod's worker stops for good (the prober forgets it).
pub type PodGone = Arc<dyn Fn(&str) + Send + Sync>;

pub struct PodManager {
    pub ctx: Context,
    pub runtime: Arc<RuntimeManager>,
    pub status: StatusManager,
    pub probes: Arc<dyn ProbeResults>,
    /// Runs the containers' probes; the worker registers every running container.
    pub prober: Option<ProbeManager>,
    pub on_gone: Option<PodGone>,
    inner: Mutex<Inner>,
    api_synced: AtomicBool,
    files_synced: AtomicBool,
    node_uid: Mutex<Option<String>>,
}

impl PodManager {
    pub fn new(
        ctx: Context,
        runtime: Arc<RuntimeManager>,
        prober: Option<ProbeManager>,
        on_gone: Option<PodGone>,
    ) -> Arc<Self> {
        let probes: Arc<dyn ProbeResults> = match &prober {
            Some(p) => Arc::new(p.clone()),
            None => Arc::new(crate::status::NoProbes),
        };
        let files_synced = ctx.config.static_pod_path.is_none();
        Arc::new(PodManager {
            ctx,
            runtime,
            status: StatusManager::default(),
            probes,
            prober,
            on_gone,
            inner: Mutex::new(Inner::default()),
            api_synced: AtomicBool::new(false),
            files_synced: AtomicBool::new(files_synced),
            node_uid: Mutex::new(None),
        })
    }

    /// Both sources have delivered their first full set: unknown runtime pods are orphans.
    pub fn sources_ready(&self) -> bool {
        self.api_synced.load(Ordering::Acquire) && self.files_synced.load(Ordering::Acquire)
    }

    /// The pods this kubelet runs (for the kubelet API's /pods).
    pub fn pods(&self) -> Vec<Pod> {
        self.inner
            .lock()
            .pods
            .values()
            .filter(|e| !e.removed)
            .map(|e| e.pod.clone())
            .collect()
    }

    pub fn knows(&self, uid: &str) -> bool {
        self.inner.lock().pods.contains_key(uid)
    }

    pub fn notify(&self, uid: &str) {
        if let Some(e) = self.inner.lock().pods.get(uid) {
            e.notify.notify_one();
        }
    }

    /// Adds or updates a pod to run, starting its worker when new.
    pub fn upsert(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut inner = self.inner.lock();
        if let Some(e) = inner.pods.get_mut(&uid) {
            if e.removed {
                // A pod comes back only under a new uid; ignore stale events.
                return;
            }
            e.pod = pod;
            e.notify.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        inner.pods.insert(
            uid.clone(),
            Entry {
                pod,
                removed: false,
                notify,
            },
        );
        drop(inner);
        tokio::spawn(worker::run(Arc::clone(self), uid));
    }

    /// The pod left its source: its worker kills it and stops.
    pub fn remove(&self, uid: &str) {
        if let Some(e) = self.inner.lock().pods.get_mut(uid) {
            e.removed = true;
            e.notify.notify_one();
        }
    }

    fn snapshot(&self, uid: &str) -> Option<(Pod, bool, Arc<Notify>)> {
        self.inner
            .lock()
            .pods
            .get(uid)
            .map(|e| (e.pod.clone(), e.removed, Arc::clone(&e.notify)))
    }

    fn drop_entry(&self, uid: &str) {
        self.inner.lock().pods.remove(uid);
        if let Some(p) = &self.prober {
            p.remove_pod(uid);
        }
        if let Some(f) = &self.on_gone {
            f(uid);
        }
    }

    pub fn mirror_of(&self, static_pod: &Pod) -> Option<Pod> {
        self.inner
            .lock()
            .mirrors
            .get(&full_name(static_pod))
            .cloned()
    }

    /// The static pod whose full name matches (to wake it when its mirror changes).
    fn static_uid_for(&self, name: &str) -> Option<String> {
        let inner = self.inner.lock();
        inner
            .pods
            .iter()
            .find(|(_, e)| is_static(&e.pod) && full_name(&e.pod) == name)
            .map(|(uid, _)| uid.clone())
    }

    pub fn set_mirror(&self, pod: Pod) {
        let name = full_name(&pod);
        self.inner.lock().mirrors.insert(name.clone(), pod);
        if let Some(uid) = self.static_uid_for(&name) {
            self.notify(&uid);
        }
    }

    pub fn delete_mirror(&self, pod: &Pod) {
        let name = full_name(pod);
        {
            let mut inner = self.inner.lock();
            if inner
                .mirrors
                .get(&name)
                .and_then(|m| m.metadata.uid.as_ref())
                == pod.metadata.uid.as_ref()
            {
                inner.mirrors.remove(&name);
            }
        }
        if let Some(uid) = self.static_uid_for(&name) {
            self.notify(&uid);
        }
    }

    /// Replaces the set of API pods after a (re)list: pods missing from it are removed.
    fn replace_api_pods(self: &Arc<Self>, pods: Vec<Pod>) {
        let mut seen = std::collections::HashSet::new();
        let mut mirrors = HashMap::new();
        for pod in pods {
            if is_mirror(&pod) {
                mirrors.insert(full_name(&pod), pod);
                continue;
            }
            if let Some(uid) = pod.metadata.uid.clone() {
                seen.insert(uid);
            }
            self.upsert(pod);
        }
        let gone: Vec<String> = {
            let mut inner = self.inner.lock();
            inner.mirrors = mirrors;
            inner
                .pods
                .iter()
                .filter(|(uid, e)| !is_static(&e.pod) && !seen.contains(*uid))
                .map(|(uid, _)| uid.clone())
                .collect()
        };
        for uid in gone {
            self.remove(&uid);
        }
        let statics: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .pods
                .iter()
                .filter(|(_, e)| is_static(&e.pod))
                .map(|(uid, _)| uid.clone())
                .collect()
        };
        for uid in statics {
            self.notify(&uid);
        }
        self.api_synced.store(true, Ordering::Release);
    }

    /// Replaces the set of static pods with what the manifest directory holds now.
    pub fn replace_static_pods(self: &Arc<Self>, pods: Vec<Pod>) {
        let uids: std::collections::HashSet<String> =
            pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let gone: Vec<String> = {
            let inner = self.inner.lock();
            inner
                .pods
                .iter()
                .filter(|(uid, e)| is_static(&e.pod) && !uids.contains(*uid))
                .map(|(uid, _)| uid.clone())
                .collect()
        };
        for uid in gone {
            self.remove(&uid);
        }
        for mut pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            // Keep the first "seen" time: an unchanged file is the same pod.
            if let Some((existing, _, _)) = self.snapshot(&uid) {
                if let Some(seen) = existing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CONFIG_SEEN_ANNOTATION))
                {
                    pod.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(CONFIG_SEEN_ANNOTATION.into(), seen.clone());
                }
                if existing == pod {
                    continue;
                }
            }
            self.upsert(pod);
        }
        self.files_synced.store(true, Ordering::Release);
    }

    pub async fn node_uid(&self) -> Option<String> {
        if let Some(uid) = self.node_uid.lock().clone() {
            return Some(uid);
        }
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
            kube::Api::all(self.ctx.client.clone());
        let uid = nodes
            .get_opt(&self.ctx.node_name)
            .await
            .ok()
            .flatten()?
            .metadata
            .uid?;
        *self.node_uid.lock() = Some(uid.clone());
        Some(uid)
    }
}
