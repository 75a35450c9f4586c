//! The kubelet API (upstream's pkg/kubelet/server): HTTPS on `address:port` (10250) with
//! the serving certificate, client certificates verified against
//! `authentication.x509.clientCAFile`, anonymous requests only when
//! `authentication.anonymous.enabled`; and the plain-HTTP healthz endpoint on
//! `healthzBindAddress:healthzPort` (127.0.0.1:10248; port 0 disables it).
//!
//! Endpoints: `/healthz`, `/pods`, `/metrics`, `/metrics/resource`, `/stats/summary`,
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec|attach/{ns}/{pod}/{container}`,
//! `/portForward/{ns}/{pod}`, `/run/{ns}/{pod}/{container}`.
//!
//! Containers and sandboxes are found through the CRI by the labels the kubelet puts on
//! them (`cri::labels`), so the server needs no state of the pod workers. Exec, attach and
//! port-forward ask the runtime for a streaming URL (its own streaming server) and proxy
//! the client's upgraded connection to it, as upstream's kubelet does: the runtime
//! negotiates the streaming protocol (SPDY/3.1 or the WebSocket channel protocols).
//!
//! Authorization of authenticated requests is not implemented (upstream's default for
//! kubeadm clusters is a SubjectAccessReview webhook): any client with a certificate
//! signed by the client CA may use every endpoint.

pub mod logs;
pub mod stats;
mod streaming;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::run::Context;

/// The pods the kubelet runs, for `/pods`.
pub type PodsFn = Arc<dyn Fn() -> Vec<Pod> + Send + Sync>;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("serving certificate: {0}")]
    Certificate(#[from] pki::PkiError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client CA {path}: {message}")]
    ClientCa { path: PathBuf, message: String },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid address {0:?}")]
    Address(String),
}

/// What request handlers share.
pub(crate) struct Server {
    ctx: Context,
    pods: PodsFn,
    anonymous: bool,
    stats: stats::CpuSampler,
}

/// Serves the kubelet API and the healthz endpoint until `ctx.shutdown` is cancelled.
pub async fn serve(ctx: Context, pods: PodsFn) -> Result<(), ServerError> {
    let tls = tls_config(&ctx)?;
    let addr = listen_addr(&ctx.config.address, ctx.config.port)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let healthz = if ctx.config.healthz_port > 0 {
        let addr = listen_addr(&ctx.config.healthz_bind_address, ctx.config.healthz_port)?;
        Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: addr.to_string(),
                    source,
                })?,
        )
    } else {
        None
    };
    tracing::info!(%addr, "kubelet server listening");
    let server = Arc::new(Server {
        anonymous: ctx.config.authentication.anonymous.enabled,
        ctx: ctx.clone(),
        pods,
        stats: stats::CpuSampler::default(),
    });
    if let Some(listener) = healthz {
        tokio::spawn(serve_healthz(listener, ctx.shutdown.clone()));
    }
    serve_tls(server, listener, tls).await;
    Ok(())
}

fn listen_addr(address: &str, port: u16) -> Result<SocketAddr, ServerError> {
    let ip: IpAddr = address
        .parse()
        .map_err(|_| ServerError::Address(address.to_string()))?;
    Ok(SocketAddr::new(ip, port))
}

async fn serve_healthz(listener: TcpListener, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
            _ = shutdown.cancelled() => return,
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let resp = match req.uri().path() {
                    "/healthz" => text(StatusCode::OK, "ok"),
                    _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

async fn serve_tls(server: Arc<Server>, listener: TcpListener, tls: rustls::ServerConfig) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let shutdown = server.ctx.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = Arc::clone(&server);
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // The verifier accepted the certificate, if one was presented.
            let authenticated = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let server = Arc::clone(&server);
                async move {
                    if !authenticated && !server.anonymous {
                        return Ok::<_, Infallible>(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    }
                    Ok(server.route(req).await)
                }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
    tracing::info!("kubelet server stopped");
}

/// The serving certificate: tlsCertFile/tlsPrivateKeyFile, else `kubelet.crt`/`kubelet.key`
/// in the certificate directory, generated self-signed for the node's name and IP when
/// missing (upstream's behaviour without server certificate rotation).
pub fn serving_certificate(
    ctx: &Context,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    if let (Some(cert), Some(key)) = (&ctx.config.tls_cert_file, &ctx.config.tls_private_key_file) {
        return Ok((
            pki::certificates_from_pem(cert)?,
            pki::private_key_from_pem(key)?,
        ));
    }
    let dir = cert_dir(ctx);
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if !cert.exists() || !key.exists() {
        generate_self_signed(&dir, &ctx.node_name, ctx.node_ip)?;
    }
    Ok((
        pki::certificates_from_pem(&cert)?,
        pki::private_key_from_pem(&key)?,
    ))
}

fn cert_dir(ctx: &Context) -> PathBuf {
    ctx.config
        .cert_directory
        .clone()
        .unwrap_or_else(|| ctx.root_dir.join("pki"))
}

fn generate_self_signed(dir: &Path, node_name: &str, node_ip: IpAddr) -> Result<(), ServerError> {
    let ca = pki::Ca::generate(&format!(
        "{node_name}-ca@{}",
        jiff::Timestamp::now().as_second()
    ))?;
    let ip = node_ip.to_string();
    let mut names = vec![node_name, ip.as_str()];
    if node_name != "localhost" {
        names.push("localhost");
    }
    let pair = ca.issue(&pki::CertSpec::server(
        &format!("{node_name}@{}", jiff::Timestamp::now().as_second()),
        &names,
    ))?;
    pki::CertAndKey {
        cert_pem: format!("{}{}", pair.cert_pem, ca.cert_pem),
        key_pem: pair.key_pem,
    }
    .write(dir, "kubelet")?;
    tracing::info!(dir = %dir.display(), "generated a self-signed serving certificate");
    Ok(())
}

fn tls_config(ctx: &Context) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = serving_certificate(ctx)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &ctx.config.authentication.x509.client_ca_file {
        Some(path) => {
            let ca_error = |message: String| ServerError::ClientCa {
                path: path.clone(),
                message,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in pki::certificates_from_pem(path)? {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
            // A missing certificate is decided per request (anonymous or 401), as upstream.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(crate) fn json(value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

/// The query as a map of the last value of each key, and the values of `command`.
pub(crate) fn query_of(uri: &http::Uri) -> (HashMap<String, String>, Vec<(String, String)>) {
    let pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    (pairs.iter().cloned().collect(), pairs)
}

impl Server {
    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match (segments.as_slice(), read_only) {
            (["healthz"], true) => text(StatusCode::OK, "ok"),
            (["pods"], true) => self.pods_list(),
            (["metrics"], true) => stats::metrics(self).await,
            (["metrics", "resource"], true) => stats::resource_metrics(self).await,
            (["stats", "summary"], _) => stats::summary(self).await,
            (["containerLogs", ns, pod, container], true) => {
                let (query, _) = query_of(req.uri());
                self.container_logs(ns, pod, container, &query).await
            }
            (["exec", ns, pod, container], _) | (["exec", ns, pod, _, container], _) => {
                let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
                streaming::exec(self, req, &ns, &pod, &container).await
            }
            (["attach", ns, pod, container], _) | (["attach", ns, pod, _, container], _) => {
                let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
                streaming::attach(self, req, &ns, &pod, &container).await
            }
            (["portForward", ns, pod], _) | (["portForward", ns, pod, _], _) => {
                let (ns, pod) = (ns.to_string(), pod.to_string());
                streaming::port_forward(self, req, &ns, &pod).await
            }
            (["run", ns, pod, container], false) | (["run", ns, pod, _, container], false) => {
                let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
                streaming::run(self, req, &ns, &pod, &container).await
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }

    fn pods_list(&self) -> Response<Body> {
        let pods = (self.pods)();
        json(&serde_json::json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": pods,
        }))
    }

    /// The pod the kubelet runs under this namespace and name, if any.
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        (self.pods)().into_iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
    }

    async fn container_logs(
        &self,
        namespace: &str,
        pod_name: &str,
        container: &str,
        query: &HashMap<String, String>,
    ) -> Response<Body> {
        let opts = match logs::LogOptions::from_query(query, jiff::Timestamp::now()) {
            Ok(o) => o,
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        };
        let pod = self.pod(namespace, pod_name);
        if let Some(pod) = &pod {
            if let Some(message) = waiting_message(pod, container, opts.previous) {
                return text(StatusCode::BAD_REQUEST, message);
            }
        }
        let uid = pod.as_ref().and_then(|p| p.metadata.uid.clone());
        let found = streaming::containers(
            &self.ctx.cri,
            namespace,
            pod_name,
            Some(container),
            uid.as_deref(),
        )
        .await;
        let containers = match found {
            Ok(c) => c,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        if containers.is_empty() && pod.is_none() {
            return text(
                StatusCode::NOT_FOUND,
                format!("pod {namespace}/{pod_name} not found"),
            );
        }
        // Newest first; the previous instance is the one before the newest.
        let index = usize::from(opts.previous);
        let Some(target) = containers.get(index) else {
            let message = if opts.previous {
                format!("previous terminated container {container:?} in pod {pod_name:?} not found")
            } else {
                format!("container {container:?} in pod {pod_name:?} is not available")
            };
            return text(StatusCode::BAD_REQUEST, message);
        };
        let status = match self
            .ctx
            .cri
            .runtime
            .clone()
            .container_status(cri::api::ContainerStatusRequest {
                container_id: target.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.into_inner().status.unwrap_or_default(),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let path = PathBuf::from(&status.log_path);
        if status.log_path.is_empty() || !path.exists() {
            // Upstream answers an empty log for a container whose file is gone.
            return text(StatusCode::OK, "");
        }
        let cri = self.ctx.cri.clone();
        let id = target.id.clone();
        let running: logs::RunningFn = Box::new(move || {
            let mut runtime = cri.runtime.clone();
            let id = id.clone();
            Box::pin(async move {
                runtime
                    .container_status(cri::api::ContainerStatusRequest {
                        container_id: id,
                        verbose: false,
                    })
                    .await
                    .map(|r| {
                        r.into_inner().status.is_some_and(|s| {
                            s.state == cri::api::ContainerState::ContainerRunning as i32
                        })
                    })
                    .unwrap_or(false)
            })
        });
        let rx = logs::stream(path, opts, running);
        let body = StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(|b| Ok::<_, BoxError>(Frame::data(b))),
        );
        let mut resp = Response::new(BodyExt::boxed(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        resp
    }
}

use futures::StreamExt;

/// Upstream's `validateContainerLogStatus`, from the pod's status: a container that has
/// not started yet has no log.
fn waiting_message(pod: &Pod, container: &str, previous: bool) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let statuses = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .chain(status.ephemeral_container_statuses.iter().flatten());
    let cs = statuses.into_iter().find(|c| c.name == container)?;
    if previous {
        let terminated = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some();
        return (!terminated).then(|| {
            format!("previous terminated container {container:?} in pod {name:?} not found")
        });
    }
    let state = cs.state.as_ref()?;
    let waiting = state.waiting.as_ref()?;
    let last_terminated = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some();
    if last_terminated {
        // A restarting container still has the log of its last run.
        return None;
    }
    let why = match waiting.reason.as_deref().unwrap_or_default() {
        "ErrImagePull" => "image can't be pulled".to_string(),
        "ErrImagePullBackOff" | "ImagePullBackOff" => "trying and failing to pull image".into(),
        other => other.to_string(),
    };
    Some(format!(
        "container {container:?} in pod {name:?} is waiting to start: {why}"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_names_the_node() {
        let dir = tempfile::tempdir().unwrap();
        generate_self_signed(dir.path(), "node-a", "10.1.2.3".parse().unwrap()).unwrap();
        let certs = pki::certificates_from_pem(&dir.path().join("kubelet.crt")).unwrap();
        // The serving certificate, then the CA that signed it.
        assert_eq!(certs.len(), 2);
        pki::private_key_from_pem(&dir.path().join("kubelet.key")).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(names.iter().any(|n| n.contains("node-a")), "{names:?}");
        assert!(
            names.iter().any(|n| n == "IPAddress(0a:01:02:03)"),
            "{names:?}"
        );
    }

    #[test]
    fn waiting_containers_have_no_log() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "ready": false, "restartCount": 1, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1}}},
            ]}
        }))
        .unwrap();
        assert_eq!(
            waiting_message(&pod, "a", false).unwrap(),
            "container \"a\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            waiting_message(&pod, "a", true).unwrap(),
            "previous terminated container \"a\" in pod \"p\" not found"
        );
        assert_eq!(waiting_message(&pod, "b", false), None);
        assert_eq!(waiting_message(&pod, "b", true), None);
    }
}
