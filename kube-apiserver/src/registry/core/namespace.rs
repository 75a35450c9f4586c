//! namespaces: cluster-scoped, phase Active until deleted; deletion waits for
//! `spec.finalizers` (emptied by the namespace controller through `/finalize`, which the
//! store serves as `UpdateTarget::Finalize`: everything but status from the request).

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField, Subresource};

pub struct NamespaceStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "The status of the namespace"),
    AGE,
];

const FIELDS: &[SelectableField] = &[SelectableField::new("status.phase")];

/// Finalizer names Kubernetes defines without a domain.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// `spec.finalizers`: qualified names, unprefixed only for the standard ones.
fn validate_spec_finalizers(ns: &Namespace) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("spec").child("finalizers");
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref());
    for (i, f) in finalizers.into_iter().flatten().enumerate() {
        let p = path.index(i);
        errs.extend(validation::validate_finalizer_name(f, &p));
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                &p,
                f.as_str(),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

impl TypedStrategy for NamespaceStrategy {
    type Object = Namespace;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Namespace>()
            .short_names(&["ns"])
            .with_status()
            .subresource(Subresource::Finalize)
            .name_validator(apimachinery::validation::NameValidator::Dns1123Label)
            .returns_deleted_object()
    }

    fn default(&self, ns: &mut Namespace) {
        let status = ns.status.get_or_insert_with(NamespaceStatus::default);
        if status.phase.is_none() {
            status.phase = Some("Active".into());
        }
        // Upstream labels every namespace with its own name.
        let name = ns.metadata.name.clone().unwrap_or_default();
        if !name.is_empty() {
            ns.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("kubernetes.io/metadata.name".into(), name);
        }
    }

    fn prepare_for_create(&self, ns: &mut Namespace) {
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push("kubernetes".into());
        }
    }

    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        // spec.finalizers change only through /finalize; status only through /status.
        new.spec = old.spec.clone();
        new.status = old.status.clone();
    }

    fn validate(&self, ns: &Namespace) -> ErrorList {
        validate_spec_finalizers(ns)
    }

    fn has_pending_finalizers(&self, ns: &Namespace) -> bool {
        ns.spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty())
    }

    fn prepare_for_deletion(&self, ns: &mut Namespace) {
        ns.status.get_or_insert_with(NamespaceStatus::default).phase = Some("Terminating".into());
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, ns: &Namespace, raw: &Value) -> Vec<Value> {
        let phase = ns
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        vec![
            ns.metadata.name.clone().unwrap_or_default().into(),
            phase.into(),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::registry::store::{
        DeleteOutcome, DeleteParams, RequestContext, Store, UpdateTarget,
    };
    use crate::registry::typed::Typed;
    use serde_json::json;
    use std::sync::Arc;
    use storage::memory::MemoryStorage;

    fn store() -> Store {
        Store::new(
            Arc::new(Typed::new(NamespaceStrategy)),
            Arc::new(MemoryStorage::new()),
            "/registry",
        )
    }

    /// `PUT namespaces/{name}/finalize` with the given spec finalizers.
    async fn finalize(
        store: &Store,
        finalizers: Value,
    ) -> Result<Value, apimachinery::StatusError> {
        let ctx = RequestContext::default();
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "work"},
            "spec": {"finalizers": finalizers}, "status": {"phase": "Active"}});
        store
            .update_with(
                "",
                "work",
                UpdateTarget::Finalize,
                false,
                &ctx,
                &Admission::default(),
                |_| Ok(body.clone()),
            )
            .await
            .map(|(o, _)| o)
    }

    #[tokio::test]
    async fn finalize_replaces_spec_finalizers_and_completes_deletion() {
        let store = store();
        let ctx = RequestContext::default();
        let adm = Admission::default();
        let created = store
            .create("", json!({"metadata": {"name": "work"}}), &ctx, &adm)
            .await
            .unwrap();
        assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(
            created["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "work"
        );

        // An ordinary update cannot touch spec.finalizers, finalize can (but not status).
        let ns = finalize(&store, json!(["kubernetes", "example.com/hold"]))
            .await
            .unwrap();
        assert_eq!(
            ns["spec"]["finalizers"],
            json!(["kubernetes", "example.com/hold"])
        );
        assert_eq!(ns["status"]["phase"], "Active");
        let err = finalize(&store, json!(["bogus"])).await.unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("name is neither a standard finalizer name nor is it fully qualified"),
            "{}",
            err.message
        );

        // Deleting marks it Terminating and waits for the finalizers.
        let outcome = store
            .delete("", "work", &DeleteParams::default(), &ctx, &adm)
            .await
            .unwrap();
        let DeleteOutcome::Pending(ns) = outcome else {
            panic!("deleted too early")
        };
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(ns["metadata"]["deletionTimestamp"].is_string());

        let ns = finalize(&store, json!(["example.com/hold"])).await.unwrap();
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(store.get("", "work").await.is_ok());
        // Emptying spec.finalizers of a terminating namespace deletes it.
        finalize(&store, json!([])).await.unwrap();
        assert!(store.get("", "work").await.unwrap_err().is_not_found());
    }
}
