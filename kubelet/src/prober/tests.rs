//! Probes against real local servers (HTTP, TCP, gRPC health on 127.0.0.1). Exec probes
//! need a container: test/integration/tests/probes.rs runs them on the containerd fixture.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, GRPCAction, HTTPGetAction, HTTPHeader, Pod, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// An HTTP server answering `/status` with the current status, `/headers` with 200 only
/// when the probe's headers arrived, anything else 404.
async fn http_server() -> (u16, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let code = if req.starts_with("get /status ") {
                    s.load(Ordering::SeqCst)
                } else if req.starts_with("get /headers ") {
                    let ok = req.contains("\r\nx-probe: yes\r\n")
                        && req.contains("\r\nhost: probe.example\r\n")
                        && req.contains("\r\nuser-agent: kube-probe/1.33\r\n");
                    if ok {
                        200
                    } else {
                        400
                    }
                } else {
                    404
                };
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, status)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    }
}

fn container_with_port(port: u16) -> Container {
    Container {
        name: "c".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: port.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn target(container: Container) -> Target {
    Target {
        cri: cri::connect_lazy("unix:///nonexistent/cri.sock").unwrap(),
        container_id: "c1".into(),
        pod_ip: "127.0.0.1".into(),
        container,
    }
}

async fn once(probe: &Probe, container: Container) -> probes::Outcome {
    let t = target(container);
    let h = Handler::from_probe(probe, &t.container, &t.pod_ip)?;
    probes::run(&h, &t, Duration::from_secs(1)).await
}

#[test]
fn timing_defaults() {
    let t = Timing::from_probe(&Probe::default(), ProbeType::Liveness);
    assert_eq!(
        t,
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    let p = Probe {
        success_threshold: Some(3),
        period_seconds: Some(0),
        ..Default::default()
    };
    assert_eq!(
        Timing::from_probe(&p, ProbeType::Readiness).success_threshold,
        3
    );
    assert_eq!(
        Timing::from_probe(&p, ProbeType::Liveness).success_threshold,
        1
    );
    assert_eq!(
        Timing::from_probe(&p, ProbeType::Readiness).period,
        Duration::from_secs(1)
    );
}

#[test]
fn handlers_resolve_ports_and_hosts() {
    let c = container_with_port(8080);
    let h = Handler::from_probe(
        &http_probe(IntOrString::String("http".into()), "healthz"),
        &c,
        "10.0.0.5",
    )
    .unwrap();
    assert_eq!(
        h,
        Handler::Http {
            scheme: "http".into(),
            host: "10.0.0.5".into(),
            port: 8080,
            path: "/healthz".into(),
            headers: vec![],
        }
    );
    let p = Probe {
        tcp_socket: Some(TCPSocketAction {
            host: Some("127.0.0.2".into()),
            port: IntOrString::String("9000".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        Handler::from_probe(&p, &c, "10.0.0.5").unwrap(),
        Handler::Tcp {
            host: "127.0.0.2".into(),
            port: 9000
        }
    );
    let bad = http_probe(IntOrString::String("metrics".into()), "/");
    assert_eq!(
        Handler::from_probe(&bad, &c, "10.0.0.5").unwrap_err(),
        "couldn't find port: metrics in c"
    );
    assert!(Handler::from_probe(&Probe::default(), &c, "x").is_err());
}

#[tokio::test]
async fn http_probe_outcomes() {
    let (port, status) = http_server().await;
    let c = container_with_port(port);
    let ok = once(
        &http_probe(IntOrString::String("http".into()), "/status"),
        c.clone(),
    )
    .await;
    assert_eq!(ok.unwrap().0, ProbeResult::Success);
    // 3xx counts as success, 4xx/5xx as failure.
    status.store(302, Ordering::SeqCst);
    assert_eq!(
        once(
            &http_probe(IntOrString::Int(port.into()), "/status"),
            c.clone()
        )
        .await
        .unwrap()
        .0,
        ProbeResult::Success
    );
    status.store(500, Ordering::SeqCst);
    assert_eq!(
        once(
            &http_probe(IntOrString::Int(port.into()), "/status"),
            c.clone()
        )
        .await
        .unwrap(),
        (
            ProbeResult::Failure,
            "HTTP probe failed with statuscode: 500".into()
        )
    );
    // Headers, including Host.
    let mut p = http_probe(IntOrString::Int(port.into()), "/headers");
    assert_eq!(once(&p, c.clone()).await.unwrap().0, ProbeResult::Failure);
    p.http_get.as_mut().unwrap().http_headers = Some(vec![
        HTTPHeader {
            name: "X-Probe".into(),
            value: "yes".into(),
        },
        HTTPHeader {
            name: "Host".into(),
            value: "probe.example".into(),
        },
    ]);
    assert_eq!(once(&p, c.clone()).await.unwrap().0, ProbeResult::Success);
    // Nothing listening.
    let closed = closed_port();
    let (result, output) = once(&http_probe(IntOrString::Int(closed.into()), "/"), c)
        .await
        .unwrap();
    assert_eq!(result, ProbeResult::Failure);
    assert_eq!(
        output,
        format!("Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused")
    );
}

#[tokio::test]
async fn http_probe_times_out() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            held.push(c);
        }
    });
    let start = Instant::now();
    let (result, output) = once(
        &http_probe(IntOrString::Int(port.into()), "/"),
        Container::default(),
    )
    .await
    .unwrap();
    assert_eq!(result, ProbeResult::Failure);
    assert!(
        output.ends_with(
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ),
        "{output}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn tcp_probe_outcomes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = |port: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(port.into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        once(&p(port), Container::default()).await.unwrap().0,
        ProbeResult::Success
    );
    let closed = closed_port();
    assert_eq!(
        once(&p(closed), Container::default()).await.unwrap(),
        (
            ProbeResult::Failure,
            format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")
        )
    );
}

#[tokio::test]
async fn grpc_probe_outcomes() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("db", tonic_health::ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_listener(listener)),
    );
    let p = |service: Option<&str>, port: u16| Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: service.map(String::from),
        }),
        ..Default::default()
    };
    assert_eq!(
        once(&p(None, port), Container::default()).await.unwrap(),
        (ProbeResult::Success, "service healthy".into())
    );
    assert_eq!(
        once(&p(Some("db"), port), Container::default())
            .await
            .unwrap(),
        (
            ProbeResult::Failure,
            "service unhealthy (responded with \"NOT_SERVING\")".into()
        )
    );
    let (result, output) = once(&p(None, closed_port()), Container::default())
        .await
        .unwrap();
    assert_eq!(result, ProbeResult::Failure);
    assert!(
        output.starts_with("timeout: failed to connect service"),
        "{output}"
    );
}

/// A TcpListener as the stream of connections tonic's server takes.
fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

fn pod(uid: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn manager() -> (
    ProbeManager,
    mpsc::UnboundedReceiver<String>,
    mpsc::UnboundedReceiver<ProbeEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (etx, erx) = mpsc::unbounded_channel();
    let m = ProbeManager::with_events(
        cri::connect_lazy("unix:///nonexistent/cri.sock").unwrap(),
        tx,
        Some(etx),
    );
    (m, rx, erx)
}

#[tokio::test]
async fn liveness_failure_reaches_threshold_and_holds() {
    let (port, status) = http_server().await;
    let (m, mut updates, mut events) = manager();
    let mut c = container_with_port(port);
    let mut probe = http_probe(IntOrString::Int(port.into()), "/status");
    probe.failure_threshold = Some(2);
    c.liveness_probe = Some(probe);
    m.add_container(&pod("u1"), &c, "id-1", "127.0.0.1");
    // No readiness probe: ready once started (no startup probe: at once).
    assert!(m.started("u1", "c"));
    assert!(m.ready("u1", "c"));
    assert_eq!(m.failed("u1", "c"), None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(m.failed("u1", "c"), None, "healthy");

    status.store(500, Ordering::SeqCst);
    wait_until("liveness failure", Duration::from_secs(5), || {
        m.failed("u1", "c").is_some()
    })
    .await;
    assert_eq!(
        m.failed("u1", "c").unwrap(),
        "Container c failed liveness probe"
    );
    assert!(!m.ready("u1", "c"));
    assert_eq!(updates.recv().await.unwrap(), "u1");
    let e = events.recv().await.unwrap();
    assert_eq!(e.reason, "Unhealthy");
    assert_eq!(e.type_, "Warning");
    assert_eq!(
        e.message,
        "Liveness probe failed: HTTP probe failed with statuscode: 500"
    );
    assert_eq!(
        (
            e.namespace.as_str(),
            e.pod_name.as_str(),
            e.container.as_str()
        ),
        ("default", "web", "c")
    );
    // Exactly failureThreshold failed attempts, then the worker holds.
    assert!(events.recv().await.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        events.try_recv().is_err(),
        "probing continued after the failure"
    );

    // The restarted container (new id) starts afresh.
    status.store(200, Ordering::SeqCst);
    m.add_container(&pod("u1"), &c, "id-2", "127.0.0.1");
    assert_eq!(m.failed("u1", "c"), None);
    assert!(m.is_tracked("u1", "c"));
    m.remove_pod("u1");
    assert!(!m.is_tracked("u1", "c"));
    // Untracked (no probes) counts as started and ready, as upstream.
    assert!(m.started("u1", "c") && m.ready("u1", "c"));
}

#[tokio::test]
async fn readiness_thresholds_and_startup_gating() {
    let (port, status) = http_server().await;
    let (startup_port, startup_status) = http_server().await;
    startup_status.store(503, Ordering::SeqCst);
    let (m, mut updates, mut events) = manager();
    let mut c = container_with_port(port);
    let mut readiness = http_probe(IntOrString::Int(port.into()), "/status");
    readiness.success_threshold = Some(2);
    readiness.failure_threshold = Some(1);
    c.readiness_probe = Some(readiness);
    let mut startup = http_probe(IntOrString::Int(startup_port.into()), "/status");
    startup.failure_threshold = Some(30);
    c.startup_probe = Some(startup);
    m.add_container(&pod("u2"), &c, "id-1", "127.0.0.1");

    // Startup keeps failing: not started, readiness not even run.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(!m.started("u2", "c"));
    assert!(!m.ready("u2", "c"));
    let e = events.recv().await.unwrap();
    assert_eq!(
        e.message,
        "Startup probe failed: HTTP probe failed with statuscode: 503"
    );
    while let Ok(e) = events.try_recv() {
        assert!(e.message.starts_with("Startup"), "{e:?}");
    }

    startup_status.store(200, Ordering::SeqCst);
    wait_until("started", Duration::from_secs(3), || m.started("u2", "c")).await;
    assert_eq!(updates.recv().await.unwrap(), "u2");
    // Two successes needed: not ready right after the first.
    let started = Instant::now();
    wait_until("ready", Duration::from_secs(4), || m.ready("u2", "c")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "ready after one success"
    );
    assert_eq!(updates.recv().await.unwrap(), "u2");

    status.store(500, Ordering::SeqCst);
    wait_until("not ready", Duration::from_secs(3), || !m.ready("u2", "c")).await;
    assert_eq!(updates.recv().await.unwrap(), "u2");
    assert_eq!(
        m.failed("u2", "c"),
        None,
        "readiness never fails the container"
    );
    let e = events.recv().await.unwrap();
    assert_eq!(
        e.message,
        "Readiness probe failed: HTTP probe failed with statuscode: 500"
    );
}

#[tokio::test]
async fn initial_delay_and_startup_failure() {
    let (port, status) = http_server().await;
    status.store(500, Ordering::SeqCst);
    let (m, _updates, _events) = manager();
    let mut c = container_with_port(port);
    let mut startup = http_probe(IntOrString::Int(port.into()), "/status");
    startup.failure_threshold = Some(1);
    startup.initial_delay_seconds = Some(2);
    c.startup_probe = Some(startup);
    let t0 = Instant::now();
    m.add_container(&pod("u3"), &c, "id-1", "127.0.0.1");
    wait_until("startup failure", Duration::from_secs(6), || {
        m.failed("u3", "c").is_some()
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "probed before initialDelaySeconds"
    );
    assert_eq!(
        m.failed("u3", "c").unwrap(),
        "Container c failed startup probe"
    );
    assert!(!m.started("u3", "c"));
}

#[tokio::test]
async fn https_probe_skips_certificate_verification() {
    let cert = rcgen::generate_simple_self_signed(vec!["not-the-pod".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let mut probe = http_probe(IntOrString::Int(port.into()), "/");
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    assert_eq!(
        once(&probe, Container::default()).await.unwrap(),
        (ProbeResult::Success, String::new())
    );
    // Plain HTTP against the TLS port fails.
    let plain = http_probe(IntOrString::Int(port.into()), "/");
    assert_eq!(
        once(&plain, Container::default()).await.unwrap().0,
        ProbeResult::Failure
    );
}
