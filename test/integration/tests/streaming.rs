//! The kubelet API and the API server's streaming subresources, end to end with the real
//! kubectl: logs (-f, --tail, --previous, --timestamps, --limit-bytes), exec (with and
//! without stdin, exit codes), attach, port-forward, cp, nodes/proxy, and the kubelet's
//! client-certificate authentication. A private containerd runs the containers; the
//! kubelet runs with its server on free ports; the pods' containers are created through
//! the CRI with the labels the kubelet's pod workers write, so these tests exercise the
//! server and the proxying independently of the pod lifecycle.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cri::api;
use cri::labels;
use integration::containerd::Containerd;
use integration::{free_port, ControlPlane};

const NODE: &str = "stream-node";

struct Cluster {
    cp: ControlPlane,
    containerd: Containerd,
    kubelet_port: u16,
    logs_dir: std::path::PathBuf,
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

async fn cluster() -> Result<Cluster> {
    let mut cp = ControlPlane::start()?;
    let containerd = Containerd::start()?;
    let kubelet_port = free_port();
    let healthz_port = free_port();
    let root = cp.dir.path().join("kubelet");
    let logs_dir = root.join("pod-logs");
    std::fs::create_dir_all(&logs_dir)?;
    let config = root.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             address: 127.0.0.1\nport: {kubelet_port}\nhealthzPort: {healthz_port}\n\
             containerRuntimeEndpoint: {}\npodLogsDir: {}\n\
             authentication:\n  anonymous:\n    enabled: false\n  x509:\n    clientCAFile: {}\n",
            containerd.endpoint(),
            logs_dir.display(),
            cp.pki_dir().join("ca.crt").display()
        ),
    )?;
    cp.start_component(
        "kubelet",
        &[
            &format!("--config={}", config.display()),
            "--node-ip=127.0.0.1",
            &format!("--hostname-override={NODE}"),
            &format!("--root-dir={}", root.display()),
        ],
    )?;
    let healthz = format!("127.0.0.1:{healthz_port}");
    wait_for("the kubelet's healthz", Duration::from_secs(30), || {
        http_get(&healthz, "/healthz").is_ok_and(|b| b == "ok")
    })
    .with_context(|| cp.component_log("kubelet"))?;
    // Until the kubelet registers its Node, the test does, with the addresses the kubelet
    // would report.
    if cp
        .kubectl(&["get", "node", NODE])
        .map(|o| !o.status.success())?
    {
        cp.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE}\n"
        ))?;
    }
    cp.kubectl_ok(&[
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "-p",
        &serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        }})
        .to_string(),
    ])?;
    Ok(Cluster {
        cp,
        containerd,
        kubelet_port,
        logs_dir,
    })
}

/// A plain HTTP GET (the kubelet's healthz port), returning the body.
fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut s = String::new();
    tcp.read_to_string(&mut s)?;
    let (head, body) = s.split_once("\r\n\r\n").context("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{head}");
    }
    Ok(body.to_string())
}

struct PodContainer {
    sandbox: String,
}

impl Cluster {
    /// A Pod bound to the node in the API, and its sandbox plus container `main` (restart
    /// `attempt`) running `sh -c script` in containerd, labelled as the kubelet does.
    async fn pod(&self, name: &str, script: &str, ports: &[i32]) -> Result<PodContainer> {
        let ports_yaml: String = ports
            .iter()
            .map(|p| format!("\n    - containerPort: {p}"))
            .collect();
        let ports_yaml = if ports.is_empty() {
            String::new()
        } else {
            format!("\n    ports:{ports_yaml}")
        };
        self.cp.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n\
             spec:\n  nodeName: {NODE}\n  containers:\n  - name: main\n    image: busybox:1.35\n\
             \x20   imagePullPolicy: IfNotPresent\n    command: [sh, -c, {script:?}]{ports_yaml}\n"
        ))?;
        let uid = self.cp.jsonpath(&["get", "pod", name], "{.metadata.uid}")?;
        let sandbox = self.sandbox(name, &uid).await?;
        self.container(&sandbox, name, &uid, 0, script, true)
            .await?;
        // The status the kubelet would report (kubectl port-forward wants Running).
        let ip = self
            .containerd
            .cri()
            .await?
            .runtime
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        self.cp.kubectl_ok(&[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &serde_json::json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
                .to_string(),
        ])?;
        Ok(PodContainer { sandbox })
    }

    fn sandbox_config(&self, name: &str, uid: &str) -> api::PodSandboxConfig {
        let log_dir = self.logs_dir.join(format!("default_{name}_{uid}"));
        let _ = std::fs::create_dir_all(&log_dir);
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_dir.display().to_string(),
            labels: pod_labels(name, uid),
            linux: Some(api::LinuxPodSandboxConfig::default()),
            ..Default::default()
        }
    }

    async fn sandbox(&self, name: &str, uid: &str) -> Result<String> {
        let mut runtime = self.containerd.cri().await?.runtime;
        Ok(runtime
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(self.sandbox_config(name, uid)),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| self.containerd.log())?
            .into_inner()
            .pod_sandbox_id)
    }

    async fn container(
        &self,
        sandbox: &str,
        name: &str,
        uid: &str,
        attempt: u32,
        script: &str,
        stdin: bool,
    ) -> Result<String> {
        let mut runtime = self.containerd.cri().await?.runtime;
        let mut container_labels = pod_labels(name, uid);
        container_labels.insert(labels::CONTAINER_NAME.into(), "main".into());
        let id = runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.into(),
                config: Some(api::ContainerConfig {
                    metadata: Some(api::ContainerMetadata {
                        name: "main".into(),
                        attempt,
                    }),
                    image: Some(api::ImageSpec {
                        image: "docker.io/library/busybox:1.35".into(),
                        ..Default::default()
                    }),
                    command: vec!["sh".into(), "-c".into(), script.into()],
                    log_path: format!("main/{attempt}.log"),
                    labels: container_labels,
                    stdin,
                    linux: Some(api::LinuxContainerConfig::default()),
                    ..Default::default()
                }),
                sandbox_config: Some(self.sandbox_config(name, uid)),
            })
            .await
            .with_context(|| self.containerd.log())?
            .into_inner()
            .container_id;
        runtime
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(id)
    }

    async fn remove(&self, pod: &PodContainer) -> Result<()> {
        let mut runtime = self.containerd.cri().await?.runtime;
        runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await?;
        runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await?;
        Ok(())
    }

    fn kubectl_out(&self, args: &[&str]) -> Result<String> {
        self.cp.kubectl_ok(args)
    }

    /// kubectl running in the background with piped stdio.
    fn spawn_kubectl(&self, args: &[&str]) -> Result<Child> {
        Ok(self
            .cp
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }
}

fn pod_labels(name: &str, uid: &str) -> std::collections::HashMap<String, String> {
    [
        (labels::POD_NAME, name),
        (labels::POD_NAMESPACE, "default"),
        (labels::POD_UID, uid),
        (labels::MANAGED, labels::MANAGED_VALUE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Reads lines from a child's stdout (in a thread) until one satisfies `f`.
fn read_until(
    child: &mut Child,
    timeout: Duration,
    f: impl Fn(&str) -> bool + Send + 'static,
) -> Result<Vec<String>> {
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = f(&line);
            seen.push(line);
            if done {
                let _ = tx.send(Ok(seen));
                return;
            }
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(lines)) => Ok(lines),
        Ok(Err(lines)) => bail!("output ended without the expected line: {lines:?}"),
        Err(_) => bail!("timed out waiting for output"),
    }
}

/// Sends `request` to the API server over TLS with the admin certificate and returns all
/// the bytes the server sends within a few seconds.
fn raw_tls(cp: &ControlPlane, request: &str) -> Result<Vec<u8>> {
    let pki = cp.pki_dir();
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{}", cp.port))
        .arg("-cert")
        .arg(pki.join("admin.crt"))
        .arg("-key")
        .arg(pki.join("admin.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(request.as_bytes())?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    std::thread::sleep(Duration::from_secs(3));
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))
}

fn stderr_of(mut child: Child) -> String {
    let _ = child.kill();
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    let _ = child.wait();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs() -> Result<()> {
    let c = cluster().await?;
    let pod = c
        .pod(
            "logger",
            "echo one; echo two >&2; printf 'thr'; sleep 0.2; echo ee; echo four; \
             while [ ! -f /tmp/go ]; do sleep 0.1; done; echo later; exec sleep 3600",
            &[],
        )
        .await?;
    wait_for("the first lines", Duration::from_secs(20), || {
        c.kubectl_out(&["logs", "logger"])
            .is_ok_and(|l| l.contains("four"))
    })?;
    assert_eq!(
        c.kubectl_out(&["logs", "logger"])?,
        "one\ntwo\nthree\nfour\n"
    );
    assert_eq!(
        c.kubectl_out(&["logs", "logger", "-c", "main", "--tail=1"])?,
        "four\n"
    );
    assert_eq!(
        c.kubectl_out(&["logs", "logger", "--limit-bytes=6"])?,
        "one\ntw"
    );
    let stamped = c.kubectl_out(&["logs", "logger", "--timestamps"])?;
    let first = stamped.lines().next().context("no lines")?;
    let (ts, text) = first.split_once(' ').context("no timestamp")?;
    assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{first}");
    assert_eq!(text, "one");
    assert_eq!(
        c.kubectl_out(&["logs", "logger", "--since=1h", "--tail=2"])?,
        "three\nfour\n"
    );

    // -f follows new output.
    let mut follow = c.spawn_kubectl(&["logs", "-f", "logger"])?;
    std::thread::sleep(Duration::from_millis(500));
    c.kubectl_out(&["exec", "logger", "--", "touch", "/tmp/go"])?;
    let lines = read_until(&mut follow, Duration::from_secs(20), |l| l == "later");
    let err = stderr_of(follow);
    assert_eq!(
        lines.with_context(|| err.clone())?,
        ["one", "two", "three", "four", "later"]
    );

    // A restarted container: --previous reads the earlier instance.
    let out = c.cp.kubectl(&["logs", "logger", "--previous"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("previous terminated container \"main\" in pod \"logger\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid =
        c.cp.jsonpath(&["get", "pod", "logger"], "{.metadata.uid}")?;
    c.container(
        &pod.sandbox,
        "logger",
        &uid,
        1,
        "echo second run; exec sleep 3600",
        false,
    )
    .await?;
    wait_for("the new instance's log", Duration::from_secs(20), || {
        c.kubectl_out(&["logs", "logger"])
            .is_ok_and(|l| l == "second run\n")
    })?;
    assert!(c
        .kubectl_out(&["logs", "logger", "--previous"])?
        .starts_with("one\n"));

    // Errors keep upstream's messages.
    let out = c.cp.kubectl(&["logs", "logger", "-c", "nope"])?;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container nope is not valid for pod logger")
    );
    c.remove(&pod).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_attach_cp() -> Result<()> {
    let c = cluster().await?;
    let pod = c
        .pod(
            "shell",
            "while read line; do echo \"got $line\"; done; exec sleep 3600",
            &[],
        )
        .await?;
    wait_for("exec", Duration::from_secs(20), || {
        c.kubectl_out(&["exec", "shell", "--", "echo", "hello"])
            .is_ok_and(|o| o == "hello\n")
    })?;
    // stdout and stderr, and the exit code.
    let out = c.cp.kubectl(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])?;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "err\ncommand terminated with exit code 3\n"
    );
    // stdin, closed at its end.
    let out = c.cp.kubectl_stdin(
        &["exec", "-i", "shell", "--", "sh", "-c", "cat; echo done"],
        "abc\n",
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abc\ndone\n");

    // attach: our input reaches the container's stdin, its output comes back.
    let mut attach = c.spawn_kubectl(&["attach", "-i", "shell"])?;
    attach
        .stdin
        .as_mut()
        .context("stdin")?
        .write_all(b"ping\n")?;
    let lines = read_until(&mut attach, Duration::from_secs(20), |l| l == "got ping");
    let err = stderr_of(attach);
    lines.with_context(|| err)?;

    // The WebSocket channel protocols pass through to the runtime: the legacy
    // v4.channel.k8s.io is served (clients such as the Python client use it), while a
    // v5-only upgrade (kubectl's first try) is refused with 403 so that kubectl falls back
    // to SPDY, which the steps above used.
    let ws = |protocol: &str| {
        raw_tls(
            &c.cp,
            &format!(
                "GET /api/v1/namespaces/default/pods/shell/exec?command=echo&command=hi&stdout=true HTTP/1.1\r\n\
                 Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
            ),
        )
    };
    let v4 = String::from_utf8_lossy(&ws("v4.channel.k8s.io")?).into_owned();
    assert!(v4.starts_with("HTTP/1.1 101"), "{v4}");
    assert!(v4.contains("\x01hi\n"), "{v4:?}");
    assert!(v4.contains("\"status\":\"Success\""), "{v4:?}");
    let v5 = String::from_utf8_lossy(&ws("v5.channel.k8s.io")?).into_owned();
    assert!(v5.starts_with("HTTP/1.1 403"), "{v5}");

    // cp in and out.
    let local = c.cp.dir.path().join("payload.txt");
    let payload: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&local, &payload)?;
    c.kubectl_out(&["cp", &local.display().to_string(), "shell:/tmp/payload.txt"])?;
    assert_eq!(
        c.kubectl_out(&["exec", "shell", "--", "wc", "-l", "/tmp/payload.txt"])?
            .split_whitespace()
            .next(),
        Some("2000")
    );
    let back = c.cp.dir.path().join("back.txt");
    c.kubectl_out(&["cp", "shell:/tmp/payload.txt", &back.display().to_string()])?;
    assert_eq!(std::fs::read_to_string(&back)?, payload);

    // A container that does not run.
    let out =
        c.cp.kubectl(&["exec", "shell", "-c", "nope", "--", "true"])?;
    assert!(!out.status.success());
    c.remove(&pod).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_port_forward() -> Result<()> {
    let c = cluster().await?;
    let pod = c
        .pod(
            "web",
            "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
            &[8080],
        )
        .await?;
    let local = free_port();
    let pf = c.spawn_kubectl(&["port-forward", "pod/web", &format!("{local}:8080")])?;
    let addr = format!("127.0.0.1:{local}");
    let got = wait_for("the forwarded port", Duration::from_secs(30), || {
        http_get(&addr, "/index.html").is_ok_and(|b| b == "hello-from-pod\n")
    });
    // Several connections through one port-forward session.
    let again = http_get(&addr, "/index.html");
    let err = stderr_of(pf);
    got.with_context(|| err.clone())?;
    assert_eq!(again?, "hello-from-pod\n");

    // pods/proxy goes from the API server to the pod IP; the port defaults to the first
    // declared container port.
    for name in ["web:8080", "web"] {
        assert_eq!(
            c.kubectl_out(&[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/default/pods/{name}/proxy/index.html"),
            ])?,
            "hello-from-pod\n"
        );
    }
    c.remove(&pod).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_api() -> Result<()> {
    let c = cluster().await?;
    let pod = c.pod("idle", "exec sleep 3600", &[]).await?;
    let raw =
        |path: &str| c.kubectl_out(&["get", "--raw", &format!("/api/v1/nodes/{NODE}/proxy{path}")]);
    assert_eq!(raw("/healthz")?, "ok");
    let pods: serde_json::Value = serde_json::from_str(&raw("/pods")?)?;
    assert_eq!(pods["kind"], "PodList");
    wait_for("container stats", Duration::from_secs(20), || {
        raw("/stats/summary").is_ok_and(|s| s.contains("\"idle\""))
    })?;
    let summary: serde_json::Value = serde_json::from_str(&raw("/stats/summary")?)?;
    assert_eq!(summary["node"]["nodeName"], NODE);
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0));
    let idle = summary["pods"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["podRef"]["name"] == "idle"))
        .context("pod stats")?;
    assert_eq!(idle["containers"][0]["name"], "main");
    assert!(idle["containers"][0]["memory"]["workingSetBytes"].is_u64());
    let resource = raw("/metrics/resource")?;
    assert!(
        resource.contains("container_cpu_usage_seconds_total{container=\"main\",namespace=\"default\",pod=\"idle\"}"),
        "{resource}"
    );
    assert!(resource.contains("node_memory_working_set_bytes "));
    assert!(resource.contains("resource_scrape_error 0"));
    let metrics = raw("/metrics")?;
    assert!(metrics.contains("kubelet_running_pods 1"), "{metrics}");
    assert!(metrics.contains("kubelet_running_containers{container_state=\"running\"} 1"));

    // The kubelet's own authentication: certificates from the cluster CA, nobody else.
    let kubelet = format!("https://127.0.0.1:{}", c.kubelet_port);
    let admin = c.cp.pki_dir();
    let curl = |extra: &[&str]| -> Result<String> {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(format!("{kubelet}/pods"))
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(curl(&[])?, "401");
    assert_eq!(
        curl(&[
            "--cert",
            &admin.join("admin.crt").display().to_string(),
            "--key",
            &admin.join("admin.key").display().to_string(),
        ])?,
        "200"
    );
    c.remove(&pod).await?;
    Ok(())
}
