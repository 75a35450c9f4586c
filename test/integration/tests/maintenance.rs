//! Cluster-maintenance controllers of kube-controller-manager (service accounts, garbage
//! collection, namespace deletion, resource quota, disruption budgets), driven by the
//! real kubectl against etcd + our API server + our controller manager.

use std::time::{Duration, Instant};

use integration::ControlPlane;

/// Poll `check` until it returns `Some`, failing after `timeout` with `what` and the
/// controller manager's log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n--- kube-controller-manager log ---\n{}",
                cp.component_log("kube-controller-manager")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(controllers: &str) -> ControlPlane {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--leader-elect=false",
            "--secure-port=0",
            &format!("--controllers={controllers}"),
        ],
    )
    .unwrap();
    cp
}

fn kubectl_out(cp: &ControlPlane, args: &[&str]) -> Option<String> {
    let out = cp.kubectl(args).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn every_namespace_gets_a_default_service_account_again_after_deletion() {
    let cp = start("serviceaccount");
    cp.kubectl_ok(&["create", "namespace", "team-a"]).unwrap();
    for ns in ["default", "kube-system", "team-a"] {
        wait_for(
            &cp,
            Duration::from_secs(30),
            "default service account",
            || {
                kubectl_out(
                    &cp,
                    &["get", "serviceaccount", "default", "-n", ns, "-o", "name"],
                )
            },
        );
    }
    let uid = |cp: &ControlPlane| {
        kubectl_out(
            cp,
            &[
                "get",
                "sa",
                "default",
                "-n",
                "team-a",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        )
    };
    let first = uid(&cp).unwrap();
    cp.kubectl_ok(&["delete", "serviceaccount", "default", "-n", "team-a"])
        .unwrap();
    let second = wait_for(&cp, Duration::from_secs(30), "re-created account", || {
        uid(&cp).filter(|u| !u.is_empty() && *u != first)
    });
    assert_ne!(first, second);
    // Other accounts are not the controller's business.
    cp.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "team-a"])
        .unwrap();
    cp.kubectl_ok(&["delete", "serviceaccount", "robot", "-n", "team-a"])
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(kubectl_out(&cp, &["get", "sa", "robot", "-n", "team-a"]).is_none());
}

fn replicaset(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: c
        image: nginx
"
    )
}

fn uid(cp: &ControlPlane, kind: &str, name: &str) -> String {
    cp.kubectl_ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
        .unwrap()
        .trim()
        .to_string()
}

/// An unscheduled pod (deleted at once, no kubelet needed) owned by `owner`.
fn owned_pod(name: &str, owner_kind: &str, owner: &str, owner_uid: &str) -> String {
    let api_version = if owner_kind == "ReplicaSet" {
        "apps/v1"
    } else {
        "v1"
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {owner}
  ownerReferences:
  - apiVersion: {api_version}
    kind: {owner_kind}
    name: {owner}
    uid: {owner_uid}
    controller: true
    blockOwnerDeletion: true
spec:
  containers:
  - name: c
    image: nginx
"
    )
}

fn rs_with_pods(cp: &ControlPlane, name: &str, pods: usize) -> String {
    cp.apply(&replicaset(name)).unwrap();
    let owner = uid(cp, "rs", name);
    for i in 0..pods {
        cp.apply(&owned_pod(
            &format!("{name}-{i}"),
            "ReplicaSet",
            name,
            &owner,
        ))
        .unwrap();
    }
    owner
}

fn exists(cp: &ControlPlane, kind: &str, name: &str) -> bool {
    kubectl_out(cp, &["get", kind, name, "-o", "name"]).is_some()
}

#[test]
fn cascading_deletion_in_all_three_modes() {
    let cp = start("garbage-collector");
    let timeout = Duration::from_secs(30);

    // Background: the owner goes at once, the collector deletes its pods.
    rs_with_pods(&cp, "bg", 2);
    cp.kubectl_ok(&["delete", "rs", "bg", "--cascade=background"])
        .unwrap();
    wait_for(&cp, timeout, "background deletion of the pods", || {
        (!exists(&cp, "pod", "bg-0") && !exists(&cp, "pod", "bg-1")).then_some(())
    });

    // Foreground: the owner waits (foregroundDeletion finalizer) until every blocking
    // dependent is gone; one dependent is held by a finalizer of its own.
    let owner = rs_with_pods(&cp, "fg", 2);
    cp.apply(&format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: fg-held
  finalizers: [example.com/hold]
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: fg
    uid: {owner}
    blockOwnerDeletion: true
"
    ))
    .unwrap();
    cp.kubectl_ok(&["delete", "rs", "fg", "--cascade=foreground", "--wait=false"])
        .unwrap();
    wait_for(&cp, timeout, "pods of the foreground owner deleted", || {
        (!exists(&cp, "pod", "fg-0") && !exists(&cp, "pod", "fg-1")).then_some(())
    });
    let held = cp
        .kubectl_ok(&[
            "get",
            "rs",
            "fg",
            "-o",
            "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
        ])
        .unwrap();
    assert!(held.contains("foregroundDeletion"), "{held}");
    let cm = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "fg-held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .unwrap();
    assert!(!cm.trim().is_empty(), "held dependent is terminating");
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "fg-held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .unwrap();
    wait_for(&cp, timeout, "foreground owner gone", || {
        (!exists(&cp, "rs", "fg") && !exists(&cp, "cm", "fg-held")).then_some(())
    });

    // Orphan: the owner goes, its pods stay without the reference.
    rs_with_pods(&cp, "or", 2);
    cp.kubectl_ok(&["delete", "rs", "or", "--cascade=orphan"])
        .unwrap();
    assert!(!exists(&cp, "rs", "or"));
    for pod in ["or-0", "or-1"] {
        let refs = cp
            .kubectl_ok(&[
                "get",
                "pod",
                pod,
                "-o",
                "jsonpath={.metadata.ownerReferences}",
            ])
            .unwrap();
        assert_eq!(refs.trim(), "", "{pod} still owned");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(exists(&cp, "pod", "or-0") && exists(&cp, "pod", "or-1"));
}

#[test]
fn dangling_owner_references_are_collected() {
    let cp = start("garbage-collector");
    let timeout = Duration::from_secs(30);
    cp.kubectl_ok(&["create", "configmap", "owner"]).unwrap();
    let owner = uid(&cp, "cm", "owner");
    // Owner absent, and owner present under another uid: both dependents are garbage.
    cp.apply(&owned_pod(
        "orphan-of-ghost",
        "ConfigMap",
        "ghost",
        "0000-ghost",
    ))
    .unwrap();
    cp.apply(&owned_pod("wrong-uid", "ConfigMap", "owner", "0000-other"))
        .unwrap();
    // One solid and one dangling owner: kept, the dangling reference removed.
    cp.apply(&format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: two-owners
  ownerReferences:
  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {owner}}}
  - {{apiVersion: v1, kind: ConfigMap, name: ghost, uid: 0000-ghost}}
"
    ))
    .unwrap();
    wait_for(&cp, timeout, "dangling dependents deleted", || {
        (!exists(&cp, "pod", "orphan-of-ghost") && !exists(&cp, "pod", "wrong-uid")).then_some(())
    });
    let refs = wait_for(&cp, timeout, "dangling reference removed", || {
        let uids = kubectl_out(
            &cp,
            &[
                "get",
                "cm",
                "two-owners",
                "-o",
                "jsonpath={.metadata.ownerReferences[*].uid}",
            ],
        )?;
        (!uids.contains("ghost")).then_some(uids)
    });
    assert_eq!(refs, owner);
    // The owner goes: its dependent follows.
    cp.kubectl_ok(&["delete", "cm", "owner"]).unwrap();
    wait_for(&cp, timeout, "dependent of a deleted owner deleted", || {
        (!exists(&cp, "cm", "two-owners")).then_some(())
    });
}

const NAMESPACE_CONTENT: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: doomed
spec:
  containers:
  - name: c
    image: nginx
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: doomed
data:
  a: b
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  namespace: doomed
  finalizers: [example.com/hold]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  namespace: doomed
spec:
  replicas: 2
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
        image: nginx
";

fn condition(cp: &ControlPlane, ns: &str, type_: &str) -> Option<String> {
    kubectl_out(
        cp,
        &[
            "get",
            "namespace",
            ns,
            "-o",
            &format!(
                "jsonpath={{.status.conditions[?(@.type==\"{type_}\")].status}} {{.status.conditions[?(@.type==\"{type_}\")].reason}}: {{.status.conditions[?(@.type==\"{type_}\")].message}}"
            ),
        ],
    )
}

#[test]
fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let cp = start("namespace");
    let timeout = Duration::from_secs(40);
    // Everything inside goes, and `kubectl delete namespace` returns once it is gone.
    cp.kubectl_ok(&["create", "namespace", "short"]).unwrap();
    cp.kubectl_ok(&["create", "configmap", "x", "-n", "short"])
        .unwrap();
    cp.kubectl_ok(&["create", "deployment", "d", "--image=nginx", "-n", "short"])
        .unwrap();
    cp.kubectl_ok(&["delete", "namespace", "short", "--timeout=40s"])
        .unwrap();
    assert!(!exists(&cp, "namespace", "short"));

    // Content held by a finalizer keeps the namespace, and the conditions say why.
    cp.kubectl_ok(&["create", "namespace", "doomed"]).unwrap();
    cp.apply(NAMESPACE_CONTENT).unwrap();
    cp.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"])
        .unwrap();
    let finalizers = wait_for(&cp, timeout, "finalizers-remaining condition", || {
        condition(&cp, "doomed", "NamespaceFinalizersRemaining").filter(|c| c.starts_with("True"))
    });
    assert_eq!(
        finalizers,
        "True SomeFinalizersRemain: Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    let remaining = condition(&cp, "doomed", "NamespaceContentRemaining").unwrap();
    assert_eq!(
        remaining,
        "True SomeResourcesRemain: Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        condition(&cp, "doomed", "NamespaceDeletionDiscoveryFailure").unwrap(),
        "False ResourcesDiscovered: All resources successfully discovered"
    );
    let left = cp
        .kubectl_ok(&[
            "get",
            "pods,deployments,configmaps",
            "-n",
            "doomed",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(left.trim(), "configmap/held");
    cp.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .unwrap();
    wait_for(&cp, timeout, "namespace gone", || {
        (!exists(&cp, "namespace", "doomed")).then_some(())
    });
}

const QUOTA: &str = "apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: team-q
spec:
  hard:
    pods: \"5\"
    requests.cpu: \"2\"
    limits.memory: 1Gi
    configmaps: \"10\"
    count/deployments.apps: \"3\"
    services: \"4\"
";

fn quota_pod(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: team-q
spec:
  containers:
  - name: c
    image: nginx
    resources:
      requests:
        cpu: {cpu}
      limits:
        cpu: {cpu}
        memory: 128Mi
"
    )
}

fn used(cp: &ControlPlane, resource: &str) -> Option<String> {
    kubectl_out(
        cp,
        &[
            "get",
            "quota",
            "compute",
            "-n",
            "team-q",
            "-o",
            &format!(
                "jsonpath={{.status.used['{}']}}",
                resource.replace('.', "\\.")
            ),
        ],
    )
}

#[test]
fn quota_usage_is_recounted_after_changes() {
    let cp = start("resourcequota");
    let timeout = Duration::from_secs(30);
    cp.kubectl_ok(&["create", "namespace", "team-q"]).unwrap();
    cp.kubectl_ok(&["create", "configmap", "before", "-n", "team-q"])
        .unwrap();
    cp.apply(QUOTA).unwrap();
    cp.apply(&quota_pod("a", "500m")).unwrap();
    cp.apply(&quota_pod("b", "250m")).unwrap();
    cp.kubectl_ok(&["create", "deployment", "d", "--image=nginx", "-n", "team-q"])
        .unwrap();
    wait_for(&cp, timeout, "usage counted", || {
        (used(&cp, "pods")? == "2"
            && used(&cp, "requests.cpu")? == "750m"
            && used(&cp, "count/deployments.apps")? == "1"
            && used(&cp, "configmaps")? == "1")
            .then_some(())
    });
    assert_eq!(used(&cp, "limits.memory").unwrap(), "256Mi");
    assert_eq!(used(&cp, "services").unwrap(), "0");
    let described = cp
        .kubectl_ok(&["describe", "quota", "compute", "-n", "team-q"])
        .unwrap();
    let row = |name: &str| {
        described
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(row("pods"), vec!["pods", "2", "5"], "{described}");
    assert_eq!(row("requests.cpu"), vec!["requests.cpu", "750m", "2"]);
    // Deletions give usage back.
    cp.kubectl_ok(&["delete", "pod", "a", "-n", "team-q"])
        .unwrap();
    cp.kubectl_ok(&["delete", "configmap", "before", "-n", "team-q"])
        .unwrap();
    wait_for(&cp, timeout, "usage given back", || {
        (used(&cp, "pods")? == "1"
            && used(&cp, "requests.cpu")? == "250m"
            && used(&cp, "configmaps")? == "0")
            .then_some(())
    });
}

fn pdb_status(cp: &ControlPlane, name: &str) -> Option<String> {
    kubectl_out(
        cp,
        &[
            "get",
            "pdb",
            name,
            "-o",
            "jsonpath={.status.expectedPods} {.status.desiredHealthy} {.status.currentHealthy} {.status.disruptionsAllowed} {.status.conditions[0].reason} {.status.observedGeneration}",
        ],
    )
}

/// POST an Eviction for `pod` (as `kubectl drain` does); the refusal's message on
/// failure.
fn evict(cp: &ControlPlane, pod: &str) -> Result<(), String> {
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}},"deleteOptions":{{"gracePeriodSeconds":0}}}}"#
    );
    let out = cp
        .kubectl_stdin(
            &[
                "create",
                "--raw",
                &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
                "-f",
                "-",
            ],
            &body,
        )
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn refused(result: Result<(), String>) -> bool {
    result.is_err_and(|e| {
        e.contains("TooManyRequests") || e.contains("violate the pod's disruption budget")
    })
}

#[test]
fn disruption_budgets_track_healthy_pods_and_guard_evictions() {
    let cp = start("disruption");
    let timeout = Duration::from_secs(30);
    cp.apply(
        "apiVersion: v1
kind: Node
metadata:
  name: node-1
",
    )
    .unwrap();
    cp.apply(&replicaset("web").replace("replicas: 0", "replicas: 3"))
        .unwrap();
    let owner = uid(&cp, "rs", "web");
    for i in 0..3 {
        let name = format!("web-{i}");
        cp.apply(
            &owned_pod(&name, "ReplicaSet", "web", &owner)
                .replace("spec:\n", "spec:\n  nodeName: node-1\n"),
        )
        .unwrap();
        cp.kubectl_ok(&[
            "patch",
            "pod",
            &name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","podIP":"10.0.0.9","conditions":[{"type":"Ready","status":"True"}]}}"#,
        ])
        .unwrap();
    }
    cp.apply(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 3
  selector:
    matchLabels:
      app: web
",
    )
    .unwrap();
    let status = wait_for(&cp, timeout, "budget status", || {
        pdb_status(&cp, "web").filter(|s| s.starts_with('3'))
    });
    assert_eq!(status, "3 3 3 0 InsufficientPods 1");
    // Nothing may be disrupted: eviction is refused, and drain gives up.
    assert!(refused(evict(&cp, "web-0")));
    // kubectl drain retries refused evictions until its timeout; it is stopped once it
    // has reported the refusal.
    let mut drain = cp
        .kubectl_cmd(&["drain", "node-1", "--timeout=5s", "--grace-period=0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    while drain.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = drain.kill();
    let out = drain.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{stderr}"
    );

    // maxUnavailable as a percentage of the ReplicaSet's scale: 33% of 3 rounds up to 1.
    cp.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":null,"maxUnavailable":"33%"}}"#,
    ])
    .unwrap();
    let status = wait_for(&cp, timeout, "budget allowing one disruption", || {
        pdb_status(&cp, "web").filter(|s| s.ends_with(" 2"))
    });
    assert_eq!(status, "3 2 3 1 SufficientPods 2");
    assert_eq!(evict(&cp, "web-1"), Ok(()));
    let status = wait_for(&cp, timeout, "budget after one eviction", || {
        pdb_status(&cp, "web").filter(|s| s.starts_with("3 2 2"))
    });
    assert_eq!(status, "3 2 2 0 InsufficientPods 2");
    assert!(refused(evict(&cp, "web-2")));
}
