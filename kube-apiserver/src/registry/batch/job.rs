//! jobs: defaults (`SetDefaults_Job`), the generated selector and pod labels of
//! upstream's `generateSelector` (from the uid the store assigns before
//! `prepare_for_create`), validation (`ValidateJob`, `ValidateJobUpdate`) and printing.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, PodFailurePolicy};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

use crate::registry::apps::{
    container_cells, format_label_selector, labels_json, selector_json, template, SELECTOR_MISMATCH,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField};

pub struct JobStrategy;

pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Upstream's cap on the parallelism of Indexed jobs.
const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;
const MAX_FAILED_INDEXES_FOR_INDEXED_JOB: i32 = 100_000;
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: usize = 20;
const MAX_MANAGED_BY_LENGTH: usize = 63;
const MAX_SUCCESS_POLICY_RULES: usize = 20;

const POD_FAILURE_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const EXIT_CODE_OPERATORS: &[&str] = &["In", "NotIn"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];
const REPLACEMENT_POLICIES: &[&str] = &["Failed", "TerminatingOrFailed"];

/// Upstream's `JobToSelectableFields`: the count of succeeded pods.
const FIELDS: &[SelectableField] = &[SelectableField::new("status.successful")
    .at("status.succeeded")
    .with_default("0")];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "Status of the job."),
    Column::new(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
    ),
    Column::new("Duration", "string", "Time required to complete the job."),
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

/// `SetDefaults_Job` on a job spec (the parts a CronJob's template does not get are in
/// [`JobStrategy::default`]).
fn default_job_spec(spec: &mut JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(if spec.pod_failure_policy.is_some() {
            "Failed".into()
        } else {
            "TerminatingOrFailed".into()
        });
    }
    default_pod_failure_policy(spec.pod_failure_policy.as_mut());
    template::default_pod_template(&mut spec.template);
}

/// Condition patterns without a status mean `True`.
pub(crate) fn default_pod_failure_policy(policy: Option<&mut PodFailurePolicy>) {
    for rule in policy.into_iter().flat_map(|p| p.rules.iter_mut()) {
        for pattern in rule.on_pod_conditions.iter_mut().flatten() {
            if pattern.status.is_empty() {
                pattern.status = "True".into();
            }
        }
    }
}

impl TypedStrategy for JobStrategy {
    type Object = Job;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Job>()
            .categories(&["all"])
            .with_status()
            .tracks_generation()
    }

    fn default(&self, job: &mut Job) {
        let spec = job.spec.get_or_insert_with(JobSpec::default);
        default_job_spec(spec);
        // A job without labels takes its pod template's.
        let tpl_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        if let Some(labels) = tpl_labels {
            if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                job.metadata.labels = Some(labels);
            }
        }
    }

    fn prepare_for_create(&self, job: &mut Job) {
        let manual = job
            .spec
            .as_ref()
            .and_then(|s| s.manual_selector)
            .unwrap_or(false);
        if !manual {
            generate_selector(job);
        }
        job.status = Some(JobStatus::default());
    }

    fn prepare_for_update(&self, new: &mut Job, old: &Job) {
        new.status = old.status.clone();
    }

    fn validate(&self, job: &Job) -> ErrorList {
        validate_job(job, true)
    }

    fn validate_update(&self, new: &Job, old: &Job) -> ErrorList {
        // Jobs created before the prefixed labels existed keep validating without them.
        let old_labels = template_labels(old.spec.as_ref().map(|s| &s.template));
        let require_prefixed = old_labels.contains_key(JOB_NAME_LABEL)
            && old_labels.contains_key(CONTROLLER_UID_LABEL);
        let mut errs = validate_job(new, require_prefixed);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            errs.extend(validate_spec_update(n, o, old, &Path::new("spec")));
        }
        errs.extend(validate_status(
            &new.status.clone().unwrap_or_default(),
            &Path::new("status"),
        ));
        errs
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, job: &Job, raw: &Value) -> Vec<Value> {
        let spec = job.spec.clone().unwrap_or_default();
        let status = job.status.clone().unwrap_or_default();
        let succeeded = status.succeeded.unwrap_or(0);
        let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, _) => format!("{succeeded}/1"),
        };
        let start = status.start_time.as_ref().map(|t| t.0.as_second());
        let duration = match (start, status.completion_time.as_ref()) {
            (None, _) => String::new(),
            (Some(s), None) => apimachinery::duration::human_duration_seconds(
                jiff::Timestamp::now().as_second() - s,
            ),
            (Some(s), Some(done)) => {
                apimachinery::duration::human_duration_seconds(done.0.as_second() - s)
            }
        };
        let conditions = status.conditions.clone().unwrap_or_default();
        let has = |ty: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == ty)
                .is_some_and(|c| c.status == "True")
        };
        let state = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if job.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let containers = spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let (names, images) = container_cells(&containers);
        vec![
            Value::String(job.metadata.name.clone().unwrap_or_default()),
            Value::String(state.into()),
            Value::String(completions),
            Value::String(duration),
            table::age(raw),
            names,
            images,
            format_label_selector(spec.selector.as_ref()),
        ]
    }
}

fn template_labels(template: Option<&PodTemplateSpec>) -> BTreeMap<String, String> {
    template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Label the pod template with the job's name and uid and select on the uid, unless the
/// user chose those labels already (validation then catches conflicts).
fn generate_selector(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(JobSpec::default);
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels.entry(key.into()).or_insert_with(|| name.clone());
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(key.into()).or_insert_with(|| uid.clone());
    }
    spec.selector
        .get_or_insert_with(LabelSelector::default)
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(CONTROLLER_UID_LABEL.into())
        .or_insert(uid);
}

/// Upstream's `ValidateJob`.
fn validate_job(job: &Job, require_prefixed_labels: bool) -> ErrorList {
    let spec_path = Path::new("spec");
    let Some(spec) = &job.spec else {
        return vec![FieldError::required(&spec_path, "")];
    };
    let mut errs = validate_generated_selector(job, spec, require_prefixed_labels);
    errs.extend(validate_job_spec(spec, &spec_path));
    let name = job.metadata.name.clone().unwrap_or_default();
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(completions) = spec.completions.filter(|c| *c > 0) {
            // Pods of an Indexed job are named `<job>-<index>`; the last must be a DNS label.
            let hostname = format!("{name}-{}", completions - 1);
            if !validation::is_dns1123_label(&hostname).is_empty() {
                errs.push(FieldError::invalid(
                    &Path::new("metadata").child("name"),
                    name.as_str(),
                    format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
    }
    errs
}

fn validate_generated_selector(job: &Job, spec: &JobSpec, require_prefixed: bool) -> ErrorList {
    let mut errs = Vec::new();
    if spec.manual_selector == Some(true) {
        return errs;
    }
    let Some(selector) = &spec.selector else {
        return errs;
    };
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    if uid.is_empty() {
        errs.push(FieldError::required(
            &Path::new("metadata").child("uid"),
            "",
        ));
    }
    let labels = template_labels(Some(&spec.template));
    let meta_path = Path::new("spec").child("template").child("metadata");
    let mut expected = vec![
        (LEGACY_CONTROLLER_UID_LABEL, uid.as_str()),
        (LEGACY_JOB_NAME_LABEL, name.as_str()),
    ];
    if require_prefixed {
        expected.push((CONTROLLER_UID_LABEL, uid.as_str()));
        expected.push((JOB_NAME_LABEL, name.as_str()));
    }
    for (key, value) in &expected {
        let path = meta_path.child("labels").key(key);
        match labels.get(*key) {
            None => errs.push(FieldError::required(&path, *value)),
            Some(actual) if actual != value => errs.push(FieldError::invalid(
                &path,
                labels_json(&labels),
                format!("must be '{value}'"),
            )),
            Some(_) => {}
        }
    }
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(sel) = Selector::from_label_selector(selector) {
        if !sel.matches(&expected) {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("selector"),
                selector_json(selector),
                "`selector` not auto-generated",
            ));
        }
    }
    errs
}

/// Upstream's `ValidateJobSpec`: the shared spec rules plus a required selector that
/// matches the template.
fn validate_job_spec(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = validate_job_spec_common(spec, path);
    let sel_path = path.child("selector");
    match &spec.selector {
        None => errs.push(FieldError::required(&sel_path, "")),
        Some(selector) => {
            errs.extend(validation::validate_label_selector(
                Some(selector),
                LabelSelectorValidationOptions::default(),
                &sel_path,
            ));
            let labels = template_labels(Some(&spec.template));
            if let Ok(sel) = Selector::from_label_selector(selector) {
                if !sel.matches(&labels) {
                    errs.push(FieldError::invalid(
                        &path.child("template").child("metadata").child("labels"),
                        labels_json(&labels),
                        SELECTOR_MISMATCH,
                    ));
                }
            }
        }
    }
    errs
}

/// Upstream's `validateJobSpec`, which CronJob job templates share.
pub(crate) fn validate_job_spec_common(spec: &JobSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let nonneg = |v: Option<i64>, field: &str| match v {
        Some(v) => validation::validate_nonnegative_field(v, &path.child(field)),
        None => Vec::new(),
    };
    errs.extend(nonneg(spec.parallelism.map(i64::from), "parallelism"));
    errs.extend(nonneg(spec.completions.map(i64::from), "completions"));
    errs.extend(nonneg(
        spec.active_deadline_seconds,
        "activeDeadlineSeconds",
    ));
    errs.extend(nonneg(spec.backoff_limit.map(i64::from), "backoffLimit"));
    errs.extend(nonneg(
        spec.ttl_seconds_after_finished.map(i64::from),
        "ttlSecondsAfterFinished",
    ));
    errs.extend(nonneg(
        spec.backoff_limit_per_index.map(i64::from),
        "backoffLimitPerIndex",
    ));
    if let Some(max) = spec.max_failed_indexes {
        errs.extend(nonneg(Some(i64::from(max)), "maxFailedIndexes"));
        if spec.backoff_limit_per_index.is_none() {
            errs.push(FieldError::required(
                &path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(managed_by) = &spec.managed_by {
        let p = path.child("managedBy");
        errs.extend(validation::is_domain_prefixed_path(&p, managed_by));
        if managed_by.len() > MAX_MANAGED_BY_LENGTH {
            errs.push(FieldError::too_long(&p, MAX_MANAGED_BY_LENGTH));
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if let Some(mode) = spec.completion_mode.as_deref() {
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errs.push(FieldError::not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec
                .parallelism
                .filter(|p| *p > MAX_PARALLELISM_FOR_INDEXED_JOB)
            {
                errs.push(FieldError::invalid(
                    &path.child("parallelism"),
                    p,
                    format!(
                        "must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"
                    ),
                ));
            }
            if let (Some(c), Some(m)) = (spec.completions, spec.max_failed_indexes) {
                if m > c {
                    errs.push(FieldError::invalid(
                        &path.child("maxFailedIndexes"),
                        m,
                        "must be less than or equal to completions",
                    ));
                }
            }
            if let Some(m) = spec
                .max_failed_indexes
                .filter(|m| *m > MAX_FAILED_INDEXES_FOR_INDEXED_JOB)
            {
                errs.push(FieldError::invalid(
                    &path.child("maxFailedIndexes"),
                    m,
                    format!("must be less than or equal to {MAX_FAILED_INDEXES_FOR_INDEXED_JOB}"),
                ));
            }
        }
    }
    if !indexed {
        if let Some(b) = spec.backoff_limit_per_index {
            errs.push(FieldError::invalid(
                &path.child("backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
        if let Some(m) = spec.max_failed_indexes {
            errs.push(FieldError::invalid(
                &path.child("maxFailedIndexes"),
                m,
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(policy) = &spec.pod_failure_policy {
        errs.extend(validate_pod_failure_policy(
            spec,
            policy,
            &path.child("podFailurePolicy"),
        ));
    }
    if let Some(policy) = &spec.success_policy {
        let p = path.child("successPolicy");
        if !indexed {
            errs.push(FieldError::invalid(
                &p,
                serde_json::to_value(policy).unwrap_or(Value::Null),
                "requires indexed completion mode",
            ));
        } else {
            let rules_path = p.child("rules");
            if policy.rules.is_empty() {
                errs.push(FieldError::required(
                    &rules_path,
                    "at least one rules must be specified when the successPolicy is specified",
                ));
            }
            if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
                errs.push(FieldError::too_many(
                    &rules_path,
                    policy.rules.len(),
                    MAX_SUCCESS_POLICY_RULES,
                ));
            }
            for (i, rule) in policy.rules.iter().enumerate() {
                let rule_path = rules_path.index(i);
                if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
                    errs.push(FieldError::required(
                        &rule_path,
                        "at least one of succeededCount or succeededIndexes must be specified",
                    ));
                }
                if let Some(count) = rule.succeeded_count {
                    let cp = rule_path.child("succeededCount");
                    errs.extend(validation::validate_nonnegative_field(
                        i64::from(count),
                        &cp,
                    ));
                    let completions = spec.completions.unwrap_or(0);
                    if count > completions {
                        errs.push(FieldError::invalid(
                            &cp,
                            count,
                            format!(
                                "must be less than or equal to {completions} (the number of specified completions)"
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(policy) = spec.pod_replacement_policy.as_deref() {
        let p = path.child("podReplacementPolicy");
        if spec.pod_failure_policy.is_some() {
            if policy != "Failed" {
                errs.push(FieldError::not_supported(&p, policy, &["Failed"]));
            }
        } else if !REPLACEMENT_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(&p, policy, REPLACEMENT_POLICIES));
        }
    }
    let tpl_path = path.child("template");
    errs.extend(template::validate_pod_template(&spec.template, &tpl_path));
    // The pod defaults make an unset restart policy Always, so both mean "not set".
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_default();
    let restart_path = tpl_path.child("spec").child("restartPolicy");
    if restart.is_empty() || restart == "Always" {
        errs.push(FieldError::required(
            &restart_path,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported(
            &restart_path,
            restart,
            &["OnFailure", "Never"],
        ));
    } else if spec.pod_failure_policy.is_some() && restart != "Never" {
        errs.push(FieldError::invalid(
            &restart_path,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

fn validate_pod_failure_policy(
    spec: &JobSpec,
    policy: &PodFailurePolicy,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let rules_path = path.child("rules");
    if policy.rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(FieldError::too_many(
            &rules_path,
            policy.rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let container_names: BTreeSet<String> = pod_spec
        .containers
        .iter()
        .chain(pod_spec.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let rule_path = rules_path.index(i);
        let action_path = rule_path.child("action");
        match rule.action.as_str() {
            "" => errs.push(FieldError::required(
                &action_path,
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if spec.backoff_limit_per_index.is_none() => {
                errs.push(FieldError::invalid(
                    &action_path,
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
            "FailIndex" => {}
            a if !POD_FAILURE_ACTIONS.contains(&a) => errs.push(FieldError::not_supported(
                &action_path,
                a,
                POD_FAILURE_ACTIONS,
            )),
            _ => {}
        }
        let conditions = rule.on_pod_conditions.as_deref().unwrap_or_default();
        if let Some(req) = &rule.on_exit_codes {
            let p = rule_path.child("onExitCodes");
            let op_path = p.child("operator");
            if req.operator.is_empty() {
                errs.push(FieldError::required(
                    &op_path,
                    "valid values: [\"In\" \"NotIn\"]",
                ));
            } else if !EXIT_CODE_OPERATORS.contains(&req.operator.as_str()) {
                errs.push(FieldError::not_supported(
                    &op_path,
                    req.operator.as_str(),
                    EXIT_CODE_OPERATORS,
                ));
            }
            if let Some(name) = req.container_name.as_deref() {
                if !container_names.contains(name) {
                    errs.push(FieldError::invalid(
                        &p.child("containerName"),
                        name,
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            let values_path = p.child("values");
            if req.values.is_empty() {
                errs.push(FieldError::invalid(
                    &values_path,
                    Value::Array(Vec::new()),
                    "at least one value is required",
                ));
            } else if req.values.len() > MAX_ON_EXIT_CODES_VALUES {
                errs.push(FieldError::too_many(
                    &values_path,
                    req.values.len(),
                    MAX_ON_EXIT_CODES_VALUES,
                ));
            }
            let mut seen = BTreeSet::new();
            for (j, v) in req.values.iter().enumerate() {
                let vp = values_path.index(j);
                if req.operator == "In" && *v == 0 {
                    errs.push(FieldError::invalid(
                        &vp,
                        *v,
                        "must not be 0 for the In operator",
                    ));
                }
                if !seen.insert(*v) {
                    errs.push(FieldError::duplicate(&vp, *v));
                }
            }
            if req.values.windows(2).any(|w| w[0] > w[1]) {
                errs.push(FieldError::invalid(
                    &values_path,
                    serde_json::to_value(&req.values).unwrap_or(Value::Null),
                    "must be ordered",
                ));
            }
        }
        if !conditions.is_empty() {
            let p = rule_path.child("onPodConditions");
            if conditions.len() > MAX_ON_POD_CONDITIONS_PATTERNS {
                errs.push(FieldError::too_many(
                    &p,
                    conditions.len(),
                    MAX_ON_POD_CONDITIONS_PATTERNS,
                ));
            }
            for (j, pattern) in conditions.iter().enumerate() {
                let pp = p.index(j);
                for msg in validation::is_qualified_name(&pattern.type_) {
                    errs.push(FieldError::invalid(
                        &pp.child("type"),
                        pattern.type_.as_str(),
                        msg,
                    ));
                }
                if pattern.status.is_empty() {
                    errs.push(FieldError::required(
                        &pp.child("status"),
                        "valid values: [\"False\" \"True\" \"Unknown\"]",
                    ));
                } else if !CONDITION_STATUSES.contains(&pattern.status.as_str()) {
                    errs.push(FieldError::not_supported(
                        &pp.child("status"),
                        pattern.status.as_str(),
                        CONDITION_STATUSES,
                    ));
                }
            }
        }
        let omitted = |detail: &str| FieldError {
            bad_value: None,
            ..FieldError::invalid(&rule_path, Value::Null, detail)
        };
        match (rule.on_exit_codes.is_some(), !conditions.is_empty()) {
            (true, true) => errs.push(omitted(
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => errs.push(omitted(
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
    errs
}

/// Upstream's `ValidateJobSpecUpdate`: most of a job's spec is fixed once created.
fn validate_spec_update(new: &JobSpec, old: &JobSpec, old_job: &Job, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let immutable = |changed: bool, value: Value, field: &str| -> ErrorList {
        if changed {
            vec![FieldError::invalid(
                &path.child(field),
                value,
                validation::FIELD_IMMUTABLE_ERROR_MSG,
            )]
        } else {
            Vec::new()
        }
    };
    // Elastic Indexed jobs may change completions together with parallelism.
    if new.completions != old.completions {
        if new.completion_mode.as_deref() == Some("Indexed") {
            if let Some(c) = new.completions {
                if Some(c) != new.parallelism {
                    errs.push(FieldError::invalid(
                        &path.child("completions"),
                        c,
                        "can only be modified in tandem with spec.parallelism",
                    ));
                }
            }
        } else {
            errs.extend(immutable(true, json(&new.completions), "completions"));
        }
    }
    errs.extend(immutable(
        new.selector != old.selector,
        json(&new.selector),
        "selector",
    ));
    // Suspended jobs that never started may still move their pods elsewhere.
    let mut old_template = old.template.clone();
    let suspended = old.suspend == Some(true);
    let never_started = old_job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .is_none();
    if suspended && never_started {
        let new_spec = new.template.spec.clone().unwrap_or_default();
        if let Some(old_spec) = old_template.spec.as_mut() {
            let node_affinity = new_spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.clone());
            match (&new_spec.affinity, old_spec.affinity.as_mut()) {
                (None, Some(a)) => {
                    a.node_affinity = None;
                    if a == &k8s_openapi::api::core::v1::Affinity::default() {
                        old_spec.affinity = None;
                    }
                }
                (Some(_), None) => {
                    old_spec.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity,
                        ..Default::default()
                    })
                }
                (Some(_), Some(a)) => a.node_affinity = node_affinity,
                (None, None) => {}
            }
            old_spec.node_selector = new_spec.node_selector.clone();
            old_spec.tolerations = new_spec.tolerations.clone();
            old_spec.scheduling_gates = new_spec.scheduling_gates.clone();
        }
        let new_meta = new.template.metadata.clone().unwrap_or_default();
        let meta = old_template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        meta.annotations = new_meta.annotations;
        meta.labels = new_meta.labels;
    }
    errs.extend(immutable(
        new.template != old_template,
        json(&new.template),
        "template",
    ));
    errs.extend(immutable(
        new.completion_mode != old.completion_mode,
        json(&new.completion_mode),
        "completionMode",
    ));
    errs.extend(immutable(
        new.pod_failure_policy != old.pod_failure_policy,
        json(&new.pod_failure_policy),
        "podFailurePolicy",
    ));
    errs.extend(immutable(
        new.backoff_limit_per_index != old.backoff_limit_per_index,
        json(&new.backoff_limit_per_index),
        "backoffLimitPerIndex",
    ));
    errs.extend(immutable(
        new.managed_by != old.managed_by,
        json(&new.managed_by),
        "managedBy",
    ));
    errs.extend(immutable(
        new.success_policy != old.success_policy,
        json(&new.success_policy),
        "successPolicy",
    ));
    errs
}

/// A field's wire form, which error messages show.
fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The always-on part of upstream's `validateJobStatus`.
fn validate_status(status: &JobStatus, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (field, value) in [
        ("active", status.active),
        ("succeeded", status.succeeded),
        ("failed", status.failed),
        ("ready", status.ready),
        ("terminating", status.terminating),
    ] {
        if let Some(v) = value {
            errs.extend(validation::validate_nonnegative_field(
                i64::from(v),
                &path.child(field),
            ));
        }
    }
    if let Some(uncounted) = &status.uncounted_terminated_pods {
        let p = path.child("uncountedTerminatedPods");
        let mut seen = BTreeSet::new();
        for (field, uids) in [
            ("succeeded", &uncounted.succeeded),
            ("failed", &uncounted.failed),
        ] {
            for (i, uid) in uids.iter().flatten().enumerate() {
                let up = p.child(field).index(i);
                if uid.is_empty() {
                    errs.push(FieldError::invalid(&up, "", "must not be empty"));
                } else if !seen.insert(uid.clone()) {
                    errs.push(FieldError::duplicate(&up, uid.as_str()));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "1234-abcd"},
            "spec": {
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "perl:5.34"}]
                }}
            }
        })
    }

    fn created() -> Value {
        let s = Typed::new(JobStrategy);
        let mut obj = s.decode(job()).unwrap();
        s.prepare_for_create(&mut obj);
        obj
    }

    #[test]
    fn defaults_and_generated_selector() {
        let s = Typed::new(JobStrategy);
        let obj = created();
        let spec = &obj["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234-abcd"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({
                "batch.kubernetes.io/controller-uid": "1234-abcd",
                "batch.kubernetes.io/job-name": "pi",
                "controller-uid": "1234-abcd",
                "job-name": "pi",
            })
        );
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));

        let mut parallel = job();
        parallel["spec"]["parallelism"] = json!(3);
        let obj = s.decode(parallel).unwrap();
        assert!(obj["spec"].get("completions").is_none());
    }

    #[test]
    fn restart_policy_and_manual_selector() {
        let s = Typed::new(JobStrategy);
        let mut always = job();
        always["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let mut obj = s.decode(always).unwrap();
        s.prepare_for_create(&mut obj);
        let errs = s.validate(&obj);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.spec.restartPolicy");
        assert_eq!(
            errs[0].body(),
            "Required value: valid values: \"OnFailure\", \"Never\""
        );

        let mut manual = job();
        manual["spec"]["manualSelector"] = json!(true);
        let mut obj = s.decode(manual).unwrap();
        s.prepare_for_create(&mut obj);
        let errs = s.validate(&obj);
        assert_eq!(errs[0].field, "spec.selector");
        assert_eq!(errs[0].body(), "Required value");
    }

    #[test]
    fn update_rules() {
        let s = Typed::new(JobStrategy);
        let old = created();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.40");
        let errs = s.validate_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template");
        assert!(errs[0].body().ends_with("field is immutable"));

        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        let mut moved = suspended.clone();
        moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert!(s.validate_update(&moved, &suspended).is_empty());

        let mut scaled = old.clone();
        scaled["spec"]["parallelism"] = json!(4);
        assert!(s.validate_update(&scaled, &old).is_empty());
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(JobStrategy);
        let mut obj = created();
        obj["status"] = json!({
            "succeeded": 1,
            "startTime": "2025-01-01T00:00:00Z",
            "completionTime": "2025-01-01T00:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}]
        });
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(
            &row[..4],
            &[json!("pi"), json!("Complete"), json!("1/1"), json!("42s")]
        );
        assert_eq!(row[7], "batch.kubernetes.io/controller-uid=1234-abcd");
        assert_eq!(s.selectable_fields()[0].value(&obj), "1");
        obj["status"] = json!({});
        assert_eq!(s.row(&obj)[1], "Running");
        assert_eq!(s.selectable_fields()[0].value(&obj), "0");
        assert_eq!(s.row(&obj)[3], "");
    }
}
