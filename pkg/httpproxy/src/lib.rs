//! Upgrade-aware proxying, as upstream's apimachinery `proxy.UpgradeAwareHandler`: a
//! request is sent to a backend (plain HTTP or HTTPS with a client certificate) and its
//! response returned; when both sides agree to upgrade the connection (`101 Switching
//! Protocols`, e.g. SPDY/3.1 or WebSocket for exec, attach and port-forward), the two
//! upgraded connections are spliced together until either side closes.
//!
//! The proxy does not interpret the streaming protocol: whatever the backend accepts
//! (and refuses) reaches the client unchanged, which is what lets clients negotiate
//! protocol versions and fall back end to end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// How long connecting (TCP + TLS + response headers) to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dialing backend {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("dialing backend {0}: timed out")]
    Timeout(String),
    #[error("invalid backend host {0:?}")]
    InvalidHost(String),
    #[error("backend {0}: {1}")]
    Http(String, hyper::Error),
    #[error("building the backend request: {0}")]
    Request(#[from] http::Error),
}

/// Where a request goes.
#[derive(Clone, Debug)]
pub struct Backend {
    pub host: String,
    pub port: u16,
    /// `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Backend {
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A backend from an absolute `http://` or `https://` URL (the host part only).
    pub fn from_uri(uri: &Uri, tls: Option<Arc<rustls::ClientConfig>>) -> Option<Self> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return None,
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Backend {
            host,
            port,
            tls: if https {
                Some(tls.unwrap_or_else(insecure_client_config))
            } else {
                None
            },
        })
    }
}

/// Whether the request asks to switch protocols (`Connection: Upgrade`).
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    connection_has_upgrade(req.headers())
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    })
}

/// Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Sends `req` to `backend` at `path_and_query`. The request's method, headers and body
/// are forwarded (hop-by-hop headers dropped, except the upgrade negotiation of an upgrade
/// request). If the client asked for an upgrade and the backend answers 101, the upgraded
/// connections are spliced in a background task and the 101 response is returned for the
/// caller to send to the client.
pub async fn forward<B>(
    mut req: Request<B>,
    backend: &Backend,
    path_and_query: &str,
) -> Result<Response<Incoming>, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let upgrade = is_upgrade_request(&req);
    let client_upgrade: Option<OnUpgrade> = if upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query)
        .body(body)?;
    let headers = out.headers_mut();
    for (name, value) in parts.headers.iter() {
        if name == header::HOST {
            continue;
        }
        if HOP_BY_HOP.contains(name) && !(upgrade && is_upgrade_negotiation(name)) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Ok(host) = HeaderValue::from_str(&backend.authority()) {
        headers.insert(header::HOST, host);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }

    let what = backend.authority();
    let mut resp = tokio::time::timeout(CONNECT_TIMEOUT, send(backend, out))
        .await
        .map_err(|_| Error::Timeout(what.clone()))??;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                let (client, backend) = match tokio::join!(client, backend_upgrade) {
                    (Ok(c), Ok(b)) => (c, b),
                    (c, b) => {
                        tracing::debug!(client = ?c.err(), backend = ?b.err(), "upgrade failed");
                        return;
                    }
                };
                let mut client = TokioIo::new(client);
                let mut backend = TokioIo::new(backend);
                match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                    Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
                }
            });
        }
    }
    Ok(resp)
}

fn is_upgrade_negotiation(name: &HeaderName) -> bool {
    name == header::CONNECTION || name == header::UPGRADE
}

async fn send<B>(backend: &Backend, req: Request<B>) -> Result<Response<Incoming>, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let what = backend.authority();
    let tcp = TcpStream::connect((backend.host.as_str(), backend.port))
        .await
        .map_err(|e| Error::Connect(what.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    match &backend.tls {
        None => exchange(TokioIo::new(tcp), req, &what).await,
        Some(config) => {
            let name = ServerName::try_from(backend.host.clone())
                .map_err(|_| Error::InvalidHost(backend.host.clone()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| Error::Connect(what.clone(), e))?;
            exchange(TokioIo::new(tls), req, &what).await
        }
    }
}

async fn exchange<IO, B>(io: IO, req: Request<B>, what: &str) -> Result<Response<Incoming>, Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Error::Http(what.to_string(), e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| Error::Http(what.to_string(), e))
}

/// A client configuration that verifies the server against `roots` (PEM certificates),
/// presenting `identity` (certificate chain and key) when given. HTTP/1.1 only: upgrades
/// need it.
pub fn client_config(
    roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    identity: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match roots {
        Some(certs) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in certs {
                store.add(cert)?;
            }
            builder.with_root_certificates(store)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
    };
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// No server verification and no client certificate.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        Arc::new(
            client_config(None, None)
                .unwrap_or_else(|_| unreachable!("the default protocol versions are valid")),
        )
    }))
}

/// Accepts any server certificate (signatures are still checked, so the handshake is
/// sound; only the identity is not). Upstream's API server does the same towards kubelets
/// when no `--kubelet-certificate-authority` is given.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that echoes the request line for plain requests and, after a 101, echoes
    /// bytes back in upper case.
    async fn backend() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = service_fn(|mut req: Request<Incoming>| async move {
                        if is_upgrade_request(&req) {
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let mut io = TokioIo::new(on.await.unwrap());
                                let mut buf = [0u8; 64];
                                loop {
                                    let n = io.read(&mut buf).await.unwrap();
                                    if n == 0 {
                                        break;
                                    }
                                    io.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
                                }
                            });
                            let resp = Response::builder()
                                .status(101)
                                .header("connection", "Upgrade")
                                .header("upgrade", "test/1")
                                .header("x-picked", "v4")
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            return Ok::<_, hyper::Error>(resp);
                        }
                        let text = format!(
                            "{} {} host={}",
                            req.method(),
                            req.uri(),
                            req.headers()["host"].to_str().unwrap()
                        );
                        Ok(Response::new(Full::new(Bytes::from(text))))
                    });
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await
                        .ok();
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn plain_request_is_forwarded() {
        let port = backend().await;
        let b = Backend {
            host: "127.0.0.1".into(),
            port,
            tls: None,
        };
        let req = Request::get("/x").body(Empty::<Bytes>::new()).unwrap();
        let resp = forward(req, &b, "/y?z=1").await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("GET /y?z=1 host=127.0.0.1:{port}"));
    }

    /// A client behind a proxy server: the proxy's 101 carries the backend's headers and
    /// bytes flow both ways through the two upgraded connections.
    #[tokio::test]
    async fn upgrades_are_spliced() {
        let port = backend().await;
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (tcp, _) = proxy.accept().await.unwrap();
            let svc = service_fn(move |req: Request<Incoming>| async move {
                let b = Backend {
                    host: "127.0.0.1".into(),
                    port,
                    tls: None,
                };
                forward(req, &b, "/exec/token").await
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await
                .ok();
        });
        let mut tcp = TcpStream::connect(("127.0.0.1", proxy_port)).await.unwrap();
        tcp.write_all(
            b"POST /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("x-picked: v4"), "{head}");
        tcp.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        tcp.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HELLO");
    }
}
