//! Pods made from a controller's template (upstream's PodControl).

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_fit_names() {
        assert_eq!(name_prefix("web"), "web-");
        assert_eq!(name_prefix(&"x".repeat(80)).len(), 58);
    }
}
