//! Node lifecycle on hollow nodes: node-ipam gives each node a pod CIDR, and when one
//! hollow-node process is killed (its Leases stop) the node lifecycle controller marks
//! the node Unknown, taints it unreachable:NoExecute and marks its pods not ready; the
//! taint-eviction controller deletes the pods once their tolerationSeconds run out,
//! and the ReplicaSet's replacements are scheduled to the surviving node. When the node comes back, it is
//! Ready and untainted again.

use std::time::{Duration, Instant};

use integration::ControlPlane;

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

/// Four replicas spread over the nodes, tolerating a lost node for 3 s.
const RS: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        resources:
          requests:
            cpu: 100m
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app: web
      tolerations:
      - key: node.kubernetes.io/unreachable
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 3
      - key: node.kubernetes.io/not-ready
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 3
";

/// The ReplicaSet's pods: (name, node, terminating, ready).
fn web_pods(cp: &ControlPlane) -> Vec<(String, String, bool, bool)> {
    let out = cp.jsonpath(&["get", "pods", "-l", "app=web"],
        "{range .items[*]}{.metadata.name},{.spec.nodeName},{.metadata.deletionTimestamp},{.status.conditions[?(@.type==\"Ready\")].status} {end}",).unwrap();
    out.split_whitespace()
        .filter_map(|e| {
            let f: Vec<&str> = e.split(',').collect();
            (f.len() == 4).then(|| {
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    !f[2].is_empty(),
                    f[3] == "True",
                )
            })
        })
        .collect()
}

fn ready_condition(cp: &ControlPlane, kind: &str, name: &str) -> String {
    cp.jsonpath(
        &["get", kind, name],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
    .unwrap()
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
            "--controllers=node-lifecycle,taint-eviction-controller,node-ipam,replicaset",
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
    let cidrs = eventually(&cp, Duration::from_secs(60), "pod CIDRs", || {
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
    cp.apply(&pod_yaml("short", Some("alpha-0"), Some(3)))
        .unwrap();
    cp.apply(&pod_yaml("forever", Some("alpha-0"), None))
        .unwrap();
    cp.apply(&pod_yaml("elsewhere", Some("beta-0"), Some(3)))
        .unwrap();
    for pod in ["short", "forever", "elsewhere"] {
        cp.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=30s",
        ])
        .unwrap();
    }
    // A ReplicaSet spread over both nodes.
    cp.apply(RS).unwrap();
    let placed = eventually(&cp, Duration::from_secs(60), "4 web pods Ready", || {
        let pods = web_pods(&cp);
        (pods.len() == 4 && pods.iter().all(|p| p.3)).then_some(pods)
    });
    let on_alpha = placed.iter().filter(|p| p.1 == "alpha-0").count();
    assert!(on_alpha >= 1, "no web pod on alpha-0: {placed:?}");

    // The hollow node takes pod IPs from the CIDR node-ipam gave the node.
    let ip = cp
        .jsonpath(&["get", "pod", "short"], "{.status.podIP}")
        .unwrap();
    let prefix = alpha_cidr.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "{ip} not in {alpha_cidr}");

    // Lose alpha.
    cp.kill_component("hollow-node").unwrap();
    let lost = Instant::now();

    // Ready goes Unknown after the grace period, with upstream's reason; kubectl shows
    // NotReady.
    eventually(&cp, Duration::from_secs(60), "alpha-0 Unknown", || {
        (ready_condition(&cp, "node", "alpha-0") == "Unknown").then_some(())
    });
    assert!(
        lost.elapsed() >= Duration::from_secs(5),
        "marked Unknown too early: {:?}",
        lost.elapsed()
    );
    let reason = cp
        .jsonpath(
            &["get", "node", "alpha-0"],
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        )
        .unwrap();
    assert_eq!(reason, "NodeStatusUnknown");
    let row = cp
        .kubectl_ok(&["get", "node", "alpha-0", "--no-headers"])
        .unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("NotReady"), "{row}");
    // The surviving node stays Ready.
    assert_eq!(ready_condition(&cp, "node", "beta-0"), "True");

    // The unreachable NoExecute taint.
    eventually(&cp, Duration::from_secs(45), "unreachable taint", || {
        let taints = cp
            .jsonpath(
                &["get", "node", "alpha-0"],
                "{range .spec.taints[*]}{.key}:{.effect} {end}",
            )
            .unwrap();
        taints
            .contains("node.kubernetes.io/unreachable:NoExecute")
            .then_some(())
    });

    // Pods on the lost node are marked not ready.
    eventually(&cp, Duration::from_secs(45), "pods not ready", || {
        (ready_condition(&cp, "pod", "forever") == "False").then_some(())
    });

    // The pod tolerating 3 s is evicted (deleted: it stays Terminating, as nothing
    // on the lost node confirms the deletion); the one tolerating forever stays.
    eventually(&cp, Duration::from_secs(45), "eviction of short", || {
        let deleted = cp
            .jsonpath(&["get", "pod", "short"], "{.metadata.deletionTimestamp}")
            .unwrap();
        (!deleted.is_empty()).then_some(())
    });
    let condition = cp
        .jsonpath(
            &["get", "pod", "short"],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
        )
        .unwrap();
    assert_eq!(condition, "DeletionByTaintManager");
    let table = cp.kubectl_ok(&["get", "pods", "--no-headers"]).unwrap();
    let short_row = table.lines().find(|l| l.starts_with("short ")).unwrap();
    assert!(short_row.contains("Terminating"), "{table}");
    std::thread::sleep(Duration::from_secs(4));
    let forever = cp
        .jsonpath(&["get", "pod", "forever"], "{.metadata.deletionTimestamp}")
        .unwrap();
    assert_eq!(forever, "", "a pod tolerating forever was evicted");
    // The pod on the healthy node is untouched.
    assert_eq!(ready_condition(&cp, "pod", "elsewhere"), "True");
    let elsewhere = cp
        .jsonpath(
            &["get", "pod", "elsewhere"],
            "{.metadata.deletionTimestamp}",
        )
        .unwrap();
    assert_eq!(elsewhere, "");

    // The ReplicaSet's pods on the lost node are evicted too, and replaced on the
    // surviving node (the lost one is tainted unreachable).
    let replaced = eventually(&cp, Duration::from_secs(60), "web pods replaced", || {
        let pods = web_pods(&cp);
        let live: Vec<_> = pods.iter().filter(|p| !p.2).collect();
        let evicted = pods.iter().filter(|p| p.2 && p.1 == "alpha-0").count();
        (live.len() == 4 && live.iter().all(|p| p.3 && p.1 == "beta-0") && evicted == on_alpha)
            .then_some(pods)
    });
    let ready = cp
        .jsonpath(&["get", "rs", "web"], "{.status.readyReplicas}")
        .unwrap();
    assert_eq!(ready, "4", "{replaced:?}");

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
    eventually(&cp, Duration::from_secs(60), "alpha-0 Ready again", || {
        (ready_condition(&cp, "node", "alpha-0") == "True").then_some(())
    });
    eventually(&cp, Duration::from_secs(60), "taints removed", || {
        let taints = cp
            .jsonpath(
                &["get", "node", "alpha-0"],
                "{range .spec.taints[*]}{.key}:{.effect} {end}",
            )
            .unwrap();
        (!taints.contains("node.kubernetes.io/")).then_some(())
    });
    eventually(&cp, Duration::from_secs(60), "forever Ready again", || {
        (ready_condition(&cp, "pod", "forever") == "True").then_some(())
    });
    eventually(&cp, Duration::from_secs(60), "short gone", || {
        let names = cp.kubectl_ok(&["get", "pods", "-o", "name"]).ok()?;
        (!names.contains("pod/short")).then_some(())
    });
}
