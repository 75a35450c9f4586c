//! bindings: the create-only resource through which a scheduler assigns a pod to a node
//! (`POST /api/v1/namespaces/{ns}/bindings`, the older form of `pods/{name}/binding`).
//! Nothing is stored under it; `handlers::binding` applies the binding to the pod.

use apimachinery::field::{ErrorList, FieldError, Path};
use k8s_openapi::api::core::v1::Binding;

use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct BindingStrategy;

/// Upstream's `ValidatePodBinding`.
pub fn validate_binding(b: &Binding) -> ErrorList {
    let mut errs = Vec::new();
    let kind = b.target.kind.as_deref().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errs.push(FieldError::not_supported(
            &Path::new("target").child("kind"),
            kind,
            &["Node", "<empty>"],
        ));
    }
    if b.target.name.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::required(&Path::new("target").child("name"), ""));
    }
    errs
}

impl TypedStrategy for BindingStrategy {
    type Object = Binding;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Binding>().verbs(&["create"])
    }

    fn validate(&self, b: &Binding) -> ErrorList {
        validate_binding(b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn target_must_name_a_node() {
        let b: Binding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "target": {"kind": "Pod"}}))
        .unwrap();
        let errs: Vec<String> = validate_binding(&b)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        assert_eq!(
            errs,
            vec![
                "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\"",
                "target.name: Required value",
            ]
        );
        assert_eq!(BindingStrategy.info().verbs, vec!["create"]);
    }
}
