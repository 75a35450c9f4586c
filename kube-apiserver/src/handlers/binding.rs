//! The pod subresources served by the API server itself: `pods/{name}/binding` and
//! `namespaces/{ns}/bindings` (a scheduler's assignment of a pod to a node, as upstream's
//! `BindingREST`), and the streaming subresources (`log`, `exec`, `attach`,
//! `portforward`, `proxy` of pods, `proxy` of nodes), proxied by `handlers::connect`.

use std::sync::Arc;

use apimachinery::errors::GroupResource;
use apimachinery::StatusError;
use http::StatusCode;
use k8s_openapi::api::core::v1::{Binding, Pod, PodCondition};
use serde_json::{json, Value};

use crate::admission::{Attributes, Operation};
use crate::apiserver::ApiServer;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, BodyType, Output};
use crate::registry::core::binding::validate_binding;
use crate::registry::store::{RequestContext, Store};
use crate::registry::Subresource;

/// Whether a request is one of the subresources answered here.
pub fn serves(store: &Store, sub: &str) -> bool {
    let info = store.info();
    if info.group.is_empty() && info.plural == "bindings" {
        return sub.is_empty();
    }
    info.subresources
        .iter()
        .any(|s| s.name() == sub && matches!(s, Subresource::Binding | Subresource::Connect(_)))
}

pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let sub = req.info.subresource.as_str();
    let verb = req.info.verb.as_str();
    if sub.is_empty() || sub == "binding" {
        if verb != "create" {
            let resource = if sub.is_empty() {
                store.info().group_resource()
            } else {
                GroupResource::new("", "pods/binding")
            };
            return Err(StatusError::method_not_supported(&resource, verb));
        }
        let url_name = (!sub.is_empty()).then_some(req.info.name.as_str());
        return bind(server, namespace, url_name, req, ctx).await;
    }
    crate::handlers::connect::handle(server, store, namespace, req).await
}

fn output(req: &ResourceRequest<'_>) -> Output {
    if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    }
}

// The handlers' error type is the Status sent to the client.
#[allow(clippy::result_large_err)]
fn decode_binding(req: &ResourceRequest<'_>, namespace: &str) -> Result<Binding, StatusError> {
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let yaml = match negotiation::body_type(content_type)? {
        BodyType::Json => false,
        BodyType::Yaml => true,
        other => {
            return Err(StatusError::unsupported_media_type(&format!("{other:?}")));
        }
    };
    let body = negotiation::decode(&req.body, yaml)?;
    for (field, expected) in [("apiVersion", "v1"), ("kind", "Binding")] {
        if let Some(v) = body.get(field).and_then(Value::as_str) {
            if v != expected {
                let what = if field == "kind" {
                    "kind"
                } else {
                    "API version"
                };
                return Err(StatusError::bad_request(format!(
                    "the {what} in the data ({v}) does not match the expected {what} ({expected})"
                )));
            }
        }
    }
    let binding: Binding = serde_json::from_value(body).map_err(|e| {
        StatusError::bad_request(format!(
            "Binding in version \"v1\" cannot be handled as a Binding: {e}"
        ))
    })?;
    let body_ns = binding.metadata.namespace.as_deref().unwrap_or("");
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(binding)
}

/// Assign the pod to the binding's node: set `spec.nodeName` (once) and the PodScheduled
/// condition, straight in storage, as upstream's `BindingREST.setPodNodeAndMetadata`.
async fn bind(
    server: &Arc<ApiServer>,
    namespace: &str,
    url_name: Option<&str>,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let binding = decode_binding(req, namespace)?;
    let name = binding.metadata.name.clone().unwrap_or_default();
    if url_name.is_some_and(|u| u != name) {
        return Err(StatusError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let errors = validate_binding(&binding);
    if !errors.is_empty() {
        return Err(StatusError::invalid(
            &apimachinery::errors::GroupKind::new("", "Binding"),
            &name,
            &errors,
        ));
    }
    let pods = server
        .registry
        .get("", "v1", "pods")
        .ok_or_else(|| StatusError::internal("pods are not served"))?
        .clone();
    let mut attrs = Attributes::new(Operation::Create, pods.info(), namespace, &name, ctx);
    attrs.subresource = Some("binding".into());
    attrs.object = Some(serde_json::to_value(&binding).map_err(StatusError::internal)?);
    server.admission.admit(&mut attrs).await?;
    server.admission.validate(&attrs).await?;

    let node = binding.target.name.clone().unwrap_or_default();
    let uid = binding.metadata.uid.clone().filter(|u| !u.is_empty());
    let rv = binding
        .metadata
        .resource_version
        .clone()
        .filter(|r| !r.is_empty());
    let annotations = binding.metadata.annotations.clone().unwrap_or_default();
    let conflict =
        |msg: String| StatusError::conflict(&GroupResource::new("", "pods/binding"), &name, msg);
    // The store's update callback has the store's error type.
    #[allow(clippy::result_large_err)]
    let assign = |current: Value| {
        let mut pod: Pod = serde_json::from_value(current).map_err(StatusError::internal)?;
        // The binding's uid and resourceVersion are preconditions on the pod.
        if let Some(uid) = &uid {
            if pod.metadata.uid.as_deref() != Some(uid.as_str()) {
                return Err(conflict(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    pod.metadata.uid.clone().unwrap_or_default()
                )));
            }
        }
        if let Some(rv) = &rv {
            if pod.metadata.resource_version.as_deref() != Some(rv.as_str()) {
                return Err(conflict(format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    pod.metadata.resource_version.clone().unwrap_or_default()
                )));
            }
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(conflict(format!(
                "pod {name} is being deleted, cannot be assigned to a host"
            )));
        }
        let spec = pod.spec.get_or_insert_with(Default::default);
        if let Some(current) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
            return Err(conflict(format!(
                "pod {name} is already assigned to node {current:?}"
            )));
        }
        if spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty())
        {
            return Err(conflict(format!(
                "pod {name} has non-empty .spec.schedulingGates"
            )));
        }
        spec.node_name = Some(node.clone());
        if !annotations.is_empty() {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(annotations.clone());
        }
        set_scheduled(&mut pod);
        serde_json::to_value(&pod).map_err(StatusError::internal)
    };
    pods.guaranteed_update(namespace, &name, ctx.dry_run, assign)
        .await?;
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    });
    Ok(json_response(StatusCode::CREATED, &body, output(req)))
}

/// PodScheduled=True, keeping the transition time when it already was true (upstream's
/// `UpdatePodCondition`).
fn set_scheduled(pod: &mut Pod) {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap_or_default(),
    );
    let conditions = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let mut condition = PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(now),
        ..Default::default()
    };
    match conditions.iter_mut().find(|c| c.type_ == "PodScheduled") {
        Some(existing) => {
            if existing.status == "True" {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_condition_is_added_or_replaced() {
        let mut pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}))
        .unwrap();
        set_scheduled(&mut pod);
        let c = &pod.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("True", None));
        assert!(c.last_transition_time.is_some());
    }
}
