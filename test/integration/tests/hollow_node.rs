//! The hollow node against the real API server, seen through the real kubectl: nodes
//! register Ready with Leases, bound pods run, complete or fail as asked, deletion
//! finishes, and SIGTERM stops the process cleanly.

use std::time::{Duration, Instant};

use integration::ControlPlane;

/// Poll `f` until it returns `Some`, failing with `what` after `timeout`.
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pod_yaml(name: &str, policy: &str, exit_code: Option<&str>) -> String {
    let annotations = exit_code
        .map(|c| format!("  annotations:\n    hollow-node.k8s-rs.io/exit-code: \"{c}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
{annotations}spec:
  nodeName: hollow-node-0
  restartPolicy: {policy}
  initContainers:
  - name: init
    image: busybox:1.36
  containers:
  - name: main
    image: nginx:1.27
"
    )
}

#[test]
fn hollow_nodes_register_and_run_pods() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "hollow-node",
        &[
            "--nodes=3",
            "--pod-run-duration=1s",
            "--node-labels=topology.kubernetes.io/zone=z1",
            "--register-with-taints=example.com/hollow=yes:PreferNoSchedule",
        ],
    )
    .unwrap();

    // kubectl get nodes: three Ready nodes with the hollow kubelet's version.
    let table = eventually(Duration::from_secs(20), "3 Ready nodes", || {
        let out = cp.kubectl_ok(&["get", "nodes", "--no-headers"]).ok()?;
        let ready = out
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count();
        (ready == 3).then_some(out)
    });
    for i in 0..3 {
        assert!(table.contains(&format!("hollow-node-{i} ")), "{table}");
    }
    assert!(table.contains("v1.33.0-hollow"), "{table}");
    let info = cp.jsonpath(&["get", "node", "hollow-node-1"],
        "{.status.capacity.cpu} {.status.capacity.pods} {.status.nodeInfo.containerRuntimeVersion} {.metadata.labels.kubernetes\\.io/hostname} {.metadata.labels.topology\\.kubernetes\\.io/zone} {.spec.taints[0].effect} {.status.addresses[?(@.type==\"InternalIP\")].address}",).unwrap();
    assert_eq!(
        info,
        "4 110 hollow://0.1 hollow-node-1 z1 PreferNoSchedule 172.16.0.2"
    );
    // The Lease: held by the node, owned by it.
    let lease = cp.jsonpath(&["get", "lease", "-n", "kube-node-lease", "hollow-node-2"],
        "{.spec.holderIdentity} {.spec.leaseDurationSeconds} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",).unwrap();
    assert_eq!(lease, "hollow-node-2 40 Node/hollow-node-2");

    // A long-running pod goes Running and Ready, with an IP from the node's fake /24.
    let out = cp
        .kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("web", "Always", None))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"])
        .unwrap();
    let status = cp.jsonpath(&["get", "pod", "web"],
        "{.status.phase} {.status.podIP} {.status.hostIP} {.status.containerStatuses[0].started} {.status.initContainerStatuses[0].state.terminated.reason}",).unwrap();
    assert_eq!(status, "Running 10.244.0.2 172.16.0.1 true Completed");
    let id = cp
        .jsonpath(
            &["get", "pod", "web"],
            "{.status.containerStatuses[0].containerID}",
        )
        .unwrap();
    assert!(id.starts_with("hollow://"), "{id}");
    let row = cp
        .kubectl_ok(&["get", "pod", "web", "--no-headers"])
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["1/1", "Running", "0"], "{row}");

    // restartPolicy Never: completes after the run duration.
    let out = cp
        .kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("done", "Never", None))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And one told to exit 3: Failed.
    let out = cp
        .kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("fail", "Never", Some("3")))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/done",
        "--timeout=30s",
    ])
    .unwrap();
    cp.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/fail",
        "--timeout=30s",
    ])
    .unwrap();
    let done = cp
        .kubectl_ok(&["get", "pod", "done", "--no-headers"])
        .unwrap();
    assert_eq!(done.split_whitespace().nth(2), Some("Completed"), "{done}");
    let fail = cp.jsonpath(&["get", "pod", "fail"],
        "{.status.containerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.terminated.reason}",).unwrap();
    assert_eq!(fail, "3 Error");

    // activeDeadlineSeconds: the kubelet stops the pod.
    let deadline = pod_yaml("deadline", "Always", None).replace(
        "  restartPolicy: Always\n",
        "  restartPolicy: Always\n  activeDeadlineSeconds: 2\n",
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &deadline).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/deadline",
        "--timeout=30s",
    ])
    .unwrap();
    let reason = cp
        .jsonpath(
            &["get", "pod", "deadline"],
            "{.status.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
        )
        .unwrap();
    assert_eq!(reason, "DeadlineExceeded 137");

    // kubectl delete waits until the pod is gone: the hollow node stops it and deletes
    // it for good.
    let started = Instant::now();
    cp.kubectl_ok(&["delete", "pod", "web", "--timeout=30s"])
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let left = cp.kubectl_ok(&["get", "pods", "-o", "name"]).unwrap();
    assert!(!left.contains("pod/web"), "{left}");
    cp.kubectl_ok(&["delete", "pod", "done", "fail", "deadline", "--timeout=30s"])
        .unwrap();

    // SIGTERM: a clean exit.
    let status = cp
        .stop_component("hollow-node", Duration::from_secs(10))
        .unwrap();
    assert!(
        status.success(),
        "{status:?}\n{}",
        cp.component_log("hollow-node")
    );
}
