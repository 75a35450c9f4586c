//! The StatefulSet controller (upstream `statefulset`): pods with stable names
//! `<set>-<ordinal>` (hostname the pod name, subdomain the governing service), created
//! in ordinal order and deleted in reverse (`OrderedReady`: one at a time, each waiting
//! for its predecessors to be Running and Ready; `Parallel`: all at once), with a
//! PersistentVolumeClaim `<claim>-<set>-<ordinal>` per volume claim template that
//! outlives its pod. Templates are recorded as ControllerRevisions; `RollingUpdate`
//! replaces pods from the highest ordinal down to the partition, `maxUnavailable` at a
//! time; `OnDelete` leaves replacement to the user.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::{label_selector_as_selector, Selector};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use crate::context::Context;
use crate::controllers::replicaset::logic::is_available;
use crate::controllers::util::history::{self, CONTROLLER_REVISION_HASH_LABEL};
use crate::controllers::util::keyed::{self, split_key};
use crate::controllers::util::queue::Outcome;
use crate::controllers::util::{pods, refs};
use crate::controllers::ControllerFuture;
use client::events::EventSink;

pub const NAME: &str = "statefulset";
const COMPONENT: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct SetController {
    client: kube::Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    events: EventSink,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let set_informer = ctx.informers.get::<StatefulSet>();
    let pod_informer = ctx.informers.get::<Pod>();
    let rev_informer = ctx.informers.get::<ControllerRevision>();
    let claim_informer = ctx.informers.get::<PersistentVolumeClaim>();
    let mut keys = keyed::own_keys(&set_informer)?;
    keys.extend(keyed::owner_keys(&pod_informer, "StatefulSet")?);
    let c = Arc::new(SetController {
        client: ctx.client.clone(),
        sets: set_informer.store().clone(),
        pods: pod_informer.store().clone(),
        revisions: rev_informer.store().clone(),
        claims: claim_informer.store().clone(),
        events: ctx.events(COMPONENT),
    });
    let workers = usize::from(ctx.options.concurrent_statefulset_syncs);
    let shutdown = ctx.shutdown.clone();
    let ready = {
        let c = Arc::clone(&c);
        async move {
            client::informers::synced(&c.sets).await
                && client::informers::synced(&c.pods).await
                && client::informers::synced(&c.revisions).await
                && client::informers::synced(&c.claims).await
        }
    };
    Ok(Box::pin(async move {
        keyed::run(keys, ready, workers, shutdown, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
    }))
}

/// The ordinal of a pod of `set`, from its name `<set>-<ordinal>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

pub fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && pods::is_ready(pod)
}

/// The pod for `ordinal` of `set` at the revision whose template is `template`.
pub fn new_pod(
    set: &StatefulSet,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Pod {
    let name = set.metadata.name.clone().unwrap_or_default();
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let mut pod = pods::from_template(template, &ns, "", refs::controller_ref(set));
    let pname = pod_name(&name, ordinal);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pname.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pname.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.to_string());
    let spec_set = set.spec.as_ref();
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some(pname.clone());
        if let Some(svc) = spec_set.and_then(|s| s.service_name.clone()) {
            if !svc.is_empty() {
                spec.subdomain = Some(svc);
            }
        }
        for claim in spec_set
            .and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
        {
            let cname = claim.metadata.name.clone().unwrap_or_default();
            let volume = Volume {
                name: cname.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&cname, &name, ordinal),
                    read_only: None,
                }),
                ..Default::default()
            };
            let volumes = spec.volumes.get_or_insert_with(Vec::new);
            volumes.retain(|v| v.name != cname);
            volumes.push(volume);
        }
    }
    pod
}

/// How many pods may be unavailable during a rolling update.
pub fn max_unavailable(set: &StatefulSet) -> usize {
    let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let v = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone());
    let n = match v {
        None => 1,
        Some(IntOrString::Int(i)) => i,
        Some(IntOrString::String(s)) => {
            let pct: i32 = s.trim_end_matches('%').parse().unwrap_or(0);
            // Rounded down, as upstream, but at least one.
            replicas.saturating_mul(pct) / 100
        }
    };
    usize::try_from(n.max(1)).unwrap_or(1)
}

impl SetController {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        let Some(set) = self.sets.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        match self.sync_set(&set).await {
            Ok(Some(d)) => Outcome::After(d),
            Ok(None) => Outcome::Forget,
            Err(e) => {
                tracing::info!(controller = NAME, set = key, error = %e, "sync failed");
                Outcome::Retry
            }
        }
    }

    /// The current and update revisions (creating the update revision if the template
    /// is new), and the set's revisions.
    async fn revisions(
        &self,
        set: &StatefulSet,
        status: &mut StatefulSetStatus,
    ) -> Result<
        (
            ControllerRevision,
            ControllerRevision,
            Vec<ControllerRevision>,
        ),
        kube::Error,
    > {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let mut revs = history::owned(&self.revisions, set);
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut collisions = status.collision_count.unwrap_or(0);
        let update = history::for_template(&api, set, &revs, &template, &mut collisions).await?;
        status.collision_count = Some(collisions);
        match revs
            .iter()
            .position(|r| r.metadata.name == update.metadata.name)
        {
            // Renumbered by a rollback.
            Some(i) => revs[i] = update.clone(),
            None => revs.push(update.clone()),
        }
        let current = status
            .current_revision
            .as_ref()
            .and_then(|name| revs.iter().find(|r| r.metadata.name.as_ref() == Some(name)))
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, revs))
    }

    async fn sync_set(&self, set: &StatefulSet) -> Result<Option<Duration>, kube::Error> {
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let Some(spec) = set.spec.as_ref() else {
            return Ok(None);
        };
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let sets_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
        let regarding = set.object_ref(&());
        let selector = label_selector_as_selector(Some(&spec.selector))
            .unwrap_or_else(|_| Selector::nothing());
        let candidates: Vec<Pod> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| match refs::controller_of(&p.metadata) {
                Some(r) => r.uid == uid,
                None => p
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| selector.matches(l)),
            })
            .map(|p| (*p).clone())
            .collect();
        let set_name_c = set_name.clone();
        let claimed = refs::claim(&pods_api, set, candidates, |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| selector.matches(l))
                && p.metadata
                    .name
                    .as_deref()
                    .and_then(|n| ordinal_of(&set_name_c, n))
                    .is_some()
        })
        .await?;

        let old_status = set.status.clone().unwrap_or_default();
        let mut status = old_status.clone();
        let (current, update, revs) = self.revisions(set, &mut status).await?;
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let current_template = history::template_of(&current).unwrap_or_default();
        let update_template = spec.template.clone();

        let replicas = spec.replicas.unwrap_or(1).max(0);
        let start = spec
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0)
            .max(0);
        let end = start + replicas;
        let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
        let strategy = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            .unwrap_or("RollingUpdate");
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();

        let mut by_ordinal: BTreeMap<i32, Pod> = BTreeMap::new();
        for p in claimed {
            if let Some(o) = p
                .metadata
                .name
                .as_deref()
                .and_then(|n| ordinal_of(&set_name, n))
            {
                by_ordinal.insert(o, p);
            }
        }

        if set.metadata.deletion_timestamp.is_none() {
            self.update_claim_owners(set, &by_ordinal, start, end).await;
        }
        let mut requeue = None;
        if set.metadata.deletion_timestamp.is_none() {
            requeue = self
                .manage(
                    set,
                    &pods_api,
                    &regarding,
                    &by_ordinal,
                    Plan {
                        start,
                        end,
                        parallel,
                        rolling: strategy == "RollingUpdate",
                        partition,
                        current: (&current_name, &current_template),
                        update: (&update_name, &update_template),
                        max_unavailable: max_unavailable(set),
                        min_ready,
                    },
                )
                .await?;
        }

        // Status from the pods as observed.
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(by_ordinal.values().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        status.observed_generation = set.metadata.generation;
        status.replicas = count(&|_| true);
        status.ready_replicas = Some(count(&|p| running_and_ready(p)));
        status.available_replicas = Some(count(&|p| {
            running_and_ready(p) && is_available(p, min_ready, now)
        }));
        status.current_replicas = Some(count(&|p| revision_of(p) == Some(current_name.as_str())));
        status.updated_replicas = Some(count(&|p| revision_of(p) == Some(update_name.as_str())));
        status.current_revision = Some(current_name.clone());
        status.update_revision = Some(update_name.clone());
        // A finished rolling update makes the update revision current.
        if strategy == "RollingUpdate"
            && status.updated_replicas == Some(replicas)
            && status.ready_replicas == Some(replicas)
            && status.replicas == replicas
        {
            status.current_revision = Some(update_name.clone());
            status.current_replicas = status.updated_replicas;
        }
        for f in [
            &mut status.ready_replicas,
            &mut status.available_replicas,
            &mut status.current_replicas,
            &mut status.updated_replicas,
        ] {
            if *f == Some(0) {
                *f = None;
            }
        }
        if status != old_status {
            let mut updated = set.clone();
            updated.status = Some(status.clone());
            sets_api
                .replace_status(&set_name, &PostParams::default(), &updated)
                .await?;
        }
        self.truncate_history(set, &revs, &by_ordinal, &status)
            .await;
        if min_ready > 0 && status.available_replicas != status.ready_replicas {
            requeue = Some(requeue.map_or(Duration::from_secs(1), |r: Duration| {
                r.min(Duration::from_secs(1))
            }));
        }
        Ok(requeue)
    }

    async fn manage(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        pods: &BTreeMap<i32, Pod>,
        plan: Plan<'_>,
    ) -> Result<Option<Duration>, kube::Error> {
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let ordered = !plan.parallel;
        // Failed pods are replaced.
        for p in pods.values() {
            if phase(p) == "Failed" && p.metadata.deletion_timestamp.is_none() {
                self.delete_pod(api, regarding, &set_name, p).await;
                if ordered {
                    return Ok(None);
                }
            }
        }
        // Create missing pods in order; ordered management waits for each to be ready.
        for ordinal in plan.start..plan.end {
            match pods.get(&ordinal) {
                None => {
                    let (rev, template) = if plan.rolling && ordinal < plan.partition {
                        plan.current
                    } else {
                        plan.update
                    };
                    self.create_pod(set, api, regarding, template, rev, ordinal)
                        .await?;
                    if ordered {
                        return Ok(None);
                    }
                }
                Some(p) => {
                    if ordered && (p.metadata.deletion_timestamp.is_some() || !running_and_ready(p))
                    {
                        return Ok(None);
                    }
                }
            }
        }
        // Condemned pods (ordinal outside the range), highest first.
        let condemned: Vec<&Pod> = pods
            .iter()
            .rev()
            .filter(|(o, _)| **o < plan.start || **o >= plan.end)
            .map(|(_, p)| p)
            .collect();
        for p in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if ordered {
                    return Ok(None);
                }
                continue;
            }
            self.delete_pod(api, regarding, &set_name, p).await;
            if ordered {
                return Ok(None);
            }
        }
        if !condemned.is_empty() {
            return Ok(None);
        }
        if !plan.rolling {
            return Ok(None);
        }
        // Rolling update: highest ordinal first, down to the partition, keeping at
        // most maxUnavailable pods unavailable.
        let now = Timestamp::now();
        let unavailable = (plan.start..plan.end)
            .filter(|o| {
                pods.get(o).is_none_or(|p| {
                    p.metadata.deletion_timestamp.is_some()
                        || !running_and_ready(p)
                        || !is_available(p, plan.min_ready, now)
                })
            })
            .count();
        let mut budget = plan.max_unavailable.saturating_sub(unavailable);
        for ordinal in (plan.start.max(plan.partition)..plan.end).rev() {
            let Some(p) = pods.get(&ordinal) else {
                continue;
            };
            if revision_of(p) == Some(plan.update.0) || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if budget == 0 {
                break;
            }
            self.delete_pod(api, regarding, &set_name, p).await;
            budget -= 1;
        }
        Ok(None)
    }

    async fn create_pod(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
        revision: &str,
        ordinal: i32,
    ) -> Result<(), kube::Error> {
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let pname = pod_name(&set_name, ordinal);
        // Claims first: they outlive the pod, and an existing one is reused.
        let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let selector_labels = set
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone());
        for t in set
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
        {
            let cname = claim_name(
                t.metadata.name.as_deref().unwrap_or_default(),
                &set_name,
                ordinal,
            );
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone().unwrap_or_default());
            let pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(cname.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            match pvc_api.create(&PostParams::default(), &pvc).await {
                Ok(_) => self.events.normal(
                    regarding.clone(),
                    "SuccessfulCreate",
                    "Create",
                    format!("create Claim {cname} Pod {pname} in StatefulSet {set_name} success"),
                ),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    self.events.warning(
                        regarding.clone(),
                        "FailedCreate",
                        "Create",
                        format!("create Claim {cname} for Pod {pname} in StatefulSet {set_name} failed error: {e}"),
                    );
                    return Err(e);
                }
            }
        }
        let pod = new_pod(set, template, revision, ordinal);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.events.normal(
                    regarding.clone(),
                    "SuccessfulCreate",
                    "Create",
                    format!("create Pod {pname} in StatefulSet {set_name} successful"),
                );
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => {
                self.events.warning(
                    regarding.clone(),
                    "FailedCreate",
                    "Create",
                    format!("create Pod {pname} in StatefulSet {set_name} failed error: {e}"),
                );
                Err(e)
            }
        }
    }

    async fn delete_pod(
        &self,
        api: &Api<Pod>,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        set_name: &str,
        pod: &Pod,
    ) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => self.events.normal(
                regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("delete Pod {name} in StatefulSet {set_name} successful"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => self.events.warning(
                regarding.clone(),
                "FailedDelete",
                "Delete",
                format!("delete Pod {name} in StatefulSet {set_name} failed error: {e}"),
            ),
        }
    }

    /// persistentVolumeClaimRetentionPolicy through owner references, which the garbage
    /// collector acts on: `whenDeleted: Delete` makes the set an owner of every claim,
    /// `whenScaled: Delete` makes a condemned pod the owner of its claims (set before the
    /// pod is deleted); `Retain` removes those references.
    async fn update_claim_owners(
        &self,
        set: &StatefulSet,
        pods: &BTreeMap<i32, Pod>,
        start: i32,
        end: i32,
    ) {
        let Some(spec) = set.spec.as_ref() else {
            return;
        };
        let policy = spec.persistent_volume_claim_retention_policy.as_ref();
        let when_deleted = policy.and_then(|p| p.when_deleted.as_deref()) == Some("Delete");
        let when_scaled = policy.and_then(|p| p.when_scaled.as_deref()) == Some("Delete");
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let set_uid = set.metadata.uid.clone().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for t in spec.volume_claim_templates.iter().flatten() {
            let tname = t.metadata.name.clone().unwrap_or_default();
            for (ordinal, pod) in pods {
                let cname = claim_name(&tname, &set_name, *ordinal);
                let Some(claim) = self.claims.get(&ObjectRef::new(&cname).within(&ns)) else {
                    continue;
                };
                let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
                let condemned = *ordinal < start || *ordinal >= end;
                let mut refs_now = claim.metadata.owner_references.clone().unwrap_or_default();
                let before = refs_now.clone();
                let mut want = |uid: &str, wanted: bool, r: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference| {
                    let has = refs_now.iter().any(|o| o.uid == uid);
                    if wanted && !has {
                        refs_now.push(r);
                    } else if !wanted && has {
                        refs_now.retain(|o| o.uid != uid);
                    }
                };
                let mut set_ref = refs::controller_ref(set);
                set_ref.controller = None;
                set_ref.block_owner_deletion = None;
                want(&set_uid, when_deleted, set_ref);
                let mut pod_ref = refs::controller_ref(pod);
                pod_ref.controller = None;
                pod_ref.block_owner_deletion = None;
                want(&pod_uid, when_scaled && condemned, pod_ref);
                if refs_now == before {
                    continue;
                }
                let patch = serde_json::json!({"metadata": {
                    "ownerReferences": refs_now,
                    "resourceVersion": claim.metadata.resource_version,
                }});
                if let Err(e) = api
                    .patch(
                        &cname,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(patch),
                    )
                    .await
                {
                    tracing::info!(controller = NAME, claim = %cname, error = %e, "updating claim owners");
                }
            }
        }
    }

    /// Delete revisions beyond revisionHistoryLimit that no pod and neither the current
    /// nor the update revision uses, oldest first.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        revs: &[ControllerRevision],
        pods: &BTreeMap<i32, Pod>,
        status: &StatefulSetStatus,
    ) {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        let live: HashSet<&str> = pods
            .values()
            .filter_map(|p| revision_of(p))
            .chain(status.current_revision.as_deref())
            .chain(status.update_revision.as_deref())
            .collect();
        let history: Vec<&ControllerRevision> = revs
            .iter()
            .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
            .collect();
        if history.len() <= limit {
            return;
        }
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        for r in &history[..history.len() - limit] {
            let name = r.metadata.name.clone().unwrap_or_default();
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                tracing::debug!(controller = NAME, revision = %name, error = %e, "delete failed");
            }
        }
    }
}

struct Plan<'a> {
    start: i32,
    end: i32,
    parallel: bool,
    rolling: bool,
    partition: i32,
    current: (&'a str, &'a k8s_openapi::api::core::v1::PodTemplateSpec),
    update: (&'a str, &'a k8s_openapi::api::core::v1::PodTemplateSpec),
    max_unavailable: usize,
    min_ready: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{
        Container, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    };

    fn web() -> StatefulSet {
        let mut s = StatefulSet {
            spec: Some(StatefulSetSpec {
                replicas: Some(4),
                service_name: Some("nginx".into()),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "nginx".into())])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "nginx".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("www".into()),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec::default()),
                    status: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("u".into());
        s
    }

    #[test]
    fn pods_have_stable_identity_and_claims() {
        let set = web();
        let pod = new_pod(&set, &set.spec.as_ref().unwrap().template, "web-abc", 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[CONTROLLER_REVISION_HASH_LABEL], "web-abc");
        assert_eq!(labels["app"], "nginx");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vol = &spec.volumes.unwrap()[0];
        assert_eq!(vol.name, "www");
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
    }

    #[test]
    fn ordinals_parse_only_own_pods() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
    }

    #[test]
    fn max_unavailable_from_numbers_and_percents() {
        let mut set = web();
        assert_eq!(max_unavailable(&set), 1);
        set.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                max_unavailable: Some(IntOrString::String("50%".into())),
                partition: None,
            }),
        });
        assert_eq!(max_unavailable(&set), 2);
        set.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                max_unavailable: Some(IntOrString::Int(3)),
                partition: None,
            }),
        });
        assert_eq!(max_unavailable(&set), 3);
    }
}
