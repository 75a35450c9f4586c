//! `authentication.k8s.io/v1 selfsubjectreviews`: who the server thinks the caller is
//! (`kubectl auth whoami`), as upstream's `pkg/registry/authentication/selfsubjectreview`.
//! Create-only and not stored. Not listed in discovery yet: kubectl calls it directly.

use apimachinery::errors::GroupResource;
use apimachinery::StatusError;
use http::StatusCode;
use serde_json::json;

use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::Output;

/// Whether the request is for this resource.
pub fn serves(req: &ResourceRequest<'_>) -> bool {
    req.info.api_group == "authentication.k8s.io"
        && req.info.resource == "selfsubjectreviews"
        && req.info.namespace.is_empty()
}

pub fn handle(req: &ResourceRequest<'_>) -> Result<Reply, StatusError> {
    let version = req.info.api_version.as_str();
    if !matches!(version, "v1" | "v1beta1") || !req.info.subresource.is_empty() {
        return Err(StatusError::new(
            404,
            apimachinery::StatusReason::NotFound,
            "the server could not find the requested resource",
        ));
    }
    if req.info.verb != "create" {
        return Err(StatusError::method_not_supported(
            &GroupResource::new("authentication.k8s.io", "selfsubjectreviews"),
            &req.info.verb,
        ));
    }
    let user = &req.user;
    let mut user_info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        user_info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        user_info["extra"] = json!(user.extra);
    }
    let body = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
        "status": {"userInfo": user_info}
    });
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    Ok(json_response(StatusCode::CREATED, &body, output))
}
