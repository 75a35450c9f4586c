//! Node lifecycle on hollow nodes: node-ipam gives each node a pod CIDR, and when one
//! hollow-node process is killed (its Leases stop) the node lifecycle controller marks
//! the node Unknown, taints it unreachable:NoExecute and marks its pods not ready; the
//! taint-eviction controller deletes the pods once their tolerationSeconds run out,
//! and new pods are scheduled to the surviving node. When the node comes back, it is
//! Ready and untainted again.

use std::time::{Duration, Instant};

use integration::ControlPlane;

fn jsonpath(cp: &ControlPlane, args: &[&str], path: &str) -> String {
    let mut full: Vec<&str> = args.to_vec();
    let expr = format!("jsonpath={path}");
    full.extend(["-o", &expr]);
    cp.kubectl_ok(&full).unwrap()
}

/// Poll `f` until it returns `Some`, failing with `what` (and the controller manager's
/// log) after `timeout`.
fn eventually<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\nkube-controller-manager log:\n{}",
            cp.component_log("kube-controller-manager")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A pod bound to `node`; `toleration_seconds` None tolerates the unreachable and
/// not-ready taints forever, as DaemonSet pods do.
fn pod_yaml(name: &str, node: Option<&str>, toleration_seconds: Option<u32>) -> String {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    let seconds = toleration_seconds
        .map(|s| format!("    tolerationSeconds: {s}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{node}  containers:
  - name: main
    image: nginx:1.27
  tolerations:
  - key: node.kubernetes.io/unreachable
    operator: Exists
    effect: NoExecute
{seconds}  - key: node.kubernetes.io/not-ready
    operator: Exists
    effect: NoExecute
{seconds}"
    )
}

fn apply(cp: &ControlPlane, yaml: &str) {
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], yaml).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ready_condition(cp: &ControlPlane, kind: &str, name: &str) -> String {
    jsonpath(
        cp,
        &["get", kind, name],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

#[test]
fn lost_node_is_tainted_and_its_pods_are_evicted() {
    let mut cp = ControlPlane::start().unwrap();
    // Two processes, so that one can be killed: alpha is started first (the one
    // kill_component takes), beta survives.
    cp.start_component(
        "hollow-node",
        &[
            "--nodes=1",
            "--name-prefix=alpha",
            "--lease-renew-interval=2s",
        ],
    )
    .unwrap();
    cp.start_component(
        "hollow-node",
        &[
            "--nodes=1",
            "--name-prefix=beta",
            "--lease-renew-interval=2s",
            "--node-ip-base=172.17.0.0",
            "--pod-cidr-base=10.250.0.0",
        ],
    )
    .unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=node-lifecycle,taint-eviction-controller,node-ipam",
            "--node-monitor-grace-period=8s",
            "--node-monitor-period=1s",
            "--allocate-node-cidrs",
            "--cluster-cidr=10.244.0.0/16",
        ],
    )
    .unwrap();
    cp.start_component(
        "kube-scheduler",
        &["--leader-elect=false", "--secure-port=0"],
    )
    .unwrap();

    // node-ipam: each node gets its own /24 out of the cluster CIDR.
    let cidrs = eventually(&cp, Duration::from_secs(30), "pod CIDRs", || {
        let out = cp
            .kubectl_ok(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR}={.spec.podCIDRs[0]} {end}",
            ])
            .ok()?;
        let entries: Vec<(String, String)> = out
            .split_whitespace()
            .filter_map(|e| {
                let mut parts = e.split('=');
                let name = parts.next()?.to_string();
                let cidr = parts.next()?.to_string();
                (parts.next()? == cidr && !cidr.is_empty()).then_some((name, cidr))
            })
            .collect();
        (entries.len() == 2).then_some(entries)
    });
    assert_ne!(cidrs[0].1, cidrs[1].1);
    for (_, cidr) in &cidrs {
        assert!(
            cidr.starts_with("10.244.") && cidr.ends_with(".0/24"),
            "{cidrs:?}"
        );
    }
    let alpha_cidr = cidrs
        .iter()
        .find(|(n, _)| n == "alpha-0")
        .map(|(_, c)| c.clone())
        .unwrap();
    assert_eq!(ready_condition(&cp, "node", "alpha-0"), "True");

    // Pods on alpha: one tolerating the lost node for 3 s, one forever.
    apply(&cp, &pod_yaml("short", Some("alpha-0"), Some(3)));
    apply(&cp, &pod_yaml("forever", Some("alpha-0"), None));
    apply(&cp, &pod_yaml("elsewhere", Some("beta-0"), Some(3)));
    for pod in ["short", "forever", "elsewhere"] {
        cp.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=30s",
        ])
        .unwrap();
    }
    // The hollow node takes pod IPs from the CIDR node-ipam gave the node.
    let ip = jsonpath(&cp, &["get", "pod", "short"], "{.status.podIP}");
    let prefix = alpha_cidr.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "{ip} not in {alpha_cidr}");

    // Lose alpha.
    cp.kill_component("hollow-node").unwrap();
    let lost = Instant::now();

    // Ready goes Unknown after the grace period, with upstream's reason; kubectl shows
    // NotReady.
    eventually(&cp, Duration::from_secs(30), "alpha-0 Unknown", || {
        (ready_condition(&cp, "node", "alpha-0") == "Unknown").then_some(())
    });
    assert!(
        lost.elapsed() >= Duration::from_secs(5),
        "marked Unknown too early: {:?}",
        lost.elapsed()
    );
    let reason = jsonpath(
        &cp,
        &["get", "node", "alpha-0"],
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
    );
    assert_eq!(reason, "NodeStatusUnknown");
    let row = cp
        .kubectl_ok(&["get", "node", "alpha-0", "--no-headers"])
        .unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("NotReady"), "{row}");
    // The surviving node stays Ready.
    assert_eq!(ready_condition(&cp, "node", "beta-0"), "True");

    // The unreachable NoExecute taint.
    eventually(&cp, Duration::from_secs(20), "unreachable taint", || {
        let taints = jsonpath(
            &cp,
            &["get", "node", "alpha-0"],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        );
        taints
            .contains("node.kubernetes.io/unreachable:NoExecute")
            .then_some(())
    });

    // Pods on the lost node are marked not ready.
    eventually(&cp, Duration::from_secs(20), "pods not ready", || {
        (ready_condition(&cp, "pod", "forever") == "False").then_some(())
    });

    // The pod tolerating 3 s is evicted (deleted: it stays Terminating, as nothing
    // on the lost node confirms the deletion); the one tolerating forever stays.
    eventually(&cp, Duration::from_secs(20), "eviction of short", || {
        let deleted = jsonpath(
            &cp,
            &["get", "pod", "short"],
            "{.metadata.deletionTimestamp}",
        );
        (!deleted.is_empty()).then_some(())
    });
    let condition = jsonpath(
        &cp,
        &["get", "pod", "short"],
        "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    );
    assert_eq!(condition, "DeletionByTaintManager");
    let table = cp.kubectl_ok(&["get", "pods", "--no-headers"]).unwrap();
    let short_row = table.lines().find(|l| l.starts_with("short ")).unwrap();
    assert!(short_row.contains("Terminating"), "{table}");
    std::thread::sleep(Duration::from_secs(4));
    let forever = jsonpath(
        &cp,
        &["get", "pod", "forever"],
        "{.metadata.deletionTimestamp}",
    );
    assert_eq!(forever, "", "a pod tolerating forever was evicted");
    // The pod on the healthy node is untouched.
    assert_eq!(ready_condition(&cp, "pod", "elsewhere"), "True");
    let elsewhere = jsonpath(
        &cp,
        &["get", "pod", "elsewhere"],
        "{.metadata.deletionTimestamp}",
    );
    assert_eq!(elsewhere, "");

    // A new pod goes to the surviving node (the lost one is tainted).
    apply(&cp, &pod_yaml("replacement", None, Some(3)));
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/replacement",
        "--timeout=30s",
    ])
    .unwrap();
    let node = jsonpath(&cp, &["get", "pod", "replacement"], "{.spec.nodeName}");
    assert_eq!(node, "beta-0");

    // The node comes back (a new hollow-node process takes it over): Ready again, the
    // taints go, its surviving pod is Ready again, and the evicted pod, now that a
    // kubelet confirms it stopped, is gone.
    cp.start_component(
        "hollow-node",
        &[
            "--nodes=1",
            "--name-prefix=alpha",
            "--lease-renew-interval=2s",
        ],
    )
    .unwrap();
    eventually(&cp, Duration::from_secs(30), "alpha-0 Ready again", || {
        (ready_condition(&cp, "node", "alpha-0") == "True").then_some(())
    });
    eventually(&cp, Duration::from_secs(30), "taints removed", || {
        let taints = jsonpath(
            &cp,
            &["get", "node", "alpha-0"],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        );
        (!taints.contains("node.kubernetes.io/")).then_some(())
    });
    eventually(&cp, Duration::from_secs(30), "forever Ready again", || {
        (ready_condition(&cp, "pod", "forever") == "True").then_some(())
    });
    eventually(&cp, Duration::from_secs(30), "short gone", || {
        let names = cp.kubectl_ok(&["get", "pods", "-o", "name"]).ok()?;
        (!names.contains("pod/short")).then_some(())
    });
}
