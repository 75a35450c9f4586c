//! Exec, attach and port-forward: the container (or sandbox) is found through the CRI by
//! its labels, the runtime hands out a one-time URL on its streaming server, and the
//! client's upgrade request is proxied there (upstream's kubelet proxies rather than
//! redirects). `/run` is the non-streaming exec (CRI ExecSync).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{query_of, text, Body, BoxError, Server};
use cri::api;
use cri::labels;

/// How long `/run` lets a command run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The kubelet-managed containers of pod `namespace/pod` (named `container` if given),
/// newest first. With several pods of that name (a pod deleted and re-created), those of
/// `uid` when given, else those of the newest pod.
pub(crate) async fn containers(
    cri: &cri::Cri,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    uid: Option<&str>,
) -> Result<Vec<api::Container>, tonic::Status> {
    let mut selector = std::collections::HashMap::from([
        (labels::POD_NAMESPACE.to_string(), namespace.to_string()),
        (labels::POD_NAME.to_string(), pod.to_string()),
    ]);
    if let Some(c) = container {
        selector.insert(labels::CONTAINER_NAME.to_string(), c.to_string());
    }
    if let Some(uid) = uid {
        selector.insert(labels::POD_UID.to_string(), uid.to_string());
    }
    let mut list = cri
        .runtime
        .clone()
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                label_selector: selector,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    if uid.is_none() {
        if let Some(newest) = list
            .first()
            .and_then(|c| c.labels.get(labels::POD_UID))
            .cloned()
        {
            list.retain(|c| c.labels.get(labels::POD_UID) == Some(&newest));
        }
    }
    Ok(list)
}

/// The running container the streaming request is for, or the response explaining why
/// there is none (the text kubectl shows after "unable to upgrade connection").
async fn running_container(
    server: &Server,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<String, Response<Body>> {
    let uid = server
        .pod(namespace, pod)
        .and_then(|p| p.metadata.uid.clone());
    let list = containers(
        &server.ctx.cri,
        namespace,
        pod,
        Some(container),
        uid.as_deref(),
    )
    .await
    .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.message().to_string()))?;
    if list.is_empty() && uid.is_none() {
        let any = containers(&server.ctx.cri, namespace, pod, None, None)
            .await
            .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.message().to_string()))?;
        if any.is_empty() {
            return Err(text(StatusCode::NOT_FOUND, "pod does not exist"));
        }
    }
    list.into_iter()
        .find(|c| c.state == api::ContainerState::ContainerRunning as i32)
        .map(|c| c.id)
        .ok_or_else(|| {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("container not found ({container:?})"),
            )
        })
}

/// Upstream's remotecommand options from the query (`input`, `output`, `error`, `tty`
/// = "1" as the API server sends them; `stdin`/`stdout`/`stderr` = "true" accepted too).
struct StreamOptions {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn stream_options(uri: &Uri) -> Result<StreamOptions, String> {
    let (q, _) = query_of(uri);
    let flag = |a: &str, b: &str| {
        [a, b]
            .iter()
            .any(|k| matches!(q.get(*k).map(String::as_str), Some("1" | "true")))
    };
    let mut opts = StreamOptions {
        stdin: flag("input", "stdin"),
        stdout: flag("output", "stdout"),
        stderr: flag("error", "stderr"),
        tty: flag("tty", "tty"),
    };
    // A terminal merges stderr into stdout.
    if opts.tty && opts.stderr {
        opts.stderr = false;
    }
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(opts)
}

fn status_response(e: &tonic::Status) -> Response<Body> {
    let code = match e.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(code, e.message().to_string())
}

pub(crate) async fn exec(
    server: &Arc<Server>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let opts = match stream_options(req.uri()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let (_, pairs) = query_of(req.uri());
    let cmd: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    if cmd.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "missing required command parameter",
        );
    }
    let id = match running_container(server, namespace, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let url = server
        .ctx
        .cri
        .runtime
        .clone()
        .exec(api::ExecRequest {
            container_id: id,
            cmd,
            tty: opts.tty,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
        .map(|r| r.into_inner().url);
    proxy(req, url).await
}

pub(crate) async fn attach(
    server: &Arc<Server>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let opts = match stream_options(req.uri()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let id = match running_container(server, namespace, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let url = server
        .ctx
        .cri
        .runtime
        .clone()
        .attach(api::AttachRequest {
            container_id: id,
            stdin: opts.stdin,
            tty: opts.tty,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })
        .await
        .map(|r| r.into_inner().url);
    proxy(req, url).await
}

pub(crate) async fn port_forward(
    server: &Arc<Server>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
) -> Response<Body> {
    let uid = server
        .pod(namespace, pod)
        .and_then(|p| p.metadata.uid.clone());
    let mut selector = std::collections::HashMap::from([
        (labels::POD_NAMESPACE.to_string(), namespace.to_string()),
        (labels::POD_NAME.to_string(), pod.to_string()),
    ]);
    if let Some(uid) = uid {
        selector.insert(labels::POD_UID.to_string(), uid);
    }
    let sandboxes = server
        .ctx
        .cri
        .runtime
        .clone()
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: selector,
                state: Some(api::PodSandboxStateValue {
                    state: api::PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            }),
        })
        .await;
    let mut sandboxes = match sandboxes {
        Ok(r) => r.into_inner().items,
        Err(e) => return status_response(&e),
    };
    sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let Some(sandbox) = sandboxes.into_iter().next() else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    // Ports come with each stream (SPDY) or in the query (WebSocket), not here.
    let url = server
        .ctx
        .cri
        .runtime
        .clone()
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox.id,
            port: Vec::new(),
        })
        .await
        .map(|r| r.into_inner().url);
    proxy(req, url).await
}

/// Proxies the client's upgrade request to the runtime's streaming URL.
async fn proxy(req: Request<Incoming>, url: Result<String, tonic::Status>) -> Response<Body> {
    let url = match url {
        Ok(u) => u,
        Err(e) => return status_response(&e),
    };
    if !httpproxy::is_upgrade_request(&req) {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let Some(target) = url.parse::<Uri>().ok() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("invalid streaming URL {url:?}"),
        );
    };
    let Some(backend) = httpproxy::Backend::from_uri(&target, None) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("invalid streaming URL {url:?}"),
        );
    };
    let mut path = target
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    // The WebSocket port-forward protocol reads its ports from the query.
    if let Some(q) = req.uri().query() {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(q);
    }
    match httpproxy::forward(req, &backend, &path).await {
        Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
        Err(e) => text(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// `POST /run/{ns}/{pod}/{container}?cmd=...`: runs a command to completion and answers
/// its output (stdout then stderr).
pub(crate) async fn run(
    server: &Arc<Server>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let (q, pairs) = query_of(req.uri());
    let mut cmd: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    if cmd.is_empty() {
        cmd = q
            .get("cmd")
            .map(|c| c.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
    }
    if cmd.is_empty() {
        return text(StatusCode::BAD_REQUEST, "missing required cmd parameter");
    }
    let id = match running_container(server, namespace, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let result = server
        .ctx
        .cri
        .runtime
        .clone()
        .exec_sync(api::ExecSyncRequest {
            container_id: id,
            cmd,
            timeout: RUN_TIMEOUT.as_secs() as i64,
        })
        .await;
    match result {
        Ok(r) => {
            let r = r.into_inner();
            let mut out = r.stdout;
            out.extend_from_slice(&r.stderr);
            text(StatusCode::OK, out)
        }
        Err(e) => status_response(&e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_from_api_server_and_kubectl_forms() {
        let o = stream_options(
            &"/exec/a/b/c?command=ls&input=1&output=1&tty=1&error=1"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        let o = stream_options(
            &"/exec/a/b/c?command=ls&stdout=true&stderr=true"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert!(!o.stdin && o.stdout && o.stderr && !o.tty);
        assert!(stream_options(&"/exec/a/b/c?command=ls".parse().unwrap()).is_err());
    }
}
