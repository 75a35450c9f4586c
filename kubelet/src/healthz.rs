//! The kubelet's plain-HTTP health endpoint (healthzBindAddress:healthzPort, upstream
//! 127.0.0.1:10248): `GET /healthz` answers `ok` while the kubelet runs (kubeadm and
//! systemd checks poll it). A port of 0 disables it, as upstream.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve(address: &str, port: u16, shutdown: CancellationToken) -> std::io::Result<()> {
    if port == 0 {
        return Ok(());
    }
    let ip: std::net::IpAddr = address.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("healthzBindAddress {address:?}: {e}"),
        )
    })?;
    let listener = TcpListener::bind(SocketAddr::new(ip, port)).await?;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return Ok(()),
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/healthz" || path.starts_with("/healthz?") {
                ("200 OK", "ok")
            } else {
                ("404 Not Found", "404 page not found\n")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
