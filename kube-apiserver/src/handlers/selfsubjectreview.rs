//! `authentication.k8s.io/v1 selfsubjectreviews`: who the server thinks the caller is
//! (`kubectl auth whoami`), as upstream's `pkg/registry/authentication/selfsubjectreview`;
//! and `tokenreviews`: who a token is. Create-only and not stored. Not listed in
//! discovery yet: clients call them directly.

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

/// Whether the request is a TokenReview (`authentication.k8s.io/v1 tokenreviews`).
pub fn serves_token_review(req: &ResourceRequest<'_>) -> bool {
    req.info.api_group == "authentication.k8s.io"
        && req.info.resource == "tokenreviews"
        && req.info.namespace.is_empty()
}

/// A TokenReview, as upstream's `pkg/registry/authentication/tokenreview`: whether the
/// token authenticates (for `spec.audiences`, default the API server's), as whom, and for
/// which of the audiences. What webhook token authenticators (a kubelet) ask.
pub async fn handle_token_review(
    server: &crate::apiserver::ApiServer,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    if req.info.api_version != "v1" || !req.info.subresource.is_empty() {
        return Err(StatusError::new(
            404,
            apimachinery::StatusReason::NotFound,
            "the server could not find the requested resource",
        ));
    }
    if req.info.verb != "create" {
        return Err(StatusError::method_not_supported(
            &GroupResource::new("authentication.k8s.io", "tokenreviews"),
            &req.info.verb,
        ));
    }
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut body = crate::negotiation::decode_object_body(content_type, &req.body)?;
    let token = body
        .pointer("/spec/token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    if token.is_empty() {
        return Err(StatusError::invalid(
            &apimachinery::errors::GroupKind::new("authentication.k8s.io", "TokenReview"),
            "",
            &vec![apimachinery::field::FieldError::required(
                &apimachinery::field::Path::new("spec").child("token"),
                "",
            )],
        ));
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let status = match server.authenticator.review_token(&token, &audiences).await {
        Some((user, matching)) => {
            let mut user_info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                user_info["uid"] = json!(user.uid);
            }
            if !user.extra.is_empty() {
                user_info["extra"] = json!(user.extra);
            }
            json!({"authenticated": true, "user": user_info, "audiences": matching})
        }
        None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
    };
    if let Some(obj) = body.as_object_mut() {
        obj.insert("kind".into(), json!("TokenReview"));
        obj.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
        obj.insert("status".into(), status);
    }
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    Ok(json_response(StatusCode::CREATED, &body, output))
}
