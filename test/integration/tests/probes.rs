//! The kubelet's prober against a real container (the containerd fixture): exec probes
//! through CRI ExecSync (success, failure with the command's output, timeout) and an
//! httpGet readiness probe on the pod IP. Needs root.

use std::time::{Duration, Instant};

use integration::Containerd;
use k8s_openapi::api::core::v1::{Container, ContainerPort, ExecAction, HTTPGetAction, Pod, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::prober::{probes, Handler, ProbeManager, ProbeResult, Target};
use tokio::sync::mpsc;

fn exec_probe(command: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
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

#[tokio::test]
async fn exec_and_http_probes_on_a_real_container() {
    let ctrd = Containerd::start().unwrap();
    let pod_ip_probe = ctrd
        .run_busybox_pod(
            "probed",
            "touch /tmp/healthy && echo ok > /var/www/index.html && exec httpd -f -p 8080 -h /var/www",
        )
        .await
        .unwrap();
    let cri = ctrd.cri().await.unwrap();
    let container = Container {
        name: "main".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    };
    let target = Target {
        cri: cri.clone(),
        container_id: pod_ip_probe.container_id.clone(),
        pod_ip: pod_ip_probe.ip.clone(),
        container: container.clone(),
    };
    let once = |probe: Probe| {
        let target = target.clone();
        async move {
            let h = Handler::from_probe(&probe, &target.container, &target.pod_ip).unwrap();
            probes::run(&h, &target, Duration::from_secs(1)).await
        }
    };

    // Single attempts: success, failure with the command's output, timeout.
    assert_eq!(
        once(exec_probe(&["sh", "-c", "echo fine"])).await.unwrap(),
        (ProbeResult::Success, "fine\n".into())
    );
    assert_eq!(
        once(exec_probe(&["sh", "-c", "echo bad >&2; exit 1"]))
            .await
            .unwrap(),
        (ProbeResult::Failure, "bad\n".into())
    );
    let start = Instant::now();
    assert_eq!(
        once(exec_probe(&["sleep", "10"])).await.unwrap(),
        (
            ProbeResult::Failure,
            "command \"sleep 10\" timed out".into()
        )
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // The manager: exec liveness plus httpGet readiness by port name on the pod IP.
    let (tx, mut updates) = mpsc::unbounded_channel();
    let (etx, mut events) = mpsc::unbounded_channel();
    let manager = ProbeManager::with_events(cri.clone(), tx, Some(etx));
    let mut probed = container.clone();
    probed.liveness_probe = Some(exec_probe(&["cat", "/tmp/healthy"]));
    probed.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some("/index.html".into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    });
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("probed".into()),
            namespace: Some("default".into()),
            uid: Some("uid-probed".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    manager.add_container(&pod, &probed, &pod_ip_probe.container_id, &pod_ip_probe.ip);
    wait_until("ready", Duration::from_secs(10), || {
        manager.ready("uid-probed", "main")
    })
    .await;
    assert_eq!(updates.recv().await.unwrap(), "uid-probed");
    assert_eq!(manager.failed("uid-probed", "main"), None);

    let rm = cri
        .runtime
        .clone()
        .exec_sync(cri::api::ExecSyncRequest {
            container_id: pod_ip_probe.container_id.clone(),
            cmd: vec!["rm".into(), "/tmp/healthy".into()],
            timeout: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rm.exit_code, 0);
    wait_until("liveness failure", Duration::from_secs(5), || {
        manager.failed("uid-probed", "main").is_some()
    })
    .await;
    assert_eq!(
        manager.failed("uid-probed", "main").unwrap(),
        "Container main failed liveness probe"
    );
    let e = events.recv().await.unwrap();
    assert_eq!(e.reason, "Unhealthy");
    assert_eq!(
        e.message,
        "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"
    );
    manager.remove_pod("uid-probed");
}
