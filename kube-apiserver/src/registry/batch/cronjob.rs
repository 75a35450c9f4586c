//! cronjobs: defaults (`SetDefaults_CronJob`), validation (`ValidateCronJobCreate` and
//! `...Update`: the cron schedule, the time zone, the job template) and printing.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, JobSpec};
use serde_json::Value;

use crate::registry::apps::{container_cells, format_label_selector, selector_json, template};
use crate::registry::batch::job::{default_pod_failure_policy, validate_job_spec_common};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;
use cron_schedule::{load_location, Schedule};

pub struct CronJobStrategy;

/// Jobs are named `<cronjob>-<11 digit timestamp>`, and job names are DNS labels.
const MAX_NAME_LENGTH: usize = 63 - 11;

const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    Column::new(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
    ),
    Column::new(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
    ),
    Column::new("Active", "integer", "A list of pointers to currently running jobs."),
    Column::new(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    Column::new("Containers", "string", "Names of each container in the template.").wide(),
    Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
    Column::new(
        "Selector",
        "string",
        "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )
    .wide(),
];

impl TypedStrategy for CronJobStrategy {
    type Object = CronJob;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<CronJob>()
            .short_names(&["cj"])
            .categories(&["all"])
            .with_status()
            .tracks_generation()
    }

    fn default(&self, cj: &mut CronJob) {
        let spec = cj.spec.get_or_insert_with(CronJobSpec::default);
        if spec
            .concurrency_policy
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            spec.concurrency_policy = Some("Allow".into());
        }
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        // The job template gets the pod defaults, not the Job's own.
        let job_spec = spec.job_template.spec.get_or_insert_with(JobSpec::default);
        default_pod_failure_policy(job_spec.pod_failure_policy.as_mut());
        template::default_pod_template(&mut job_spec.template);
    }

    fn prepare_for_create(&self, cj: &mut CronJob) {
        cj.status = Some(CronJobStatus::default());
    }

    fn prepare_for_update(&self, new: &mut CronJob, old: &CronJob) {
        new.status = old.status.clone();
    }

    fn validate(&self, cj: &CronJob) -> ErrorList {
        let mut errs = validate_spec(cj.spec.as_ref(), None);
        let name = cj.metadata.name.clone().unwrap_or_default();
        if name.len() > MAX_NAME_LENGTH {
            errs.push(FieldError::invalid(
                &Path::new("metadata").child("name"),
                name.as_str(),
                "must be no more than 52 characters",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &CronJob, old: &CronJob) -> ErrorList {
        // Older CronJobs with longer names must stay updatable (and deletable).
        validate_spec(new.spec.as_ref(), old.spec.as_ref())
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, cj: &CronJob, raw: &Value) -> Vec<Value> {
        let spec = cj.spec.clone().unwrap_or_default();
        let status = cj.status.clone().unwrap_or_default();
        let last = status
            .last_schedule_time
            .as_ref()
            .map(|t| {
                apimachinery::duration::human_duration_seconds(
                    jiff::Timestamp::now().as_second() - t.0.as_second(),
                )
            })
            .unwrap_or_else(|| "<none>".into());
        let suspend = match spec.suspend {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let job_spec = spec.job_template.spec.clone().unwrap_or_default();
        let containers = job_spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let (names, images) = container_cells(&containers);
        vec![
            Value::String(cj.metadata.name.clone().unwrap_or_default()),
            Value::String(spec.schedule.clone()),
            Value::String(spec.time_zone.clone().unwrap_or_else(|| "<none>".into())),
            Value::String(suspend.into()),
            Value::from(status.active.as_ref().map_or(0, Vec::len)),
            Value::String(last),
            table::age(raw),
            names,
            images,
            format_label_selector(job_spec.selector.as_ref()),
        ]
    }
}

/// Upstream's `validateCronJobSpec`; `old` is the stored spec on updates.
fn validate_spec(spec: Option<&CronJobSpec>, old: Option<&CronJobSpec>) -> ErrorList {
    let path = Path::new("spec");
    let Some(spec) = spec else {
        return vec![FieldError::required(&path, "")];
    };
    let mut errs = Vec::new();
    let sched_path = path.child("schedule");
    if spec.schedule.is_empty() {
        errs.push(FieldError::required(&sched_path, ""));
    } else {
        // Schedules that already used TZ= may keep it; new ones must use timeZone.
        let allow_tz = old.is_some_and(|o| o.schedule.contains("TZ"));
        if let Err(e) = Schedule::parse(&spec.schedule) {
            errs.push(FieldError::invalid(
                &sched_path,
                spec.schedule.as_str(),
                e.to_string(),
            ));
        }
        if spec.schedule.contains("TZ") {
            if !allow_tz {
                errs.push(FieldError::invalid(
                    &sched_path,
                    spec.schedule.as_str(),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if spec.time_zone.is_some() {
                errs.push(FieldError::invalid(
                    &sched_path,
                    spec.schedule.as_str(),
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    if let Some(deadline) = spec.starting_deadline_seconds {
        errs.extend(validation::validate_nonnegative_field(
            deadline,
            &path.child("startingDeadlineSeconds"),
        ));
    }
    if old.is_none_or(|o| o.time_zone != spec.time_zone) {
        errs.extend(validate_time_zone(
            spec.time_zone.as_deref(),
            &path.child("timeZone"),
        ));
    }
    let policy_path = path.child("concurrencyPolicy");
    match spec.concurrency_policy.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required(&policy_path, "")),
        p if !CONCURRENCY_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            &policy_path,
            p,
            CONCURRENCY_POLICIES,
        )),
        _ => {}
    }
    let tpl_path = path.child("jobTemplate").child("spec");
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    errs.extend(validate_job_spec_common(&job_spec, &tpl_path));
    if let Some(selector) = &job_spec.selector {
        errs.push(FieldError::invalid(
            &tpl_path.child("selector"),
            selector_json(selector),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            &tpl_path.child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    for (field, limit) in [
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ] {
        if let Some(limit) = limit {
            errs.extend(validation::validate_nonnegative_field(
                i64::from(limit),
                &path.child(field),
            ));
        }
    }
    errs
}

/// Upstream's `validateTimeZone`: an IANA name the zone database knows, not `Local`.
fn validate_time_zone(tz: Option<&str>, path: &Path) -> ErrorList {
    let Some(tz) = tz else {
        return Vec::new();
    };
    if tz.is_empty() {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let valid_part = |part: &str| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(valid_part) {
        return vec![FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {tz}"),
        )];
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(e) = load_location(tz) {
        errs.push(FieldError::invalid(path, tz, e));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn cronjob() -> Value {
        json!({
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "hello", "image": "busybox:1.36"}]
                }}}}
            }
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults_and_valid() {
        let s = Typed::new(CronJobStrategy);
        let obj = s.decode(cronjob()).unwrap();
        assert_eq!(obj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(obj["spec"]["suspend"], false);
        assert_eq!(obj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(obj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(obj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none());
        assert_eq!(
            obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
        assert_eq!(s.info().short_names, ["cj"]);
    }

    #[test]
    fn invalid_objects() {
        let s = Typed::new(CronJobStrategy);
        let mut bad = cronjob();
        bad["spec"]["schedule"] = json!("61 * * * *");
        bad["spec"]["timeZone"] = json!("Mars/Olympus");
        bad["spec"]["concurrencyPolicy"] = json!("Sometimes");
        let errs = s.validate(&s.decode(bad).unwrap());
        assert_eq!(
            messages(&errs),
            [
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
                "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            ]
        );

        let mut tz = cronjob();
        tz["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
        let errs = s.validate(&s.decode(tz).unwrap());
        assert_eq!(
            messages(&errs),
            ["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
        );

        let mut local = cronjob();
        local["spec"]["timeZone"] = json!("Local");
        let errs = s.validate(&s.decode(local).unwrap());
        assert!(errs[0]
            .body()
            .contains("timeZone must be an explicit time zone"));

        let mut long = cronjob();
        long["metadata"]["name"] = json!("x".repeat(53));
        let errs = s.validate(&s.decode(long.clone()).unwrap());
        assert_eq!(
            errs[0].body().split(": ").last(),
            Some("must be no more than 52 characters")
        );
        let old = s.decode(long).unwrap();
        assert!(s.validate_update(&old, &old).is_empty());

        let mut sel = cronjob();
        sel["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        let errs = s.validate(&s.decode(sel).unwrap());
        assert_eq!(errs[0].field, "spec.jobTemplate.spec.selector");

        let mut good_tz = cronjob();
        good_tz["spec"]["timeZone"] = json!("Europe/Berlin");
        assert!(s.validate(&s.decode(good_tz).unwrap()).is_empty());
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(CronJobStrategy);
        let mut obj = s.decode(cronjob()).unwrap();
        obj["status"] = json!({"active": [{"name": "hello-1"}]});
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(
            &row[..6],
            &[
                json!("hello"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("<none>")
            ]
        );
        assert_eq!(
            &row[7..],
            &[json!("hello"), json!("busybox:1.36"), json!("<none>")]
        );
    }
}
