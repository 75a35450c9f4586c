//! The Job controller (upstream `job`): runs pods until `completions` succeed (or, for a
//! work queue, one succeeds and none runs), at most `parallelism` at once; counts
//! failures against `backoffLimit` with an exponential recreation backoff; applies the
//! pod failure policy; stops at `activeDeadlineSeconds`; Indexed jobs give each pod a
//! completion index. Pods carry the `batch.kubernetes.io/job-tracking` finalizer until
//! their outcome is recorded: finished pods are first listed in
//! `status.uncountedTerminatedPods`, then their finalizer is removed, then they move to
//! `succeeded`/`failed` — so no pod is counted twice or lost. A job first gets
//! `SuccessCriteriaMet` / `FailureTarget`, and `Complete` / `Failed` once none of its
//! pods runs any more, as upstream 1.33 does.

pub mod logic;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::{label_selector_as_selector, Selector};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use parking_lot::Mutex;
use serde_json::json;

use crate::context::Context;
use crate::controllers::util::expectations::Expectations;
use crate::controllers::util::keyed::{self, key_of, split_key};
use crate::controllers::util::queue::Outcome;
use crate::controllers::util::{pods, refs};
use crate::controllers::ControllerFuture;
use client::events::EventSink;
use logic::*;

pub const NAME: &str = "job";
const COMPONENT: &str = "job-controller";
/// Pods created or deleted per sync at most (upstream's MaxPodCreateDeletePerSync).
const MAX_POD_CHANGES: usize = 500;

#[derive(Default, Clone, Copy)]
struct BackoffRecord {
    failures_after_success: u32,
    last_failure: Option<Timestamp>,
}

pub struct JobController {
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    events: EventSink,
    expectations: Expectations,
    backoff: Mutex<HashMap<String, BackoffRecord>>,
    /// The resourceVersion of each job's last status write.
    written: Mutex<HashMap<String, u64>>,
}

fn rv_number(job: &Job) -> u64 {
    job.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let job_informer = ctx.informers.get::<Job>();
    let pod_informer = ctx.informers.get::<Pod>();
    let mut keys = keyed::own_keys(&job_informer)?;
    keys.extend(keyed::owner_keys(&pod_informer, "Job")?);
    let c = Arc::new(JobController {
        client: ctx.client.clone(),
        jobs: job_informer.store().clone(),
        pods: pod_informer.store().clone(),
        events: ctx.events(COMPONENT),
        expectations: Expectations::default(),
        backoff: Mutex::new(HashMap::new()),
        written: Mutex::new(HashMap::new()),
    });
    let workers = usize::from(ctx.options.concurrent_job_syncs);
    let shutdown = ctx.shutdown.clone();
    let ready = {
        let c = Arc::clone(&c);
        async move {
            client::informers::synced(&c.jobs).await && client::informers::synced(&c.pods).await
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

/// What one sync found out about the job's pods.
struct Observed {
    active: Vec<Arc<Pod>>,
    terminating: usize,
    /// Finished pods still holding the finalizer (uid → succeeded?).
    to_untrack: Vec<Arc<Pod>>,
    new_succeeded: Vec<String>,
    new_failed: Vec<String>,
    fail_job: Option<String>,
    succeeded_indexes: BTreeSet<i32>,
}

impl JobController {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        let Some(job) = self.jobs.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            self.backoff.lock().remove(key);
            self.written.lock().remove(key);
            return Outcome::Forget;
        };
        // The cache may not show our last status write yet: acting on an older job
        // would count pods again or miss conditions.
        let cached_rv = rv_number(&job);
        if let Some(&written) = self.written.lock().get(key) {
            if cached_rv < written {
                return Outcome::After(Duration::from_millis(100));
            }
        }
        match self.sync_job(key, &job).await {
            Ok(Some(d)) => Outcome::After(d),
            Ok(None) => Outcome::Forget,
            Err(e) => {
                tracing::info!(controller = NAME, job = key, error = %e, "sync failed");
                Outcome::Retry
            }
        }
    }

    fn job_pods(&self, job: &Job, selector: &Selector) -> Vec<Pod> {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter(|p| match refs::controller_of(&p.metadata) {
                Some(r) => r.uid == uid,
                None => p
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| selector.matches(l)),
            })
            .map(|p| (*p).clone())
            .collect()
    }

    async fn sync_job(&self, key: &str, job: &Job) -> Result<Option<Duration>, kube::Error> {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        let now = Timestamp::now();
        let Some(spec) = job.spec.as_ref() else {
            return Ok(None);
        };
        let selector = label_selector_as_selector(spec.selector.as_ref())
            .unwrap_or_else(|_| Selector::nothing());
        let candidates = self.job_pods(job, &selector);
        let claimed = refs::claim(&pods_api, job, candidates, |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| selector.matches(l))
        })
        .await?;
        let all: Vec<Arc<Pod>> = claimed.into_iter().map(Arc::new).collect();

        if is_finished(job) || job.metadata.deletion_timestamp.is_some() {
            // Nothing more to count: let every pod go.
            for p in all.iter().filter(|p| has_tracking_finalizer(p)) {
                self.remove_finalizer(&pods_api, p).await?;
            }
            return Ok(None);
        }

        let seen: HashSet<&str> = all
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let live: HashSet<&str> = all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let satisfied = self
            .expectations
            .in_flight_split(key, &seen, &live)
            .is_empty();

        // The object the final status write replaces (moved on by the phase-1 write).
        let mut base = job.clone();
        let mut status = job.status.clone().unwrap_or_default();
        let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let un_succ: HashSet<String> = uncounted.succeeded.iter().flatten().cloned().collect();
        let un_fail: HashSet<String> = uncounted.failed.iter().flatten().cloned().collect();
        let indexed = is_indexed(job);
        let completions = spec.completions.unwrap_or(1);

        let mut obs = Observed {
            active: Vec::new(),
            terminating: 0,
            to_untrack: Vec::new(),
            new_succeeded: Vec::new(),
            new_failed: Vec::new(),
            fail_job: None,
            succeeded_indexes: if indexed {
                parse_indexes(
                    status.completed_indexes.as_deref().unwrap_or(""),
                    completions,
                )
            } else {
                BTreeSet::new()
            },
        };
        let finishing =
            condition_true(job, FAILURE_TARGET) || condition_true(job, SUCCESS_CRITERIA_MET);
        let mut rec = self.backoff.lock().get(key).copied().unwrap_or_default();
        for pod in &all {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if pods::is_active(pod) {
                obs.active.push(Arc::clone(pod));
            }
            if is_terminating(pod) {
                obs.terminating += 1;
            }
            if indexed && is_succeeded(pod) {
                if let Some(i) = pod_index(pod).filter(|i| *i < completions) {
                    obs.succeeded_indexes.insert(i);
                }
            }
            // Pods count as failures when upstream's isPodFailed says so, or once the
            // job is finishing (every pod not succeeded then failed).
            // A terminating pod that does not count yet keeps its finalizer until it
            // does, so it is never let go uncounted.
            let counts_failed = is_failed(pod, job) || (finishing && !is_succeeded(pod));
            if !has_tracking_finalizer(pod) || !(is_succeeded(pod) || counts_failed) {
                continue;
            }
            obs.to_untrack.push(Arc::clone(pod));
            if un_succ.contains(&uid) || un_fail.contains(&uid) {
                continue;
            }
            if is_succeeded(pod) {
                obs.new_succeeded.push(uid);
                rec.failures_after_success = 0;
                continue;
            }
            if !counts_failed {
                continue;
            }
            match match_pod_failure_policy(job, pod) {
                Some(PolicyAction::Ignore) => continue,
                Some(PolicyAction::FailJob(msg)) => {
                    obs.fail_job.get_or_insert(msg);
                }
                _ => {}
            }
            obs.new_failed.push(uid);
            rec.failures_after_success += 1;
            let at = finish_time(pod).unwrap_or(now);
            rec.last_failure = Some(rec.last_failure.map_or(at, |l| l.max(at)));
        }
        self.backoff.lock().insert(key.to_string(), rec);

        // Phase 1: record newly finished pods as uncounted before letting them go.
        if !obs.new_succeeded.is_empty() || !obs.new_failed.is_empty() {
            uncounted
                .succeeded
                .get_or_insert_with(Vec::new)
                .extend(obs.new_succeeded.iter().cloned());
            uncounted
                .failed
                .get_or_insert_with(Vec::new)
                .extend(obs.new_failed.iter().cloned());
            status.uncounted_terminated_pods = Some(uncounted.clone());
            let mut updated = job.clone();
            updated.status = Some(status.clone());
            let written = self.write_status(&jobs_api, &updated).await?;
            status = written.status.clone().unwrap_or_default();
            base = written;
        }
        // Phase 2: remove finalizers of finished pods (counted or ignored).
        let mut released: HashSet<String> = HashSet::new();
        for pod in &obs.to_untrack {
            self.remove_finalizer(&pods_api, pod).await?;
            released.insert(pod.metadata.uid.clone().unwrap_or_default());
        }
        // Phase 3: uncounted pods that are released (or gone) move to the counters.
        let present_tracked: HashSet<String> = all
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let done = |uid: &String| released.contains(uid) || !present_tracked.contains(uid);
        let (succ_done, succ_left): (Vec<String>, Vec<String>) = uncounted
            .succeeded
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(done);
        let (fail_done, fail_left): (Vec<String>, Vec<String>) = uncounted
            .failed
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(done);
        let add = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        if indexed {
            status.completed_indexes = Some(format_indexes(&obs.succeeded_indexes));
            status.succeeded = Some(add(obs.succeeded_indexes.len()));
        } else {
            status.succeeded = Some(status.succeeded.unwrap_or(0) + add(succ_done.len()));
        }
        status.failed = Some(status.failed.unwrap_or(0) + add(fail_done.len()));
        uncounted.succeeded = Some(succ_left.clone());
        uncounted.failed = Some(fail_left.clone());
        status.uncounted_terminated_pods = Some(uncounted);
        let pending_failed = add(fail_left.len());
        let pending_succeeded = add(succ_left.len());

        status.active = Some(add(obs.active.len()));
        status.ready = Some(add(obs.active.iter().filter(|p| pods::is_ready(p)).count()));
        status.terminating = Some(add(obs.terminating));

        // Suspension.
        let suspended = spec.suspend == Some(true);
        let mut conditions = status.conditions.clone().unwrap_or_default();
        let mut requeue: Option<Duration> = None;
        let regarding = job.object_ref(&());
        if suspended {
            if set_condition(
                &mut conditions,
                SUSPENDED,
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                self.events.normal(
                    regarding.clone(),
                    "Suspended",
                    "Suspend",
                    "Job suspended".into(),
                );
            }
            self.delete_pods(&pods_api, key, job, &obs.active).await;
        } else {
            if condition_true(job, SUSPENDED) {
                set_condition(
                    &mut conditions,
                    SUSPENDED,
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                self.events
                    .normal(regarding.clone(), "Resumed", "Resume", "Job resumed".into());
                status.start_time = Some(Time(now));
            }
            if status.start_time.is_none() {
                status.start_time = Some(Time(now));
            }
        }

        // The outcome: failure first, as upstream.
        let mut updated = job.clone();
        updated.status = Some(status.clone());
        let failed_total = status.failed.unwrap_or(0) + pending_failed;
        let succeeded_total = status.succeeded.unwrap_or(0) + pending_succeeded;
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let existing_target = conditions
            .iter()
            .find(|c| c.type_ == FAILURE_TARGET && c.status == "True")
            .map(|c| {
                (
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            });
        let active_refs: Vec<&Pod> = obs.active.iter().map(|p| p.as_ref()).collect();
        let failure: Option<(String, String)> = if suspended {
            None
        } else if let Some(t) = existing_target {
            Some(t)
        } else if let Some(msg) = obs.fail_job.clone() {
            Some((REASON_POD_FAILURE_POLICY.into(), msg))
        } else if failed_total > backoff_limit
            || past_backoff_limit_on_failure(&updated, &active_refs)
        {
            Some((REASON_BACKOFF_LIMIT.into(), MSG_BACKOFF_LIMIT.into()))
        } else {
            match deadline_remaining(&updated, now) {
                Some(d) if d.is_zero() => Some((REASON_DEADLINE.into(), MSG_DEADLINE.into())),
                Some(d) => {
                    requeue = Some(d);
                    None
                }
                None => None,
            }
        };
        let succeeded_criteria = !suspended
            && failure.is_none()
            && (condition_true(job, SUCCESS_CRITERIA_MET)
                || completions_reached(
                    &updated,
                    succeeded_total,
                    obs.succeeded_indexes.len(),
                    obs.active.len(),
                ));
        let all_released = fail_left.is_empty()
            && succ_left.is_empty()
            && all.iter().all(|p| {
                !has_tracking_finalizer(p)
                    || released.contains(p.metadata.uid.as_deref().unwrap_or_default())
            });

        if let Some((reason, message)) = &failure {
            set_condition(
                &mut conditions,
                FAILURE_TARGET,
                "True",
                reason,
                message,
                now,
            );
            self.delete_pods(&pods_api, key, job, &obs.active).await;
            if obs.active.is_empty() && obs.terminating == 0 && all_released {
                set_condition(&mut conditions, FAILED, "True", reason, message, now);
                self.events
                    .warning(regarding.clone(), reason, "Fail", message.clone());
                status.active = Some(0);
                status.ready = Some(0);
            } else {
                requeue = Some(Duration::from_secs(1));
            }
        } else if succeeded_criteria {
            set_condition(
                &mut conditions,
                SUCCESS_CRITERIA_MET,
                "True",
                REASON_COMPLETIONS_REACHED,
                MSG_COMPLETIONS_REACHED,
                now,
            );
            self.delete_pods(&pods_api, key, job, &obs.active).await;
            if obs.active.is_empty() && obs.terminating == 0 && all_released {
                set_condition(
                    &mut conditions,
                    COMPLETE,
                    "True",
                    REASON_COMPLETIONS_REACHED,
                    MSG_COMPLETIONS_REACHED,
                    now,
                );
                status.completion_time = Some(Time(now));
                self.events.normal(
                    regarding.clone(),
                    "Completed",
                    "Complete",
                    "Job completed".into(),
                );
            } else {
                requeue = Some(Duration::from_secs(1));
            }
        } else if !suspended && satisfied {
            if let Some(wait) = self
                .manage(&pods_api, key, job, &obs, succeeded_total, rec, now)
                .await
            {
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
        }
        status.conditions = if conditions.is_empty() {
            None
        } else {
            Some(conditions)
        };
        if Some(&status) != base.status.as_ref() {
            base.status = Some(status);
            self.write_status(&jobs_api, &base).await?;
        }
        Ok(requeue)
    }

    /// Create or delete pods toward the wanted number; returns when to look again if
    /// creation waits for the failure backoff.
    #[allow(clippy::too_many_arguments)]
    async fn manage(
        &self,
        api: &Api<Pod>,
        key: &str,
        job: &Job,
        obs: &Observed,
        succeeded: i32,
        rec: BackoffRecord,
        now: Timestamp,
    ) -> Option<Duration> {
        let spec = job.spec.as_ref()?;
        let parallelism = usize::try_from(spec.parallelism.unwrap_or(1).max(0)).unwrap_or(0);
        // With podReplacementPolicy Failed, terminating pods still hold their place.
        let busy = obs.active.len()
            + if only_replace_failed(job) {
                obs.terminating
            } else {
                0
            };
        let wait = rec.last_failure.and_then(|last| {
            let until = last
                + jiff::SignedDuration::try_from(backoff_delay(rec.failures_after_success)).ok()?;
            (until > now).then(|| Duration::try_from(until.duration_since(now)).ok())?
        });
        if is_indexed(job) {
            let completions = spec.completions.unwrap_or(1);
            let mut active_idx = BTreeSet::new();
            let mut extra = Vec::new();
            for p in &obs.active {
                match pod_index(p) {
                    Some(i)
                        if i < completions
                            && !obs.succeeded_indexes.contains(&i)
                            && active_idx.insert(i) => {}
                    _ => extra.push(Arc::clone(p)),
                }
            }
            if !extra.is_empty() {
                self.delete_pods(api, key, job, &extra).await;
            }
            let budget = parallelism
                .saturating_sub(busy - extra.len().min(busy))
                .min(MAX_POD_CHANGES);
            let todo = indexes_to_create(
                completions,
                &obs.succeeded_indexes,
                &BTreeSet::new(),
                &active_idx,
                budget,
            );
            if todo.is_empty() {
                return None;
            }
            if wait.is_some() {
                return wait;
            }
            self.create_pods(api, key, job, todo.into_iter().map(Some).collect())
                .await;
            return None;
        }
        let want = usize::try_from(wanted_active(job, succeeded)).unwrap_or(0);
        if busy > want {
            let mut victims: Vec<Arc<Pod>> = obs.active.clone();
            // Unscheduled, then not ready, then newest first.
            victims.sort_by_key(|p| {
                let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                (
                    scheduled,
                    pods::is_ready(p),
                    std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
                )
            });
            victims.truncate((busy - want).min(MAX_POD_CHANGES));
            self.delete_pods(api, key, job, &victims).await;
            return None;
        }
        let diff = (want - busy).min(MAX_POD_CHANGES);
        if diff == 0 {
            return None;
        }
        if wait.is_some() {
            return wait;
        }
        self.create_pods(api, key, job, vec![None; diff]).await;
        None
    }

    async fn create_pods(&self, api: &Api<Pod>, key: &str, job: &Job, indexes: Vec<Option<i32>>) {
        let Some(spec) = job.spec.as_ref() else {
            return;
        };
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let owner = refs::controller_ref(job);
        let regarding = job.object_ref(&());
        let mut queue = indexes.into_iter();
        // Slow start: batches of 1, 2, 4, ... stopping at the first failure.
        let mut batch = 1usize;
        loop {
            let chunk: Vec<Option<i32>> = queue.by_ref().take(batch).collect();
            if chunk.is_empty() {
                return;
            }
            let futs = chunk.iter().map(|idx| {
                let pod = job_pod(&spec.template, &ns, &job_name, owner.clone(), *idx);
                async move { api.create(&PostParams::default(), &pod).await }
            });
            let mut failed = false;
            for r in futures::future::join_all(futs).await {
                match r {
                    Ok(p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        self.expectations.expect_created(key, &name);
                        self.events.normal(
                            regarding.clone(),
                            "SuccessfulCreate",
                            "Create",
                            format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        failed = true;
                        self.events.warning(
                            regarding.clone(),
                            "FailedCreate",
                            "Create",
                            format!("Error creating: {e}"),
                        );
                    }
                }
            }
            if failed {
                return;
            }
            batch *= 2;
        }
    }

    async fn delete_pods(&self, api: &Api<Pod>, key: &str, job: &Job, victims: &[Arc<Pod>]) {
        let victims: Vec<&Pod> = victims.iter().map(AsRef::as_ref).collect();
        pods::delete_controlled(
            api,
            &self.events,
            &self.expectations,
            key,
            &job.object_ref(&()),
            &victims,
        )
        .await;
    }

    async fn remove_finalizer(&self, api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(i) = pod
            .metadata
            .finalizers
            .as_ref()
            .and_then(|f| f.iter().position(|f| f == TRACKING_FINALIZER))
        else {
            return Ok(());
        };
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": TRACKING_FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]))
        .map_err(kube::Error::SerdeError)?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn write_status(&self, api: &Api<Job>, job: &Job) -> Result<Job, kube::Error> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let written = api
            .replace_status(&name, &PostParams::default(), job)
            .await?;
        self.written
            .lock()
            .insert(key_of(&written.metadata), rv_number(&written));
        Ok(written)
    }
}

/// A pod for `job` from its template, with the tracking finalizer, and for Indexed jobs
/// the completion index (annotation, label, hostname, `JOB_COMPLETION_INDEX`).
pub fn job_pod(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ns: &str,
    job_name: &str,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    index: Option<i32>,
) -> Pod {
    let prefix = match index {
        Some(i) => pods::name_prefix(&format!("{job_name}-{i}")),
        None => pods::name_prefix(job_name),
    };
    let mut pod = pods::from_template(template, ns, &prefix, owner);
    let finalizers = pod.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    if let Some(i) = index {
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        if let Some(spec) = pod.spec.as_mut() {
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{job_name}-{i}"));
            }
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..Default::default()
                }),
            };
            let containers = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let envs = c.env.get_or_insert_with(Vec::new);
                if !envs.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    envs.push(env.clone());
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    #[test]
    fn indexed_pods_carry_their_index() {
        let template = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    ..Default::default()
                }],
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut job = Job::default();
        job.metadata.name = Some("pi".into());
        job.metadata.uid = Some("u".into());
        let pod = job_pod(&template, "ns", "pi", refs::controller_ref(&job), Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX],
            "3"
        );
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX], "3");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, COMPLETION_INDEX_ENV);
        assert_eq!(
            pod.metadata.finalizers.unwrap(),
            vec![TRACKING_FINALIZER.to_string()]
        );
        let plain = job_pod(&template, "ns", "pi", refs::controller_ref(&job), None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(plain.spec.unwrap().hostname.is_none());
    }
}
