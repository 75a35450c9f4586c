//! A lean HTTPS client for the API server: rustls with the admin client certificate, and
//! hyper's HTTP/2 connection directly (no pooling, no retries, no middleware), so that the
//! client costs as little CPU as possible on a machine it shares with the server and etcd.
//!
//! One [`Conn`] is one TLS connection; clones share it and multiplex HTTP/2 streams, as
//! client-go and kube-rs do within one process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// TLS settings trusting `ca.crt` and presenting `<client>.crt`/`.key` from `pki_dir`.
pub fn tls_config(pki_dir: &Path, client: &str) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in pki::certificates_from_pem(&pki_dir.join("ca.crt"))? {
        roots.add(cert).context("adding the CA certificate")?;
    }
    let certs = pki::certificates_from_pem(&pki_dir.join(format!("{client}.crt")))?;
    let key = pki::private_key_from_pem(&pki_dir.join(format!("{client}.key")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .context("loading the client certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// One HTTP/2 connection to the API server.
#[derive(Clone)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    base: String,
}

/// A response with its whole body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body when the status is `expected`, an error with the body's start otherwise.
    pub fn expect(self, expected: StatusCode) -> Result<Bytes> {
        if self.status != expected {
            let text = String::from_utf8_lossy(&self.body);
            let excerpt: String = text.chars().take(300).collect();
            bail!("HTTP {} (wanted {expected}): {excerpt}", self.status);
        }
        Ok(self.body)
    }
}

impl Conn {
    pub async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::from(addr.ip());
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            // Large windows, so that a list of 10,000 objects is not throttled by flow control.
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(stream))
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            // The connection ends when every sender and stream is gone, or on an error the
            // requests in flight report themselves.
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            base: format!("https://{addr}"),
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<http::Response<Incoming>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;
        let mut sender = self.sender.clone();
        sender.ready().await.context("connection closed")?;
        sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {path}"))
    }

    /// Sends a request and reads the whole response.
    pub async fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Reply> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the response to {path}"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        self.request(Method::GET, path, None)
            .await?
            .expect(StatusCode::OK)
    }

    pub async fn post(&self, path: &str, body: Bytes) -> Result<Bytes> {
        self.request(Method::POST, path, Some(body))
            .await?
            .expect(StatusCode::CREATED)
    }

    pub async fn put(&self, path: &str, body: Bytes) -> Result<Bytes> {
        self.request(Method::PUT, path, Some(body))
            .await?
            .expect(StatusCode::OK)
    }
}
