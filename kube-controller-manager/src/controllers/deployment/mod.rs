//! The deployment controller (upstream `pkg/controller/deployment`): one ReplicaSet per
//! pod template (named `<deployment>-<pod-template-hash>`), rolled over by the
//! RollingUpdate (maxSurge / maxUnavailable) or Recreate strategy, with revisions,
//! pause, proportional scaling in the middle of a rollout, cleanup of old sets beyond
//! `revisionHistoryLimit`, and the Progressing / Available / ReplicaFailure conditions
//! including the progress deadline. Rollback is what kubectl does on the client (it
//! writes an old template back): the matching old set becomes the new one again.

pub mod util;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::refs::{claim, controller_of, controller_ref};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;
use client::events::EventSink;
use util::*;

const COMPONENT: &str = "deployment-controller";

type Key = String;

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("hash collision for the new replica set of deployment {0}; retrying with collisionCount {1}")]
    Collision(String, i32),
}

struct DeploymentController {
    client: kube::Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    events: EventSink,
}

fn key_of(ns: &str, name: &str) -> Key {
    format!("{ns}/{name}")
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let d_informer = ctx.informers.get::<Deployment>();
    let rs_informer = ctx.informers.get::<ReplicaSet>();
    let pod_informer = ctx.informers.get::<Pod>();
    let d_changes = triggers::changes(&d_informer)?;
    let rs_changes = triggers::changes(&rs_informer)?;
    let rs_deletions = rs_informer.subscribe_deletions()?;
    let pod_deletions = pod_informer.subscribe_deletions()?;
    let dc = Arc::new(DeploymentController {
        client: ctx.client.clone(),
        deployments: d_informer.store().clone(),
        replica_sets: rs_informer.store().clone(),
        pods: pod_informer.store().clone(),
        events: ctx.events(COMPONENT),
    });
    let workers = usize::from(ctx.options.concurrent_deployment_syncs);
    let queue: Arc<WorkQueue<Key>> = WorkQueue::new(ctx.shutdown.clone());
    Ok(Box::pin(async move {
        if !client::informers::synced(&dc.deployments).await
            || !client::informers::synced(&dc.replica_sets).await
            || !client::informers::synced(&dc.pods).await
        {
            return;
        }
        tracing::info!(controller = "deployment", "caches synced");
        for d in dc.deployments.state() {
            queue.add(key_of(&d.namespace().unwrap_or_default(), &d.name_any()));
        }
        let feed = {
            let dc = Arc::clone(&dc);
            let queue = Arc::clone(&queue);
            async move {
                let ds = d_changes
                    .map(|d| vec![key_of(&d.namespace().unwrap_or_default(), &d.name_any())]);
                let rss = futures::stream::select(rs_changes, rs_deletions).map({
                    let dc = Arc::clone(&dc);
                    move |rs| dc.deployments_of_rs(&rs)
                });
                let pods = pod_deletions.map({
                    let dc = Arc::clone(&dc);
                    move |p| dc.deployment_of_pod(&p)
                });
                let mut all = std::pin::pin!(futures::stream::select(
                    futures::stream::select(ds, rss),
                    pods
                ));
                while let Some(keys) = all.next().await {
                    for k in keys {
                        queue.add(k);
                    }
                }
            }
        };
        let work = {
            let dc = Arc::clone(&dc);
            move |key: Key| {
                let dc = Arc::clone(&dc);
                async move { dc.sync(&key).await }
            }
        };
        tokio::select! {
            () = feed => {}
            () = run_workers(queue, workers, work) => {}
        }
    }))
}

fn selector_of(d: &Deployment) -> Option<apimachinery::labels::Selector> {
    let sel = &d.spec.as_ref()?.selector;
    apimachinery::labels::Selector::from_label_selector(sel).ok()
}

fn is_select_all(d: &Deployment) -> bool {
    d.spec.as_ref().is_some_and(|s| {
        s.selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && s.selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty)
    })
}

impl DeploymentController {
    /// The deployments a replica set concerns: its controller, or for an orphan those
    /// whose selector matches it.
    fn deployments_of_rs(&self, rs: &ReplicaSet) -> Vec<Key> {
        let ns = rs.namespace().unwrap_or_default();
        if let Some(r) = controller_of(&rs.metadata) {
            return if r.kind == "Deployment" {
                vec![key_of(&ns, &r.name)]
            } else {
                Vec::new()
            };
        }
        let empty = BTreeMap::new();
        let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
        self.deployments
            .state()
            .into_iter()
            .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
            .filter(|d| !is_select_all(d) && selector_of(d).is_some_and(|s| s.matches(labels)))
            .map(|d| key_of(&ns, &d.name_any()))
            .collect()
    }

    /// The deployment whose replica set owned a deleted pod (a Recreate rollout waits
    /// for old pods to go).
    fn deployment_of_pod(&self, pod: &Pod) -> Vec<Key> {
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return Vec::new();
        };
        self.replica_sets
            .get(&ObjectRef::new(&r.name).within(&ns))
            .and_then(|rs| controller_of(&rs.metadata).cloned())
            .filter(|r| r.kind == "Deployment")
            .map(|r| vec![key_of(&ns, &r.name)])
            .unwrap_or_default()
    }

    async fn sync(self: &Arc<Self>, key: &str) -> Outcome {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(d) = self.deployments.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        let mut d = (*d).clone();
        match self.sync_deployment(ns, &mut d).await {
            Ok(Some(after)) => Outcome::After(after),
            Ok(None) => Outcome::Forget,
            Err(SyncError::Api(kube::Error::Api(e))) if e.code == 404 || e.code == 409 => {
                tracing::debug!(key, error = %e, "deployment sync raced; retrying");
                Outcome::Retry
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "deployment sync failed");
                Outcome::Retry
            }
        }
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn regarding(d: &Deployment) -> ObjectReference {
        d.object_ref(&())
    }

    async fn sync_deployment(
        &self,
        ns: &str,
        d: &mut Deployment,
    ) -> Result<Option<Duration>, SyncError> {
        if is_select_all(d) {
            self.events.warning(
                Self::regarding(d),
                "SelectingAll",
                "Sync",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let observed = d.status.as_ref().and_then(|s| s.observed_generation);
            if observed < d.metadata.generation {
                let mut status = d.status.clone().unwrap_or_default();
                status.observed_generation = d.metadata.generation;
                self.write_status(ns, d, status).await?;
            }
            return Ok(None);
        }
        let mut rss = self.claim_replica_sets(ns, d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new, old) = self.new_and_old(ns, d, &mut rss, false).await?;
            self.sync_status_only(ns, d, &rss, new, &old).await?;
            return Ok(None);
        }
        self.check_paused_conditions(ns, d).await?;
        if paused(d) {
            self.sync_scale(ns, d, &mut rss).await?;
            return Ok(None);
        }
        if self.is_scaling_event(ns, d, &mut rss).await? {
            self.sync_scale(ns, d, &mut rss).await?;
            return Ok(None);
        }
        if is_recreate(d) {
            self.rollout_recreate(ns, d, &mut rss).await
        } else {
            self.rollout_rolling(ns, d, &mut rss).await
        }
    }

    /// The replica sets this deployment controls, adopting matching orphans and releasing
    /// those that no longer match.
    async fn claim_replica_sets(
        &self,
        ns: &str,
        d: &Deployment,
    ) -> Result<Vec<ReplicaSet>, kube::Error> {
        let uid = d.uid().unwrap_or_default();
        let Some(selector) = selector_of(d) else {
            return Ok(Vec::new());
        };
        let empty = BTreeMap::new();
        let candidates: Vec<ReplicaSet> = self
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns))
            .filter(|rs| match controller_of(&rs.metadata) {
                Some(r) => r.uid == uid,
                None => selector.matches(rs.metadata.labels.as_ref().unwrap_or(&empty)),
            })
            .map(|rs| (*rs).clone())
            .collect();
        claim(&self.rs_api(ns), d, candidates, |rs: &ReplicaSet| {
            selector.matches(rs.metadata.labels.as_ref().unwrap_or(&empty))
        })
        .await
    }

    async fn write_status(
        &self,
        ns: &str,
        d: &mut Deployment,
        status: DeploymentStatus,
    ) -> Result<(), kube::Error> {
        let patch = json!({"status": status});
        let updated = self
            .d_api(ns)
            .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        d.status = updated.status;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Upstream's `checkPausedConditions`: Progressing Unknown DeploymentPaused while
    /// paused, DeploymentResumed once resumed.
    async fn check_paused_conditions(
        &self,
        ns: &str,
        d: &mut Deployment,
    ) -> Result<(), kube::Error> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let status = d.status.clone().unwrap_or_default();
        let cond = get_condition(&status, PROGRESSING);
        if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
        let now = Timestamp::now();
        let mut status = status.clone();
        if paused(d) && !paused_cond {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused(d) && paused_cond {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    RESUMED,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(ns, d, status).await
    }

    /// The index of the new replica set in `rss` (created when `create` and missing),
    /// with the revision annotations of it and of the deployment brought up to date.
    /// Returns (new, old indices).
    async fn new_and_old(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<usize>, Vec<usize>), SyncError> {
        let existing = find_new(d, rss);
        let old: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != existing).collect();
        let max_old_revision = old.iter().map(|i| revision_of(&rss[*i])).max().unwrap_or(0);
        let new_revision = max_old_revision + 1;
        let now = Timestamp::now();

        if let Some(i) = existing {
            let rs = &rss[i];
            let mut annotations = rs.metadata.annotations.clone().unwrap_or_default();
            let changed = set_new_rs_annotations(d, &mut annotations, new_revision, true);
            let min_ready = min_ready_seconds(d);
            let min_ready_changed = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0)
                != min_ready;
            if changed || min_ready_changed {
                let patch = json!({
                    "metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": min_ready},
                });
                rss[i] = self
                    .rs_api(ns)
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
            }
            let revision = rss[i]
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(ns, d, &revision).await?;
            let status = d.status.clone().unwrap_or_default();
            if progress_deadline(d).is_some() && get_condition(&status, PROGRESSING).is_none() {
                let mut status = status;
                set_condition(
                    &mut status,
                    new_condition(
                        PROGRESSING,
                        "True",
                        FOUND_NEW_RS,
                        format!("Found new replica set \"{}\"", rss[i].name_any()),
                        now,
                    ),
                );
                self.write_status(ns, d, status).await?;
            }
            return Ok((Some(i), old));
        }
        if !create {
            return Ok((None, old));
        }

        // A new replica set for the current template.
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = template(d);
        let hash = compute_hash(&template, collision_count);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(DEFAULT_LABEL_KEY.into(), hash.clone());
        let mut selector: LabelSelector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(DEFAULT_LABEL_KEY.into(), hash.clone());
        let mut annotations = BTreeMap::new();
        set_new_rs_annotations(d, &mut annotations, new_revision, false);
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let new_replicas = new_rs_new_replicas(d, &all, 0);
        let name = format!("{}-{}", d.name_any(), hash);
        let new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                owner_references: Some(vec![controller_ref(d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(new_replicas),
                min_ready_seconds: Some(min_ready_seconds(d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let created = match self
            .rs_api(ns)
            .create(&PostParams::default(), &new_rs)
            .await
        {
            Ok(rs) => rs,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Taken: ours with the same template is fine (a cache lagging behind our
                // own create); anything else is a hash collision.
                let current = self.rs_api(ns).get(&name).await?;
                let same = controller_of(&current.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref())
                    && current
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| equal_ignore_hash(t, &template_of_d(d)));
                if same {
                    rss.push(current);
                    return Ok((Some(rss.len() - 1), old));
                }
                let mut status = d.status.clone().unwrap_or_default();
                let next = status.collision_count.unwrap_or(0).saturating_add(1);
                status.collision_count = Some(next);
                self.write_status(ns, d, status).await?;
                return Err(SyncError::Collision(d.name_any(), next));
            }
            Err(e) => {
                self.events.warning(
                    Self::regarding(d),
                    "FailedCreate",
                    "Create",
                    format!("Failed to create new replica set \"{name}\": {e}"),
                );
                if progress_deadline(d).is_some() {
                    let mut status = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition(
                            PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            format!("Failed to create new replica set \"{name}\": {e}"),
                            now,
                        ),
                    );
                    let _ = self.write_status(ns, d, status).await;
                }
                return Err(e.into());
            }
        };
        if new_replicas > 0 {
            self.events.normal(
                Self::regarding(d),
                "ScalingReplicaSet",
                "Scale",
                format!("Scaled up replica set {name} from 0 to {new_replicas}"),
            );
        }
        self.set_deployment_revision(ns, d, &new_revision.to_string())
            .await?;
        if progress_deadline(d).is_some() {
            let mut status = d.status.clone().unwrap_or_default();
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_CREATED,
                    format!("Created new replica set \"{name}\""),
                    now,
                ),
            );
            self.write_status(ns, d, status).await?;
        }
        rss.push(created);
        Ok((Some(rss.len() - 1), old))
    }

    async fn set_deployment_revision(
        &self,
        ns: &str,
        d: &mut Deployment,
        revision: &str,
    ) -> Result<(), kube::Error> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str);
        if current == Some(revision) || revision.is_empty() {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        let updated = self
            .d_api(ns)
            .patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        d.metadata.annotations = updated.metadata.annotations;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Set a replica set's size (and the replica annotations), with the
    /// ScalingReplicaSet event. Returns whether the size changed.
    async fn scale_rs(
        &self,
        ns: &str,
        d: &Deployment,
        rs: &mut ReplicaSet,
        new_scale: i32,
        operation: &str,
    ) -> Result<bool, kube::Error> {
        let old_scale = rs_replicas(rs);
        let size_changed = old_scale != new_scale;
        let desired = replicas(d);
        let max = desired + max_surge(d);
        if !size_changed && !replicas_annotations_need_update(rs, desired, max) {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired.to_string(), MAX_REPLICAS: max.to_string()}},
            "spec": {"replicas": new_scale},
        });
        *rs = self
            .rs_api(ns)
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        if size_changed {
            self.events.normal(
                Self::regarding(d),
                "ScalingReplicaSet",
                "Scale",
                format!(
                    "Scaled {operation} replica set {} from {old_scale} to {new_scale}",
                    rs.name_any()
                ),
            );
        }
        Ok(size_changed)
    }

    async fn scale_rs_and_record(
        &self,
        ns: &str,
        d: &Deployment,
        rs: &mut ReplicaSet,
        new_scale: i32,
    ) -> Result<bool, kube::Error> {
        let current = rs_replicas(rs);
        if current == new_scale {
            return Ok(false);
        }
        let op = if new_scale > current { "up" } else { "down" };
        self.scale_rs(ns, d, rs, new_scale, op).await
    }

    /// Upstream's `isScalingEvent`: an active set annotated with another desired size.
    async fn is_scaling_event(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<bool, SyncError> {
        let (new, old) = self.new_and_old(ns, d, rss, false).await?;
        let r = replicas(d);
        Ok(new
            .into_iter()
            .chain(old)
            .map(|i| &rss[i])
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| desired_replicas_annotation(rs).is_some_and(|v| v != r)))
    }

    /// Upstream's `sync`: scaling (or a paused deployment): resize without rolling out.
    async fn sync_scale(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<(), SyncError> {
        let (new, old) = self.new_and_old(ns, d, rss, false).await?;
        self.scale(ns, d, rss, new, &old).await?;
        if paused(d) {
            self.cleanup(ns, d, rss, &old).await?;
        }
        self.sync_status_only(ns, d, rss, new, &old).await?;
        Ok(())
    }

    /// Upstream's `scale`.
    async fn scale(
        &self,
        ns: &str,
        d: &Deployment,
        rss: &mut [ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<(), kube::Error> {
        let r = replicas(d);
        // The only active set, or the latest when none is active, takes the whole size.
        let mut old_newest_first: Vec<usize> = old.to_vec();
        old_newest_first.sort_by(|a, b| by_creation(&rss[*b], &rss[*a]));
        let active: Vec<usize> = new
            .into_iter()
            .chain(old_newest_first.iter().copied())
            .filter(|i| rs_replicas(&rss[*i]) > 0)
            .collect();
        let active_or_latest = match active.len() {
            0 => new.or_else(|| old_newest_first.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = active_or_latest {
            if rs_replicas(&rss[i]) != r {
                self.scale_rs_and_record(ns, d, &mut rss[i], r).await?;
            }
            return Ok(());
        }
        if is_saturated(d, new.map(|i| &rss[i])) {
            for &i in old {
                if rs_replicas(&rss[i]) > 0 {
                    self.scale_rs_and_record(ns, d, &mut rss[i], 0).await?;
                }
            }
            return Ok(());
        }
        if !is_recreate(d) {
            let refs: Vec<&ReplicaSet> = active.iter().map(|i| &rss[*i]).collect();
            let (sizes, up) = proportional_sizes(d, &refs);
            let op = if up { "up" } else { "down" };
            for (i, size) in active.into_iter().zip(sizes) {
                self.scale_rs(ns, d, &mut rss[i], size, op).await?;
            }
        }
        Ok(())
    }

    /// Upstream's `cleanupDeployment`: delete the oldest empty sets beyond
    /// `revisionHistoryLimit`.
    async fn cleanup(
        &self,
        ns: &str,
        d: &Deployment,
        rss: &[ReplicaSet],
        old: &[usize],
    ) -> Result<(), kube::Error> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .map(|i| &rss[*i])
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        if diff == 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision_of(a)
                .cmp(&revision_of(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(diff) {
            let status = rs.status.as_ref();
            let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
            if status.is_some_and(|s| s.replicas != 0)
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            match self
                .rs_api(ns)
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn sync_status_only(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<(), kube::Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new.iter()).map(|i| &rss[*i]).collect();
        let status = calculate_status(d, &all, new.map(|i| &rss[i]), Timestamp::now());
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.write_status(ns, d, status).await
    }

    async fn rollout_rolling(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, SyncError> {
        let (new, old) = self.new_and_old(ns, d, rss, true).await?;
        let Some(new) = new else {
            return Ok(None);
        };
        // Scale the new set up (within maxSurge), or down if it is too big.
        let r = replicas(d);
        let new_size = rs_replicas(&rss[new]);
        let scaled_up = if new_size > r {
            self.scale_rs_and_record(ns, d, &mut rss[new], r).await?
        } else if new_size < r {
            let all: Vec<&ReplicaSet> = rss.iter().collect();
            let target = new_rs_new_replicas(d, &all, new_size);
            self.scale_rs_and_record(ns, d, &mut rss[new], target)
                .await?
        } else {
            false
        };
        if scaled_up {
            return Ok(self
                .sync_rollout_status(ns, d, rss, Some(new), &old)
                .await?);
        }
        if self.reconcile_old(ns, d, rss, new, &old).await? {
            return Ok(self
                .sync_rollout_status(ns, d, rss, Some(new), &old)
                .await?);
        }
        let all: Vec<&ReplicaSet> = old.iter().chain([&new]).map(|i| &rss[*i]).collect();
        let status = calculate_status(d, &all, Some(&rss[new]), Timestamp::now());
        if complete(d, &status) {
            self.cleanup(ns, d, rss, &old).await?;
        }
        Ok(self
            .sync_rollout_status(ns, d, rss, Some(new), &old)
            .await?)
    }

    /// Upstream's `reconcileOldReplicaSets`: scale old sets down as far as
    /// maxUnavailable allows, unhealthy replicas first.
    async fn reconcile_old(
        &self,
        ns: &str,
        d: &Deployment,
        rss: &mut [ReplicaSet],
        new: usize,
        old: &[usize],
    ) -> Result<bool, kube::Error> {
        let mut active_old: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| rs_replicas(&rss[*i]) > 0)
            .collect();
        let old_count: i32 = active_old.iter().map(|i| rs_replicas(&rss[*i])).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count: i32 = old_count + rs_replicas(&rss[new]);
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(&rss[new]) - rs_available(&rss[new]);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        active_old.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
        // Unhealthy replicas first: they do not count towards availability.
        let mut cleaned = 0;
        for &i in &active_old {
            if cleaned >= max_scaled_down {
                break;
            }
            let (size, available) = (rs_replicas(&rss[i]), rs_available(&rss[i]));
            if size == 0 || size == available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(size - available);
            self.scale_rs_and_record(ns, d, &mut rss[i], size - down)
                .await?;
            cleaned += down;
        }
        // Then as many available ones as leave minAvailable.
        let available: i32 = active_old
            .iter()
            .chain([&new])
            .map(|i| rs_available(&rss[*i]))
            .sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &active_old {
                if scaled >= total {
                    break;
                }
                let size = rs_replicas(&rss[i]);
                if size == 0 {
                    continue;
                }
                let down = size.min(total - scaled);
                self.scale_rs_and_record(ns, d, &mut rss[i], size - down)
                    .await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn rollout_recreate(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, SyncError> {
        let (new, old) = self.new_and_old(ns, d, rss, false).await?;
        let mut scaled_down = false;
        for &i in &old {
            if rs_replicas(&rss[i]) > 0 {
                scaled_down |= self.scale_rs_and_record(ns, d, &mut rss[i], 0).await?;
            }
        }
        if scaled_down || self.old_pods_running(&old.iter().map(|i| &rss[*i]).collect::<Vec<_>>()) {
            return Ok(self.sync_rollout_status(ns, d, rss, new, &old).await?);
        }
        let new = match new {
            Some(n) => n,
            None => match self.new_and_old(ns, d, rss, true).await?.0 {
                Some(n) => n,
                None => return Ok(None),
            },
        };
        let r = replicas(d);
        self.scale_rs_and_record(ns, d, &mut rss[new], r).await?;
        let all: Vec<&ReplicaSet> = old.iter().chain([&new]).map(|i| &rss[*i]).collect();
        let status = calculate_status(d, &all, Some(&rss[new]), Timestamp::now());
        if complete(d, &status) {
            self.cleanup(ns, d, rss, &old).await?;
        }
        Ok(self
            .sync_rollout_status(ns, d, rss, Some(new), &old)
            .await?)
    }

    /// Whether any pod of the old sets is still there and not finished.
    fn old_pods_running(&self, old: &[&ReplicaSet]) -> bool {
        if old
            .iter()
            .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let uids: HashSet<String> = old.iter().filter_map(|rs| rs.uid()).collect();
        if uids.is_empty() {
            return false;
        }
        self.pods.state().iter().any(|p| {
            controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    /// Upstream's `syncRolloutStatus`: counts, Available, Progressing (with the
    /// deadline) and ReplicaFailure. Returns when to look again for the deadline.
    async fn sync_rollout_status(
        &self,
        ns: &str,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<Option<Duration>, kube::Error> {
        let now = Timestamp::now();
        let new_rs = new.map(|i| &rss[i]);
        let all: Vec<&ReplicaSet> = old.iter().chain(new.iter()).map(|i| &rss[*i]).collect();
        let mut status = calculate_status(d, &all, new_rs, now);
        if progress_deadline(d).is_none() {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = d.status.clone().unwrap_or_default();
        let current_cond = get_condition(&current, PROGRESSING);
        let is_complete = num_eq(status.replicas, status.updated_replicas)
            && current_cond.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        if progress_deadline(d).is_some() && !is_complete {
            let rs_name = new_rs.map(ResourceExt::name_any);
            if complete(d, &status) {
                let msg = rs_name.map_or_else(
                    || "Deployment has successfully progressed.".to_string(),
                    |n| format!("ReplicaSet \"{n}\" has successfully progressed."),
                );
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
                );
            } else if progressing(d, &status) {
                let msg = rs_name.map_or_else(
                    || "Deployment is progressing.".to_string(),
                    |n| format!("ReplicaSet \"{n}\" is progressing."),
                );
                let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now);
                if let Some(cur) = current_cond {
                    if cur.status == "True" {
                        c.last_transition_time.clone_from(&cur.last_transition_time);
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, c);
            } else if timed_out(d, &status, now) {
                let msg = rs_name.map_or_else(
                    || "Progress deadline exceeded".to_string(),
                    |n| format!("ReplicaSet \"{n}\" has timed out progressing."),
                );
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "False", TIMED_OUT, msg, now),
                );
            }
        }
        // The first ReplicaFailure of the sets (the new one first) becomes the
        // deployment's.
        let failure = new_rs
            .into_iter()
            .chain(old.iter().map(|i| &rss[*i]))
            .filter_map(|rs| rs.status.as_ref()?.conditions.as_ref())
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
            .cloned();
        match failure {
            Some(c) => set_condition(
                &mut status,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time,
                },
            ),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        if d.status.as_ref() != Some(&status) {
            self.write_status(ns, d, status.clone()).await?;
        }
        Ok(requeue_stuck(d, &status, now))
    }
}

fn num_eq(a: Option<i32>, b: Option<i32>) -> bool {
    a.unwrap_or(0) == b.unwrap_or(0)
}

fn template_of_d(d: &Deployment) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    template(d)
}

/// Upstream's `requeueStuckDeployment`: when a rollout in progress would pass its
/// deadline, so the timeout is noticed without other changes.
fn requeue_stuck(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = get_condition(status, PROGRESSING)?;
    if complete(d, status) || cond.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = cond.last_update_time.as_ref()?.0;
    let at = from + jiff::SignedDuration::from_secs(i64::from(deadline));
    let after = Duration::try_from(at.duration_since(now)).unwrap_or_default();
    Some(after.max(Duration::from_secs(1)))
}
