//! Lifecycle hooks (postStart, preStop): exec through the runtime, or an HTTP GET against
//! the pod (upstream's handlerRunner). Sleep hooks wait.

use std::time::Duration;

use cri::api;
use cri::Cri;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `handler` for `container` (running as `container_id`); Err carries upstream's
/// message for the event.
pub async fn run(
    cri: &Cri,
    container_id: &str,
    container: &Container,
    pod_name: &str,
    pod_ip: &str,
    handler: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let resp = cri
            .runtime
            .clone()
            .exec_sync(api::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: cmd.clone(),
                timeout: timeout.as_secs() as i64,
            })
            .await;
        let failed = |detail: String| {
            format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} in Pod {pod_name:?} failed - error: {detail}",
                container.name
            )
        };
        return match resp {
            Ok(r) => {
                let r = r.into_inner();
                if r.exit_code == 0 {
                    Ok(())
                } else {
                    Err(failed(format!(
                        "command '{}' exited with {}: {}, message: {:?}",
                        cmd.join(" "),
                        r.exit_code,
                        String::from_utf8_lossy(&r.stderr).trim(),
                        String::from_utf8_lossy(&r.stdout).trim()
                    )))
                }
            }
            Err(e) => Err(failed(e.message().to_string())),
        };
    }
    if let Some(http) = &handler.http_get {
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let port = match &http.port {
            IntOrString::Int(p) => *p,
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("unable to resolve named port {name:?}"))?,
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        return tokio::time::timeout(timeout, http_get(&host, port, &path))
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
            .map_err(|e| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} in Pod {pod_name:?} failed - error: {e}",
                    container.name
                )
            });
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    Err("no handler".into())
}

/// A plain HTTP/1.1 GET; any 2xx/3xx is success, as upstream's hook runner.
async fn http_get(host: &str, port: i32, path: &str) -> Result<(), String> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-lifecycle/1.33\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "malformed HTTP response".to_string())?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP status {code}"))
    }
}
