//! poddisruptionbudgets: validation (`ValidatePodDisruptionBudget`), status, printing.
//! The eviction subresource that enforces them is `handlers::eviction`.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use serde_json::Value;

use crate::registry::apps::{
    int_or_string_text, is_not_more_than_100_percent, validate_nonnegative_counts,
    validate_positive_int_or_percent,
};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct PodDisruptionBudgetStrategy;

const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    Column::new(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    Column::new(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

impl TypedStrategy for PodDisruptionBudgetStrategy {
    type Object = PodDisruptionBudget;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<PodDisruptionBudget>()
            .short_names(&["pdb"])
            .with_status()
            .tracks_generation()
    }

    fn prepare_for_create(&self, pdb: &mut PodDisruptionBudget) {
        pdb.status = Some(PodDisruptionBudgetStatus::default());
    }

    fn prepare_for_update(&self, new: &mut PodDisruptionBudget, old: &PodDisruptionBudget) {
        new.status = old.status.clone();
    }

    fn validate(&self, pdb: &PodDisruptionBudget) -> ErrorList {
        let path = Path::new("spec");
        let spec = pdb.spec.clone().unwrap_or_default();
        let mut errs = Vec::new();
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            errs.push(FieldError::invalid(
                &path,
                serde_json::to_value(&spec).unwrap_or(Value::Null),
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        for (field, value) in [
            ("minAvailable", &spec.min_available),
            ("maxUnavailable", &spec.max_unavailable),
        ] {
            if let Some(v) = value {
                errs.extend(validate_positive_int_or_percent(v, &path.child(field)));
                errs.extend(is_not_more_than_100_percent(v, &path.child(field)));
            }
        }
        errs.extend(validation::validate_label_selector(
            spec.selector.as_ref(),
            LabelSelectorValidationOptions::default(),
            &path.child("selector"),
        ));
        if let Some(policy) = spec.unhealthy_pod_eviction_policy.as_deref() {
            if !UNHEALTHY_POD_EVICTION_POLICIES.contains(&policy) {
                errs.push(FieldError::not_supported(
                    &path.child("unhealthyPodEvictionPolicy"),
                    policy,
                    UNHEALTHY_POD_EVICTION_POLICIES,
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &PodDisruptionBudget, _old: &PodDisruptionBudget) -> ErrorList {
        let mut errs = self.validate(new);
        let status = new.status.clone().unwrap_or_default();
        errs.extend(validate_nonnegative_counts(
            &[
                (
                    "disruptionsAllowed",
                    Some(i64::from(status.disruptions_allowed)),
                ),
                ("currentHealthy", Some(i64::from(status.current_healthy))),
                ("desiredHealthy", Some(i64::from(status.desired_healthy))),
                ("expectedPods", Some(i64::from(status.expected_pods))),
            ],
            &Path::new("status"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, pdb: &PodDisruptionBudget, raw: &Value) -> Vec<Value> {
        let spec = pdb.spec.clone().unwrap_or_default();
        let cell = |v: &Option<_>| {
            Value::String(
                v.as_ref()
                    .map(int_or_string_text)
                    .unwrap_or_else(|| "N/A".into()),
            )
        };
        vec![
            Value::String(pdb.metadata.name.clone().unwrap_or_default()),
            cell(&spec.min_available),
            cell(&spec.max_unavailable),
            Value::from(pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn pdb(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn validation() {
        let s = Typed::new(PodDisruptionBudgetStrategy);
        let mut ok = s
            .decode(pdb(
                json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
            ))
            .unwrap();
        s.prepare_for_create(&mut ok);
        assert_eq!(
            ok["status"],
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
        );
        assert!(s.validate(&ok).is_empty());

        let both = s
            .decode(pdb(json!({"minAvailable": 1, "maxUnavailable": 1})))
            .unwrap();
        let errs = s.validate(&both);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0]
            .body()
            .ends_with("minAvailable and maxUnavailable cannot be both set"));

        let bad = s
            .decode(pdb(
                json!({"maxUnavailable": "150%", "unhealthyPodEvictionPolicy": "Never"}),
            ))
            .unwrap();
        let msgs: Vec<String> = s
            .validate(&bad)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(
            msgs,
            [
                "spec.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
                "spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"",
            ]
        );

        let mut neg = ok.clone();
        neg["status"]["disruptionsAllowed"] = json!(-1);
        assert_eq!(
            s.validate_update(&neg, &ok)[0].field,
            "status.disruptionsAllowed"
        );
    }

    #[test]
    fn printed_row() {
        let s = Typed::new(PodDisruptionBudgetStrategy);
        let mut obj = s.decode(pdb(json!({"minAvailable": 2}))).unwrap();
        obj["status"] = json!({"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3});
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(
            &row[..4],
            &[json!("web"), json!("2"), json!("N/A"), json!(1)]
        );
        assert_eq!(s.info().short_names, ["pdb"]);
    }
}
