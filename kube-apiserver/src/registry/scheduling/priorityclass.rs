//! priorityclasses: cluster-scoped names for pod priorities. Names starting with
//! `system-` are reserved for the two built-in classes (created at startup by
//! `bootstrap`); user classes may not exceed one billion. Value and preemption policy
//! cannot change. (Upstream checks that only one class is the global default in the
//! Priority admission plugin, not here.)

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct PriorityClassStrategy;

/// The prefix of names reserved for the system's priority classes.
pub const SYSTEM_PREFIX: &str = "system-";
/// The highest priority a user-defined class may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
pub const SYSTEM_CLUSTER_CRITICAL: &str = "system-cluster-critical";
pub const SYSTEM_NODE_CRITICAL: &str = "system-node-critical";
const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

/// A built-in priority class: name, value, description.
pub struct SystemPriorityClass {
    pub name: &'static str,
    pub value: i32,
    pub description: &'static str,
}

/// Upstream's `SystemPriorityClasses()`; neither is the global default.
pub const SYSTEM_PRIORITY_CLASSES: &[SystemPriorityClass] = &[
    SystemPriorityClass {
        name: SYSTEM_NODE_CRITICAL,
        value: 2 * HIGHEST_USER_DEFINABLE_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemPriorityClass {
        name: SYSTEM_CLUSTER_CRITICAL,
        value: 2 * HIGHEST_USER_DEFINABLE_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    },
];

/// The object form of a built-in class, as the server creates it at startup.
pub fn system_priority_class_object(class: &SystemPriorityClass) -> Value {
    serde_json::json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": class.name},
        "value": class.value,
        "description": class.description,
    })
}

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Value",
        "integer",
        "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
    ),
    Column::new(
        "Global-Default",
        "boolean",
        "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.",
    ),
    AGE,
    Column::new(
        "PreemptionPolicy",
        "string",
        "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
    ),
];

/// Upstream's `IsKnownSystemPriorityClass`.
fn check_system_class(name: &str, value: i32, global_default: bool) -> Result<(), String> {
    let Some(class) = SYSTEM_PRIORITY_CLASSES.iter().find(|c| c.name == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if class.value != value {
        return Err(format!(
            "value of {} PriorityClass must be {}",
            class.name, class.value
        ));
    }
    if global_default {
        return Err(format!(
            "globalDefault of {} PriorityClass must be false",
            class.name
        ));
    }
    Ok(())
}

impl TypedStrategy for PriorityClassStrategy {
    type Object = PriorityClass;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<PriorityClass>().short_names(&["pc"])
    }

    fn default(&self, pc: &mut PriorityClass) {
        pc.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
    }

    fn validate(&self, pc: &PriorityClass) -> ErrorList {
        let mut errs = Vec::new();
        let name = pc.metadata.name.as_deref().unwrap_or("");
        if name.starts_with(SYSTEM_PREFIX) {
            if let Err(e) = check_system_class(name, pc.value, pc.global_default.unwrap_or(false)) {
                errs.push(FieldError::forbidden(
                    &Path::new("metadata").child("name"),
                    format!(
                        "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {e}"
                    ),
                ));
            }
        } else if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                &Path::new("value"),
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        match pc.preemption_policy.as_deref() {
            Some("") => errs.push(FieldError::required(&Path::new("preemptionPolicy"), "")),
            Some(p) if !PREEMPTION_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
                &Path::new("preemptionPolicy"),
                p,
                PREEMPTION_POLICIES,
            )),
            _ => {}
        }
        errs
    }

    fn validate_update(&self, new: &PriorityClass, old: &PriorityClass) -> ErrorList {
        let mut errs = self.validate(new);
        if new.value != old.value {
            errs.push(FieldError::forbidden(
                &Path::new("value"),
                "may not be changed in an update.",
            ));
        }
        errs.extend(validation::validate_immutable_field(
            &new.preemption_policy,
            &old.preemption_policy,
            new.preemption_policy.clone().unwrap_or_default(),
            &Path::new("preemptionPolicy"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, pc: &PriorityClass, raw: &Value) -> Vec<Value> {
        vec![
            pc.metadata.name.clone().unwrap_or_default().into(),
            Value::from(pc.value),
            pc.global_default.unwrap_or(false).into(),
            table::age(raw),
            pc.preemption_policy.clone().unwrap_or_default().into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn pc(name: &str, value: i64) -> Value {
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_preemption_policy() {
        let s = Typed::new(PriorityClassStrategy);
        let obj = s.decode(pc("high", 1000)).unwrap();
        assert_eq!(obj["preemptionPolicy"], json!("PreemptLowerPriority"));
        assert!(s.validate(&obj).is_empty());
        assert!(!s.info().namespaced);
    }

    #[test]
    fn user_classes_are_capped_and_system_names_reserved() {
        let s = Typed::new(PriorityClassStrategy);
        let obj = s.decode(pc("huge", 1_000_000_001)).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
            ]
        );
        let obj = s.decode(pc("system-mine", 10)).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"]
        );
        let obj = s.decode(pc("system-node-critical", 10)).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000"]
        );
        for class in SYSTEM_PRIORITY_CLASSES {
            let obj = s.decode(system_priority_class_object(class)).unwrap();
            assert!(s.validate(&obj).is_empty(), "{}", class.name);
        }
    }

    #[test]
    fn value_and_policy_are_immutable() {
        let s = Typed::new(PriorityClassStrategy);
        let old = s.decode(pc("high", 1000)).unwrap();
        let mut new = pc("high", 2000);
        new["preemptionPolicy"] = json!("Never");
        let new = s.decode(new).unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                "value: Forbidden: may not be changed in an update.",
                r#"preemptionPolicy: Invalid value: "Never": field is immutable"#,
            ]
        );
    }

    #[test]
    fn row_prints_value_default_and_policy() {
        let s = Typed::new(PriorityClassStrategy);
        let mut raw = pc("high", 1000);
        raw["globalDefault"] = json!(true);
        let obj = s.decode(raw).unwrap();
        let row = s.row(&obj);
        assert_eq!(row[0], json!("high"));
        assert_eq!(row[1], json!(1000));
        assert_eq!(row[2], json!(true));
        assert_eq!(row[4], json!("PreemptLowerPriority"));
    }
}
