//! The HTTPS endpoint every daemon serves on its secure port (kube-controller-manager
//! 10257, kube-scheduler 10259): `/healthz`, `/livez`, `/readyz` and `/metrics`
//! (Prometheus text). Like upstream without `--tls-cert-file`, it serves a self-signed
//! certificate made at startup. These paths are open to anonymous readers, as upstream's
//! default `--authorization-always-allow-paths` makes them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving certificate: {0}")]
    Certificate(String),
}

/// What the endpoint reports.
#[derive(Clone)]
pub struct Health {
    pub registry: Arc<Mutex<Registry>>,
    /// Ready once the component's caches have synced (and it leads, if it elects).
    pub ready: Arc<AtomicBool>,
}

impl Health {
    pub fn new(registry: Registry) -> Self {
        Health {
            registry: Arc::new(Mutex::new(registry)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

async fn ok() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Health>) -> Response {
    if health.ready.load(Ordering::SeqCst) {
        "ok".into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]informer-sync failed: reason withheld\nreadyz check failed\n",
        )
            .into_response()
    }
}

async fn metrics(State(health): State<Health>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &health.registry.lock()).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn tls_config(host: &str) -> Result<rustls::ServerConfig, ServingError> {
    let err = |e: &dyn std::fmt::Display| ServingError::Certificate(e.to_string());
    let ca = pki::Ca::generate(&format!("{host}-ca")).map_err(|e| err(&e))?;
    let pair = ca
        .issue(&pki::CertSpec::server(
            host,
            &["localhost", "127.0.0.1", host],
        ))
        .map_err(|e| err(&e))?;
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes())
        .map_err(|e| err(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Bind `addr` and serve until `shutdown` resolves. Returns the bound address at once
/// (port 0 picks a free one) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    component: &str,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServingError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServingError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServingError::Bind { addr, source })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(component)?));
    let app = Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
                _ = &mut shutdown => return,
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}
