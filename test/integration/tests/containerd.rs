//! The containerd fixture end to end: a busybox pod through the CRI gets an IP on the
//! instance's bridge, its httpd answers from the host, ExecSync works, and dropping the
//! fixture leaves no shim, bridge, mount or directory behind. Needs root.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use cri::api;
use integration::containerd::{mounts_under, pids_with_arg};
use integration::Containerd;

fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test]
async fn busybox_pod_through_the_cri() {
    let ctrd = Containerd::start().unwrap();
    let cri = ctrd.cri().await.unwrap();
    let mut runtime = cri.runtime.clone();
    let mut images = cri.image.clone();

    // Both standard images are there under their documented names.
    for name in [
        "registry.k8s.io/pause:3.10",
        "docker.io/library/busybox:1.35",
        "docker.io/library/busybox:latest",
    ] {
        let status = images
            .image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: name.into(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(status.image.is_some(), "{name} not imported");
    }

    let logs = ctrd.path("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "web".into(),
            uid: "6c8f5d3e-0000-4000-8000-000000000001".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let sandbox_id = runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctrd.log()))
        .into_inner()
        .pod_sandbox_id;
    let status = runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let pod_ip = status.network.unwrap().ip;
    let prefix = ctrd.subnet().trim_end_matches("0/24").to_string();
    assert!(
        pod_ip.starts_with(&prefix),
        "pod IP {pod_ip} outside {}",
        ctrd.subnet()
    );

    let container_id = runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "httpd".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: "docker.io/library/busybox:1.35".into(),
                    ..Default::default()
                }),
                command: vec!["sh".into(), "-c".into()],
                args: vec![
                    "echo hello from $(hostname) > /var/www/index.html && exec httpd -f -p 8080 -h /var/www".into(),
                ],
                log_path: "httpd/0.log".into(),
                linux: Some(api::LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctrd.log()))
        .into_inner()
        .container_id;
    runtime
        .start_container(api::StartContainerRequest {
            container_id: container_id.clone(),
        })
        .await
        .unwrap();

    let addr = format!("{pod_ip}:8080");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        match http_get(&addr, "/index.html") {
            Ok(r) if r.starts_with("HTTP/1.") => break r,
            other => {
                assert!(Instant::now() < deadline, "httpd on {addr}: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(body.contains(" 200 "), "{body}");
    assert!(body.contains("hello from web"), "{body}");

    let exec = runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: container_id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "id -u; cat /etc/hostname; exit 3".into(),
            ],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exec.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "0\nweb\n");

    // The container's output went to the CRI log under the sandbox's log directory.
    let log = std::fs::read_to_string(logs.join("httpd/0.log")).unwrap_or_default();
    assert!(!log.contains("error"), "{log}");

    let socket = ctrd.socket().display().to_string();
    let dir = ctrd.path("");
    let bridge = ctrd.bridge();
    assert!(
        !pids_with_arg(&socket).is_empty(),
        "a shim of this instance runs"
    );
    assert!(!mounts_under(&dir).is_empty(), "the pod's mounts exist");
    assert!(Path::new(&format!("/sys/class/net/{bridge}")).exists());
    drop(ctrd);

    assert_eq!(pids_with_arg(&socket), Vec::<i32>::new(), "shims left");
    assert_eq!(
        mounts_under(&dir),
        Vec::<std::path::PathBuf>::new(),
        "mounts left"
    );
    assert!(
        !Path::new(&format!("/sys/class/net/{bridge}")).exists(),
        "bridge left"
    );
    assert!(!dir.exists(), "temp dir left");
    // No request to the pod IP after teardown: without the bridge's route it would leave
    // the machine through the default route.
    assert!(
        !std::process::Command::new("ip")
            .args(["-4", "route"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&prefix))
            .unwrap(),
        "route to the pod subnet left"
    );
}

/// `image: nginx` as the seed tutorials write it: Debian's nginx serves its default page.
#[tokio::test]
async fn nginx_serves_its_default_page() {
    let ctrd = Containerd::start().unwrap();
    ctrd.import_nginx().unwrap();
    let pod = ctrd
        .run_pod("nginx", "docker.io/library/nginx:latest", &[])
        .await
        .unwrap();
    let addr = format!("{}:80", pod.ip);
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match http_get(&addr, "/") {
            Ok(r) if r.starts_with("HTTP/1.") => break r,
            other => {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(ctrd.path("pod-logs/nginx/main/0.log"))
                        .unwrap_or_default();
                    panic!("nginx on {addr}: {other:?}\ncontainer log:\n{log}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(response.contains(" 200 "), "{response}");
    assert!(response.contains("Welcome to nginx!"), "{response}");
    assert!(response.contains("Server: nginx/1.22"), "{response}");
    // Access log to the container's stdout, as the official image does.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log =
            std::fs::read_to_string(ctrd.path("pod-logs/nginx/main/0.log")).unwrap_or_default();
        if log.contains("\"GET / HTTP/1.0\" 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no access log line:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A test killed before its Drop leaves containerd, a shim, mounts and a bridge; the next
/// fixture that takes the same instance removes them.
#[tokio::test]
async fn leftovers_of_a_killed_test_are_cleaned_up() {
    let ctrd = Containerd::start().unwrap();
    ctrd.run_busybox_pod("left", "sleep 3600").await.unwrap();
    let socket = ctrd.socket().display().to_string();
    let bridge = ctrd.bridge();
    let subnet = ctrd.subnet().trim_end_matches("0/24").to_string();
    let (dir, _pid) = ctrd.abandon();
    assert!(!pids_with_arg(&socket).is_empty());
    assert!(dir.exists());
    assert_eq!(netns_in(&subnet), 1);

    let next = Containerd::start().unwrap();
    assert_eq!(next.bridge(), bridge, "took another instance");
    assert_eq!(pids_with_arg(&socket), Vec::<i32>::new(), "processes left");
    assert_eq!(mounts_under(&dir), Vec::<std::path::PathBuf>::new());
    assert!(!dir.exists());
    assert_eq!(netns_in(&subnet), 0, "the pod's netns is left");
    let network = format!("\"k8s-rs-{}\"", bridge.trim_start_matches("k8srs"));
    let nat = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let nat = String::from_utf8_lossy(&nat.stdout).replace("\\\"", "\"");
    assert!(!nat.contains(&network), "masquerade rules left:\n{nat}");
    drop(next);
    assert!(!Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

/// Network namespaces under /var/run/netns with an address starting with `prefix`.
fn netns_in(prefix: &str) -> usize {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::process::Command::new("ip")
                        .args(["-n", &e.file_name().to_string_lossy(), "-4", "-o", "addr"])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {prefix}")))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
