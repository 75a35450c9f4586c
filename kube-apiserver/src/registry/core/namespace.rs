//! namespaces: cluster-scoped, phase Active until deleted; deletion waits for
//! `spec.finalizers` (emptied by the namespace controller through `/finalize`).

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

impl TypedStrategy for NamespaceStrategy {
    type Object = Namespace;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Namespace>()
            .short_names(&["ns"])
            .with_status()
            .subresource(Subresource::Finalize)
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
