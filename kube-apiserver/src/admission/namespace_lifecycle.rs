//! NamespaceLifecycle: no new objects in a namespace that does not exist or is
//! terminating, and the system namespaces cannot be deleted.

use std::sync::Arc;

use apimachinery::errors::GroupResource;
use apimachinery::StatusError;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::admission::{Attributes, Operation, Plugin};
use crate::registry::store::Store;

/// Namespaces that may never be deleted.
const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

pub struct NamespaceLifecycle {
    namespaces: Arc<Store>,
}

impl NamespaceLifecycle {
    pub fn new(namespaces: Arc<Store>) -> Self {
        NamespaceLifecycle { namespaces }
    }
}

#[async_trait::async_trait]
impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        if attrs.is("", "namespaces") {
            if attrs.operation == Operation::Delete && IMMORTAL.contains(&attrs.name.as_str()) {
                return Err(StatusError::forbidden(
                    &GroupResource::new("", "namespaces"),
                    &attrs.name,
                    "this namespace may not be deleted",
                ));
            }
            return Ok(());
        }
        if !attrs.resource.namespaced
            || attrs.namespace.is_empty()
            || attrs.operation != Operation::Create
        {
            return Ok(());
        }
        let ns = match self.namespaces.get_cached_raw("", &attrs.namespace).await {
            Ok(ns) => ns,
            Err(e) if e.is_not_found() => {
                return Err(StatusError::not_found(
                    &GroupResource::new("", "namespaces"),
                    &attrs.namespace,
                ));
            }
            Err(e) => return Err(e),
        };
        let ns: NamespaceState = serde_json::from_slice(&ns.value).map_err(|e| {
            StatusError::internal(format!("decoding stored object {}: {e}", ns.key))
        })?;
        if ns.metadata.deletion_timestamp.0.is_some()
            || ns.status.phase.0.as_deref() == Some("Terminating")
        {
            // Events about a terminating namespace's objects are still welcome.
            if attrs.is("", "events") || attrs.is("events.k8s.io", "events") {
                return Ok(());
            }
            return Err(StatusError::forbidden(
                &attrs.resource.group_resource(),
                &attrs.name,
                format!(
                    "unable to create new content in namespace {} because it is being terminated",
                    attrs.namespace
                ),
            ));
        }
        Ok(())
    }
}

/// The two fields of a stored Namespace this plugin reads. Decoding only them, instead of
/// the whole object into a `Value`, is most of this plugin's cost on every create.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NamespaceState {
    metadata: NamespaceMeta,
    status: NamespaceStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct NamespaceMeta {
    deletion_timestamp: StrField,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NamespaceStatus {
    phase: StrField,
}

/// A field's value when it is a string, `None` otherwise (as `Value::as_str` reads it).
#[derive(Default)]
struct StrField(Option<String>);

impl<'de> Deserialize<'de> for StrField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StrField(
            Value::deserialize(d)?.as_str().map(str::to_string),
        ))
    }
}
