//! The connect subresources (upstream's pkg/registry/core/pod/rest/subresources.go and
//! node/rest/proxy.go): `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward`
//! and `nodes/proxy` go to the node's kubelet over HTTPS with the kubelet client
//! certificate; `pods/proxy` goes to the pod's IP.
//!
//! Streaming requests are proxied as they come: the upgrade request travels to the
//! kubelet, which proxies it to the container runtime's streaming server, and the 101
//! (or the refusal) comes back the same way, after which the connections are spliced.
//! The runtime (containerd 1.6) speaks SPDY/3.1 and the WebSocket channel protocols up
//! to `v4.channel.k8s.io`; it refuses a WebSocket upgrade asking only for
//! `v5.channel.k8s.io` (what kubectl 1.30+ tries first for exec/attach/cp) or for
//! `SPDY/3.1+portforward.k8s.io` (kubectl's tunneled port-forward) with a 403, and
//! kubectl then falls back to SPDY, exactly as it does against a 1.29 API server.
//! Upstream 1.30+ instead translates those WebSocket protocols to SPDY in the API server
//! (StreamTranslator, TunnelingHandler); the end result for kubectl is the same.

use std::sync::Arc;

use apimachinery::{StatusError, StatusReason};
use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::apiserver::ApiServer;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::Reply;
use crate::registry::store::Store;

/// How much of a kubelet's error answer becomes the Status message.
const MAX_ERROR_BODY: usize = 4 * 1024;

/// `scheme:name:port`, `name:port` or `name` (upstream's `SplitSchemeNamePort`).
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return None;
    }
    Some((scheme, name, port))
}

pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let sub = req.info.subresource.as_str();
    let raw_name = req.info.name.as_str();
    let (scheme, name, port) = if sub == "proxy" {
        split_scheme_name_port(raw_name)
            .ok_or_else(|| StatusError::bad_request(format!("invalid request {raw_name:?}")))?
    } else {
        ("", raw_name, "")
    };
    let obj = store.get(namespace, name).await?;
    if store.info().kind == "Node" {
        let node: Node = serde_json::from_value(obj).map_err(StatusError::internal)?;
        return node_proxy(server, &node, scheme, port, req).await;
    }
    let pod: Pod = serde_json::from_value(obj).map_err(StatusError::internal)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let container_param = req
        .query
        .get("container")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    if matches!(sub, "log" | "exec" | "attach") {
        check_container(&pod, container_param)?;
    }
    if sub == "proxy" {
        return pod_proxy(&pod, scheme, port, req).await;
    }
    let node_name = spec.node_name.clone().filter(|n| !n.is_empty());
    let Some(node_name) = node_name else {
        if sub == "log" {
            // Upstream streams nothing for a pod that has no node yet.
            return Ok(Reply::full(StatusCode::OK, "text/plain", Bytes::new()));
        }
        return Err(StatusError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    // Without a name the pod has exactly one container (checked above).
    let container = container_param
        .map(str::to_string)
        .or_else(|| spec.containers.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    let (host, kubelet_port) = kubelet_location(server, &node_name).await?;
    let base = format!("{}/{}", encode_segment(namespace), encode_segment(name));
    let path = match sub {
        "log" => format!(
            "/containerLogs/{base}/{}{}",
            encode_segment(&container),
            log_query(req)
        ),
        "exec" => format!(
            "/exec/{base}/{}{}",
            encode_segment(&container),
            stream_query(req, true)
        ),
        "attach" => format!(
            "/attach/{base}/{}{}",
            encode_segment(&container),
            stream_query(req, false)
        ),
        "portforward" => format!("/portForward/{base}{}", port_query(req)),
        other => {
            return Err(StatusError::method_not_supported(
                &store.info().group_resource(),
                other,
            ))
        }
    };
    let backend = server.config.kubelet.backend(host, kubelet_port);
    let resp = httpproxy::forward(outgoing(req), &backend, &path)
        .await
        .map_err(|e| StatusError::internal(e.to_string()))?;
    if sub != "log" {
        // Upgrades and refusals alike go back to the client as they are: the client
        // negotiates the protocol with the runtime.
        return Ok(Reply::response(resp.map(Body::new)));
    }
    if !resp.status().is_success() {
        return Err(kubelet_error(resp).await);
    }
    let stream = http_body_util::BodyStream::new(resp.into_body())
        .filter_map(|frame| async move { frame.ok()?.into_data().ok() })
        .boxed();
    Ok(Reply::stream(StatusCode::OK, "text/plain", stream))
}

async fn kubelet_location(
    server: &Arc<ApiServer>,
    node_name: &str,
) -> Result<(String, u16), StatusError> {
    let nodes = server
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| StatusError::internal("nodes are not served"))?;
    let node: Node =
        serde_json::from_value(nodes.get("", node_name).await?).map_err(StatusError::internal)?;
    server
        .config
        .kubelet
        .location(&node)
        .map_err(StatusError::internal)
}

/// Upstream's `GenericHttpResponseChecker`: a kubelet's error answer as a Status.
async fn kubelet_error(resp: http::Response<hyper::body::Incoming>) -> StatusError {
    let code = resp.status().as_u16();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim_end().to_string();
    match code {
        400 => StatusError::bad_request(text),
        500 => StatusError::internal(text),
        404 => StatusError::new(404, StatusReason::NotFound, text),
        403 => StatusError::new(403, StatusReason::Forbidden, text),
        401 => StatusError::new(401, StatusReason::Unauthorized, text),
        503 => StatusError::service_unavailable(text),
        _ => StatusError::new(code, StatusReason::Unknown, text),
    }
}

/// The client's request as it goes to the backend: method, headers (without the
/// client's credentials, which were for this server), body, and the connection upgrade.
fn outgoing(req: &ResourceRequest<'_>) -> Request<Full<Bytes>> {
    let mut out = Request::new(Full::new(req.body.clone()));
    *out.method_mut() = req.method.clone();
    for (name, value) in req.headers {
        let n = name.as_str();
        if name == header::AUTHORIZATION || n.starts_with("impersonate-") {
            continue;
        }
        out.headers_mut().append(name.clone(), value.clone());
    }
    if let Some(upgrade) = req.upgrade.clone() {
        out.extensions_mut().insert(upgrade);
    }
    out
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%2E", ".")
        .replace("%5F", "_")
}

fn query_string(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

fn is_true(v: Option<&String>) -> bool {
    matches!(
        v.map(String::as_str),
        Some("true" | "True" | "TRUE" | "1" | "t" | "T")
    )
}

/// PodLogOptions as the kubelet reads them.
fn log_query(req: &ResourceRequest<'_>) -> String {
    let mut pairs = Vec::new();
    for flag in ["follow", "previous", "timestamps"] {
        if is_true(req.query.get(flag)) {
            pairs.push((flag, "true".to_string()));
        }
    }
    for key in [
        "sinceSeconds",
        "sinceTime",
        "tailLines",
        "limitBytes",
        "stream",
    ] {
        if let Some(v) = req.query.get(key).filter(|v| !v.is_empty()) {
            pairs.push((key, v.clone()));
        }
    }
    query_string(&pairs)
}

/// PodExecOptions/PodAttachOptions as the kubelet reads them (`input`, `output`, `error`,
/// `tty` = 1, `command` repeated).
fn stream_query(req: &ResourceRequest<'_>, with_command: bool) -> String {
    let mut pairs = Vec::new();
    if with_command {
        for (k, v) in url::form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes()) {
            if k == "command" {
                pairs.push(("command", v.into_owned()));
            }
        }
    }
    for (param, kubelet) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if is_true(req.query.get(param)) {
            pairs.push((kubelet, "1".to_string()));
        }
    }
    query_string(&pairs)
}

/// PodPortForwardOptions: `ports` become the kubelet's `port` parameters (the WebSocket
/// protocol reads them; SPDY names the port in each stream).
fn port_query(req: &ResourceRequest<'_>) -> String {
    let pairs: Vec<(&str, String)> =
        url::form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "ports")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|p| ("port", p.trim().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
    query_string(&pairs)
}

/// The path after `.../{name}/proxy`, with its query.
fn proxied_path(req: &ResourceRequest<'_>) -> String {
    let marker = format!("/{}/{}/proxy", req.info.resource, req.info.name);
    let path = req.uri.path();
    let rest = path
        .find(&marker)
        .map(|i| &path[i + marker.len()..])
        .unwrap_or("");
    let mut out = if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    };
    if let Some(q) = req.uri.query() {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn pass_through(
    req: &ResourceRequest<'_>,
    backend: &httpproxy::Backend,
) -> Result<Reply, StatusError> {
    let path = proxied_path(req);
    match httpproxy::forward(outgoing(req), backend, &path).await {
        Ok(resp) => Ok(Reply::response(resp.map(Body::new))),
        Err(e) => Err(StatusError::service_unavailable(format!(
            "error trying to reach service: {e}"
        ))),
    }
}

async fn node_proxy(
    server: &Arc<ApiServer>,
    node: &Node,
    scheme: &str,
    port: &str,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let (host, kubelet_port) = server
        .config
        .kubelet
        .location(node)
        .map_err(StatusError::internal)?;
    let backend = if port.is_empty() || port == kubelet_port.to_string() {
        server.config.kubelet.backend(host, kubelet_port)
    } else {
        let port: u16 = port
            .parse()
            .map_err(|_| StatusError::bad_request(format!("invalid port {port:?}")))?;
        httpproxy::Backend {
            host,
            port,
            tls: (scheme == "https").then(httpproxy::insecure_client_config),
        }
    };
    pass_through(req, &backend).await
}

async fn pod_proxy(
    pod: &Pod,
    scheme: &str,
    port: &str,
    req: &ResourceRequest<'_>,
) -> Result<Reply, StatusError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            StatusError::service_unavailable(format!("address not allowed: pod {name} has no IP"))
        })?;
    let port: u16 = if port.is_empty() {
        // Upstream uses the first declared container port.
        pod.spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .next()
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(if scheme == "https" { 443 } else { 80 })
    } else {
        port.parse()
            .map_err(|_| StatusError::bad_request(format!("invalid port {port:?}")))?
    };
    let backend = httpproxy::Backend {
        host: ip,
        port,
        tls: (scheme == "https").then(httpproxy::insecure_client_config),
    };
    pass_through(req, &backend).await
}

/// Upstream's `validateContainer`: a named container must exist; without a name the pod
/// must have exactly one.
pub fn check_container(pod: &Pod, container: Option<&str>) -> Result<(), StatusError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .collect();
    match container.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(()),
        Some(c) => Err(StatusError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => match spec.containers.len() {
            1 => Ok(()),
            0 => Err(StatusError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => Err(StatusError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            ))),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_names() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}))
        .unwrap();
        assert!(check_container(&pod, Some("a")).is_ok());
        assert_eq!(
            check_container(&pod, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            check_container(&pod, Some("z")).unwrap_err().message,
            "container z is not valid for pod p"
        );
    }

    #[test]
    fn scheme_name_port() {
        assert_eq!(split_scheme_name_port("p"), Some(("", "p", "")));
        assert_eq!(split_scheme_name_port("p:80"), Some(("", "p", "80")));
        assert_eq!(
            split_scheme_name_port("https:p:443"),
            Some(("https", "p", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:p:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
    }

    #[test]
    fn kubelet_queries() {
        let info = crate::request::RequestInfo {
            resource: "pods".into(),
            name: "p".into(),
            ..Default::default()
        };
        let uri: http::Uri =
            "/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c&command=echo%20a%26b&stdin=true&stdout=true&tty=false&ports=80,81"
                .parse()
                .unwrap();
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let headers = http::HeaderMap::new();
        let req = ResourceRequest {
            info: &info,
            uri: &uri,
            upgrade: None,
            method: &http::Method::POST,
            query: &query,
            headers: &headers,
            body: Bytes::new(),
            user: Default::default(),
            output: crate::negotiation::Output::Json,
        };
        assert_eq!(
            stream_query(&req, true),
            "?command=sh&command=-c&command=echo+a%26b&input=1&output=1"
        );
        assert_eq!(port_query(&req), "?port=80&port=81");
        assert_eq!(encode_segment("a b-c.d_e"), "a%20b-c.d_e");
    }
}
