//! The TTL-after-finished controller (upstream `ttl-after-finished`): a Job with
//! `ttlSecondsAfterFinished` is deleted (in the foreground, so its pods go first) that
//! many seconds after it finished, the finish time being the transition time of its
//! Complete or Failed condition. Before deleting, the Job is read again from the API
//! server, so a TTL changed meanwhile is respected.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::context::Context;
use crate::controllers::util::keyed::{self, split_key};
use crate::controllers::util::queue::Outcome;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "ttl-after-finished";

/// When a finished job expires: `None` if it has no TTL or has not finished.
pub fn expire_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .filter(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .max()?;
    Some(finished + jiff::SignedDuration::from_secs(i64::from(ttl)))
}

/// How long until `job` expires: `None` when it never does, zero when it has.
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let at = expire_at(job)?;
    if at <= now {
        return Some(Duration::ZERO);
    }
    Duration::try_from(at.duration_since(now)).ok()
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let informer = ctx.informers.get::<Job>();
    let keys = keyed::own_keys(&informer)?;
    let jobs = informer.store().clone();
    let client = ctx.client.clone();
    let workers = usize::from(ctx.options.concurrent_ttl_after_finished_syncs);
    let shutdown = ctx.shutdown.clone();
    let ready = {
        let jobs = jobs.clone();
        async move { client::informers::synced(&jobs).await }
    };
    Ok(Box::pin(async move {
        let jobs = Arc::new(jobs);
        keyed::run(keys, ready, workers, shutdown, move |key| {
            let jobs = Arc::clone(&jobs);
            let client = client.clone();
            async move { sync(&client, &jobs, &key).await }
        })
        .await;
    }))
}

async fn sync(client: &kube::Client, jobs: &Store<Job>, key: &str) -> Outcome {
    let (ns, name) = split_key(key);
    let Some(cached) = jobs.get(&ObjectRef::new(name).within(ns)) else {
        return Outcome::Forget;
    };
    match time_left(&cached, Timestamp::now()) {
        None => return Outcome::Forget,
        Some(d) if !d.is_zero() => return Outcome::After(d),
        Some(_) => {}
    }
    // The cache may be stale (the TTL may have been changed): look again.
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let fresh = match api.get_opt(name).await {
        Ok(Some(j)) => j,
        Ok(None) => return Outcome::Forget,
        Err(e) => {
            tracing::info!(controller = NAME, job = key, error = %e, "get failed");
            return Outcome::Retry;
        }
    };
    match time_left(&fresh, Timestamp::now()) {
        None => return Outcome::Forget,
        Some(d) if !d.is_zero() => return Outcome::After(d),
        Some(_) => {}
    }
    tracing::info!(controller = NAME, job = key, "cleaning up finished job");
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Outcome::Forget,
        Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Forget,
        Err(e) => {
            tracing::info!(controller = NAME, job = key, error = %e, "delete failed");
            Outcome::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(ttl: Option<i32>, finished: Option<(&str, i64)>) -> Job {
        Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished.map(|(t, at)| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn expiry_counts_from_the_finish_condition() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(time_left(&job(None, Some(("Complete", 900))), now), None);
        assert_eq!(time_left(&job(Some(10), None), now), None);
        assert_eq!(
            time_left(&job(Some(200), Some(("Complete", 900))), now),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            time_left(&job(Some(0), Some(("Failed", 999))), now),
            Some(Duration::ZERO)
        );
        // SuccessCriteriaMet alone is not finished.
        assert_eq!(
            time_left(&job(Some(0), Some(("SuccessCriteriaMet", 999))), now),
            None
        );
    }
}
