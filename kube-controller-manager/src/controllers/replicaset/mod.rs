//! The replicaset and replicationcontroller controllers (upstream
//! `pkg/controller/replicaset`): keep `spec.replicas` active pods matching the selector,
//! adopting matching orphans and releasing pods that stopped matching, creating in
//! slow-start batches of at most [`logic::BURST_REPLICAS`] per sync, deleting the pods
//! least far along first, and never acting on a cache that does not show its own last
//! writes yet (expectations). Status: replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas, observedGeneration and the ReplicaFailure condition.

pub mod kinds;
pub mod logic;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use crate::context::Context;
use crate::controllers::util::expectations::Expectations;
use crate::controllers::util::pods::{from_template, is_active, name_prefix};
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::refs::{claim, controller_of, controller_ref};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;
use client::events::EventSink;
use kinds::{status_patch, Replicated};
use logic::{ManageFailure, BURST_REPLICAS, SLOW_START_INITIAL_BATCH};

/// `namespace/name` of a managed object.
type Key = String;

pub fn start_replicaset(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    start::<ReplicaSet>(ctx, usize::from(ctx.options.concurrent_replicaset_syncs))
}

pub fn start_replicationcontroller(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    start::<ReplicationController>(ctx, usize::from(ctx.options.concurrent_rc_syncs))
}

struct ReplicaController<K: Replicated> {
    client: kube::Client,
    owners: Store<K>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: EventSink,
}

fn key_of(ns: &str, name: &str) -> Key {
    format!("{ns}/{name}")
}

fn start<K: Replicated>(ctx: &Context, workers: usize) -> anyhow::Result<ControllerFuture> {
    let owner_informer = ctx.informers.get::<K>();
    let pod_informer = ctx.informers.get::<Pod>();
    let owner_changes = triggers::changes(&owner_informer)?;
    let owner_deletions = owner_informer.subscribe_deletions()?;
    let pod_changes = triggers::changes(&pod_informer)?;
    let pod_deletions = pod_informer.subscribe_deletions()?;
    let rc = Arc::new(ReplicaController::<K> {
        client: ctx.client.clone(),
        owners: owner_informer.store().clone(),
        pods: pod_informer.store().clone(),
        expectations: Expectations::default(),
        events: ctx.events(K::COMPONENT),
    });
    let queue: Arc<WorkQueue<Key>> = WorkQueue::new(ctx.shutdown.clone());
    Ok(Box::pin(async move {
        if !client::informers::synced(&rc.owners).await
            || !client::informers::synced(&rc.pods).await
        {
            return;
        }
        tracing::info!(controller = K::CONTROLLER, "caches synced");
        for owner in rc.owners.state() {
            queue.add(key_of(
                &owner.namespace().unwrap_or_default(),
                &owner.name_any(),
            ));
        }
        let feed = {
            let rc = Arc::clone(&rc);
            let queue = Arc::clone(&queue);
            async move {
                let owners = owner_changes.map(|o| (Some(o), None));
                let gone = owner_deletions.map(|o| {
                    rc.expectations
                        .forget(&key_of(&o.namespace().unwrap_or_default(), &o.name_any()));
                    (Some(o), None)
                });
                let pods =
                    futures::stream::select(pod_changes, pod_deletions).map(|p| (None, Some(p)));
                let mut all = std::pin::pin!(futures::stream::select(
                    futures::stream::select(owners, gone),
                    pods,
                ));
                while let Some((owner, pod)) = all.next().await {
                    if let Some(o) = owner {
                        queue.add(key_of(&o.namespace().unwrap_or_default(), &o.name_any()));
                    }
                    if let Some(p) = pod {
                        for key in rc.owners_of(&p) {
                            queue.add(key);
                        }
                    }
                }
            }
        };
        let work = {
            let rc = Arc::clone(&rc);
            move |key: Key| {
                let rc = Arc::clone(&rc);
                async move { rc.sync(&key).await }
            }
        };
        tokio::select! {
            () = feed => {}
            () = run_workers(queue, workers, work) => {}
        }
    }))
}

impl<K: Replicated> ReplicaController<K> {
    /// The managed objects a pod event concerns: its controller if of our kind, else
    /// (an orphan) every one whose selector matches it.
    fn owners_of(&self, pod: &Pod) -> Vec<Key> {
        let ns = pod.namespace().unwrap_or_default();
        if let Some(r) = controller_of(&pod.metadata) {
            if r.kind == K::kind(&()) && r.api_version == K::api_version(&()) {
                return vec![key_of(&ns, &r.name)];
            }
            return Vec::new();
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return Vec::new();
        }
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        self.owners
            .state()
            .into_iter()
            .filter(|o| o.namespace().as_deref() == Some(ns.as_str()))
            .filter(|o| o.selector().matches(labels))
            .map(|o| key_of(&ns, &o.name_any()))
            .collect()
    }

    async fn sync(self: &Arc<Self>, key: &str) -> Outcome {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(owner) = self.owners.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            return Outcome::Forget;
        };
        match self.sync_owner(key, ns, &owner).await {
            Ok(Some(after)) => Outcome::After(after),
            Ok(None) => Outcome::Forget,
            Err(e) => {
                tracing::warn!(controller = K::CONTROLLER, key, error = %e, "sync failed");
                Outcome::Retry
            }
        }
    }

    async fn sync_owner(
        self: &Arc<Self>,
        key: &str,
        ns: &str,
        owner: &Arc<K>,
    ) -> Result<Option<Duration>, kube::Error> {
        let owner_uid = owner.uid().unwrap_or_default();
        let selector = owner.selector();
        let all_pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .collect();
        let seen: HashSet<&str> = all_pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let live: HashSet<&str> = all_pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let satisfied = self
            .expectations
            .in_flight_split(key, &seen, &live)
            .is_empty();
        let empty = Default::default();
        let matches = |p: &Pod| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty));
        // Pods already ours and matching stay shared with the cache; only those to adopt
        // or release are copied for the claim (copying thousands of pods every sync
        // would dominate the controller's memory and time).
        let mut claimed: Vec<Arc<Pod>> = Vec::new();
        let mut to_claim: Vec<Pod> = Vec::new();
        for p in all_pods.iter().filter(|p| is_active(p)) {
            match controller_of(&p.metadata) {
                Some(r) if r.uid == owner_uid => {
                    if matches(p) {
                        claimed.push(Arc::clone(p));
                    } else {
                        to_claim.push((**p).clone());
                    }
                }
                Some(_) => {}
                None if matches(p) => to_claim.push((**p).clone()),
                None => {}
            }
        }
        if !to_claim.is_empty() {
            let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let adopted = claim(&pod_api, owner.as_ref(), to_claim, |p: &Pod| matches(p)).await?;
            claimed.extend(adopted.into_iter().map(Arc::new));
        }

        let mut failure = None;
        if satisfied && owner.meta().deletion_timestamp.is_none() {
            if let Err(e) = self.manage(key, ns, owner, &claimed, &all_pods).await {
                failure = Some(ManageFailure {
                    message: e.to_string(),
                });
            }
        }

        let now = Timestamp::now();
        let current = owner.current_status();
        let mut status = logic::calculate_status(
            &current,
            owner.replicas(),
            &owner.template_labels(),
            owner.min_ready_seconds(),
            &claimed,
            failure.as_ref(),
            now,
        );
        let generation = owner.meta().generation.unwrap_or(0);
        if logic::status_needs_update(&current, &status, generation) {
            status.observed_generation = generation;
            let api: Api<K> = Api::namespaced(self.client.clone(), ns);
            match api
                .patch_status(
                    &owner.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(status_patch(&status)),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = failure {
            // Retried with backoff, as upstream requeues a sync whose manage failed.
            return Err(kube::Error::Service(f.message.into()));
        }
        // Look again when a ready pod becomes available.
        let min_ready = owner.min_ready_seconds();
        if min_ready > 0 && status.ready_replicas != status.available_replicas {
            return Ok(logic::next_available_in(&claimed, min_ready, now)
                .map(|d| d + Duration::from_millis(100)));
        }
        Ok(None)
    }

    /// Create or delete pods to reach `spec.replicas`.
    async fn manage(
        self: &Arc<Self>,
        key: &str,
        ns: &str,
        owner: &Arc<K>,
        pods: &[Arc<Pod>],
        all_pods: &[Arc<Pod>],
    ) -> Result<(), kube::Error> {
        let want = usize::try_from(owner.replicas().max(0)).unwrap_or(0);
        let have = pods.len();
        let regarding = owner.object_ref(&());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if have < want {
            let Some(template) = owner.template() else {
                return Ok(());
            };
            let count = (want - have).min(BURST_REPLICAS);
            let pod = from_template(
                template,
                ns,
                &name_prefix(&owner.name_any()),
                controller_ref(owner.as_ref()),
            );
            let (created, error) = logic::slow_start(count, SLOW_START_INITIAL_BATCH, || {
                let api = api.clone();
                let pod = pod.clone();
                async move { api.create(&PostParams::default(), &pod).await }
            })
            .await;
            for p in &created {
                let name = p.name_any();
                self.expectations.expect_created(key, &name);
                self.events.normal(
                    regarding.clone(),
                    "SuccessfulCreate",
                    "Create",
                    format!("Created pod: {name}"),
                );
            }
            if let Some(e) = error {
                // A namespace being deleted refuses pods: not worth an event.
                self.events.warning(
                    regarding,
                    "FailedCreate",
                    "Create",
                    format!("Error creating: {e}"),
                );
                return Err(e);
            }
        } else if have > want {
            let count = (have - want).min(BURST_REPLICAS);
            let related = self.related_pods(owner, all_pods);
            let doomed = logic::pods_to_delete(pods, &related, count, Timestamp::now());
            let results = futures::future::join_all(doomed.iter().map(|p| {
                let api = api.clone();
                let name = p.name_any();
                async move {
                    let r = api.delete(&name, &DeleteParams::default()).await;
                    (name, r)
                }
            }))
            .await;
            let mut first_error = None;
            for (name, r) in results {
                match r {
                    Ok(_) => {
                        self.expectations.expect_deleted(key, &name);
                        self.events.normal(
                            regarding.clone(),
                            "SuccessfulDelete",
                            "Delete",
                            format!("Deleted pod: {name}"),
                        );
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        self.events.warning(
                            regarding.clone(),
                            "FailedDelete",
                            "Delete",
                            format!("Error deleting: {e}"),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The active pods of the owner's family: those of every object of our kind with the
    /// same controller (the replica sets of one Deployment), or just its own.
    fn related_pods(&self, owner: &K, all_pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let mut uids: HashSet<String> = owner.uid().into_iter().collect();
        if let Some(parent) = controller_of(owner.meta()) {
            let ns = owner.namespace();
            for sibling in self.owners.state() {
                if sibling.namespace() == ns
                    && controller_of(sibling.meta()).is_some_and(|r| r.uid == parent.uid)
                {
                    uids.extend(sibling.uid());
                }
            }
        }
        all_pods
            .iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid)))
            .cloned()
            .collect()
    }
}
