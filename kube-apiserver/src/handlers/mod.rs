//! HTTP handling: routing of every path the server answers, and the reply type.

pub mod approval;
pub mod binding;
pub mod connect;
pub mod discovery;
pub mod eviction;
pub mod health;
pub mod patch;
pub mod resource;
pub mod scale;
pub mod selfsubjectreview;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use apimachinery::StatusError;
use axum::body::Body;
use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::apiserver::ApiServer;
use crate::negotiation::{self, Output};
use crate::registry::store::status_json;
use crate::request::{self, UserInfo};

/// Request bodies above this size are refused (upstream's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A response before it becomes HTTP.
pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: ReplyBody,
    warnings: Vec<String>,
    headers: Vec<(http::header::HeaderName, HeaderValue)>,
}

enum ReplyBody {
    Full(Bytes),
    Stream(BoxStream<'static, Bytes>),
    /// A complete response from elsewhere (a proxied backend), sent as it is.
    Response(Box<Response<Body>>),
}

impl Reply {
    pub fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            content_type,
            body: ReplyBody::Full(body.into()),
            warnings: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn stream(
        status: StatusCode,
        content_type: &'static str,
        body: BoxStream<'static, Bytes>,
    ) -> Self {
        Reply {
            status,
            content_type,
            body: ReplyBody::Stream(body),
            warnings: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A response passed through unchanged (proxying, protocol upgrades).
    pub fn response(resp: Response<Body>) -> Self {
        Reply {
            status: resp.status(),
            content_type: "",
            body: ReplyBody::Response(Box::new(resp)),
            warnings: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    pub fn header(mut self, name: http::header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn into_response(self) -> Response<Body> {
        let body = match self.body {
            ReplyBody::Full(b) => Body::from(b),
            ReplyBody::Stream(s) => Body::from_stream(s.map(Ok::<_, std::convert::Infallible>)),
            ReplyBody::Response(resp) => return *resp,
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        for w in self.warnings {
            // RFC 7234 warn-text is a quoted string.
            let text = format!("299 - {:?}", w);
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(http::header::WARNING, v);
            }
        }
        resp
    }
}

use futures::StreamExt;

pub fn json_response(status: StatusCode, body: &Value, output: Output) -> Reply {
    Reply::full(
        status,
        output.content_type(),
        negotiation::encode(body, output),
    )
}

pub fn error_reply(e: &StatusError) -> Reply {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &status_json(e), Output::Json)
}

fn parse_query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Serve one request from an authenticated user.
pub async fn serve(server: Arc<ApiServer>, req: Request<Body>, user: UserInfo) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri());
    let info = request::parse(&method, &path, &query);
    let reply = match route(&server, req, &info, &query, user).await {
        Ok(reply) => reply,
        Err(e) => error_reply(&e),
    };
    server
        .metrics
        .observe_request(&info, reply.status().as_u16(), started.elapsed());
    reply.into_response()
}

async fn route(
    server: &Arc<ApiServer>,
    req: Request<Body>,
    info: &request::RequestInfo,
    query: &HashMap<String, String>,
    user: UserInfo,
) -> Result<Reply, StatusError> {
    server.authorize(&user, info)?;
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !info.is_resource_request {
        let discovery_endpoint = matches!(info.path.trim_end_matches('/'), "/api" | "/apis");
        let output = negotiate_or_json(accept.as_deref(), false, discovery_endpoint)?;
        return Box::pin(non_resource(
            server,
            req.method(),
            &info.path,
            query,
            output,
        ))
        .await;
    }
    let output = negotiation::negotiate(accept.as_deref(), true, false)?;
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let rr = resource::ResourceRequest {
        info,
        uri: &parts.uri,
        upgrade: parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned(),
        method: &parts.method,
        query,
        headers: &parts.headers,
        body,
        user,
        output,
    };
    resource::handle(server, rr).await
}

/// Non-resource endpoints answer JSON even to clients that ask for something else.
fn negotiate_or_json(
    accept: Option<&str>,
    resource: bool,
    discovery: bool,
) -> Result<Output, StatusError> {
    Ok(negotiation::negotiate(accept, resource, discovery).unwrap_or(Output::Json))
}

async fn read_body(body: Body) -> Result<Bytes, StatusError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(StatusError::request_entity_too_large(format!(
                "limit is {MAX_BODY_BYTES}"
            )))
        }
        Err(e) => Err(StatusError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

async fn non_resource(
    server: &Arc<ApiServer>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    output: Output,
) -> Result<Reply, StatusError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(StatusError::new(
            405,
            apimachinery::StatusReason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        ));
    }
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "/version" => Ok(json_response(
            StatusCode::OK,
            &crate::version::info(),
            Output::Json,
        )),
        "/metrics" => Ok(Reply::full(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            server.metrics.encode(),
        )),
        p if health::is_health_path(p) => health::handle(server, p, query).await,
        p if p == "/openapi/v2" || p.starts_with("/openapi/v3") => server.openapi_reply(p, query),
        _ => discovery::handle(server, trimmed, output).ok_or_else(|| {
            StatusError::new(
                404,
                apimachinery::StatusReason::NotFound,
                "the server could not find the requested resource",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// hyper moves a request's future several times (into its stream task, into the
    /// task's cell, out at completion): each move copies the whole future, so its size is
    /// paid on every request. Verb handlers are boxed to keep it small.
    #[tokio::test]
    async fn request_futures_stay_small() {
        let opts = crate::options::Options::parse_from([
            "kube-apiserver",
            "--storage-backend-memory-for-tests",
        ]);
        let server = crate::server::build(&opts).await.unwrap();
        let req = Request::builder()
            .uri("/api/v1/namespaces/default/configmaps")
            .body(Body::empty())
            .unwrap();
        let future = serve(server, req, UserInfo::anonymous());
        let size = std::mem::size_of_val(&future);
        // About 2.6 KiB in debug builds; unboxed verbs made it 13.8 KiB.
        assert!(size <= 4096, "serve's future is {size} bytes");
    }
}
