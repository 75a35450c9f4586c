//! The garbage collector (upstream `garbage-collector`): objects whose owners are gone
//! are deleted (background propagation), owners deleted in the foreground keep their
//! `foregroundDeletion` finalizer until every dependent that blocks their deletion is
//! gone, and owners deleted with the `orphan` finalizer get their dependents' references
//! to them removed before the finalizer goes.
//!
//! Every resource that discovery reports as listable, watchable and deletable is
//! watched as metadata only (`PartialObjectMetadata`), so the graph holds names, uids,
//! owner references and finalizers, never whole objects. Discovery is repeated every 30
//! seconds to pick up new resources (custom resources). An owner the graph does not know
//! is looked up in the API before a dependent is collected, since the graph may lag.

pub mod graph;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use parking_lot::{Mutex, RwLock};
use serde_json::json;

use self::graph::{decide, Decision, Graph, Node, OwnerState, Work, FOREGROUND, ORPHAN};
use crate::context::Context;
use crate::controllers::util::discovery::{self, Discovered, Resource};
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::ControllerFuture;

pub const NAME: &str = "garbage-collector-controller";
/// How often discovery is repeated for new resources.
const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);
/// How long the first sync of all monitors may take before the collector starts anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// Resources the collector never looks at (upstream's default ignored resources).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

#[derive(Debug, thiserror::Error)]
enum GcError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("unable to get REST mapping for {0}/{1}")]
    NoMapping(String, String),
}

struct Collector {
    client: kube::Client,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue<Work>>,
    discovered: RwLock<Discovered>,
    /// Resources (`plural.group`) with a running monitor.
    monitored: Mutex<HashSet<String>>,
    synced: AtomicUsize,
}

/// Whether the collector watches `r`.
pub fn collectable(r: &Resource) -> bool {
    ["list", "watch", "delete"].iter().all(|v| r.supports(v))
        && !IGNORED.contains(&(r.group.as_str(), r.plural.as_str()))
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let gc = Arc::new(Collector {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        queue: WorkQueue::new(ctx.shutdown.clone()),
        discovered: RwLock::new(Discovered::default()),
        monitored: Mutex::new(HashSet::new()),
        synced: AtomicUsize::new(0),
    });
    let workers = usize::from(ctx.options.concurrent_gc_syncs);
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        tokio::select! {
            _ = gc.run(workers) => {}
            _ = shutdown.cancelled() => {}
        }
    }))
}

fn policy(name: &str) -> PropagationPolicy {
    match name {
        "Foreground" => PropagationPolicy::Foreground,
        "Orphan" => PropagationPolicy::Orphan,
        _ => PropagationPolicy::Background,
    }
}

fn ignore_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    }
}

impl Collector {
    async fn run(self: Arc<Self>, workers: usize) {
        let mut started_workers = false;
        loop {
            match discovery::preferred_resources(&self.client).await {
                Ok(found) => {
                    if let Some(msg) = found.error_message() {
                        tracing::warn!(controller = NAME, "{msg}");
                    }
                    for r in found.resources.iter().filter(|r| collectable(r)) {
                        if self.monitored.lock().insert(r.group_resource()) {
                            let gc = Arc::clone(&self);
                            let r = Arc::new(r.clone());
                            tokio::spawn(async move { gc.monitor(r).await });
                        }
                    }
                    *self.discovered.write() = found;
                }
                Err(e) => tracing::warn!(controller = NAME, error = %e, "discovery failed"),
            }
            if !started_workers && !self.monitored.lock().is_empty() {
                self.wait_for_sync().await;
                let work = self.graph.lock().all_work();
                tracing::info!(
                    controller = NAME,
                    objects = self.graph.lock().len(),
                    "graph synced"
                );
                for w in work {
                    self.queue.add(w);
                }
                let gc = Arc::clone(&self);
                let queue = Arc::clone(&self.queue);
                tokio::spawn(run_workers(queue, workers, move |work| {
                    let gc = Arc::clone(&gc);
                    async move { gc.process(work).await }
                }));
                started_workers = true;
            }
            let period = if started_workers {
                DISCOVERY_PERIOD
            } else {
                Duration::from_secs(1)
            };
            tokio::time::sleep(period).await;
        }
    }

    async fn wait_for_sync(&self) {
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        while self.synced.load(Ordering::SeqCst) < self.monitored.lock().len() {
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(
                    controller = NAME,
                    "not every monitor synced; starting anyway"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }

    /// Watch one resource's metadata into the graph.
    async fn monitor(self: Arc<Self>, resource: Arc<Resource>) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &resource.api_resource());
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut relist: Option<HashSet<String>> = None;
        let mut synced_once = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => relist = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(obj)) => {
                    if let (Some(seen), Some(uid)) = (relist.as_mut(), obj.metadata.uid.clone()) {
                        seen.insert(uid);
                    }
                    if let Some(node) = Node::from_meta(Arc::clone(&resource), &obj.metadata) {
                        let work = self.graph.lock().upsert(node);
                        self.enqueue(work);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let seen = relist.take().unwrap_or_default();
                    let mut graph = self.graph.lock();
                    let mut work = Vec::new();
                    for uid in graph.uids_of(&resource) {
                        if !seen.contains(&uid) {
                            work.extend(graph.remove(&uid));
                        }
                    }
                    drop(graph);
                    self.enqueue(work);
                    if !synced_once {
                        synced_once = true;
                        self.synced.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(watcher::Event::Apply(obj)) => {
                    if let Some(node) = Node::from_meta(Arc::clone(&resource), &obj.metadata) {
                        let work = self.graph.lock().upsert(node);
                        self.enqueue(work);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    if let Some(uid) = obj.metadata.uid.as_deref() {
                        let work = self.graph.lock().remove(uid);
                        self.enqueue(work);
                    }
                }
                Err(e) => tracing::debug!(
                    controller = NAME,
                    resource = %resource.group_resource(),
                    error = %e,
                    "monitor watch failed; retrying"
                ),
            }
        }
    }

    async fn process(&self, work: Work) -> Outcome {
        let result = match &work {
            Work::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Work::Orphan(uid) => self.orphan(uid).await,
        };
        match result {
            Ok(()) => Outcome::Forget,
            Err(e) => {
                tracing::warn!(controller = NAME, ?work, error = %e, "garbage collection failed; retrying");
                Outcome::Retry
            }
        }
    }

    fn api_for(&self, node: &Node) -> Api<DynamicObject> {
        let ar = node.resource.api_resource();
        match &node.namespace {
            Some(ns) if node.resource.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    async fn attempt_to_delete(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.graph.lock().get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting {
            if node.deleting_dependents() {
                return self.process_deleting_dependents(&node).await;
            }
            // Being deleted anyway.
            return Ok(());
        }
        if node.owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::with_capacity(node.owners.len());
        for r in &node.owners {
            states.push((r.uid.clone(), self.owner_state(&node, r).await?));
        }
        let has_dependents = !self.graph.lock().dependents(uid).is_empty();
        match decide(&node, &states, has_dependents) {
            Decision::Keep => Ok(()),
            Decision::RemoveOwnerReferences(uids) => {
                tracing::info!(controller = NAME, object = %node.key(), ?uids, "removing dangling owner references");
                Ok(self.remove_owner_references(&node, &uids).await?)
            }
            Decision::Delete(p) => {
                tracing::info!(controller = NAME, object = %node.key(), propagation = p, "deleting object");
                let dp = DeleteParams {
                    propagation_policy: Some(policy(p)),
                    preconditions: Some(Preconditions {
                        uid: Some(node.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match self.api_for(&node).delete(&node.name, &dp).await {
                    Ok(_) => Ok(()),
                    // Gone, or replaced by another object of the same name.
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The state of one owner, from the graph or, when the graph does not know it, from
    /// the API server.
    async fn owner_state(&self, node: &Node, r: &OwnerReference) -> Result<OwnerState, GcError> {
        if let Some(owner) = self.graph.lock().get(&r.uid) {
            return Ok(if owner.deleting_dependents() {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            });
        }
        let resource = self
            .discovered
            .read()
            .for_kind(&r.api_version, &r.kind)
            .cloned()
            .ok_or_else(|| GcError::NoMapping(r.api_version.clone(), r.kind.clone()))?;
        let ar = resource.api_resource();
        let api: Api<DynamicObject> = if resource.namespaced {
            match &node.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
                // A cluster-scoped object cannot be owned by a namespaced one.
                None => return Ok(OwnerState::Dangling),
            }
        } else {
            Api::all_with(self.client.clone(), &ar)
        };
        Ok(match api.get_metadata_opt(&r.name).await? {
            None => OwnerState::Dangling,
            Some(o) if o.metadata.uid.as_deref() != Some(r.uid.as_str()) => OwnerState::Dangling,
            Some(o) => {
                let foreground = o
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND);
                if o.metadata.deletion_timestamp.is_some() && foreground {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Solid
                }
            }
        })
    }

    /// An owner deleted in the foreground: remove its finalizer once no dependent
    /// blocks it, else make sure the blocking ones are being collected.
    async fn process_deleting_dependents(&self, node: &Node) -> Result<(), GcError> {
        let blocking: Vec<Node> = self
            .graph
            .lock()
            .blocking_dependents(&node.uid)
            .into_iter()
            .cloned()
            .collect();
        if blocking.is_empty() {
            tracing::info!(controller = NAME, object = %node.key(), "no blocking dependents left; removing the foregroundDeletion finalizer");
            return Ok(ignore_gone(self.remove_finalizer(node, FOREGROUND).await)?);
        }
        for d in blocking {
            if !d.deleting {
                self.queue.add(Work::AttemptToDelete(d.uid.clone()));
            }
        }
        Ok(())
    }

    async fn orphan(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.graph.lock().get(uid).cloned() else {
            return Ok(());
        };
        if !node.orphaning() {
            return Ok(());
        }
        let dependents: Vec<Node> = self
            .graph
            .lock()
            .dependents(uid)
            .into_iter()
            .cloned()
            .collect();
        for d in &dependents {
            ignore_gone(
                self.remove_owner_references(d, std::slice::from_ref(&node.uid))
                    .await,
            )?;
        }
        tracing::info!(controller = NAME, object = %node.key(), orphaned = dependents.len(), "dependents orphaned; removing the orphan finalizer");
        Ok(ignore_gone(self.remove_finalizer(&node, ORPHAN).await)?)
    }

    /// Drop `node`'s references to the owners `uids` (a merge patch with the object's
    /// resourceVersion, so a concurrent change is not overwritten).
    async fn remove_owner_references(
        &self,
        node: &Node,
        uids: &[String],
    ) -> Result<(), kube::Error> {
        let api = self.api_for(node);
        let Some(live) = api.get_metadata_opt(&node.name).await? else {
            return Ok(());
        };
        if live.metadata.uid.as_deref() != Some(node.uid.as_str()) {
            return Ok(());
        }
        let refs = live.metadata.owner_references.unwrap_or_default();
        let kept: Vec<&OwnerReference> = refs.iter().filter(|r| !uids.contains(&r.uid)).collect();
        if kept.len() == refs.len() {
            return Ok(());
        }
        // No references left: the field goes (as upstream's API server, which never
        // keeps an empty list, stores it).
        let kept = if kept.is_empty() {
            json!(null)
        } else {
            json!(kept)
        };
        let patch = json!({"metadata": {
            "ownerReferences": kept,
            "resourceVersion": live.metadata.resource_version,
        }});
        api.patch_metadata(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), kube::Error> {
        let api = self.api_for(node);
        let Some(live) = api.get_metadata_opt(&node.name).await? else {
            return Ok(());
        };
        if live.metadata.uid.as_deref() != Some(node.uid.as_str()) {
            return Ok(());
        }
        let finalizers = live.metadata.finalizers.unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let kept = if kept.is_empty() {
            json!(null)
        } else {
            json!(kept)
        };
        let patch = json!({"metadata": {
            "finalizers": kept,
            "resourceVersion": live.metadata.resource_version,
        }});
        api.patch_metadata(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_undeletable_resources_are_not_collected() {
        let r = |group: &str, plural: &str, verbs: &[&str]| Resource {
            group: group.into(),
            version: "v1".into(),
            kind: "K".into(),
            plural: plural.into(),
            namespaced: true,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        };
        let all = ["list", "watch", "delete", "get"];
        assert!(collectable(&r("", "pods", &all)));
        assert!(!collectable(&r("", "events", &all)));
        assert!(!collectable(&r("events.k8s.io", "events", &all)));
        assert!(!collectable(&r("", "bindings", &["create"])));
    }
}
