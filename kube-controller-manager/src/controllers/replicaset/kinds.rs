//! The two kinds the replica controller manages: apps/v1 ReplicaSet and core/v1
//! ReplicationController (upstream runs the same controller for both, the latter through
//! a conversion layer).

use std::collections::BTreeMap;

use apimachinery::labels::Selector;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition};
use k8s_openapi::api::core::v1::{
    PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::logic::{ReplicaCondition, ReplicaStatus};

/// What the replica controller needs to know about the object it manages.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The name events are reported under, and of the controller in `--controllers`.
    const COMPONENT: &'static str;
    const CONTROLLER: &'static str;

    /// The pod selector; one that cannot be parsed selects nothing.
    fn selector(&self) -> Selector;
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn current_status(&self) -> ReplicaStatus;

    fn template_labels(&self) -> BTreeMap<String, String> {
        self.template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

fn condition_json(c: &ReplicaCondition) -> Value {
    json!({
        "type": c.type_,
        "status": c.status,
        "reason": c.reason,
        "message": c.message,
        "lastTransitionTime": c.last_transition_time,
    })
}

/// The merge patch writing `status` to the status subresource.
pub fn status_patch(status: &ReplicaStatus) -> Value {
    let conditions: Value = if status.conditions.is_empty() {
        Value::Null
    } else {
        status.conditions.iter().map(condition_json).collect()
    };
    json!({"status": {
        "replicas": status.replicas,
        "fullyLabeledReplicas": status.fully_labeled_replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "observedGeneration": status.observed_generation,
        "conditions": conditions,
    }})
}

fn from_rs_condition(c: &ReplicaSetCondition) -> ReplicaCondition {
    ReplicaCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

fn from_rc_condition(c: &ReplicationControllerCondition) -> ReplicaCondition {
    ReplicaCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    const CONTROLLER: &'static str = "replicaset";

    fn selector(&self) -> Selector {
        self.spec
            .as_ref()
            .and_then(|s| Selector::from_label_selector(&s.selector).ok())
            .unwrap_or_else(Selector::nothing)
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn current_status(&self) -> ReplicaStatus {
        let Some(s) = self.status.as_ref() else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(from_rs_condition)
                .collect(),
        }
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    const CONTROLLER: &'static str = "replicationcontroller";

    fn selector(&self) -> Selector {
        // The API server defaults an absent selector to the template's labels; an
        // empty one would select every pod, so it selects none here.
        match self.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(set) if !set.is_empty() => Selector::from_set(set),
            _ => Selector::nothing(),
        }
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn current_status(&self) -> ReplicaStatus {
        let Some(s) = self.status.as_ref() else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(from_rc_condition)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::ReplicationControllerSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_of_both_kinds() {
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(rs
            .selector()
            .matches(&labels(&[("app", "web"), ("x", "y")])));
        assert!(!rs.selector().matches(&labels(&[("app", "db")])));
        assert_eq!(rs.replicas(), 1);

        let rc = ReplicationController {
            spec: Some(ReplicationControllerSpec {
                selector: Some(labels(&[("app", "web")])),
                replicas: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(rc.selector().matches(&labels(&[("app", "web")])));
        assert_eq!(rc.replicas(), 3);
        let empty = ReplicationController::default();
        assert!(!empty.selector().matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn status_round_trip() {
        let rs = ReplicaSet {
            status: Some(ReplicaSetStatus {
                replicas: 3,
                ready_replicas: Some(2),
                observed_generation: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = rs.current_status();
        assert_eq!(
            (s.replicas, s.ready_replicas, s.observed_generation),
            (3, 2, 4)
        );
        let patch = status_patch(&s);
        assert_eq!(patch["status"]["readyReplicas"], 2);
        assert!(patch["status"]["conditions"].is_null());
    }
}
