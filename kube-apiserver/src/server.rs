//! Assembling and running the server: storage, registry, admission, TLS (with client
//! certificate authentication), HTTP/1.1 and HTTP/2, and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use storage::Storage;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission;
use crate::apiserver::{ApiServer, RuntimeConfig};
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::handlers;
use crate::handlers::discovery::Discovery;
use crate::metrics::{InstrumentedStorage, Metrics};
use crate::options::Options;
use crate::registry::{self, Registry};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn open_storage(opts: &Options) -> anyhow::Result<Arc<dyn Storage>> {
    if opts.storage_backend_memory {
        tracing::warn!(
            "using the in-memory storage backend: nothing survives a restart (tests only)"
        );
        return Ok(Arc::new(storage::memory::MemoryStorage::new()));
    }
    let etcd = storage::etcd::EtcdStorage::connect(
        &opts.etcd_servers,
        storage::etcd::EtcdOptions::default(),
    )
    .await
    .with_context(|| format!("connecting to etcd at {:?}", opts.etcd_servers))?;
    Ok(Arc::new(etcd))
}

/// Build the server from its options (storage connected, nothing listening yet).
pub async fn build(opts: &Options) -> anyhow::Result<Arc<ApiServer>> {
    let metrics = Metrics::new();
    let backend = open_storage(opts).await?;
    let instrumented: Arc<dyn Storage> =
        Arc::new(InstrumentedStorage::new(backend, metrics.clone()));
    let prefix = opts.etcd_prefix.trim_end_matches('/');
    let ctx = registry::BuildContext {
        storage: Arc::clone(&instrumented),
        etcd_prefix: prefix.to_string(),
        service_cluster_ip_range: opts.service_cluster_ip_range,
        service_node_port_range: opts.node_port_range().map_err(anyhow::Error::msg)?,
    };
    let resources = registry::all_resources(&ctx);
    // Many watchers of one resource share one etcd watch through the cache.
    let (storage, cache): (Arc<dyn Storage>, _) = if opts.default_watch_cache_size > 0 {
        let mut options =
            storage::cache::CacheOptions::new(registry::storage_prefixes(&resources, prefix));
        options.capacity = opts.default_watch_cache_size;
        let cache = Arc::new(storage::cache::CachedStorage::from_arc(
            Arc::new(Arc::clone(&instrumented)),
            options,
        ));
        (cache.clone(), Some(cache))
    } else {
        (Arc::clone(&instrumented), None)
    };
    let registry = Registry::new(resources, Arc::clone(&storage), cache, prefix);
    let registry_admission = admission::build(opts, &registry)?;
    let advertise = opts
        .advertise_address
        .map(|a| a.to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let discovery = Discovery::build(&registry, &format!("{advertise}:{}", opts.secure_port));
    let openapi = crate::openapi::Documents::new(&registry);
    let mut authenticator = Authenticator::new(opts.anonymous_auth);
    if let Some(path) = &opts.token_auth_file {
        authenticator.load_token_file(path)?;
    }
    let authenticator =
        authenticator.with_service_accounts(Arc::new(service_account_tokens(opts, &registry)?));
    let authorizer = Authorizer::new(opts.authorization_mode.clone());
    let config = RuntimeConfig {
        min_request_timeout: Duration::from_secs(opts.min_request_timeout.max(1)),
        kubelet: crate::kubelet::KubeletClient::from_options(opts)?,
    };
    Ok(Arc::new(ApiServer::new(
        registry,
        registry_admission,
        storage,
        discovery,
        openapi,
        authenticator,
        authorizer,
        metrics,
        config,
    )))
}

/// The service account token issuer and verifier, checking references in the registry.
fn service_account_tokens(
    opts: &Options,
    registry: &Registry,
) -> anyhow::Result<crate::serviceaccount::ServiceAccountTokens> {
    let tokens =
        crate::serviceaccount::ServiceAccountTokens::new(&crate::serviceaccount::TokenOptions {
            signing_key_file: opts.service_account_signing_key_file.clone(),
            key_files: opts.service_account_key_files.clone(),
            issuers: opts.service_account_issuer.clone(),
            api_audiences: opts.api_audiences.clone(),
            max_expiration_seconds: opts.service_account_max_token_expiration,
            extend_expiration: opts.service_account_extend_token_expiration,
            cert_dir: opts.cert_dir.clone(),
        })?;
    let store = |plural: &str| {
        registry
            .get("", "v1", plural)
            .cloned()
            .with_context(|| format!("the registry serves no {plural}"))
    };
    Ok(tokens.with_getters(crate::serviceaccount::Getters {
        service_accounts: store("serviceaccounts")?,
        pods: store("pods")?,
        secrets: store("secrets")?,
        nodes: store("nodes")?,
    }))
}

fn load_or_generate_serving_cert(
    opts: &Options,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    if let (Some(cert), Some(key)) = (&opts.tls_cert_file, &opts.tls_private_key_file) {
        return Ok((
            pki::certificates_from_pem(cert)?,
            pki::private_key_from_pem(key)?,
        ));
    }
    if opts.tls_cert_file.is_some() != opts.tls_private_key_file.is_some() {
        anyhow::bail!("--tls-cert-file and --tls-private-key-file must be given together");
    }
    let dir = &opts.cert_dir;
    let (cert_path, key_path) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    if !cert_path.exists() || !key_path.exists() {
        generate_self_signed(opts, dir)?;
    }
    Ok((
        pki::certificates_from_pem(&cert_path)?,
        pki::private_key_from_pem(&key_path)?,
    ))
}

/// Upstream writes a self-signed CA and serving certificate into --cert-dir.
fn generate_self_signed(opts: &Options, dir: &Path) -> anyhow::Result<()> {
    let ca = pki::Ca::generate(&format!(
        "localhost-ca@{}",
        jiff::Timestamp::now().as_second()
    ))?;
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Some(a) = opts.advertise_address {
        names.push(a.to_string());
    }
    if let Some(ip) =
        crate::registry::core::service::first_service_ip(&opts.service_cluster_ip_range)
    {
        names.push(ip.to_string());
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pair = ca.issue(&pki::CertSpec::server("localhost", &refs))?;
    let chained = pki::CertAndKey {
        cert_pem: format!("{}{}", pair.cert_pem, ca.cert_pem),
        key_pem: pair.key_pem,
    };
    chained.write(dir, "apiserver")?;
    tracing::info!(dir = %dir.display(), "generated self-signed serving certificate");
    Ok(())
}

pub fn tls_config(opts: &Options) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = load_or_generate_serving_cert(opts)?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &opts.client_ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in pki::certificates_from_pem(path)? {
                roots.add(cert).context("adding client CA")?;
            }
            // Certificates are optional: token and anonymous requests come without one.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("loading the serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serve until `shutdown` resolves, then drain as upstream does: /readyz fails at once,
/// watches end, the listener closes after the shutdown delay, and in-flight requests get
/// the drain timeout to finish.
pub async fn serve(
    server: Arc<ApiServer>,
    listener: TcpListener,
    tls: rustls::ServerConfig,
    opts: &Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let server = Arc::clone(&server);
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let cert_user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(crate::authn::certificate_user);
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let server = Arc::clone(&server);
                        let cert_user = cert_user.clone();
                        async move {
                            let resp = match server.authenticator.authenticate(req.headers(), cert_user.as_ref()).await {
                                Ok(user) => handlers::serve(server, req.map(Body::new), user).await,
                                Err(e) => handlers::error_reply(&e).into_response(),
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: readiness off, closing watches");
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_secs(opts.shutdown_delay_seconds)).await;
    drop(listener);
    let drain = Duration::from_secs(opts.shutdown_drain_timeout_seconds);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {drain:?}");
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Build, bootstrap and serve; the listener's address is reported through `bound`.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let tls = tls_config(&opts)?;
    let server = build(&opts).await?;
    let addr = SocketAddr::new(opts.bind_address, opts.secure_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "serving securely");
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let bootstrap_server = Arc::clone(&server);
    let bootstrap_opts = opts.clone();
    tokio::spawn(async move { crate::bootstrap::run(bootstrap_server, &bootstrap_opts).await });
    serve(server, listener, tls, &opts, shutdown).await
}
