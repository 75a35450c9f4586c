//! The decisions of the Job controller, free of I/O: completion indexes, pod failure
//! policy, backoff, conditions and the pods to create.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The finalizer that keeps a finished pod until the controller has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation (and label) holding an Indexed job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable the index is exposed as.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Upstream's pod recreation backoff after failures: 10 s doubling up to 6 min.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
pub const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MSG_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
pub const REASON_MAX_FAILED_INDEXES: &str = "MaxFailedIndexesExceeded";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";

pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

pub fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Complete or Failed.
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, COMPLETE) || condition_true(job, FAILED)
}

/// Set (or update) a condition; returns whether anything changed. The transition time
/// moves only when the status changes.
pub fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// Parse an interval list ("1,3-5") into indexes below `completions`.
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            for i in lo.max(0)..=hi.min(completions - 1) {
                out.insert(i);
            }
        }
    }
    out
}

/// Format indexes as upstream's compressed interval list ("1,3-5").
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        if start == end {
            parts.push(start.to_string());
        } else {
            parts.push(format!("{start}-{end}"));
        }
    }
    parts.join(",")
}

/// An Indexed job pod's completion index.
pub fn pod_index(pod: &Pod) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
    };
    from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Whether the job replaces only pods that reached the Failed phase (upstream's
/// `onlyReplaceFailedPods`): podReplacementPolicy Failed, or a pod failure policy.
pub fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Upstream's `isPodFailed`: Failed, or (unless only failed pods are replaced) deleted
/// before succeeding.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// Finished from the job's point of view (counted as succeeded or failed).
pub fn is_finished_pod(pod: &Pod, job: &Job) -> bool {
    is_succeeded(pod) || is_failed(pod, job)
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// What a pod failure policy rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    FailJob(String),
    Ignore,
    Count,
    FailIndex,
}

fn rule_matches(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let status = pod.status.as_ref()?;
    if let Some(req) = &rule.on_exit_codes {
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            if req.container_name.as_deref().is_some_and(|n| n != cs.name) {
                continue;
            }
            let Some(term) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                continue;
            };
            // A zero exit code never matches (upstream ignores successful containers).
            if term.exit_code == 0 {
                continue;
            }
            let listed = req.values.contains(&term.exit_code);
            let hit = match req.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if hit {
                return Some(format!(
                    "Container {} for pod {name} failed with exit code {}",
                    cs.name, term.exit_code
                ));
            }
        }
        return None;
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        let status_want = pattern.status.as_str();
        let hit = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == status_want);
        if hit {
            return Some(format!("Pod {name} has condition {}", pattern.type_));
        }
    }
    None
}

/// The pod failure policy's verdict on a failed pod (first matching rule wins);
/// `None` when no rule matches (the pod counts).
pub fn match_pod_failure_policy(job: &Job, pod: &Pod) -> Option<PolicyAction> {
    let policy = job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(what) = rule_matches(rule, pod) {
            return Some(match rule.action.as_str() {
                "FailJob" => {
                    PolicyAction::FailJob(format!("{what} matching FailJob rule at index {i}"))
                }
                "Ignore" => PolicyAction::Ignore,
                "FailIndex" => PolicyAction::FailIndex,
                _ => PolicyAction::Count,
            });
        }
    }
    None
}

/// The delay before creating pods again after `failures` consecutive failures.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// restartPolicy OnFailure: failures show up as container restarts of active pods, and
/// the job fails once they reach the backoff limit (upstream's
/// `pastBackoffLimitOnFailure`).
pub fn past_backoff_limit_on_failure(job: &Job, active: &[&Pod]) -> bool {
    let spec = match job.spec.as_ref() {
        Some(s) => s,
        None => return false,
    };
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let limit = spec.backoff_limit.unwrap_or(6);
    let mut restarts: i64 = 0;
    for pod in active {
        let Some(st) = pod.status.as_ref() else {
            continue;
        };
        for cs in st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
        {
            restarts += i64::from(cs.restart_count);
        }
    }
    if limit == 0 {
        return restarts > 0;
    }
    restarts >= i64::from(limit)
}

/// Indexes to create pods for: not succeeded, not running, below completions, at most
/// `budget` of them, lowest first.
pub fn indexes_to_create(
    completions: i32,
    succeeded: &BTreeSet<i32>,
    failed: &BTreeSet<i32>,
    active: &BTreeSet<i32>,
    budget: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !succeeded.contains(i) && !failed.contains(i) && !active.contains(i))
        .take(budget)
        .collect()
}

/// How many pods should be active (upstream's `manageJob` arithmetic), for NonIndexed
/// jobs: with completions, no more than remain; without (a work queue), none once one
/// succeeded.
pub fn wanted_active(job: &Job, succeeded: i32) -> i32 {
    let Some(spec) = job.spec.as_ref() else {
        return 0;
    };
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    match spec.completions {
        Some(c) => parallelism.min((c - succeeded).max(0)),
        None if succeeded > 0 => 0,
        None => parallelism,
    }
}

/// Whether the job's success criteria are met.
pub fn completions_reached(
    job: &Job,
    succeeded: i32,
    succeeded_indexes: usize,
    active: usize,
) -> bool {
    let Some(spec) = job.spec.as_ref() else {
        return false;
    };
    if is_indexed(job) {
        let c = spec.completions.unwrap_or(1);
        return succeeded_indexes >= usize::try_from(c).unwrap_or(0);
    }
    match spec.completions {
        Some(c) => succeeded >= c,
        // Work queue: done once a pod succeeded and none is running.
        None => succeeded > 0 && active == 0,
    }
}

/// How long until the active deadline, `None` without one; zero once passed.
pub fn deadline_remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let ads = job.spec.as_ref()?.active_deadline_seconds?;
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    let end = start + jiff::SignedDuration::from_secs(ads);
    if end <= now {
        return Some(Duration::ZERO);
    }
    Duration::try_from(end.duration_since(now)).ok()
}

/// The time a pod finished (its containers' latest termination), else its deletion or
/// creation time.
pub fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let st = pod.status.as_ref();
    let latest = st
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|cs| cs.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    latest
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        JobSpec, JobStatus, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
        PodFailurePolicyOnPodConditionsPattern,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec,
        PodStatus, PodTemplateSpec,
    };

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        Job {
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn failed_pod(exit: i32, restarts: i32) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("pi-abc".into());
        p.metadata.namespace = Some("default".into());
        p.status = Some(PodStatus {
            phase: Some("Failed".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".into(),
                restart_count: restarts,
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: exit,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn indexes_round_trip_as_intervals() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set);
        // Out of range indexes are dropped.
        assert_eq!(parse_indexes("3-9", 5), [3, 4].into_iter().collect());
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn wanted_active_follows_completions_and_parallelism() {
        assert_eq!(wanted_active(&job(Some(5), 2), 0), 2);
        assert_eq!(wanted_active(&job(Some(5), 2), 4), 1);
        assert_eq!(wanted_active(&job(Some(5), 2), 5), 0);
        // Work queue.
        assert_eq!(wanted_active(&job(None, 3), 0), 3);
        assert_eq!(wanted_active(&job(None, 3), 1), 0);
    }

    #[test]
    fn completion_rules() {
        assert!(completions_reached(&job(Some(2), 1), 2, 0, 0));
        assert!(!completions_reached(&job(Some(2), 1), 1, 0, 0));
        assert!(!completions_reached(&job(None, 2), 1, 0, 1));
        assert!(completions_reached(&job(None, 2), 1, 0, 0));
        let mut indexed = job(Some(3), 3);
        indexed.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
        assert!(completions_reached(&indexed, 0, 3, 0));
        assert!(!completions_reached(&indexed, 5, 2, 0));
    }

    #[test]
    fn indexes_to_create_skip_done_and_running() {
        let s: BTreeSet<i32> = [0].into_iter().collect();
        let a: BTreeSet<i32> = [1].into_iter().collect();
        assert_eq!(
            indexes_to_create(5, &s, &BTreeSet::new(), &a, 2),
            vec![2, 3]
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(0), Duration::ZERO);
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(3), Duration::from_secs(40));
        assert_eq!(backoff_delay(10), BACKOFF_MAX);
    }

    #[test]
    fn pod_failure_policy_rules_in_order() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                    on_exit_codes: None,
                },
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some("main".into()),
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
                PodFailurePolicyRule {
                    action: "Count".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "NotIn".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
            ],
        });
        assert_eq!(
            match_pod_failure_policy(&j, &failed_pod(42, 0)),
            Some(PolicyAction::FailJob(
                "Container main for pod default/pi-abc failed with exit code 42 matching FailJob rule at index 1".into()
            ))
        );
        assert_eq!(
            match_pod_failure_policy(&j, &failed_pod(1, 0)),
            Some(PolicyAction::Count)
        );
        let mut disrupted = failed_pod(137, 0);
        disrupted.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert_eq!(
            match_pod_failure_policy(&j, &disrupted),
            Some(PolicyAction::Ignore)
        );
        // Exit code 0 never matches.
        assert_eq!(match_pod_failure_policy(&j, &failed_pod(0, 0)), None);
        // With a policy, a deleted pod that is not Failed is not a failure.
        let mut deleting = Pod::default();
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!is_failed(&deleting, &j));
        assert!(is_failed(&deleting, &job(Some(1), 1)));
    }

    #[test]
    fn on_failure_restarts_count_against_the_limit() {
        let mut j = job(Some(1), 1);
        let spec = j.spec.as_mut().unwrap();
        spec.backoff_limit = Some(2);
        spec.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let mut p = failed_pod(1, 1);
        p.status.as_mut().unwrap().phase = Some("Running".into());
        assert!(!past_backoff_limit_on_failure(&j, &[&p]));
        p.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = 2;
        assert!(past_backoff_limit_on_failure(&j, &[&p]));
    }

    #[test]
    fn conditions_keep_transition_time_while_status_holds() {
        let t0 = Timestamp::from_second(1000).unwrap();
        let t1 = Timestamp::from_second(2000).unwrap();
        let mut cs = Vec::new();
        assert!(set_condition(&mut cs, COMPLETE, "True", "R", "m", t0));
        assert!(!set_condition(&mut cs, COMPLETE, "True", "R", "m", t1));
        assert!(set_condition(&mut cs, COMPLETE, "True", "R2", "m", t1));
        assert_eq!(cs[0].last_transition_time, Some(Time(t0)));
        let mut j = job(Some(1), 1);
        j.status = Some(JobStatus {
            conditions: Some(cs),
            ..Default::default()
        });
        assert!(is_finished(&j));
    }

    #[test]
    fn deadline() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
        let start = Timestamp::from_second(1000).unwrap();
        j.status = Some(JobStatus {
            start_time: Some(Time(start)),
            ..Default::default()
        });
        assert_eq!(
            deadline_remaining(&j, Timestamp::from_second(1004).unwrap()),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            deadline_remaining(&j, Timestamp::from_second(1011).unwrap()),
            Some(Duration::ZERO)
        );
    }
}
