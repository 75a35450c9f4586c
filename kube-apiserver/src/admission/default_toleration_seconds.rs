//! DefaultTolerationSeconds: pods tolerate their node being not-ready or unreachable for
//! five minutes (`--default-not-ready-toleration-seconds`,
//! `--default-unreachable-toleration-seconds`) unless they say otherwise, as upstream's
//! `plugin/pkg/admission/defaulttolerationseconds`.

use apimachinery::StatusError;
use k8s_openapi::api::core::v1::{Pod, Toleration};

use crate::admission::{Attributes, Operation, Plugin};

/// The taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint for a node whose Ready condition is Unknown.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub struct DefaultTolerationSeconds {
    not_ready_seconds: i64,
    unreachable_seconds: i64,
}

impl DefaultTolerationSeconds {
    pub fn new(not_ready_seconds: i64, unreachable_seconds: i64) -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds,
            unreachable_seconds,
        }
    }
}

fn toleration(key: &str, seconds: i64) -> Toleration {
    Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some("NoExecute".to_string()),
        toleration_seconds: Some(seconds),
        value: None,
    }
}

/// Whether `t` covers the NoExecute taint `key` (an empty key or effect matches all).
fn tolerates(t: &Toleration, key: &str) -> bool {
    let key_matches = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
    let effect_matches = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoExecute");
    key_matches && effect_matches
}

#[async_trait::async_trait]
impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        if !attrs.is("", "pods")
            || attrs.subresource.is_some()
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let Some(obj) = attrs.object.as_ref() else {
            return Ok(());
        };
        let mut pod: Pod = serde_json::from_value(obj.clone())
            .map_err(|e| StatusError::bad_request(format!("expected a Pod: {e}")))?;
        let Some(spec) = pod.spec.as_mut() else {
            return Ok(());
        };
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        let mut added = false;
        for (key, seconds) in [
            (TAINT_NODE_NOT_READY, self.not_ready_seconds),
            (TAINT_NODE_UNREACHABLE, self.unreachable_seconds),
        ] {
            if !tolerations.iter().any(|t| tolerates(t, key)) {
                tolerations.push(toleration(key, seconds));
                added = true;
            }
        }
        if added {
            attrs.object = Some(serde_json::to_value(&pod).map_err(StatusError::internal)?);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::store::RequestContext;
    use crate::registry::ResourceInfo;
    use serde_json::{json, Value};

    async fn admit(pod: Value) -> Value {
        let plugin = DefaultTolerationSeconds::new(300, 200);
        let info = ResourceInfo::of::<Pod>();
        let mut attrs = Attributes::new(
            Operation::Create,
            &info,
            "default",
            "p",
            &RequestContext::default(),
        );
        attrs.object = Some(pod);
        plugin.admit(&mut attrs).await.unwrap();
        attrs.object.unwrap()
    }

    #[tokio::test]
    async fn adds_both_tolerations() {
        let pod =
            admit(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}))
                .await;
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 200}
            ])
        );
    }

    #[tokio::test]
    async fn keeps_existing_tolerations() {
        let own = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 6000}]);
        let pod = admit(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "tolerations": own}})).await;
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 6000);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");

        // A toleration of everything covers both taints.
        let all = json!([{"operator": "Exists"}]);
        let pod = admit(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "tolerations": all}})).await;
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));

        // NoSchedule tolerations do not.
        let no_schedule = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]);
        let pod = admit(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "tolerations": no_schedule}})).await;
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
