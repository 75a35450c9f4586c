//! Workloads on a real node: controllers and the scheduler place Deployment pods on our
//! kubelet, which runs them on containerd; the pods answer on their IPs. Needs root.

use std::time::{Duration, Instant};

use integration::node::{http_get_path, tail, TestNode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// Starts the workload controllers and the scheduler against the node's control plane.
fn start_control_loops(node: &mut TestNode) {
    node.cp
        .start_component(
            "kube-controller-manager",
            &[
                "--controllers=replicaset,deployment,serviceaccount",
                "--leader-elect=false",
            ],
        )
        .unwrap();
    node.cp
        .start_component(
            "kube-scheduler",
            &["--leader-elect=false", "--secure-port=0"],
        )
        .unwrap();
}

fn rollout_status(node: &TestNode, deployment: &str) {
    if let Err(e) = node
        .cp
        .kubectl_ok(&["rollout", "status", deployment, "--timeout=90s"])
    {
        panic!(
            "{e}\n--- kube-controller-manager ---\n{}\n--- kubelet ---\n{}",
            tail(&node.cp.component_log("kube-controller-manager")),
            tail(&node.cp.component_log("kubelet"))
        );
    }
}

async fn running_pods(node: &TestNode, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), "default");
    pods.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect()
}

async fn wait_running(node: &TestNode, selector: &str, want: usize) -> Vec<Pod> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pods = running_pods(node, selector).await;
        if pods.len() == want {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {want} pods running\n--- kubelet ---\n{}\n--- scheduler ---\n{}",
            pods.len(),
            tail(&node.cp.component_log("kubelet")),
            tail(&node.cp.component_log("kube-scheduler"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One node for both workloads: each TestNode is a whole cluster, and two of them at once
/// next to the rest of the suite made rollouts time out on 2 cores.
#[tokio::test]
async fn deployments_on_a_real_node() {
    let mut node = TestNode::start().await;
    // Builds the archive the local registry serves (the first build downloads Debian's
    // nginx packages).
    node.ctrd.import_nginx().unwrap();
    start_control_loops(&mut node);
    httpd_pods_answer_on_pod_ips(&node).await;
    nginx_from_the_tutorial_serves_its_page(&node).await;
}

async fn httpd_pods_answer_on_pod_ips(node: &TestNode) {
    node.cp
        .apply(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox:1.35
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
"#,
        )
        .unwrap();
    rollout_status(node, "deployment/web");
    let pods = wait_running(node, "app=web", 3).await;
    for p in &pods {
        let name = p.metadata.name.clone().unwrap();
        let spec = p.spec.clone().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some(node.name.as_str()));
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
        let page = http_get_path(&format!("{ip}:8080"), "/").await;
        // The pod's hostname is its name, so each pod answers with its own name.
        assert!(
            page.as_deref().is_some_and(|r| r.contains(&name)),
            "{name} at {ip}: {page:?}"
        );
    }

    node.cp
        .kubectl_ok(&["scale", "deployment/web", "--replicas=1"])
        .unwrap();
    let left = wait_running(node, "app=web", 1).await;
    let gone: Vec<Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.uid != left[0].metadata.uid)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in gone {
        let uid = p.metadata.uid.clone().unwrap();
        while !node.containers_of(&uid).await.is_empty() {
            assert!(Instant::now() < deadline, "containers of {uid} remain");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The seed tutorial's first steps with the real image name: `nginx` (pull policy Always,
/// served by the fixture's local registry) answers with its welcome page.
async fn nginx_from_the_tutorial_serves_its_page(node: &TestNode) {
    node.cp
        .kubectl_ok(&[
            "create",
            "deployment",
            "nginx",
            "--image=nginx",
            "--replicas=2",
        ])
        .unwrap();
    rollout_status(node, "deployment/nginx");
    let wide = node
        .cp
        .kubectl_ok(&["get", "pods", "-l", "app=nginx", "-o", "wide"])
        .unwrap();
    assert!(
        wide.contains("Running") && wide.contains(&node.name),
        "{wide}"
    );
    for p in wait_running(node, "app=nginx", 2).await {
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
        let page = http_get_path(&format!("{ip}:80"), "/").await;
        assert!(
            page.as_deref()
                .is_some_and(|r| r.contains("Welcome to nginx!")),
            "{ip}: {page:?}"
        );
    }
}
