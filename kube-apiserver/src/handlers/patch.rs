//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch (upstream's, driven by the schemas' patch strategies and merge keys), and
//! server-side apply.

use apimachinery::StatusError;
use serde_json::Value;

use crate::apiserver::ApiServer;
use crate::negotiation::{self, BodyType};
use crate::registry::ResourceInfo;

pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
    Strategic(Value),
    Apply(Value),
}

impl Patch {
    pub fn decode(body_type: BodyType, body: &[u8]) -> Result<Self, StatusError> {
        match body_type {
            BodyType::JsonPatch => serde_json::from_slice(body)
                .map(Patch::Json)
                .map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}"))),
            BodyType::MergePatch => object_body(body, false).map(Patch::Merge),
            BodyType::StrategicMergePatch => object_body(body, false).map(Patch::Strategic),
            BodyType::ApplyPatch => object_body(body, true).map(Patch::Apply),
            BodyType::Json | BodyType::Yaml | BodyType::Protobuf => {
                Err(StatusError::unsupported_media_type(match body_type {
                    BodyType::Yaml => "application/yaml",
                    BodyType::Protobuf => "application/vnd.kubernetes.protobuf",
                    _ => "application/json",
                }))
            }
        }
    }

    pub fn is_apply(&self) -> bool {
        matches!(self, Patch::Apply(_))
    }

    /// Whether the patch sets `metadata.resourceVersion`, making it conditional on that
    /// version; otherwise it applies to whatever version is current.
    pub fn names_resource_version(&self) -> bool {
        match self {
            Patch::Json(ops) => serde_json::to_value(ops)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|op| {
                    op.get("op").and_then(Value::as_str) != Some("remove")
                        && op.get("path").and_then(Value::as_str)
                            == Some("/metadata/resourceVersion")
                }),
            Patch::Merge(v) | Patch::Strategic(v) | Patch::Apply(v) => v
                .pointer("/metadata/resourceVersion")
                .is_some_and(|rv| !rv.is_null()),
        }
    }

    /// The patched object. `current` is `None` only for apply, which creates.
    pub fn apply(
        &self,
        server: &ApiServer,
        info: &ResourceInfo,
        current: Option<&Value>,
        field_manager: Option<&str>,
        force: bool,
    ) -> Result<Value, StatusError> {
        self.apply_through(server, info, current, field_manager, force, "")
    }

    /// [`Patch::apply`] through a subresource (`status`), which names server-side apply's
    /// manager entry.
    pub fn apply_through(
        &self,
        server: &ApiServer,
        info: &ResourceInfo,
        current: Option<&Value>,
        field_manager: Option<&str>,
        force: bool,
        subresource: &str,
    ) -> Result<Value, StatusError> {
        let Some(current) = current else {
            return match self {
                Patch::Apply(applied) => crate::fieldmanager::apply_new(
                    info,
                    applied,
                    field_manager.unwrap_or_default(),
                    subresource,
                ),
                _ => Err(StatusError::not_found(&info.group_resource(), "")),
            };
        };
        let mut doc = current.clone();
        match self {
            Patch::Json(ops) => {
                json_patch::patch(&mut doc, ops).map_err(|e| invalid_patch(e.to_string()))?;
            }
            Patch::Merge(patch) => json_patch::merge(&mut doc, patch),
            Patch::Strategic(patch) => {
                doc = server.strategic_merge(&info.definition, current, patch)?;
            }
            Patch::Apply(applied) => {
                doc = crate::fieldmanager::apply_to(
                    info,
                    Some(current),
                    applied,
                    field_manager.unwrap_or_default(),
                    subresource,
                    force,
                )?;
            }
        }
        Ok(doc)
    }
}

fn object_body(body: &[u8], yaml: bool) -> Result<Value, StatusError> {
    let v = negotiation::decode(body, yaml)?;
    if !v.is_object() {
        return Err(StatusError::bad_request("the patch must be a JSON object"));
    }
    Ok(v)
}

/// A patch that decodes but cannot be applied (upstream answers 422).
fn invalid_patch(message: String) -> StatusError {
    StatusError::new(422, apimachinery::StatusReason::Invalid, message)
}
