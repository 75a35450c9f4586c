//! The deployment controller as the seed tutorials use it, through the real kubectl, on
//! hollow nodes with the scheduler placing pods: rollout status, scale, set image,
//! history, undo (to the previous and to a given revision), pause and resume, and a
//! rollout that exceeds its progress deadline.

use std::time::{Duration, Instant};

use integration::ControlPlane;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
";

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

fn cluster(nodes: &str) -> ControlPlane {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=replicaset,deployment",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    cp.start_component(
        "kube-scheduler",
        &["--leader-elect=false", "--secure-port=0"],
    )
    .unwrap();
    cp.start_component("hollow-node", &[nodes]).unwrap();
    cp
}

fn rollout_status(cp: &ControlPlane, name: &str) -> String {
    let target = format!("deployment/{name}");
    let out = cp
        .kubectl(&["rollout", "status", &target, "--timeout=40s"])
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "rollout status failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cp.component_log("kube-controller-manager")
    );
    stdout
}

fn image(cp: &ControlPlane) -> String {
    cp.jsonpath(
        &["get", "deploy", "nginx-deployment"],
        "{.spec.template.spec.containers[0].image}",
    )
    .unwrap_or_default()
}

/// `revision=image` of every replica set, sorted by revision.
fn revisions(cp: &ControlPlane) -> Vec<String> {
    let out = cp.jsonpath(&["get", "rs", "-l", "app=nginx"],
        "{range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}={.spec.template.spec.containers[0].image} {end}",).unwrap_or_default();
    let mut v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn deployment_rolls_out_scales_updates_and_rolls_back() {
    let cp = cluster("--nodes=3");
    cp.apply(DEPLOYMENT).unwrap();
    let out = rollout_status(&cp, "nginx-deployment");
    assert!(
        out.contains("deployment \"nginx-deployment\" successfully rolled out"),
        "{out}"
    );
    let status = cp.jsonpath(&["get", "deploy", "nginx-deployment"],
        "{.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas} {.status.observedGeneration}",).unwrap_or_default();
    assert_eq!(status, "3 3 3 3 1");
    let conditions = cp
        .jsonpath(
            &["get", "deploy", "nginx-deployment"],
            "{range .status.conditions[*]}{.type}={.status}/{.reason} {end}",
        )
        .unwrap_or_default();
    assert!(
        conditions.contains("Available=True/MinimumReplicasAvailable")
            && conditions.contains("Progressing=True/NewReplicaSetAvailable"),
        "{conditions}"
    );
    // The replica set carries the pod-template-hash, in its name, selector and pods.
    let rs_name = cp
        .jsonpath(
            &["get", "rs", "-l", "app=nginx"],
            "{.items[0].metadata.name}",
        )
        .unwrap_or_default();
    let hash = cp
        .jsonpath(
            &["get", "rs", &rs_name],
            "{.spec.selector.matchLabels.pod-template-hash}",
        )
        .unwrap_or_default();
    assert_eq!(rs_name, format!("nginx-deployment-{hash}"));
    let pod_hashes = cp
        .jsonpath(
            &["get", "pods", "-l", "app=nginx"],
            "{.items[*].metadata.labels.pod-template-hash}",
        )
        .unwrap_or_default();
    assert_eq!(pod_hashes, [hash.as_str(); 3].join(" "));
    assert_eq!(revisions(&cp), vec!["1=nginx:1.14.2"]);

    // Scale.
    cp.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=5"])
        .unwrap();
    rollout_status(&cp, "nginx-deployment");
    wait_for(
        &cp,
        &["get", "deploy", "nginx-deployment"],
        "{.status.readyReplicas}",
        "5",
        Duration::from_secs(20),
    );

    // A new image rolls out through a second replica set.
    cp.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=nginx:1.16.1",
    ])
    .unwrap();
    // The controller writes the deployment meanwhile; kubectl's patch may meet a
    // conflict, which a user would retry.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cp
        .kubectl_ok(&[
            "annotate",
            "deployment/nginx-deployment",
            "kubernetes.io/change-cause=image updated to 1.16.1",
        ])
        .is_err()
    {
        assert!(Instant::now() < deadline, "annotate kept failing");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = rollout_status(&cp, "nginx-deployment");
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for(
        &cp,
        &["get", "rs", "-l", "app=nginx"],
        "{.items[*].status.replicas}",
        "0 5",
        Duration::from_secs(20),
    );
    assert_eq!(revisions(&cp), vec!["1=nginx:1.14.2", "2=nginx:1.16.1"]);
    let history = cp
        .kubectl_ok(&["rollout", "history", "deployment/nginx-deployment"])
        .unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("REVISION")), "{history}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "<none>"]),
        "{history}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('2') && l.contains("image updated to 1.16.1")),
        "{history}"
    );
    let events = cp
        .jsonpath(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=Deployment",
            ],
            "{range .items[*]}{.reason}: {.message}\n{end}",
        )
        .unwrap_or_default();
    assert!(
        events.contains(&format!(
            "ScalingReplicaSet: Scaled up replica set nginx-deployment-{hash} from 0 to 3"
        )),
        "{events}"
    );
    assert!(
        events.contains("ScalingReplicaSet: Scaled down replica set"),
        "{events}"
    );

    // Undo: back to the first template, which becomes revision 3.
    cp.kubectl_ok(&["rollout", "undo", "deployment/nginx-deployment"])
        .unwrap();
    rollout_status(&cp, "nginx-deployment");
    assert_eq!(image(&cp), "nginx:1.14.2");
    assert_eq!(revisions(&cp), vec!["2=nginx:1.16.1", "3=nginx:1.14.2"]);
    let history_annotation = cp
        .jsonpath(
            &["get", "rs", &rs_name],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}",
        )
        .unwrap_or_default();
    assert_eq!(history_annotation, "1");
    // And to a given revision.
    cp.kubectl_ok(&[
        "rollout",
        "undo",
        "deployment/nginx-deployment",
        "--to-revision=2",
    ])
    .unwrap();
    rollout_status(&cp, "nginx-deployment");
    assert_eq!(image(&cp), "nginx:1.16.1");
    assert_eq!(revisions(&cp), vec!["3=nginx:1.14.2", "4=nginx:1.16.1"]);
    wait_for(
        &cp,
        &["get", "deploy", "nginx-deployment"],
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.status.updatedReplicas} {.status.availableReplicas}",
        "4 5 5",
        Duration::from_secs(20),
    );
}

#[test]
fn paused_deployment_waits_and_resumes() {
    let cp = cluster("--nodes=2");
    cp.apply(DEPLOYMENT).unwrap();
    rollout_status(&cp, "nginx-deployment");
    cp.kubectl_ok(&["rollout", "pause", "deployment/nginx-deployment"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "deploy", "nginx-deployment"],
        "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        "DeploymentPaused",
        Duration::from_secs(20),
    );
    cp.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=nginx:1.16.1",
    ])
    .unwrap();
    // Observed (pause was generation 2), but no rollout while paused.
    wait_for(
        &cp,
        &["get", "deploy", "nginx-deployment"],
        "{.status.observedGeneration}",
        "3",
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(revisions(&cp), vec!["1=nginx:1.14.2"]);
    // Scaling still works while paused.
    cp.kubectl_ok(&["scale", "deployment/nginx-deployment", "--replicas=4"])
        .unwrap();
    wait_for(
        &cp,
        &["get", "rs", "-l", "app=nginx"],
        "{.items[0].spec.replicas}",
        "4",
        Duration::from_secs(20),
    );
    cp.kubectl_ok(&["rollout", "resume", "deployment/nginx-deployment"])
        .unwrap();
    let out = rollout_status(&cp, "nginx-deployment");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(revisions(&cp), vec!["1=nginx:1.14.2", "2=nginx:1.16.1"]);
    wait_for(
        &cp,
        &["get", "deploy", "nginx-deployment"],
        "{.status.updatedReplicas} {.status.availableReplicas} {.status.conditions[?(@.type==\"Progressing\")].reason}",
        "4 4 NewReplicaSetAvailable",
        Duration::from_secs(20),
    );
}

#[test]
fn progress_deadline_exceeded_and_recreate() {
    let cp = cluster("--nodes=2");
    // Pods that no node matches stay Pending: the rollout cannot progress.
    let stuck = DEPLOYMENT
        .replace("name: nginx-deployment", "name: stuck")
        .replace("app: nginx", "app: stuck")
        .replace(
            "  replicas: 3\n",
            "  replicas: 2\n  progressDeadlineSeconds: 3\n",
        )
        .replace(
            "      containers:\n",
            "      nodeSelector:\n        disktype: none\n      containers:\n",
        );
    cp.apply(&stuck).unwrap();
    wait_for(
        &cp,
        &["get", "deploy", "stuck"],
        "{.status.conditions[?(@.type==\"Progressing\")].status}/{.status.conditions[?(@.type==\"Progressing\")].reason}",
        "False/ProgressDeadlineExceeded",
        Duration::from_secs(30),
    );
    let msg = cp.jsonpath(&["get", "deploy", "stuck"],
        "{.status.conditions[?(@.type==\"Progressing\")].message} {.status.conditions[?(@.type==\"Available\")].reason} {.status.unavailableReplicas}",).unwrap_or_default();
    assert!(
        msg.starts_with("ReplicaSet \"stuck-")
            && msg.ends_with("has timed out progressing. MinimumReplicasUnavailable 2"),
        "{msg}"
    );
    let out = cp
        .kubectl(&["rollout", "status", "deployment/stuck", "--timeout=20s"])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exceeded its progress deadline"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Recreate: the old pods go before the new ones come.
    let recreate = DEPLOYMENT.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  strategy:\n    type: Recreate\n",
    );
    cp.apply(&recreate).unwrap();
    rollout_status(&cp, "nginx-deployment");
    cp.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=nginx:1.16.1",
    ])
    .unwrap();
    let out = rollout_status(&cp, "nginx-deployment");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(revisions(&cp), vec!["1=nginx:1.14.2", "2=nginx:1.16.1"]);
    let events = cp
        .jsonpath(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=nginx-deployment",
            ],
            "{range .items[*]}{.message}\n{end}",
        )
        .unwrap_or_default();
    assert!(events.contains("from 3 to 0"), "{events}");
}
