//! Server-side apply and `managedFields`.
//!
//! This first version records each applier's fields (FieldsV1) and merges an applied
//! configuration into the live object with strategic-merge semantics; fields an applier
//! stops specifying are removed when no other manager owns them. Conflict detection
//! between managers comes next (see docs/STATUS.md).

use apimachinery::StatusError;
use serde_json::{json, Map, Value};

use crate::apiserver::ApiServer;
use crate::object;
use crate::registry::ResourceInfo;

/// The FieldsV1 set of every field `obj` specifies (metadata name/namespace excluded, as
/// upstream excludes them).
pub fn field_set(obj: &Value) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(format!("f:{k}"), walk(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut out = Map::new();
                for item in items {
                    match item.get("name").filter(|_| item.is_object()) {
                        Some(name) => {
                            out.insert(format!("k:{}", json!({"name": name})), walk(item));
                        }
                        None => {
                            out.insert(format!("v:{item}"), json!({}));
                        }
                    }
                }
                if out.is_empty() {
                    json!({})
                } else {
                    Value::Object(out)
                }
            }
            _ => json!({}),
        }
    }
    let mut obj = obj.clone();
    if let Some(map) = obj.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "name",
            "namespace",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(f);
        }
        if meta.is_empty() {
            obj.as_object_mut().map(|m| m.remove("metadata"));
        }
    }
    walk(&obj)
}

fn entry(manager: &str, operation: &str, api_version: &str, fields: Value) -> Value {
    json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": object::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    })
}

fn managed_fields(obj: &Value) -> Vec<Value> {
    object::metadata(obj)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Apply to an object that does not exist yet: the applied configuration is the object.
pub fn apply_new(applied: &Value, manager: &str) -> Value {
    let mut obj = applied.clone();
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = field_set(applied);
    object::set_meta(
        &mut obj,
        "managedFields",
        json!([entry(manager, "Apply", &api_version, fields)]),
    );
    obj
}

/// Remove from `obj` every path of `fields` that `keep` does not also hold.
fn prune(obj: &mut Value, fields: &Value, keep: &Value) {
    let (Some(obj_map), Some(fields)) = (obj.as_object_mut(), fields.as_object()) else {
        return;
    };
    for (key, sub) in fields {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let kept = keep.get(key);
        match kept {
            None => {
                obj_map.remove(name);
            }
            Some(kept_sub) => {
                if let Some(child) = obj_map.get_mut(name) {
                    if sub.as_object().is_some_and(|m| !m.is_empty()) {
                        prune(child, sub, kept_sub);
                    }
                }
            }
        }
    }
}

/// Merge another FieldsV1 set into `into`.
fn union(into: &mut Value, other: &Value) {
    let (Some(into_map), Some(other)) = (into.as_object_mut(), other.as_object()) else {
        return;
    };
    for (k, v) in other {
        match into_map.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                into_map.insert(k.clone(), v.clone());
            }
        }
    }
}

pub fn apply(
    server: &ApiServer,
    info: &ResourceInfo,
    current: &Value,
    applied: &Value,
    manager: &str,
    _force: bool,
) -> Result<Value, StatusError> {
    let api_version = info.api_version();
    let mut entries = managed_fields(current);
    let previous = entries
        .iter()
        .position(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
        })
        .map(|i| entries.remove(i));
    let new_fields = field_set(applied);
    let mut result = current.clone();
    if let Some(prev) = previous.as_ref().and_then(|p| p.get("fieldsV1")) {
        // Fields this manager applied before and dropped now go, unless another manager
        // also owns them.
        let mut keep = new_fields.clone();
        for e in &entries {
            if let Some(f) = e.get("fieldsV1") {
                union(&mut keep, f);
            }
        }
        prune(&mut result, prev, &keep);
    }
    let mut patch = applied.clone();
    if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    let mut merged = server.strategic_merge(&info.definition, &result, &patch)?;
    entries.push(entry(manager, "Apply", &api_version, new_fields));
    object::set_meta(&mut merged, "managedFields", Value::Array(entries));
    Ok(merged)
}
