//! The kubelet end to end: our control plane + a private containerd (the fixture) + our
//! kubelet with a private root dir, log dir, cgroup root, ports and manifest directory.
//! Pods are bound by setting spec.nodeName (no scheduler needed). Needs root.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cri::api;
use integration::free_port;
use integration::node::{http_get_path, tail, TestNode};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn condition(p: &Pod, t: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
}

fn container_status(p: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name).cloned())
        .unwrap_or_default()
}

fn terminated_message(p: &Pod, name: &str) -> String {
    container_status(p, name)
        .state
        .and_then(|s| s.terminated)
        .and_then(|t| t.message)
        .unwrap_or_default()
}

#[tokio::test]
async fn node_registers_ready_with_lease() {
    let node = TestNode::start().await;
    let nodes: Api<Node> = Api::all(node.client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let n = loop {
        if let Ok(n) = nodes.get(&node.name).await {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready").cloned());
            if ready.as_ref().is_some_and(|r| r.status == "True") {
                assert_eq!(ready.unwrap().reason.as_deref(), Some("KubeletReady"));
                break n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            tail(&node.cp.component_log("kubelet"))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let labels = n.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], node.name);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["beta.kubernetes.io/arch"], "amd64");
    let status = n.status.clone().unwrap();
    let capacity = status.capacity.unwrap();
    for r in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(capacity.contains_key(r), "capacity lacks {r}");
    }
    assert_eq!(capacity["pods"].0, "110");
    let info = status.node_info.unwrap();
    // As the runtime reports it (Debian's containerd says "1.6.20~ds1").
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1.6.20"),
        "{}",
        info.container_runtime_version
    );
    assert_eq!(info.kubelet_version, "v1.33.0");
    assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
    let images = status.images.clone().unwrap_or_default();
    assert!(
        images.iter().any(|i| i
            .names
            .iter()
            .flatten()
            .any(|n| n == "docker.io/library/busybox:1.35")),
        "{images:?}"
    );
    let addresses = status.addresses.unwrap();
    assert!(addresses
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
    assert!(status
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "MemoryPressure"
            && c.reason.as_deref() == Some("KubeletHasSufficientMemory")));
    assert_eq!(
        n.spec.unwrap().pod_cidr.as_deref(),
        Some(node.ctrd.subnet().as_str())
    );

    let healthz = http_get_path(&format!("127.0.0.1:{}", node.healthz_port), "/healthz").await;
    assert!(
        healthz
            .as_deref()
            .is_some_and(|r| r.contains(" 200 OK") && r.ends_with("\r\n\r\nok")),
        "{healthz:?}"
    );

    let leases: Api<Lease> = Api::namespaced(node.client.clone(), "kube-node-lease");
    let deadline = Instant::now() + Duration::from_secs(20);
    let lease = loop {
        if let Ok(l) = leases.get(&node.name).await {
            if l.metadata.owner_references.is_some() {
                break l;
            }
        }
        assert!(Instant::now() < deadline, "no lease");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(node.name.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", node.name.as_str())
    );
    assert_eq!(Some(owner.uid.clone()), n.metadata.uid);
}

#[tokio::test]
async fn static_pod_runs_and_is_mirrored() {
    let node = TestNode::start().await;
    std::fs::write(
        node.manifest("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: web\n    image: busybox:1.35\n    imagePullPolicy: IfNotPresent\n    \
         command: [sleep, \"3600\"]\n",
    )
    .unwrap();
    let name = format!("web-{}", node.name);
    let running = |p: &Pod| phase(p) == "Running" && condition(p, "Ready");
    let mirror = node.wait_pod(&name, Duration::from_secs(40), running).await;
    let annotations = mirror.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    assert_eq!(
        annotations["kubernetes.io/config.mirror"],
        annotations["kubernetes.io/config.hash"]
    );
    let owner = &mirror.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", node.name.as_str())
    );
    let static_uid = annotations["kubernetes.io/config.hash"].clone();
    assert_eq!(node.containers_of(&static_uid).await.len(), 1);

    // Deleting the mirror does not stop the static pod; the kubelet recreates the mirror.
    node.pods()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let old_uid = mirror.metadata.uid.clone();
    let recreated = node
        .wait_pod(&name, Duration::from_secs(30), |p| {
            p.metadata.uid != old_uid && p.metadata.deletion_timestamp.is_none() && running(p)
        })
        .await;
    let containers = node.containers_of(&static_uid).await;
    assert_eq!(containers.len(), 1, "the static pod kept running");
    assert_eq!(
        containers[0].state,
        api::ContainerState::ContainerRunning as i32
    );
    assert!(recreated
        .metadata
        .annotations
        .unwrap()
        .contains_key("kubernetes.io/config.mirror"));

    // Removing the manifest removes the pod and its mirror.
    std::fs::remove_file(node.manifest("web.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.pods().get_opt(&name).await.unwrap().is_some()
        || !node.containers_of(&static_uid).await.is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            tail(&node.cp.component_log("kubelet"))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn httpd_pod_answers_on_its_ip_and_sees_its_env() {
    let node = TestNode::start().await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(node.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "settings"},
            "data": {"greeting": "hello", "color": "blue"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "httpd", "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "httpd", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www && env > /www/env && echo $(GREETING) from $(POD_NAME) > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "ports": [{"containerPort": 8080}],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": true}}},
                {"name": "COMPOSED", "value": "$(APP)-$(NODE)"}
            ],
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}
        }]}
    }))
    .await;
    let pod = node
        .wait_pod("httpd", Duration::from_secs(40), |p| {
            phase(p) == "Running" && condition(p, "Ready")
        })
        .await;
    let status = pod.status.clone().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    let cs = container_status(&pod, "httpd");
    assert!(cs.ready && cs.started == Some(true));
    assert!(cs.container_id.unwrap().starts_with("containerd://"));
    assert_eq!(cs.restart_count, 0);

    let get = |path: &'static str| {
        let url = format!("http://{ip}:8080{path}");
        async move {
            let out = tokio::process::Command::new("busybox")
                .args(["wget", "-q", "-O", "-", &url])
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = get("/").await;
        if !body.is_empty() || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body.trim(), "hello from httpd");
    let env: BTreeMap<String, String> = get("/env")
        .await
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(env["POD_NAME"], "httpd");
    assert_eq!(env["POD_NS"], "default");
    assert_eq!(env["APP"], "web");
    assert_eq!(env["NODE"], node.name);
    assert_eq!(env["POD_IP"], ip);
    assert_eq!(env["HOST_IP"], "127.0.0.1");
    assert_eq!(env["MEM"], "64");
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["CFG_color"], "blue");
    assert_eq!(env["COMPOSED"], format!("web-{}", node.name));
    assert!(!env.contains_key("MISSING"));
    assert!(env.contains_key("KUBERNETES_SERVICE_HOST"), "{env:?}");
    let events = node.events_for("httpd").await;
    for reason in ["Pulled", "Created", "Started"] {
        assert!(
            events.iter().any(|(r, _)| r == reason),
            "no {reason} event in {events:?}"
        );
    }
    assert!(events.iter().any(|(r, n)| r == "Pulled"
        && n == "Container image \"busybox:1.35\" already present on machine"));
}

#[tokio::test]
async fn init_containers_run_in_order() {
    let node = TestNode::start().await;
    let step = |n: &str| {
        json!({"name": n, "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", format!("echo {n} >> /work/order")],
               "volumeMounts": [{"name": "work", "mountPath": "/work"}]})
    };
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "init"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [step("first"), step("second")],
            "containers": [{"name": "main", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "cat /work/order > /dev/termination-log"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
        }
    }))
    .await;
    let pod = node
        .wait_pod("init", Duration::from_secs(40), |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(terminated_message(&pod, "main"), "first\nsecond\n");
    let inits = pod.status.clone().unwrap().init_container_statuses.unwrap();
    assert_eq!(inits.len(), 2);
    for s in &inits {
        let t = s.state.clone().unwrap().terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    }
    assert!(condition(&pod, "Initialized"));
    let ready = pod
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
}

#[tokio::test]
async fn restart_policies_and_crash_loop_back_off() {
    let node = TestNode::start().await;
    let pod = |name: &str, policy: &str, script: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"restartPolicy": policy, "containers": [{
                   "name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                   "command": ["sh", "-c", script]}]}})
    };
    node.create_pod(pod("crash", "Always", "exit 1")).await;
    node.create_pod(pod(
        "fail",
        "Never",
        "echo bye > /dev/termination-log; exit 3",
    ))
    .await;
    node.create_pod(pod("ok", "OnFailure", "exit 0")).await;

    let failed = node
        .wait_pod("fail", Duration::from_secs(40), |p| phase(p) == "Failed")
        .await;
    let t = container_status(&failed, "c")
        .state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(t.message.as_deref(), Some("bye\n"));
    node.wait_pod("ok", Duration::from_secs(30), |p| phase(p) == "Succeeded")
        .await;

    // Exit 1 under Always: restarted at once, then CrashLoopBackOff for 10 s.
    let crash = node
        .wait_pod("crash", Duration::from_secs(40), |p| {
            let s = container_status(p, "c");
            s.restart_count >= 1
                && s.state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
        })
        .await;
    assert_eq!(phase(&crash), "Running");
    let s = container_status(&crash, "c");
    let waiting = s.state.unwrap().waiting.unwrap();
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap_or("")
            .starts_with("back-off 10s restarting failed container=c pod=crash_default("),
        "{waiting:?}"
    );
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 1);
    let events = node.events_for("crash").await;
    assert!(
        events.iter().any(|(r, n)| r == "BackOff"
            && n.starts_with("Back-off restarting failed container c in pod crash_default(")),
        "{events:?}"
    );
    // After the back-off it runs again.
    let restarts = container_status(&crash, "c").restart_count;
    node.wait_pod("crash", Duration::from_secs(30), |p| {
        container_status(p, "c").restart_count > restarts
    })
    .await;
}

#[tokio::test]
async fn graceful_deletion_runs_pre_stop_and_removes_the_pod() {
    let node = TestNode::start().await;
    let host_dir = node.dir.path().join("prestop");
    std::fs::create_dir_all(&host_dir).unwrap();
    let created = node
        .create_pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
            "spec": {
                "terminationGracePeriodSeconds": 3,
                "volumes": [{"name": "host", "hostPath": {"path": host_dir.to_str().unwrap()}}],
                "containers": [{
                    "name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /host/prestop"]}}}
                }]
            }
        }))
        .await;
    node.wait_pod("graceful", Duration::from_secs(40), |p| {
        phase(p) == "Running"
    })
    .await;
    let uid = created.metadata.uid.clone().unwrap();
    assert_eq!(node.containers_of(&uid).await.len(), 1);
    let pod_cgroup = format!("{}/kubepods/besteffort/pod{uid}", node.cgroups.0);
    assert!(
        kubelet::cm::hierarchy_dirs(&pod_cgroup)
            .iter()
            .any(|d| d.exists()),
        "the pod runs under {pod_cgroup}"
    );
    let started = Instant::now();
    node.pods()
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.pods().get_opt("graceful").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{}",
            tail(&node.cp.component_log("kubelet"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // sleep ignores SIGTERM as PID 1: the kubelet waited the grace period, then killed it.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("prestop")).unwrap(),
        "stopping\n"
    );
    assert!(node.containers_of(&uid).await.is_empty());
    // Its logs, files and cgroup went with it.
    assert!(!node
        .dir
        .path()
        .join("logs")
        .join(format!("default_graceful_{uid}"))
        .exists());
    assert!(!node.dir.path().join("root/pods").join(&uid).exists());
    let cgroup = format!("{}/kubepods/besteffort/pod{uid}", node.cgroups.0);
    let left: Vec<_> = kubelet::cm::hierarchy_dirs(&cgroup)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let events = node.events_for("graceful").await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "Killing" && n == "Stopping container c"),
        "{events:?}"
    );
}

#[tokio::test]
async fn kubelet_restart_keeps_running_pods() {
    let mut node = TestNode::start().await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keep"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35",
            "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
    }))
    .await;
    let before = node
        .wait_pod("keep", Duration::from_secs(40), |p| condition(p, "Ready"))
        .await;
    let before_status = container_status(&before, "c");
    node.cp
        .stop_component("kubelet", Duration::from_secs(10))
        .unwrap();
    node.start_kubelet();
    // A pod created after the restart runs: the new kubelet is syncing.
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35",
            "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
    }))
    .await;
    node.wait_pod("after", Duration::from_secs(40), |p| condition(p, "Ready"))
        .await;
    let after = node.pods().get("keep").await.unwrap();
    let after_status = container_status(&after, "c");
    assert_eq!(after_status.container_id, before_status.container_id);
    assert_eq!(after_status.restart_count, 0);
    assert!(condition(&after, "Ready"));
    let uid = after.metadata.uid.unwrap();
    assert_eq!(node.containers_of(&uid).await.len(), 1);
}

/// A plain HTTP/1.0 GET of `/`; the whole response, or None when nothing answers.
async fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/").await
}

/// Runs `cmd` in the pod's container through the CRI (the test's stand-in for kubectl exec).
async fn exec(node: &TestNode, container_id: &str, cmd: &[&str]) {
    let out = exec_sync(node, container_id, cmd).await;
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
}

async fn exec_sync(node: &TestNode, container_id: &str, cmd: &[&str]) -> api::ExecSyncResponse {
    let id = container_id.trim_start_matches("containerd://").to_string();
    let out = node
        .ctrd
        .cri()
        .await
        .unwrap()
        .runtime
        .exec_sync(api::ExecSyncRequest {
            container_id: id,
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    out
}

#[tokio::test]
async fn probes_drive_readiness_and_restart_on_liveness_failure() {
    let node = TestNode::start().await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "touch /tmp/alive; exec sleep 3600"],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1,
                              "failureThreshold": 2}
        }]}
    }))
    .await;
    // Running but not ready until /tmp/ready exists.
    let pod = node
        .wait_pod("probed", Duration::from_secs(40), |p| {
            phase(p) == "Running" && container_status(p, "c").started == Some(true)
        })
        .await;
    assert!(!condition(&pod, "Ready"));
    let id = container_status(&pod, "c").container_id.unwrap();
    exec(&node, &id, &["touch", "/tmp/ready"]).await;
    node.wait_pod("probed", Duration::from_secs(20), |p| condition(p, "Ready"))
        .await;
    // Liveness fails: the container is killed and started again (restartCount 1).
    exec(&node, &id, &["rm", "/tmp/alive"]).await;
    let restarted = node
        .wait_pod("probed", Duration::from_secs(40), |p| {
            let s = container_status(p, "c");
            s.restart_count == 1 && s.state.as_ref().is_some_and(|st| st.running.is_some())
        })
        .await;
    assert_ne!(container_status(&restarted, "c").container_id.unwrap(), id);
    let events = node.events_for("probed").await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "Unhealthy" && n.starts_with("Liveness probe failed")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "Killing"
                && n == "Container c failed liveness probe, will be restarted"),
        "{events:?}"
    );
    // The new container has no /tmp/ready: not ready again.
    node.wait_pod("probed", Duration::from_secs(20), |p| {
        !condition(p, "Ready")
    })
    .await;
}

#[tokio::test]
async fn oom_killed_host_port_and_spec_change() {
    let node = TestNode::start().await;
    let host_port = free_port();
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "oom"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "tail /dev/zero"],
            "resources": {"limits": {"memory": "32Mi"}}
        }]}
    }))
    .await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www"],
            "ports": [{"containerPort": 80, "hostPort": host_port}]
        }]}
    }))
    .await;
    let oom = node
        .wait_pod("oom", Duration::from_secs(40), |p| phase(p) == "Failed")
        .await;
    let t = container_status(&oom, "c")
        .state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
    assert_eq!(t.exit_code, 137);

    let web = node
        .wait_pod("web", Duration::from_secs(40), |p| condition(p, "Ready"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(&format!("127.0.0.1:{host_port}")).await;
        if body.as_deref().is_some_and(|b| b.ends_with("\r\n\r\nhi\n")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hostPort {host_port} does not answer: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Changing the image changes the container's hash: the kubelet replaces it.
    let before = container_status(&web, "c").container_id;
    let patch = json!({"spec": {"containers": [{"name": "c", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent"}]}});
    node.pods()
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    let after = node
        .wait_pod("web", Duration::from_secs(30), |p| {
            let s = container_status(p, "c");
            s.container_id != before && s.restart_count == 1 && condition(p, "Ready")
        })
        .await;
    assert_eq!(container_status(&after, "c").image, "busybox:latest");
    let events = node.events_for("web").await;
    assert!(
        events.iter().any(
            |(r, n)| r == "Killing" && n == "Container c definition changed, will be restarted"
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn changed_static_pod_manifest_replaces_the_pod() {
    let node = TestNode::start().await;
    let manifest = |cmd: &str| {
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"s\",\"namespace\":\"default\"}},\
             \"spec\":{{\"terminationGracePeriodSeconds\":1,\"containers\":[{{\"name\":\"c\",\"image\":\"busybox:1.35\",\
             \"imagePullPolicy\":\"IfNotPresent\",\"command\":[\"sh\",\"-c\",\"{cmd}\"]}}]}}}}"
        )
    };
    std::fs::write(node.manifest("s.json"), manifest("exec sleep 3600")).unwrap();
    let name = format!("s-{}", node.name);
    let first = node
        .wait_pod(&name, Duration::from_secs(40), |p| condition(p, "Ready"))
        .await;
    let first_hash =
        first.metadata.annotations.clone().unwrap()["kubernetes.io/config.mirror"].clone();
    std::fs::write(node.manifest("s.json"), manifest("exec sleep 3601")).unwrap();
    let second = node
        .wait_pod(&name, Duration::from_secs(40), |p| {
            p.metadata.annotations.as_ref().unwrap()["kubernetes.io/config.mirror"] != first_hash
                && condition(p, "Ready")
        })
        .await;
    let second_hash = second.metadata.annotations.unwrap()["kubernetes.io/config.mirror"].clone();
    // The old static pod's containers are gone; the new one runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !node.containers_of(&first_hash).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "old static pod still has containers"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(node.containers_of(&second_hash).await.len(), 1);
}

async fn exec_output(node: &TestNode, container_id: &str, cmd: &[&str]) -> String {
    String::from_utf8_lossy(&exec_sync(node, container_id, cmd).await.stdout).into_owned()
}

#[tokio::test]
async fn volumes_update_live_and_size_limit_evicts() {
    let node = TestNode::start().await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(node.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "conf"}, "data": {"key": "one"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols"},
        "spec": {"terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "conf", "configMap": {"name": "conf"}}, {"name": "shared", "emptyDir": {}}],
            "containers": [
                {"name": "writer", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "echo from-writer > /shared/file; exec sleep 3600"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "reader", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}, {"name": "conf", "mountPath": "/etc/conf"}]}
            ]}
    }))
    .await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
        "spec": {"terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
            "containers": [{"name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "dd if=/dev/zero of=/scratch/big bs=1024 count=4096; exec sleep 3600"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]}
    }))
    .await;
    let pod = node
        .wait_pod("vols", Duration::from_secs(40), |p| condition(p, "Ready"))
        .await;
    let reader = container_status(&pod, "reader").container_id.unwrap();
    assert_eq!(
        exec_output(&node, &reader, &["cat", "/etc/conf/key"]).await,
        "one"
    );
    assert_eq!(
        exec_output(&node, &reader, &["cat", "/shared/file"]).await,
        "from-writer\n"
    );
    cms.patch(
        "conf",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"key": "two"}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while exec_output(&node, &reader, &["cat", "/etc/conf/key"]).await != "two" {
        assert!(Instant::now() < deadline, "configMap volume not updated");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Over its sizeLimit: evicted (the usage check runs every 10 s).
    let hog = node
        .wait_pod("hog", Duration::from_secs(40), |p| phase(p) == "Failed")
        .await;
    let status = hog.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    let uid = hog.metadata.uid.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while node
        .containers_of(&uid)
        .await
        .iter()
        .any(|c| c.state == api::ContainerState::ContainerRunning as i32)
    {
        assert!(Instant::now() < deadline, "evicted pod still running");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn security_context_is_applied() {
    let node = TestNode::start().await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "secure"},
        "spec": {"restartPolicy": "Never",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
            "containers": [{"name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo $(id -u):$(id -g) > /dev/termination-log; touch /x 2>/dev/null && echo rw >> /dev/termination-log || echo ro >> /dev/termination-log"],
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}}]}
    }))
    .await;
    node.create_pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rootless"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"], "securityContext": {"runAsNonRoot": true}}]}
    }))
    .await;
    let pod = node
        .wait_pod("secure", Duration::from_secs(40), |p| {
            phase(p) == "Succeeded"
        })
        .await;
    assert_eq!(terminated_message(&pod, "c"), "1000:3000\nro\n");
    let rootless = node
        .wait_pod("rootless", Duration::from_secs(40), |p| {
            container_status(p, "c")
                .state
                .and_then(|s| s.waiting)
                .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        })
        .await;
    let waiting = container_status(&rootless, "c")
        .state
        .unwrap()
        .waiting
        .unwrap();
    assert!(waiting.message.unwrap().starts_with(
        "container has runAsNonRoot and image will run as root (pod: \"rootless_default("
    ),);
    assert_eq!(phase(&rootless), "Pending");
}
