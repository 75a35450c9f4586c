//! The replicaset and replicationcontroller controllers against a real API server, driven
//! by kubectl: pods created up to `replicas`, replaced when deleted, scaled, orphans with
//! matching labels adopted, relabelled pods released.

use std::time::{Duration, Instant};

use integration::ControlPlane;

const RS: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: 3
  selector:
    matchLabels:
      tier: frontend
  template:
    metadata:
      labels:
        tier: frontend
    spec:
      containers:
      - name: php-redis
        image: gcr.io/google_samples/gb-frontend:v3
";

const ORPHAN: &str = "apiVersion: v1
kind: Pod
metadata:
  name: orphan
  labels:
    tier: frontend
spec:
  containers:
  - name: c
    image: nginx
";

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 3
  selector:
    app: nginx
  template:
    metadata:
      name: nginx
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
";

/// Poll `kubectl get ... -o jsonpath` until it prints `want`.
fn wait_for(cp: &ControlPlane, args: &[&str], path: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = cp.jsonpath(args, path).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {args:?} {path} == {want:?}, last {got:?}\n{}",
            cp.component_log("kube-controller-manager")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn owned_pods(cp: &ControlPlane, selector: &str) -> Vec<String> {
    cp.jsonpath(
        &["get", "pods", "-l", selector],
        "{range .items[*]}{.metadata.name}={.metadata.ownerReferences[0].name} {end}",
    )
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

fn start() -> ControlPlane {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=replicaset,replicationcontroller",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    cp
}

#[test]
fn replicaset_creates_replaces_scales_adopts_and_releases() {
    let cp = start();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], RS).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Duration::from_secs(20);
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas}",
        "3",
        t,
    );
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.observedGeneration} {.status.fullyLabeledReplicas}",
        "1 3",
        t,
    );
    let pods = owned_pods(&cp, "tier=frontend");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(pods
        .iter()
        .all(|p| p.starts_with("frontend-") && p.ends_with("=frontend")));
    let reasons = cp
        .jsonpath(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=frontend",
            ],
            "{.items[*].reason}",
        )
        .unwrap_or_default();
    assert!(reasons.contains("SuccessfulCreate"), "{reasons}");

    // A deleted pod is replaced.
    let first = pods[0].split('=').next().unwrap().to_string();
    cp.kubectl_ok(&["delete", "pod", &first, "--wait=false"])
        .unwrap();
    let deadline = Instant::now() + t;
    loop {
        let now = owned_pods(&cp, "tier=frontend");
        if now.len() == 3 && !now.iter().any(|p| p.starts_with(&format!("{first}="))) {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Scaling through the scale subresource.
    cp.kubectl_ok(&["scale", "rs", "frontend", "--replicas=5"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas}",
        "5",
        t,
    );
    cp.kubectl_ok(&["scale", "rs", "frontend", "--replicas=2"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas} {.status.observedGeneration}",
        "2 3",
        t,
    );
    let deadline = Instant::now() + t;
    while owned_pods(&cp, "tier=frontend").len() != 2 {
        assert!(Instant::now() < deadline, "not scaled down");
        std::thread::sleep(Duration::from_millis(200));
    }

    // An orphan with matching labels is adopted (and, one too many, deleted again).
    cp.kubectl_ok(&["scale", "rs", "frontend", "--replicas=3"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas}",
        "3",
        t,
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], ORPHAN).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + t;
    loop {
        let owner = cp
            .jsonpath(
                &["get", "pod", "orphan", "--ignore-not-found"],
                "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
            )
            .unwrap_or_default();
        let total = owned_pods(&cp, "tier=frontend").len();
        // Adopted, then the controller is at 4 of 3 and deletes one (the newest, often
        // the orphan itself, as upstream ranks them).
        if (owner == "ReplicaSet/frontend" || owner.is_empty()) && total == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "orphan {owner:?}, {total} pods");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas}",
        "3",
        t,
    );

    // A pod relabelled out of the selector is released and replaced.
    let victim = owned_pods(&cp, "tier=frontend")[0]
        .split('=')
        .next()
        .unwrap()
        .to_string();
    cp.kubectl_ok(&["label", "pod", &victim, "tier=debug", "--overwrite"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "pod", &victim],
        "{.metadata.ownerReferences[*].name}",
        "",
        t,
    );
    let deadline = Instant::now() + t;
    while owned_pods(&cp, "tier=frontend").len() != 3 {
        assert!(Instant::now() < deadline, "released pod not replaced");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(
        &cp,
        &["get", "rs", "frontend"],
        "{.status.replicas} {.status.fullyLabeledReplicas}",
        "3 3",
        t,
    );
}

#[test]
fn replication_controller_scales() {
    let cp = start();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], RC).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Duration::from_secs(20);
    wait_for(&cp, &["get", "rc", "nginx"], "{.status.replicas}", "3", t);
    assert_eq!(owned_pods(&cp, "app=nginx").len(), 3);
    assert!(owned_pods(&cp, "app=nginx")
        .iter()
        .all(|p| p.starts_with("nginx-") && p.ends_with("=nginx")));
    cp.kubectl_ok(&["scale", "rc", "nginx", "--replicas=1"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "rc", "nginx"],
        "{.status.replicas} {.status.observedGeneration}",
        "1 2",
        t,
    );
    let deadline = Instant::now() + t;
    while owned_pods(&cp, "app=nginx").len() != 1 {
        assert!(Instant::now() < deadline, "rc not scaled down");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reasons = cp
        .jsonpath(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=nginx",
            ],
            "{.items[*].reason}",
        )
        .unwrap_or_default();
    assert!(reasons.contains("SuccessfulDelete"), "{reasons}");
}
