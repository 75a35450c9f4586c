//! The REST verbs on resources: get, list, watch, create, update, patch, delete,
//! deletecollection, and the status and scale subresources.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::{fields, labels, StatusError};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::apiserver::ApiServer;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, BodyType, Output};
use crate::object;
use crate::registry::store::{
    status_json, DeleteOutcome, DeleteParams, ListParams, RequestContext, Store, UpdateTarget,
    WatchEvent, WatchEventType,
};
use crate::registry::table::{self, IncludeObject};
use crate::request::{RequestInfo, UserInfo};

/// Everything a resource handler needs from the HTTP request.
pub struct ResourceRequest<'a> {
    pub info: &'a RequestInfo,
    /// The request's URI (repeated query parameters, proxied paths).
    pub uri: &'a http::Uri,
    /// The connection upgrade of an upgrade request (exec, attach, port-forward).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub method: &'a Method,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub user: UserInfo,
    pub output: Output,
}

fn not_found_path() -> StatusError {
    StatusError::new(
        404,
        apimachinery::StatusReason::NotFound,
        "the server could not find the requested resource",
    )
}

pub async fn handle(
    server: &Arc<ApiServer>,
    req: ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let info = req.info;
    if crate::handlers::selfsubjectreview::serves(&req) {
        return crate::handlers::selfsubjectreview::handle(&req);
    }
    if crate::handlers::selfsubjectreview::serves_token_review(&req) {
        return crate::handlers::selfsubjectreview::handle_token_review(server, &req).await;
    }
    let store = server
        .registry
        .get(&info.api_group, &info.api_version, &info.resource)
        .ok_or_else(not_found_path)?
        .clone();
    let namespaced = store.info().namespaced;
    if !namespaced && !info.namespace.is_empty() && info.resource != "namespaces" {
        return Err(not_found_path());
    }
    let sub = info.subresource.as_str();
    if !sub.is_empty() && !store.info().has_subresource(sub) {
        return Err(not_found_path());
    }
    if info.parts.len() > 3 && sub != "proxy" {
        return Err(not_found_path());
    }
    let namespace = if namespaced {
        info.namespace.as_str()
    } else {
        ""
    };
    if namespaced && namespace.is_empty() && !matches!(info.verb.as_str(), "list" | "watch") {
        return Err(not_found_path());
    }
    let ctx = request_context(req.query, req.headers, req.user.clone())?;
    // Each verb's future is boxed: the request's future is moved several times per
    // request (see `handlers::serve`), and unboxed it would be as large as the largest verb.
    match (info.verb.as_str(), sub) {
        _ if crate::handlers::binding::serves(&store, sub) => {
            Box::pin(crate::handlers::binding::handle(
                server, &store, namespace, &req, &ctx,
            ))
            .await
        }
        ("get", "") | ("get", "status") => {
            let obj = Box::pin(store.get(namespace, &info.name)).await?;
            Ok(object_reply(
                &store,
                obj,
                StatusCode::OK,
                req.output,
                req.query,
            ))
        }
        ("list", _) => Box::pin(list(&store, namespace, &req)).await,
        ("watch", _) => Box::pin(watch(server, &store, namespace, &req)).await,
        ("create", "") => Box::pin(create(server, &store, namespace, &req, &ctx)).await,
        ("update", "") | ("update", "status") | ("update", "finalize") => {
            Box::pin(update(server, &store, namespace, &req, &ctx)).await
        }
        ("patch", "") | ("patch", "status") => {
            Box::pin(patch(server, &store, namespace, &req, &ctx)).await
        }
        ("delete", "") => Box::pin(delete(server, &store, namespace, &req, &ctx)).await,
        ("deletecollection", "") => {
            Box::pin(delete_collection(server, &store, namespace, &req, &ctx)).await
        }
        (_, "scale") => {
            Box::pin(crate::handlers::scale::handle(
                server, &store, namespace, &req, &ctx,
            ))
            .await
        }
        (_, "approval") => {
            Box::pin(crate::handlers::approval::handle(
                server, &store, &req, &ctx,
            ))
            .await
        }
        (_, "token") => {
            Box::pin(crate::handlers::token::handle(
                server, &store, namespace, &req, &ctx,
            ))
            .await
        }
        (_, "eviction") => {
            Box::pin(crate::handlers::eviction::handle(
                server, &store, namespace, &req, &ctx,
            ))
            .await
        }
        (verb, sub) => Err(StatusError::method_not_supported(
            &store.info().group_resource(),
            if sub.is_empty() { verb } else { sub },
        )),
    }
}

fn request_context(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    user: UserInfo,
) -> Result<RequestContext, StatusError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(StatusError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )))
        }
    };
    Ok(RequestContext {
        user,
        dry_run,
        field_manager: query.get("fieldManager").cloned(),
        user_agent: Some(
            headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        ),
        tracking: Default::default(),
    })
}

/// Parse `metav1.ListOptions` from the query.
pub fn list_params(query: &HashMap<String, String>) -> Result<ListParams, StatusError> {
    let label_selector = match query.get("labelSelector") {
        Some(s) => {
            labels::Selector::parse(s).map_err(|e| StatusError::bad_request(e.to_string()))?
        }
        None => labels::Selector::everything(),
    };
    let field_selector = match query.get("fieldSelector") {
        Some(s) => {
            fields::Selector::parse(s).map_err(|e| StatusError::bad_request(e.to_string()))?
        }
        None => fields::Selector::everything(),
    };
    let int = |name: &str| -> Result<Option<i64>, StatusError> {
        query
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    StatusError::bad_request(format!("invalid value for {name}: {v:?}"))
                })
            })
            .transpose()
    };
    let boolean = |name: &str| query.get(name).map(|v| v == "true" || v == "1");
    let send_initial_events = boolean("sendInitialEvents");
    let allow_watch_bookmarks = boolean("allowWatchBookmarks").unwrap_or(false);
    let resource_version_match = query
        .get("resourceVersionMatch")
        .filter(|v| !v.is_empty())
        .cloned();
    if send_initial_events.is_some() && resource_version_match.as_deref() != Some("NotOlderThan") {
        return Err(StatusError::bad_request(
            "sendInitialEvents is forbidden unless resourceVersionMatch is \"NotOlderThan\"",
        ));
    }
    if send_initial_events == Some(true) && !allow_watch_bookmarks {
        return Err(StatusError::bad_request(
            "sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    Ok(ListParams {
        label_selector,
        field_selector,
        limit: int("limit")?,
        continue_token: query.get("continue").filter(|v| !v.is_empty()).cloned(),
        resource_version: query
            .get("resourceVersion")
            .filter(|v| !v.is_empty())
            .cloned(),
        resource_version_match,
        allow_watch_bookmarks,
        send_initial_events,
        timeout: int("timeoutSeconds")?
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64)),
    })
}

fn include_object(query: &HashMap<String, String>) -> IncludeObject {
    IncludeObject::parse(query.get("includeObject").map(String::as_str))
}

/// One object in the negotiated form.
fn object_reply(
    store: &Store,
    obj: Value,
    status: StatusCode,
    output: Output,
    query: &HashMap<String, String>,
) -> Reply {
    let body = match output {
        Output::Table => {
            let strategy = store.strategy();
            let row = table::row(
                strategy.row(&obj),
                table::row_object(&obj, include_object(query)),
            );
            table::table(
                strategy.columns(),
                vec![row],
                json!({"resourceVersion": object::resource_version(&obj)}),
            )
        }
        Output::PartialMetadata => table::partial_object_metadata(&obj),
        _ => obj,
    };
    json_response(status, &body, output)
}

async fn list(
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let params = list_params(req.query)?;
    store.check_field_selector(&params.field_selector)?;
    let ns = (!namespace.is_empty()).then_some(namespace);
    let page = store.list(ns, &params).await?;
    let mut list_meta = Map::new();
    list_meta.insert(
        "resourceVersion".into(),
        Value::String(page.resource_version.to_string()),
    );
    if let Some(token) = &page.continue_token {
        list_meta.insert("continue".into(), Value::String(token.clone()));
    }
    if let Some(remaining) = page.remaining {
        list_meta.insert("remainingItemCount".into(), json!(remaining));
    }
    let info = store.info();
    let body = match req.output {
        Output::Table => {
            let include = include_object(req.query);
            let strategy = store.strategy();
            let rows = page
                .items
                .iter()
                .map(|o| table::row(strategy.row(o), table::row_object(o, include)))
                .collect();
            table::table(strategy.columns(), rows, Value::Object(list_meta))
        }
        Output::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": page.items.iter().map(table::partial_object_metadata).collect::<Vec<_>>(),
        }),
        _ => json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": list_meta,
            "items": page.items,
        }),
    };
    Ok(json_response(StatusCode::OK, &body, req.output))
}

async fn watch(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let mut params = list_params(req.query)?;
    store.check_field_selector(&params.field_selector)?;
    if !req.info.name.is_empty() {
        // GET .../pods?watch=1&... on a named object watches just that object.
        let by_name = fields::Selector::parse(&format!("metadata.name={}", req.info.name))
            .map_err(|e| StatusError::bad_request(e.to_string()))?;
        params.field_selector = params.field_selector.and(by_name);
    }
    let timeout = params
        .timeout
        .unwrap_or_else(|| server.config.watch_timeout());
    let ns = (!namespace.is_empty()).then_some(namespace);
    let events = store.watch(ns, params).await?;
    let output = req.output;
    let include = include_object(req.query);
    let strategy_store = Arc::clone(store);
    let mut first_table = true;
    let frames = events.map(move |ev| {
        let object = match output {
            Output::Table
                if matches!(
                    ev.kind,
                    WatchEventType::Added | WatchEventType::Modified | WatchEventType::Deleted
                ) =>
            {
                let strategy = strategy_store.strategy();
                let row = table::row(
                    strategy.row(&ev.object),
                    table::row_object(&ev.object, include),
                );
                let columns = if std::mem::take(&mut first_table) {
                    strategy.columns()
                } else {
                    &[]
                };
                table::table(
                    columns,
                    vec![row],
                    json!({"resourceVersion": object::resource_version(&ev.object)}),
                )
            }
            Output::PartialMetadata if ev.kind != WatchEventType::Error => {
                table::partial_object_metadata(&ev.object)
            }
            _ => ev.object,
        };
        watch_frame(
            &WatchEvent {
                kind: ev.kind,
                object,
            },
            output,
        )
    });
    let shutdown = server.shutdown_signal();
    let frames = frames.take_until(async move {
        tokio::select! {
            _ = tokio::time::sleep(timeout) => {}
            _ = shutdown => {}
        }
    });
    Ok(Reply::stream(
        StatusCode::OK,
        output.content_type(),
        frames.boxed(),
    ))
}

fn watch_frame(ev: &WatchEvent, output: Output) -> Bytes {
    let frame = json!({"type": ev.kind.as_str(), "object": ev.object});
    match output {
        // A YAML watch stream separates documents.
        Output::Yaml => Bytes::from(format!(
            "---\n{}",
            String::from_utf8_lossy(&negotiation::encode(&frame, output))
        )),
        _ => {
            let mut bytes = serde_json::to_vec(&frame).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        }
    }
}

/// Decode a create/update body, check it names this resource, and apply the field
/// validation the request asked for. Returns the object and any warnings.
fn decode_object(
    server: &ApiServer,
    store: &Store,
    req: &ResourceRequest<'_>,
    namespace: &str,
) -> Result<(Value, Vec<String>), StatusError> {
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut obj = negotiation::decode_object_body(content_type, &req.body)?;
    let is_json = negotiation::body_type(content_type)? == BodyType::Json;
    let info = store.info();
    check_type_meta(&mut obj, info)?;
    let body_ns = object::namespace(&obj);
    if info.namespaced && !body_ns.is_empty() && body_ns != namespace {
        return Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let raw_json = is_json.then_some(&req.body[..]);
    let warnings = server.field_validation(req.query, &info.definition, &obj, raw_json)?;
    Ok((obj, warnings))
}

/// `apiVersion` and `kind` must name the endpoint's type; missing ones are filled in.
fn check_type_meta(
    obj: &mut Value,
    info: &crate::registry::ResourceInfo,
) -> Result<(), StatusError> {
    let api_version = info.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| StatusError::bad_request("the body of the request must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
        Some(_) => {}
        None => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != info.kind => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
        Some(_) => {}
        None => {
            map.insert("kind".into(), Value::String(info.kind.to_string()));
        }
    }
    Ok(())
}

async fn create(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    crate::fieldmanager::validate_options("CreateOptions", ctx.field_manager.as_deref())?;
    let (obj, warnings) = decode_object(server, store, req, namespace)?;
    let created = store.create(namespace, obj, ctx, &server.admission).await?;
    Ok(
        object_reply(store, created, StatusCode::CREATED, req.output, req.query)
            .with_warnings(warnings),
    )
}

async fn update(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    crate::fieldmanager::validate_options("UpdateOptions", ctx.field_manager.as_deref())?;
    let (obj, warnings) = decode_object(server, store, req, namespace)?;
    let target = match req.info.subresource.as_str() {
        "status" => UpdateTarget::Status,
        "finalize" => UpdateTarget::Finalize,
        _ => UpdateTarget::Main,
    };
    let name = req.info.name.clone();
    let allow_create = target == UpdateTarget::Main && store.strategy().allow_create_on_update();
    let (updated, created) = store
        .update_with(
            namespace,
            &name,
            target,
            allow_create,
            ctx,
            &server.admission,
            |_current| Ok(obj.clone()),
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(object_reply(store, updated, status, req.output, req.query).with_warnings(warnings))
}

/// How often an unconditional patch is re-applied after losing a race. Upstream retries
/// without bound; a bound keeps a pathological hot spot from pinning a request forever.
const PATCH_RETRIES: usize = 64;

async fn patch(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_type = negotiation::body_type(content_type)?;
    let patch = crate::handlers::patch::Patch::decode(body_type, &req.body)?;
    crate::fieldmanager::validate_patch_options(
        patch.is_apply(),
        ctx.field_manager.as_deref(),
        req.query.contains_key("force"),
    )?;
    // Server-side apply records managedFields itself; other patches are updates.
    let ctx = &RequestContext {
        tracking: if patch.is_apply() {
            crate::fieldmanager::Tracking::Applied
        } else {
            crate::fieldmanager::Tracking::Update
        },
        ..ctx.clone()
    };
    let target = if req.info.subresource == "status" {
        UpdateTarget::Status
    } else {
        UpdateTarget::Main
    };
    let info = store.info().clone();
    let name = req.info.name.clone();
    let mut warnings = Vec::new();
    let force = matches!(
        req.query.get("force").map(String::as_str),
        Some("true" | "1")
    );
    // A patch that does not name a resourceVersion applies to the current object: a
    // concurrent write makes the server patch again rather than fail (upstream retries
    // such patches too).
    let conditional = patch.names_resource_version();
    let mut attempts = 0;
    let (patched, created) = loop {
        let result = store
            .update_with(
                namespace,
                &name,
                target,
                patch.is_apply() && target == UpdateTarget::Main,
                ctx,
                &server.admission,
                |current| {
                    let mut obj = patch.apply_through(
                        server,
                        &info,
                        current,
                        ctx.field_manager.as_deref(),
                        force,
                        &req.info.subresource,
                    )?;
                    if current.is_none() {
                        // Server-side apply creates what does not exist yet.
                        check_type_meta(&mut obj, &info)?;
                        object::set_meta(&mut obj, "name", name.clone());
                        if info.namespaced {
                            object::set_meta(&mut obj, "namespace", namespace);
                        }
                    }
                    warnings = server.field_validation(req.query, &info.definition, &obj, None)?;
                    Ok(obj)
                },
            )
            .await;
        match result {
            Err(e) if e.is_object_modified() && !conditional && attempts < PATCH_RETRIES => {
                attempts += 1;
            }
            other => break other?,
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(object_reply(store, patched, status, req.output, req.query).with_warnings(warnings))
}

/// Parse `DeleteOptions` from the body (if any) and the query.
fn delete_params(req: &ResourceRequest<'_>) -> Result<DeleteParams, StatusError> {
    let mut params = DeleteParams::default();
    if !req.body.is_empty() {
        let content_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let body = negotiation::decode_object_body(content_type, &req.body)?;
        if let Some(kind) = body.get("kind").and_then(Value::as_str) {
            if kind != "DeleteOptions" {
                return Err(StatusError::bad_request(format!(
                    "expected DeleteOptions, got {kind}"
                )));
            }
        }
        params.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        params.propagation_policy = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        params.orphan_dependents = body.get("orphanDependents").and_then(Value::as_bool);
        params.dry_run = match body.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(Value::Array(values)) if values.is_empty() => false,
            Some(Value::Array(values)) if values.iter().all(|v| v == "All") => true,
            Some(other) => {
                return Err(StatusError::bad_request(format!(
                    "dryRun: Unsupported value: {other}: supported values: \"All\""
                )))
            }
        };
        if let Some(pre) = body.get("preconditions") {
            params.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            params.precondition_resource_version = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        params.grace_period_seconds =
            Some(g.parse().map_err(|_| {
                StatusError::bad_request(format!("invalid gracePeriodSeconds: {g:?}"))
            })?);
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        params.propagation_policy = Some(p.clone());
    }
    if let Some(o) = req.query.get("orphanDependents") {
        params.orphan_dependents = Some(o == "true");
    }
    if let Some(policy) = params.propagation_policy.as_deref() {
        if !matches!(policy, "Orphan" | "Background" | "Foreground") {
            return Err(StatusError::invalid(
                &apimachinery::errors::GroupKind::new("meta.k8s.io", "DeleteOptions"),
                "",
                &vec![apimachinery::field::FieldError::not_supported(
                    &apimachinery::field::Path::new("propagationPolicy"),
                    policy,
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
        if params.orphan_dependents.is_some() {
            return Err(StatusError::bad_request(
                "orphanDependents and propagationPolicy cannot both be set",
            ));
        }
    }
    // A negative period is the strategy's to interpret (pods use one second).
    Ok(params)
}

async fn delete(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let params = delete_params(req)?;
    let ctx = &RequestContext {
        dry_run: ctx.dry_run || params.dry_run,
        ..ctx.clone()
    };
    let outcome = store
        .delete(namespace, &req.info.name, &params, ctx, &server.admission)
        .await?;
    let status = if matches!(outcome, DeleteOutcome::Pending(_))
        && params.orphan_dependents == Some(false)
    {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    match outcome {
        DeleteOutcome::Pending(obj) => Ok(object_reply(store, obj, status, req.output, req.query)),
        DeleteOutcome::Deleted(obj) if store.info().returns_deleted_object => {
            Ok(object_reply(store, obj, status, req.output, req.query))
        }
        DeleteOutcome::Deleted(obj) => {
            let info = store.info();
            let body = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": object::name(&obj),
                    "group": info.group,
                    "kind": info.plural,
                    "uid": object::uid(&obj),
                },
            });
            Ok(json_response(status, &body, output_for_status(req.output)))
        }
    }
}

/// Status objects are never tables.
fn output_for_status(output: Output) -> Output {
    if output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    }
}

async fn delete_collection(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    let list = list_params(req.query)?;
    store.check_field_selector(&list.field_selector)?;
    let params = delete_params(req)?;
    let ctx = &RequestContext {
        dry_run: ctx.dry_run || params.dry_run,
        ..ctx.clone()
    };
    let ns = (!namespace.is_empty()).then_some(namespace);
    let deleted = store
        .delete_collection(ns, &list, &params, ctx, &server.admission)
        .await?;
    let info = store.info();
    let body = json!({
        "kind": info.list_kind(),
        "apiVersion": info.api_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(json_response(
        StatusCode::OK,
        &body,
        output_for_status(req.output),
    ))
}

/// A failure as a watch ERROR event frame, for streams that already started.
pub fn error_frame(e: &StatusError) -> Bytes {
    watch_frame(
        &WatchEvent {
            kind: WatchEventType::Error,
            object: status_json(e),
        },
        Output::Json,
    )
}
