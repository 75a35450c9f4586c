//! The CronJob controller (upstream `cronjob`, the v2 controller): at each scheduled
//! time (read in `spec.timeZone`) it creates a Job `<cronjob>-<minutes since epoch>`
//! from the job template, annotated with the scheduled time, unless suspended, too late
//! for `startingDeadlineSeconds`, or forbidden by `concurrencyPolicy` (Forbid skips
//! while a job runs, Replace deletes the running ones first). It keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, and deletes finished jobs beyond the
//! history limits, oldest first. It wakes up at the next scheduled time.

pub mod logic;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use cron_schedule::Schedule;

use crate::context::Context;
use crate::controllers::util::keyed::{self, split_key};
use crate::controllers::util::queue::Outcome;
use crate::controllers::util::refs;
use crate::controllers::ControllerFuture;
use client::events::EventSink;
use logic::*;

pub const NAME: &str = "cronjob";
const COMPONENT: &str = "cronjob-controller";

struct CronJobController {
    client: kube::Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    events: EventSink,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let cj_informer = ctx.informers.get::<CronJob>();
    let job_informer = ctx.informers.get::<Job>();
    let mut keys = keyed::own_keys(&cj_informer)?;
    keys.extend(keyed::owner_keys(&job_informer, "CronJob")?);
    let c = Arc::new(CronJobController {
        client: ctx.client.clone(),
        cronjobs: cj_informer.store().clone(),
        jobs: job_informer.store().clone(),
        events: ctx.events(COMPONENT),
    });
    let workers = usize::from(ctx.options.concurrent_cron_job_syncs);
    let shutdown = ctx.shutdown.clone();
    let ready = {
        let c = Arc::clone(&c);
        async move {
            client::informers::synced(&c.cronjobs).await && client::informers::synced(&c.jobs).await
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

fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Finished jobs beyond `limit` (of those with `condition`), oldest first.
pub fn over_history_limit<'a>(
    jobs: &[&'a Job],
    condition: &str,
    limit: Option<i32>,
) -> Vec<&'a Job> {
    let Some(limit) = limit else {
        return Vec::new();
    };
    let mut finished: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished_condition(j) == Some(condition))
        .collect();
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    if finished.len() <= keep {
        return Vec::new();
    }
    finished.sort_by_key(|j| {
        (
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0),
            j.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let excess = finished.len() - keep;
    finished.truncate(excess);
    finished
}

impl CronJobController {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        let Some(cj) = self.cronjobs.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        match self.sync_cronjob(&cj, Timestamp::now()).await {
            Ok(Some(d)) => Outcome::After(d),
            Ok(None) => Outcome::Forget,
            Err(e) => {
                tracing::info!(controller = NAME, cronjob = key, error = %e, "sync failed");
                Outcome::Retry
            }
        }
    }

    async fn sync_cronjob(
        &self,
        cj: &CronJob,
        now: Timestamp,
    ) -> Result<Option<Duration>, kube::Error> {
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        let cj_api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
        let regarding = cj.object_ref(&());
        let Some(spec) = cj.spec.as_ref() else {
            return Ok(None);
        };
        let owned: Vec<Arc<Job>> = self
            .jobs
            .state()
            .into_iter()
            .filter(|j| {
                j.metadata.namespace.as_deref() == Some(ns.as_str())
                    && refs::is_controlled_by(&j.metadata, &uid)
            })
            .collect();
        let old_status = cj.status.clone().unwrap_or_default();
        let mut status = old_status.clone();
        let mut active = status.active.clone().unwrap_or_default();
        let in_active = |active: &[ObjectReference], j: &Job| {
            active
                .iter()
                .any(|r| r.uid.is_some() && r.uid == j.metadata.uid)
        };
        for j in &owned {
            let jname = j.metadata.name.clone().unwrap_or_default();
            let found = in_active(&active, j);
            match finished_condition(j) {
                None if !found => {
                    // Created by us before a crash, or by `kubectl create job --from`.
                    self.events.warning(
                        regarding.clone(),
                        "UnexpectedJob",
                        "Sync",
                        format!("Saw a job that the controller did not create or forgot: {jname}"),
                    );
                }
                Some(cond) if found => {
                    active.retain(|r| r.uid != j.metadata.uid);
                    self.events.normal(
                        regarding.clone(),
                        "SawCompletedJob",
                        "Sync",
                        format!("Saw completed job: {jname}, condition: {cond}"),
                    );
                }
                _ => {}
            }
            if finished_condition(j) == Some("Complete") {
                if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                    if status
                        .last_successful_time
                        .as_ref()
                        .is_none_or(|l| done.0 > l.0)
                    {
                        status.last_successful_time = Some(done);
                    }
                }
            }
        }
        // Active jobs that are gone.
        let mut kept = Vec::new();
        for r in active {
            if owned.iter().any(|j| j.metadata.uid == r.uid) {
                kept.push(r);
                continue;
            }
            let name = r.name.clone().unwrap_or_default();
            match jobs_api.get_opt(&name).await? {
                Some(j) if j.metadata.uid == r.uid => kept.push(r),
                _ => tracing::info!(controller = NAME, job = %name, "active job is gone"),
            }
        }
        let mut active = kept;

        if cj.metadata.deletion_timestamp.is_some() {
            status.active = (!active.is_empty()).then_some(active);
            self.write_status(&cj_api, cj, &old_status, status).await?;
            return Ok(None);
        }

        let result = self
            .schedule(cj, &jobs_api, &regarding, now, &mut active, &mut status)
            .await;
        status.active = (!active.is_empty()).then_some(active);
        self.write_status(&cj_api, cj, &old_status, status).await?;

        // History limits (upstream defaults: 3 successful, 1 failed).
        let finished: Vec<&Job> = owned.iter().map(|j| j.as_ref()).collect();
        let mut old: Vec<&Job> =
            over_history_limit(&finished, "Complete", spec.successful_jobs_history_limit);
        old.extend(over_history_limit(
            &finished,
            "Failed",
            spec.failed_jobs_history_limit,
        ));
        for j in old {
            self.delete_job(&jobs_api, &regarding, j).await;
        }
        result
    }

    /// Start the job due now, if any; returns when to look again.
    async fn schedule(
        &self,
        cj: &CronJob,
        jobs_api: &Api<Job>,
        regarding: &ObjectReference,
        now: Timestamp,
        active: &mut Vec<ObjectReference>,
        status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
    ) -> Result<Option<Duration>, kube::Error> {
        let Some(spec) = cj.spec.as_ref() else {
            return Ok(None);
        };
        let tz = match time_zone(cj) {
            Ok(tz) => tz,
            Err(e) => {
                self.events.warning(
                    regarding.clone(),
                    "UnknownTimeZone",
                    "Sync",
                    format!(
                        "invalid timeZone: {:?}: {e}",
                        spec.time_zone.as_deref().unwrap_or("")
                    ),
                );
                return Ok(None);
            }
        };
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.events.warning(
                    regarding.clone(),
                    "UnparseableSchedule",
                    "Sync",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let due = due(cj, &schedule, &tz, now);
        let wait = due.next.map(|n| {
            Duration::try_from(n.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100)
        });
        if due.missed > MAX_MISSED {
            self.events.warning(
                regarding.clone(),
                "TooManyMissedTimes",
                "Sync",
                format!(
                    "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                    due.missed
                ),
            );
        }
        let Some(scheduled) = due.scheduled else {
            return Ok(wait);
        };
        if due.too_late {
            self.events.warning(
                regarding.clone(),
                "MissSchedule",
                "Sync",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled_annotation(scheduled, &tz)
                ),
            );
            return Ok(wait);
        }
        let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
        let already = active
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            || status
                .last_schedule_time
                .as_ref()
                .is_some_and(|t| t.0 == scheduled);
        if already {
            return Ok(wait);
        }
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                self.events.normal(
                    regarding.clone(),
                    "JobAlreadyActive",
                    "Sync",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                );
                return Ok(wait);
            }
            Some("Replace") => {
                for r in std::mem::take(active) {
                    let jname = r.name.clone().unwrap_or_default();
                    if let Some(j) = self.jobs.get(
                        &ObjectRef::new(&jname).within(r.namespace.as_deref().unwrap_or_default()),
                    ) {
                        self.delete_job(jobs_api, regarding, &j).await;
                    }
                }
            }
            _ => {}
        }
        let job = job_from_template(cj, &name, scheduled, &tz);
        let created = match jobs_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                self.events.normal(
                    regarding.clone(),
                    "SuccessfulCreate",
                    "Create",
                    format!("Created job {name}"),
                );
                j
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Created before (a lost status update): take it as ours if it is.
                match jobs_api.get_opt(&name).await? {
                    Some(j)
                        if refs::is_controlled_by(
                            &j.metadata,
                            cj.metadata.uid.as_deref().unwrap_or_default(),
                        ) =>
                    {
                        j
                    }
                    _ => return Ok(wait),
                }
            }
            Err(e) => {
                self.events.warning(
                    regarding.clone(),
                    "FailedCreate",
                    "Create",
                    format!("Error creating job: {e}"),
                );
                return Err(e);
            }
        };
        if finished_condition(&created).is_none()
            && !active.iter().any(|r| r.uid == created.metadata.uid)
        {
            active.push(job_ref(&created));
        }
        status.last_schedule_time = Some(Time(scheduled));
        Ok(wait)
    }

    async fn delete_job(&self, api: &Api<Job>, regarding: &ObjectReference, job: &Job) {
        let name = job.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => self.events.normal(
                regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("Deleted job {name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => self.events.warning(
                regarding.clone(),
                "FailedDelete",
                "Delete",
                format!("Deleted job: {e}"),
            ),
        }
    }

    async fn write_status(
        &self,
        api: &Api<CronJob>,
        cj: &CronJob,
        old: &k8s_openapi::api::batch::v1::CronJobStatus,
        new: k8s_openapi::api::batch::v1::CronJobStatus,
    ) -> Result<(), kube::Error> {
        if &new == old {
            return Ok(());
        }
        let mut updated = cj.clone();
        updated.status = Some(new);
        let name = cj.metadata.name.clone().unwrap_or_default();
        api.replace_status(&name, &PostParams::default(), &updated)
            .await?;
        Ok(())
    }
}

/// The Job for `scheduled`: the template's metadata and spec, the scheduled-time
/// annotation, owned by the CronJob.
pub fn job_from_template(
    cj: &CronJob,
    name: &str,
    scheduled: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled_annotation(scheduled, tz),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![refs::controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
    };
    use std::collections::BTreeMap;

    fn finished(name: &str, cond: &str, start: i64) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.status = Some(JobStatus {
            start_time: Some(Time(Timestamp::from_second(start).unwrap())),
            conditions: Some(vec![JobCondition {
                type_: cond.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        j
    }

    #[test]
    fn history_limits_delete_the_oldest() {
        let jobs = [
            finished("a", "Complete", 30),
            finished("b", "Complete", 10),
            finished("c", "Failed", 5),
            finished("d", "Complete", 20),
            finished("e", "Failed", 50),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let names = |v: Vec<&Job>| -> Vec<String> {
            v.iter().map(|j| j.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(
            names(over_history_limit(&refs, "Complete", Some(1))),
            vec!["b", "d"]
        );
        assert_eq!(
            names(over_history_limit(&refs, "Failed", Some(1))),
            vec!["c"]
        );
        assert!(over_history_limit(&refs, "Complete", Some(3)).is_empty());
        assert!(over_history_limit(&refs, "Complete", None).is_empty());
    }

    #[test]
    fn jobs_are_named_annotated_and_owned() {
        let mut cj = CronJob {
            spec: Some(CronJobSpec {
                schedule: "*/1 * * * *".into(),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "hello".into())])),
                        ..Default::default()
                    }),
                    spec: Some(JobSpec {
                        backoff_limit: Some(2),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        cj.metadata.name = Some("hello".into());
        cj.metadata.namespace = Some("default".into());
        cj.metadata.uid = Some("u1".into());
        let at = Timestamp::from_second(1_700_000_040).unwrap();
        let job = job_from_template(&cj, &job_name("hello", at), at, &jiff::tz::TimeZone::UTC);
        assert_eq!(job.metadata.name.as_deref(), Some("hello-28333334"));
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
            "2023-11-14T22:14:00Z"
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "hello");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", "u1"));
        assert_eq!(job.spec.unwrap().backoff_limit, Some(2));
    }
}
