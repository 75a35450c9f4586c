//! `serviceaccounts/{name}/token`: the TokenRequest API (authentication.k8s.io/v1), as
//! upstream's `pkg/registry/core/serviceaccount/storage/token.go`: a signed, optionally
//! object-bound token for the service account (what `kubectl create token` and the
//! kubelet's serviceAccountToken projections ask for).

use std::sync::Arc;

use apimachinery::errors::{GroupKind, GroupResource};
use apimachinery::field::{FieldError, Path};
use apimachinery::StatusError;
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use crate::apiserver::ApiServer;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, Output};
use crate::registry::store::{RequestContext, Store};
use crate::serviceaccount::{ObjectRef, TokenSpec};

/// Upstream's bounds on `spec.expirationSeconds`.
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The default of `spec.expirationSeconds` (v1 defaulting).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

fn uid_of(obj: &Value) -> String {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    _ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    if req.info.verb != "create" {
        return Err(StatusError::method_not_supported(
            &GroupResource::new("", "serviceaccounts/token"),
            &req.info.verb,
        ));
    }
    let tokens = server
        .authenticator
        .service_accounts()
        .ok_or_else(|| {
            StatusError::service_unavailable("service account token issuer not configured")
        })?
        .clone();
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // kubectl's typed client sends protobuf.
    let mut body = negotiation::decode_object_body(content_type, &req.body)?;
    // The status is the server's to fill (protobuf bodies carry an empty one).
    if let Some(obj) = body.as_object_mut() {
        obj.remove("status");
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != "TokenRequest" {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind (TokenRequest)"
            )));
        }
    }
    let mut request: TokenRequest = serde_json::from_value(body).map_err(|e| {
        StatusError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;
    let name = req.info.name.as_str();
    let kind = GroupKind::new("authentication.k8s.io", "TokenRequest");

    // Defaults and validation (upstream's SetDefaults_TokenRequestSpec, ValidateTokenRequest).
    let mut expiration = request
        .spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let path = Path::new("spec").child("expirationSeconds");
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(StatusError::invalid(
            &kind,
            name,
            &vec![FieldError::invalid(
                &path,
                expiration,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(StatusError::invalid(
            &kind,
            name,
            &vec![FieldError::invalid(
                &path,
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    if request.spec.audiences.is_empty() {
        request.spec.audiences = tokens.api_audiences().to_vec();
    }
    let mut spec = TokenSpec {
        namespace: namespace.to_string(),
        audiences: request.spec.audiences.clone(),
        ..Default::default()
    };

    let sa = store.get(namespace, name).await?;
    spec.service_account = ObjectRef {
        name: name.to_string(),
        uid: uid_of(&sa),
    };

    if let Some(bound) = &request.spec.bound_object_ref {
        let api_version = bound.api_version.as_deref().unwrap_or_default();
        let bound_kind = bound.kind.as_deref().unwrap_or_default();
        let bound_name = bound.name.as_deref().unwrap_or_default();
        let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let lookup = |plural: &str| {
            server
                .registry
                .get("", "v1", plural)
                .cloned()
                .ok_or_else(|| StatusError::internal(format!("{plural} are not served")))
        };
        let check_uid = |obj: &Value| -> Result<ObjectRef, StatusError> {
            let uid = uid_of(obj);
            if let Some(want) = bound.uid.as_deref().filter(|u| !u.is_empty()) {
                if want != uid {
                    return Err(StatusError::conflict(
                        &GroupResource::new(group, bound_kind),
                        bound_name,
                        format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
                    ));
                }
            }
            Ok(ObjectRef {
                name: bound_name.to_string(),
                uid,
            })
        };
        match (group, bound_kind) {
            ("", "Pod") => {
                let pod = lookup("pods")?.get(namespace, bound_name).await?;
                spec.pod = Some(check_uid(&pod)?);
                let pod_sa = pod
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                if pod_sa != name {
                    return Err(StatusError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                // The pod's node, for information (upstream's ServiceAccountTokenPodNodeInfo).
                if let Some(node_name) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                    if let Ok(node) = lookup("nodes")?.get("", node_name).await {
                        spec.node = Some(ObjectRef {
                            name: node_name.to_string(),
                            uid: uid_of(&node),
                        });
                    }
                }
            }
            ("", "Secret") => {
                let secret = lookup("secrets")?.get(namespace, bound_name).await?;
                spec.secret = Some(check_uid(&secret)?);
            }
            ("", "Node") => {
                let node = lookup("nodes")?.get("", bound_name).await?;
                spec.node = Some(check_uid(&node)?);
            }
            _ => {
                return Err(StatusError::bad_request(format!(
                    "cannot bind token to object of type {api_version}, Kind={bound_kind}"
                )));
            }
        }
    }

    if let Some(max) = tokens.max_expiration().filter(|m| *m > 0) {
        if expiration > max
            && !tokens.extends(&TokenSpec {
                expiration_seconds: expiration,
                ..spec.clone()
            })
        {
            expiration = max;
        }
    }
    spec.expiration_seconds = expiration;
    request.spec.expiration_seconds = Some(expiration);

    let (token, claims) = tokens.issue(&spec)?;
    let expires = jiff::Timestamp::from_second(claims.iat + expiration)
        .map_err(|e| StatusError::internal(e.to_string()))?;
    request.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: Time(expires),
    });
    request.metadata.name = Some(name.to_string());
    request.metadata.namespace = Some(namespace.to_string());
    if request.metadata.creation_timestamp.is_none() {
        if let Ok(now) = jiff::Timestamp::from_second(claims.iat) {
            request.metadata.creation_timestamp = Some(Time(now));
        }
    }
    let mut out = serde_json::to_value(&request).map_err(StatusError::internal)?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("kind".into(), json!("TokenRequest"));
        obj.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
    }
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    Ok(json_response(StatusCode::CREATED, &out, output))
}
