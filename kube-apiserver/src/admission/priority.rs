//! Priority: a new pod's `spec.priorityClassName` becomes its `spec.priority` and
//! `spec.preemptionPolicy` (the global default class, or 0, when it names none), and at
//! most one PriorityClass is the global default, as upstream's
//! `plugin/pkg/admission/priority`.

use std::sync::Arc;

use apimachinery::StatusError;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;

use crate::admission::{Attributes, Operation, Plugin};
use crate::registry::store::Store;

/// The priority of pods when no class is the global default.
pub const DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS: i32 = 0;

pub struct Priority {
    classes: Arc<Store>,
}

impl Priority {
    pub fn new(classes: Arc<Store>) -> Self {
        Priority { classes }
    }

    /// The global default class; if a race made several, the one of lowest value.
    async fn default_class(&self) -> Result<Option<PriorityClass>, StatusError> {
        let items = self.classes.list_cached(None).await?;
        Ok(items
            .into_iter()
            .filter_map(|v| serde_json::from_value::<PriorityClass>(v).ok())
            .filter(|pc| pc.global_default == Some(true))
            .min_by_key(|pc| pc.value))
    }

    /// The class name (empty for none), priority and preemption policy a new pod gets.
    async fn establish(
        &self,
        attrs: &Attributes,
        class_name: &str,
    ) -> Result<(String, i32, Option<String>), StatusError> {
        if class_name.is_empty() {
            let default = self.default_class().await.map_err(|e| {
                StatusError::internal(format!("failed to get default priority class: {e}"))
            })?;
            return Ok(match default {
                Some(pc) => (
                    pc.metadata.name.unwrap_or_default(),
                    pc.value,
                    pc.preemption_policy,
                ),
                None => (
                    String::new(),
                    DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS,
                    Some("PreemptLowerPriority".to_string()),
                ),
            });
        }
        let pc = match self.classes.get_cached("", class_name).await {
            Ok(v) => serde_json::from_value::<PriorityClass>(v).map_err(StatusError::internal)?,
            Err(e) if e.is_not_found() => {
                return Err(
                    attrs.forbidden(format!("no PriorityClass with name {class_name} was found"))
                )
            }
            Err(e) => {
                return Err(StatusError::internal(format!(
                    "failed to get PriorityClass with name {class_name}: {e}"
                )))
            }
        };
        Ok((class_name.to_string(), pc.value, pc.preemption_policy))
    }

    async fn admit_pod(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        let Some(obj) = attrs.object.as_ref() else {
            return Ok(());
        };
        let mut pod: Pod = serde_json::from_value(obj.clone()).map_err(|_| {
            StatusError::bad_request(
                "resource was marked with kind Pod but was unable to be converted",
            )
        })?;
        if attrs.operation == Operation::Update {
            // The priority was set on create; an update that leaves it out keeps it
            // (validation rejects any other change).
            let old: Option<Pod> = attrs
                .old_object
                .as_ref()
                .and_then(|o| serde_json::from_value(o.clone()).ok());
            let (Some(spec), Some(old_spec)) = (
                pod.spec.as_mut(),
                old.as_ref().and_then(|o| o.spec.as_ref()),
            ) else {
                return Ok(());
            };
            let mut changed = false;
            if spec.priority.is_none() && old_spec.priority.is_some() {
                spec.priority = old_spec.priority;
                changed = true;
            }
            if spec.preemption_policy.is_none() && old_spec.preemption_policy.is_some() {
                spec.preemption_policy
                    .clone_from(&old_spec.preemption_policy);
                changed = true;
            }
            if changed {
                attrs.object = Some(serde_json::to_value(&pod).map_err(StatusError::internal)?);
            }
            return Ok(());
        }
        let class_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.clone())
            .unwrap_or_default();
        let (class_name, priority, policy) = self.establish(attrs, &class_name).await?;
        let Some(spec) = pod.spec.as_mut() else {
            return Ok(());
        };
        spec.priority_class_name = (!class_name.is_empty()).then_some(class_name);
        if let Some(given) = spec.priority.filter(|p| *p != priority) {
            return Err(attrs.forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        spec.priority = Some(priority);
        if let Some(policy) = policy {
            if let Some(given) = spec.preemption_policy.as_ref().filter(|p| **p != policy) {
                return Err(attrs.forbidden(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                )));
            }
            spec.preemption_policy = Some(policy);
        }
        attrs.object = Some(serde_json::to_value(&pod).map_err(StatusError::internal)?);
        Ok(())
    }

    async fn validate_class(&self, attrs: &Attributes) -> Result<(), StatusError> {
        let Some(obj) = attrs.object.as_ref() else {
            return Ok(());
        };
        let pc: PriorityClass = serde_json::from_value(obj.clone()).map_err(|_| {
            StatusError::bad_request(
                "resource was marked with kind PriorityClass but was unable to be converted",
            )
        })?;
        if pc.global_default != Some(true) {
            return Ok(());
        }
        let existing = self.default_class().await.map_err(|e| {
            StatusError::internal(format!("failed to get default priority class: {e}"))
        })?;
        if let Some(existing) = existing {
            let existing_name = existing.metadata.name.unwrap_or_default();
            if attrs.operation == Operation::Create
                || (attrs.operation == Operation::Update
                    && pc.metadata.name.as_deref() != Some(existing_name.as_str()))
            {
                return Err(attrs.forbidden(format!(
                    "PriorityClass {existing_name} is already marked as default. Only one default can exist"
                )));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        if attrs.subresource.is_some()
            || !attrs.is("", "pods")
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        self.admit_pod(attrs).await
    }

    async fn validate(&self, attrs: &Attributes) -> Result<(), StatusError> {
        if attrs.subresource.is_some()
            || !attrs.is("scheduling.k8s.io", "priorityclasses")
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        self.validate_class(attrs).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::admission::test_support::Harness;
    use crate::admission::Admission;
    use serde_json::{json, Value};

    fn class(name: &str, value: i32, default: bool) -> Value {
        json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default
        })
    }

    fn pod(name: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "nginx"}]);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    }

    struct Setup {
        h: Harness,
        admission: Admission,
    }

    impl Setup {
        fn new() -> Self {
            let h = Harness::new();
            let admission = Admission::new(vec![Arc::new(Priority::new(
                h.store("scheduling.k8s.io", "priorityclasses"),
            ))]);
            Setup { h, admission }
        }

        async fn create_pod(&self, obj: Value) -> Result<Value, StatusError> {
            self.h
                .store("", "pods")
                .create("default", obj, &Default::default(), &self.admission)
                .await
        }

        async fn create_class(&self, obj: Value) -> Result<Value, StatusError> {
            self.h
                .store("scheduling.k8s.io", "priorityclasses")
                .create("", obj, &Default::default(), &self.admission)
                .await
        }
    }

    #[tokio::test]
    async fn pods_get_their_class_priority() {
        let s = Setup::new();
        let mut high = class("high", 1000, false);
        high["preemptionPolicy"] = json!("Never");
        s.create_class(high).await.unwrap();

        let p = s.create_pod(pod("a", json!({}))).await.unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert!(p["spec"].get("priorityClassName").is_none());

        let p = s
            .create_pod(pod("b", json!({"priorityClassName": "high"})))
            .await
            .unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");

        let err = s
            .create_pod(pod("c", json!({"priorityClassName": "nope"})))
            .await
            .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"pods "c" is forbidden: no PriorityClass with name nope was found"#
        );

        let err = s
            .create_pod(pod(
                "d",
                json!({"priorityClassName": "high", "priority": 5}),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err.message,
            r#"pods "d" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"#
        );
        // The computed value itself may be given.
        s.create_pod(pod(
            "e",
            json!({"priorityClassName": "high", "priority": 1000}),
        ))
        .await
        .unwrap();
        let err = s
            .create_pod(pod(
                "f",
                json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err.message,
            r#"pods "f" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"#
        );
    }

    #[tokio::test]
    async fn the_global_default_applies_and_stays_unique() {
        let s = Setup::new();
        s.create_class(class("low", 10, true)).await.unwrap();
        let p = s.create_pod(pod("a", json!({}))).await.unwrap();
        assert_eq!(p["spec"]["priority"], 10);
        assert_eq!(p["spec"]["priorityClassName"], "low");

        let err = s.create_class(class("other", 20, true)).await.unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass low is already marked as default. Only one default can exist"#
        );
        s.create_class(class("other", 20, false)).await.unwrap();

        let classes = s.h.store("scheduling.k8s.io", "priorityclasses");
        let err = classes
            .update_with(
                "",
                "other",
                crate::registry::store::UpdateTarget::Main,
                false,
                &Default::default(),
                &s.admission,
                |old| {
                    let mut new = old.cloned().unwrap_or_default();
                    new["globalDefault"] = json!(true);
                    Ok(new)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, 403);
        // The default class itself may be updated.
        classes
            .update_with(
                "",
                "low",
                crate::registry::store::UpdateTarget::Main,
                false,
                &Default::default(),
                &s.admission,
                |old| {
                    let mut new = old.cloned().unwrap_or_default();
                    new["description"] = json!("the default");
                    Ok(new)
                },
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn updates_keep_the_priority() {
        let s = Setup::new();
        let p = s.create_pod(pod("a", json!({}))).await.unwrap();
        let pods = s.h.store("", "pods");
        let (updated, _) = pods
            .update_with(
                "default",
                "a",
                crate::registry::store::UpdateTarget::Main,
                false,
                &Default::default(),
                &s.admission,
                |_| {
                    let mut new = p.clone();
                    new["spec"].as_object_mut().unwrap().remove("priority");
                    new["metadata"]["labels"] = json!({"x": "y"});
                    Ok(new)
                },
            )
            .await
            .unwrap();
        assert_eq!(updated["spec"]["priority"], 0);
    }
}
