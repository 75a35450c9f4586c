//! The scale subresource: an `autoscaling/v1` Scale view of a resource's replica count,
//! which `kubectl scale` and autoscalers read and write.

use std::sync::Arc;

use apimachinery::{labels, StatusError};
use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::apiserver::ApiServer;
use crate::handlers::patch::Patch;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, BodyType, Output};
use crate::object;
use crate::registry::store::{RequestContext, Store, UpdateTarget};
use crate::registry::ScaleInfo;

fn selector_string(obj: &Value, info: &ScaleInfo) -> String {
    let Some(sel) = object::path(obj, info.selector) else {
        return String::new();
    };
    if info.selector_is_map {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_value(sel.clone()).unwrap_or_default();
        return map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
    }
    serde_json::from_value::<LabelSelector>(sel.clone())
        .ok()
        .and_then(|s| labels::Selector::from_label_selector(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The Scale of an object.
pub fn scale_of(obj: &Value, info: &ScaleInfo) -> Value {
    let meta = object::metadata(obj).cloned().unwrap_or_default();
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": pick("name"),
        "uid": pick("uid"),
        "resourceVersion": pick("resourceVersion"),
        "creationTimestamp": pick("creationTimestamp"),
    });
    if let Some(ns) = meta.get("namespace") {
        metadata["namespace"] = ns.clone();
    }
    // Who owns the replica count, as the Scale's own managedFields.
    if let Some(mf) = crate::fieldmanager::scale_managed_fields(obj, info.spec_replicas) {
        metadata["managedFields"] = mf;
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object::path(obj, info.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": object::path(obj, info.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj, info),
        },
    })
}

fn set_path(obj: &mut Value, dotted: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(map) = cur else { return };
        if i == parts.len() - 1 {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

fn validate_scale(scale: &Value, name: &str) -> Result<i64, StatusError> {
    let replicas = scale.get("spec").and_then(|s| s.get("replicas"));
    let path = apimachinery::field::Path::new("spec").child("replicas");
    match replicas.map(|r| (r, r.as_i64())) {
        None | Some((Value::Null, _)) => Ok(0),
        Some((_, Some(n))) if n >= 0 => Ok(n),
        Some((r, _)) => Err(StatusError::invalid(
            &apimachinery::errors::GroupKind::new("autoscaling", "Scale"),
            name,
            &vec![apimachinery::field::FieldError::invalid(
                &path,
                r.clone(),
                "must be greater than or equal to 0",
            )],
        )),
    }
}

pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let info = store.info().scale().cloned().ok_or_else(|| {
        StatusError::new(
            404,
            apimachinery::StatusReason::NotFound,
            "the server could not find the requested resource",
        )
    })?;
    let name = req.info.name.clone();
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    let new_scale = match req.info.verb.as_str() {
        "get" => {
            let obj = store.get(namespace, &name).await?;
            return Ok(json_response(
                StatusCode::OK,
                &scale_of(&obj, &info),
                output,
            ));
        }
        "update" => {
            let content_type = req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let yaml = negotiation::body_type(content_type)? == BodyType::Yaml;
            Some(negotiation::decode(&req.body, yaml)?)
        }
        "patch" => None,
        verb => {
            return Err(StatusError::method_not_supported(
                &store.info().group_resource(),
                verb,
            ))
        }
    };
    let patch = match &new_scale {
        Some(_) => None,
        None => {
            let content_type = req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            Some(Patch::decode(
                negotiation::body_type(content_type)?,
                &req.body,
            )?)
        }
    };
    let resource_info = store.info().clone();
    // The parent records the write as an update through the scale subresource.
    let ctx = &RequestContext {
        tracking: crate::fieldmanager::Tracking::Subresource("scale"),
        ..ctx.clone()
    };
    let (updated, _) = store
        .update_with(
            namespace,
            &name,
            UpdateTarget::Main,
            false,
            ctx,
            &server.admission,
            |current| {
                let current = current.ok_or_else(|| {
                    StatusError::not_found(&resource_info.group_resource(), &name)
                })?;
                let old_scale = scale_of(current, &info);
                let scale = match (&new_scale, &patch) {
                    (Some(s), _) => s.clone(),
                    (None, Some(p)) => {
                        let mut scale_info = resource_info.clone();
                        scale_info.definition = "io.k8s.api.autoscaling.v1.Scale".into();
                        p.apply(
                            server,
                            &scale_info,
                            Some(&old_scale),
                            ctx.field_manager.as_deref(),
                            false,
                        )?
                    }
                    (None, None) => old_scale.clone(),
                };
                let replicas = validate_scale(&scale, &name)?;
                let mut obj = current.clone();
                set_path(&mut obj, info.spec_replicas, json!(replicas));
                // A resourceVersion in the Scale is a precondition on the object.
                let rv = object::resource_version(&scale);
                object::set_meta(&mut obj, "resourceVersion", rv.to_string());
                Ok(obj)
            },
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&updated, &info),
        output,
    ))
}
