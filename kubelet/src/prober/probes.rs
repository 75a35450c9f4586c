//! One probe attempt of each handler kind, with upstream's outcomes and output texts
//! (pkg/probe/{exec,http,tcp,grpc}): the output is what an `Unhealthy` event shows.

use std::net::SocketAddr;
use std::time::Duration;

use cri::api::ExecSyncRequest;
use cri::Cri;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The User-Agent upstream's kubelet 1.33 sends.
pub const USER_AGENT: &str = "kube-probe/1.33";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
}

/// A probe attempt: Ok((result, output)), or Err(message) when the probe could not be
/// run at all (upstream's "probe errored": neither success nor failure is counted).
pub type Outcome = Result<(ProbeResult, String), String>;

/// What a probe needs to know about its container.
#[derive(Clone)]
pub struct Target {
    pub cri: Cri,
    pub container_id: String,
    pub pod_ip: String,
    pub container: Container,
}

/// The probe's handler, resolved against the container (named ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Exec {
        command: Vec<String>,
    },
    Http {
        scheme: String,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
}

/// A port by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {s} in {}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

impl Handler {
    pub fn from_probe(probe: &Probe, container: &Container, pod_ip: &str) -> Result<Self, String> {
        let host = |h: &Option<String>| {
            h.clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string())
        };
        if let Some(exec) = &probe.exec {
            return Ok(Handler::Exec {
                command: exec.command.clone().unwrap_or_default(),
            });
        }
        if let Some(http) = &probe.http_get {
            let mut path = http.path.clone().unwrap_or_default();
            if !path.starts_with('/') {
                path.insert(0, '/');
            }
            return Ok(Handler::Http {
                scheme: http
                    .scheme
                    .clone()
                    .unwrap_or_else(|| "HTTP".into())
                    .to_ascii_lowercase(),
                host: host(&http.host),
                port: resolve_port(&http.port, container)?,
                path,
                headers: http
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            });
        }
        if let Some(tcp) = &probe.tcp_socket {
            return Ok(Handler::Tcp {
                host: host(&tcp.host),
                port: resolve_port(&tcp.port, container)?,
            });
        }
        if let Some(grpc) = &probe.grpc {
            return Ok(Handler::Grpc {
                host: pod_ip.to_string(),
                port: u16::try_from(grpc.port)
                    .map_err(|_| format!("invalid port number: {}", grpc.port))?,
                service: grpc.service.clone().unwrap_or_default(),
            });
        }
        Err("missing probe handler".into())
    }
}

/// `host:port`, bracketing IPv6 addresses.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub async fn run(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    match handler {
        Handler::Exec { command } => exec(target, command, timeout).await,
        Handler::Http {
            scheme,
            host,
            port,
            path,
            headers,
        } => http_get(scheme, host, *port, path, headers, timeout).await,
        Handler::Tcp { host, port } => Ok(tcp(host, *port, timeout).await),
        Handler::Grpc {
            host,
            port,
            service,
        } => Ok(grpc(host, *port, service, timeout).await),
    }
}

async fn exec(target: &Target, command: &[String], timeout: Duration) -> Outcome {
    let request = ExecSyncRequest {
        container_id: target.container_id.clone(),
        cmd: command.to_vec(),
        timeout: timeout.as_secs().max(1) as i64,
    };
    let timed_out = || {
        Ok((
            ProbeResult::Failure,
            format!("command \"{}\" timed out", command.join(" ")),
        ))
    };
    // The runtime enforces the timeout; ours only guards against a hung runtime.
    let mut runtime = target.cri.runtime.clone();
    let call = runtime.exec_sync(request);
    let response = match tokio::time::timeout(timeout + Duration::from_secs(5), call).await {
        Err(_) => return timed_out(),
        Ok(Err(status)) => {
            if status.code() == tonic::Code::DeadlineExceeded
                || status.message().contains("timeout")
            {
                return timed_out();
            }
            return Err(status.message().to_string());
        }
        Ok(Ok(r)) => r.into_inner(),
    };
    let mut output = String::from_utf8_lossy(&response.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&response.stderr));
    if response.exit_code == 0 {
        Ok((ProbeResult::Success, output))
    } else {
        Ok((ProbeResult::Failure, output))
    }
}

/// Probes do not verify the server's certificate, as upstream's HTTPS probes.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    Ok(tokio_rustls::TlsConnector::from(
        httpproxy::insecure_client_config(),
    ))
}

async fn request_status<S>(
    io: S,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = http::Request::get(path);
    let mut host = authority.to_string();
    let mut user_agent = USER_AGENT.to_string();
    let mut accept = "*/*".to_string();
    for (name, value) in headers {
        // The probe's headers replace the defaults; Host sets the request's host.
        match name.to_ascii_lowercase().as_str() {
            "host" => host = value.clone(),
            "user-agent" => user_agent = value.clone(),
            "accept" => accept = value.clone(),
            _ => builder = builder.header(name.as_str(), value.as_str()),
        }
    }
    let request = builder
        .header("host", host)
        .header("user-agent", user_agent)
        .header("accept", accept)
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Read (up to upstream's 10 KiB limit, then stop) so the server sees a clean close.
    let mut body = response.into_body();
    let mut read = 0usize;
    while read < 10 * 1024 {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map(|d| d.len()).unwrap_or(0),
            _ => break,
        }
    }
    Ok(status)
}

async fn http_get(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let authority = join_host_port(host, port);
    let url = format!("{scheme}://{authority}{path}");
    let attempt = async {
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("dial tcp {authority}: {}", go_dial_error(&e)))?;
        if scheme == "https" {
            let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| e.to_string())?;
            let tls = tls_connector()?
                .connect(server_name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            request_status(tls, &authority, path, headers).await
        } else {
            request_status(tcp, &authority, path, headers).await
        }
    };
    let status = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return Ok((
                ProbeResult::Failure,
                format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
            ))
        }
        Ok(Err(e)) => return Ok((ProbeResult::Failure, format!("Get \"{url}\": {e}"))),
        Ok(Ok(status)) => status,
    };
    if (200..400).contains(&status) {
        Ok((ProbeResult::Success, String::new()))
    } else {
        Ok((
            ProbeResult::Failure,
            format!("HTTP probe failed with statuscode: {status}"),
        ))
    }
}

/// Go's net error texts for the common cases ("connect: connection refused").
fn go_dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => format!("connect: {e}"),
    }
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> (ProbeResult, String) {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => (ProbeResult::Success, String::new()),
        Ok(Err(e)) => (
            ProbeResult::Failure,
            format!("dial tcp {addr}: {}", go_dial_error(&e)),
        ),
        Err(_) => (
            ProbeResult::Failure,
            format!("dial tcp {addr}: i/o timeout"),
        ),
    }
}

async fn grpc(host: &str, port: u16, service: &str, timeout: Duration) -> (ProbeResult, String) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let addr = join_host_port(host, port);
    let failed_connect = |e: String| {
        (
            ProbeResult::Failure,
            format!(
                "timeout: failed to connect service \"{addr}\" within {}s: {e}",
                timeout.as_secs()
            ),
        )
    };
    let Ok(sock): Result<SocketAddr, _> = addr.parse() else {
        return failed_connect(format!("invalid address {addr}"));
    };
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{sock}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return failed_connect(e.to_string()),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return failed_connect(format!("{e}")),
        Err(_) => return failed_connect("context deadline exceeded".into()),
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: service.to_string(),
    });
    let response = match tokio::time::timeout(timeout, check).await {
        Err(_) => {
            return (
                ProbeResult::Failure,
                format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs()
                ),
            )
        }
        Ok(Err(status)) => {
            return match status.code() {
                tonic::Code::Unimplemented => (
                    ProbeResult::Failure,
                    format!("this server does not implement the grpc health protocol (grpc.health.v1.Health): {}", status.message()),
                ),
                tonic::Code::DeadlineExceeded => (
                    ProbeResult::Failure,
                    format!(
                        "timeout: health rpc did not complete within {}s",
                        timeout.as_secs()
                    ),
                ),
                _ => (
                    ProbeResult::Failure,
                    format!(
                        "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                        status.code(),
                        status.message()
                    ),
                ),
            }
        }
        Ok(Ok(r)) => r.into_inner(),
    };
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    if status == ServingStatus::Serving {
        (ProbeResult::Success, "service healthy".into())
    } else {
        (
            ProbeResult::Failure,
            format!(
                "service unhealthy (responded with \"{}\")",
                status.as_str_name()
            ),
        )
    }
}
