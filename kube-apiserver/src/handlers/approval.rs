//! The `certificatesigningrequests/approval` subresource, which `kubectl certificate
//! approve|deny` writes: the CSR under the approval strategy, where only
//! `status.conditions` change and Approved/Denied may be added.

use std::sync::Arc;

use apimachinery::StatusError;
use http::StatusCode;
use serde_json::Value;

use crate::apiserver::ApiServer;
use crate::handlers::patch::Patch;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, Output};
use crate::registry::store::{RequestContext, Store, UpdateTarget};

enum Change {
    Replace(Value),
    Patch(Patch),
}

// `Store::update_with` takes closures that fail with the (large) `StatusError`.
#[allow(clippy::result_large_err)]
pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let name = req.info.name.clone();
    // A CSR is never printed as a table here; YAML or JSON as asked.
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let change = match req.info.verb.as_str() {
        "get" => {
            let obj = store.get("", &name).await?;
            return Ok(json_response(StatusCode::OK, &obj, output));
        }
        // kubectl sends the CSR as protobuf; the shared decoder also takes JSON and YAML.
        "update" => Change::Replace(negotiation::decode_object_body(content_type, &req.body)?),
        "patch" => Change::Patch(Patch::decode(
            negotiation::body_type(content_type)?,
            &req.body,
        )?),
        verb => {
            return Err(StatusError::method_not_supported(
                &store.info().group_resource(),
                verb,
            ))
        }
    };
    let force = matches!(
        req.query.get("force").map(String::as_str),
        Some("true" | "1")
    );
    let info = store.info().clone();
    let approval =
        crate::registry::certificates::approval_store(store, Arc::clone(&server.storage));
    let (updated, _) = approval
        .update_with(
            "",
            &name,
            UpdateTarget::Main,
            false,
            ctx,
            &server.admission,
            |current| {
                let current =
                    current.ok_or_else(|| StatusError::not_found(&info.group_resource(), &name))?;
                match &change {
                    Change::Replace(obj) => Ok(obj.clone()),
                    Change::Patch(patch) => patch.apply(
                        server,
                        &info,
                        Some(current),
                        ctx.field_manager.as_deref(),
                        force,
                    ),
                }
            },
        )
        .await?;
    Ok(json_response(StatusCode::OK, &updated, output))
}
