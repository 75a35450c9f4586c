//! Pods made from a controller's template (upstream's PodControl).

use client::events::EventSink;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Preconditions};

use super::expectations::Expectations;

/// The pod a controller creates from `template`: the template's labels, annotations,
/// finalizers and spec, named `<prefix><random>` by the API server, owned by `owner`.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_string()),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Upstream's name prefix for a controller's pods: `<name>-`, shortened so that the
/// generated name stays a valid DNS label.
pub fn name_prefix(controller_name: &str) -> String {
    // The API server appends 5 characters; names are at most 63.
    let max = 63 - 5 - 1;
    let base: String = controller_name.chars().take(max).collect();
    format!("{base}-")
}

/// Whether a pod is active: not finished and not being deleted (upstream's
/// `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether a pod is Ready (its Ready condition is True).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Delete the pods `victims` of controller `key` (upstream's `PodControl.DeletePod`):
/// each only if it is still the same object (uid precondition, so a new pod of the
/// same name survives), with the deletion expected and upstream's SuccessfulDelete or
/// FailedDelete event on `regarding`. A pod already gone or replaced is skipped.
pub async fn delete_controlled(
    api: &Api<Pod>,
    events: &EventSink,
    expectations: &Expectations,
    key: &str,
    regarding: &ObjectReference,
    victims: &[&Pod],
) {
    for pod in victims {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        expectations.expect_deleted(key, &name);
        match api.delete(&name, &params).await {
            Ok(_) => events.normal(
                regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => events.warning(
                regarding.clone(),
                "FailedDelete",
                "Delete",
                format!("Error deleting: {e}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_fit_names() {
        assert_eq!(name_prefix("web"), "web-");
        assert_eq!(name_prefix(&"x".repeat(80)).len(), 58);
    }
}
