//! The `apps` API group, version v1: the workload controllers' objects.
//!
//! The helpers here (int-or-percent checks, selector/template agreement, the CONTAINERS and
//! IMAGES cells) are shared with `batch` and `policy`, as upstream shares
//! `pkg/apis/apps/validation` and the printers' `layoutContainerCells`.

pub mod controllerrevision;
pub mod daemonset;
pub mod deployment;
pub mod replicaset;
pub mod statefulset;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(
            controllerrevision::ControllerRevisionStrategy,
        ))),
        Resource::new(Arc::new(Typed::new(daemonset::DaemonSetStrategy))),
        Resource::new(Arc::new(Typed::new(deployment::DeploymentStrategy))),
        Resource::new(Arc::new(Typed::new(replicaset::ReplicaSetStrategy))),
        Resource::new(Arc::new(Typed::new(statefulset::StatefulSetStrategy))),
    ]
}

/// Upstream's `"`selector` does not match template `labels`"`.
pub(crate) const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

/// The wire form of an int-or-string, which is what error messages show.
pub(crate) fn int_or_string_value(v: &IntOrString) -> Value {
    match v {
        IntOrString::Int(i) => Value::from(*i),
        IntOrString::String(s) => Value::from(s.as_str()),
    }
}

/// Upstream's `IntOrString.String()`: the number or the string as written.
pub(crate) fn int_or_string_text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Upstream's `ValidatePositiveIntOrPercent`: a non-negative integer or a valid percent.
pub(crate) fn validate_positive_int_or_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match v {
        IntOrString::String(s) => validation::is_valid_percent(s)
            .into_iter()
            .map(|msg| FieldError::invalid(path, s.as_str(), msg))
            .collect(),
        IntOrString::Int(i) => validation::validate_nonnegative_field(i64::from(*i), path),
    }
}

/// The number of a valid percent string (`"25%"` → 25).
fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if validation::is_valid_percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

/// Upstream's `getIntOrPercentValue`: the percent's number, the integer, or 0 for a string
/// that is neither (Go's `IntValue` of a non-numeric string).
pub(crate) fn int_or_percent_value(v: &IntOrString) -> i64 {
    match (percent_value(v), v) {
        (Some(p), _) => p,
        (None, IntOrString::Int(i)) => i64::from(*i),
        (None, IntOrString::String(s)) => s.parse().unwrap_or(0),
    }
}

/// Upstream's `IsNotMoreThan100Percent`.
pub(crate) fn is_not_more_than_100_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match percent_value(v) {
        Some(p) if p > 100 => vec![FieldError::invalid(
            path,
            int_or_string_value(v),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

/// Whether a k8s-openapi selector was absent on the wire: its decoder fills a missing
/// required selector with an empty one, which upstream would have seen as `nil`.
pub(crate) fn selector_is_unset(selector: &LabelSelector) -> bool {
    selector.match_labels.is_none() && selector.match_expressions.is_none()
}

pub(crate) fn selector_json(selector: &LabelSelector) -> Value {
    serde_json::to_value(selector).unwrap_or(Value::Null)
}

/// The selector and template checks upstream's apps validation repeats for every workload:
/// required, valid, non-empty, and matching the template's labels.
pub(crate) fn validate_selector_and_template_labels(
    selector: &LabelSelector,
    template_labels: &BTreeMap<String, String>,
    kind_word: &str,
    spec_path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let sel_path = spec_path.child("selector");
    let labels_path = spec_path
        .child("template")
        .child("metadata")
        .child("labels");
    if selector_is_unset(selector) {
        errs.push(FieldError::required(&sel_path, ""));
        // A nil selector selects nothing, so it never matches the template (as upstream).
        errs.push(FieldError::invalid(
            &labels_path,
            labels_json(template_labels),
            SELECTOR_MISMATCH,
        ));
        return errs;
    }
    errs.extend(validation::validate_label_selector(
        Some(selector),
        LabelSelectorValidationOptions::default(),
        &sel_path,
    ));
    let count = selector.match_labels.as_ref().map_or(0, BTreeMap::len)
        + selector.match_expressions.as_ref().map_or(0, Vec::len);
    if count == 0 {
        errs.push(FieldError::invalid(
            &sel_path,
            selector_json(selector),
            format!("empty selector is invalid for {kind_word}"),
        ));
    }
    match Selector::from_label_selector(selector) {
        Ok(sel) => {
            if !sel.is_empty() && !sel.matches(template_labels) {
                errs.push(FieldError::invalid(
                    &labels_path,
                    labels_json(template_labels),
                    SELECTOR_MISMATCH,
                ));
            }
        }
        Err(_) => errs.push(FieldError::invalid(
            &sel_path,
            selector_json(selector),
            "invalid label selector",
        )),
    }
    errs
}

pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> Value {
    serde_json::to_value(labels).unwrap_or(Value::Null)
}

/// Status counters may not be negative (upstream's `ValidateNonnegativeField` on each).
pub(crate) fn validate_nonnegative_counts(
    counts: &[(&str, Option<i64>)],
    path: &Path,
) -> ErrorList {
    counts
        .iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .flat_map(|(name, v)| validation::validate_nonnegative_field(v, &path.child(name)))
        .collect()
}

/// Upstream's `IsDecremented` check on `status.collisionCount`.
pub(crate) fn validate_collision_count(new: Option<i32>, old: Option<i32>) -> ErrorList {
    let decremented = match (new, old) {
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n < o,
        _ => false,
    };
    if decremented {
        vec![FieldError::invalid(
            &Path::new("status").child("collisionCount"),
            new.unwrap_or(0),
            "cannot be decremented",
        )]
    } else {
        Vec::new()
    }
}

/// Upstream's `layoutContainerCells`: container names and images, comma separated.
pub(crate) fn container_cells(containers: &[Container]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or_default())
        .collect();
    (
        Value::String(names.join(",")),
        Value::String(images.join(",")),
    )
}

/// Upstream's `metav1.FormatLabelSelector`: the selector string, `<none>` when it selects
/// everything or nothing, `<error>` when it does not parse.
pub(crate) fn format_label_selector(selector: Option<&LabelSelector>) -> Value {
    let text = match selector.map(Selector::from_label_selector) {
        None => String::new(),
        Some(Ok(s)) => s.to_string(),
        Some(Err(_)) => return Value::String("<error>".into()),
    };
    Value::String(if text.is_empty() {
        "<none>".into()
    } else {
        text
    })
}

/// The replicas status fields, which are non-negative and bounded by `status.replicas`.
pub(crate) fn validate_replica_bounds(
    replicas: i32,
    bounded: &[(&str, Option<i32>)],
    path: &Path,
) -> ErrorList {
    bounded
        .iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .filter(|(_, v)| *v > replicas)
        .map(|(name, v)| {
            FieldError::invalid(
                &path.child(name),
                v,
                "cannot be greater than status.replicas",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_checks() {
        let p = Path::new("x");
        assert!(
            validate_positive_int_or_percent(&IntOrString::String("25%".into()), &p).is_empty()
        );
        assert!(validate_positive_int_or_percent(&IntOrString::Int(0), &p).is_empty());
        let errs = validate_positive_int_or_percent(&IntOrString::String("25".into()), &p);
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .body()
            .contains("a valid percent string must be a numeric string followed by an ending '%'"));
        let errs = validate_positive_int_or_percent(&IntOrString::Int(-1), &p);
        assert_eq!(
            errs[0].body(),
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(int_or_percent_value(&IntOrString::String("30%".into())), 30);
        assert_eq!(int_or_percent_value(&IntOrString::Int(3)), 3);
        assert_eq!(
            is_not_more_than_100_percent(&IntOrString::String("101%".into()), &p)[0].body(),
            "Invalid value: \"101%\": must not be greater than 100%"
        );
    }

    #[test]
    fn selector_cells() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(format_label_selector(Some(&sel)), Value::from("app=web"));
        assert_eq!(format_label_selector(None), Value::from("<none>"));
        assert_eq!(
            format_label_selector(Some(&LabelSelector::default())),
            Value::from("<none>")
        );
    }
}

#[cfg(test)]
mod store_tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::admission::Admission;
    use crate::registry::store::{RequestContext, Store, UpdateTarget};
    use crate::registry::typed::Typed;

    /// Generation moves with the spec, not with status writes; status stays the
    /// controllers'.
    #[tokio::test]
    async fn deployment_through_the_store() {
        let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let store = Store::new(
            Arc::new(Typed::new(super::deployment::DeploymentStrategy)),
            storage,
            "/registry",
        );
        let (ctx, adm) = (RequestContext::default(), Admission::default());
        let created = store
            .create(
                "default",
                json!({"metadata": {"name": "web"}, "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
                    "status": {"replicas": 9}}),
                &ctx,
                &adm,
            )
            .await
            .unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(created["status"], json!({}));
        let update = |f: fn(&mut serde_json::Value), target| {
            let store = &store;
            let (ctx, adm) = (&ctx, &adm);
            async move {
                store
                    .update_with("default", "web", target, false, ctx, adm, |cur| {
                        let mut obj = cur.unwrap().clone();
                        f(&mut obj);
                        Ok(obj)
                    })
                    .await
                    .map(|(o, _)| o)
            }
        };
        let scaled = update(|o| o["spec"]["replicas"] = json!(3), UpdateTarget::Main)
            .await
            .unwrap();
        assert_eq!(scaled["metadata"]["generation"], 2);
        let status = update(
            |o| o["status"] = json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            UpdateTarget::Status,
        )
        .await
        .unwrap();
        assert_eq!(status["metadata"]["generation"], 2);
        assert_eq!(status["status"]["readyReplicas"], 3);
        let err = update(
            |o| o["spec"]["selector"]["matchLabels"]["x"] = json!("y"),
            UpdateTarget::Main,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.selector"), "{}", err.message);
    }
}
