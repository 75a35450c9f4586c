//! The daemonset controller on hollow nodes placed by our scheduler: a pod on every
//! node, on a labelled subset that follows `kubectl label node`, and a rolling update
//! through `kubectl set image` and `kubectl rollout status`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration::ControlPlane;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

fn have_cluster_binaries() -> bool {
    ["hollow-node", "kube-scheduler"]
        .iter()
        .all(|b| integration::binary(b).exists())
}

fn daemonset(name: &str, selector: Option<(&str, &str)>) -> String {
    let node_selector = selector
        .map(|(k, v)| format!(r#","nodeSelector":{{"{k}":"{v}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{{"name":"{name}"}},
        "spec":{{"selector":{{"matchLabels":{{"app":"{name}"}}}},
        "template":{{"metadata":{{"labels":{{"app":"{name}"}}}},
        "spec":{{"containers":[{{"name":"agent","image":"fluentd:v1"}}]{node_selector}}}}}}}}}"#
    )
}

/// The nodes `app`'s live pods run on (node → count), once that equals `want`.
async fn until_on_nodes(
    cp: &ControlPlane,
    pods: &Api<Pod>,
    app: &str,
    want: &[&str],
    timeout: Duration,
) {
    let want: BTreeMap<String, usize> = want.iter().map(|n| (n.to_string(), 1)).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut on: BTreeMap<String, usize> = BTreeMap::new();
        for p in pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
        {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let node = p
                .spec
                .and_then(|s| s.node_name)
                .unwrap_or_else(|| "<unscheduled>".into());
            *on.entry(node).or_default() += 1;
        }
        if on == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{app} pods on {on:?}, want {want:?}\nscheduler log:\n{}",
            cp.component_log("kube-scheduler")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn daemons_on_every_node_and_on_labelled_nodes() {
    if !have_cluster_binaries() {
        eprintln!("hollow-node or kube-scheduler not built: skipping");
        return;
    }
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=daemonset",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    cp.start_component("kube-scheduler", &["--leader-elect=false"])
        .unwrap();
    cp.start_component("hollow-node", &["--nodes=3"]).unwrap();
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let all = ["hollow-node-0", "hollow-node-1", "hollow-node-2"];

    cp.kubectl_stdin(&["apply", "-f", "-"], &daemonset("logs", None))
        .unwrap();
    until_on_nodes(&cp, &pods, "logs", &all, Duration::from_secs(40)).await;
    let out = cp
        .kubectl_ok(&["rollout", "status", "ds/logs", "--timeout=40s"])
        .unwrap();
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        cp.jsonpath(&["get", "ds", "logs"],
            "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.numberReady} {.status.numberAvailable} {.status.updatedNumberScheduled} {.status.numberMisscheduled}").unwrap(),
        "3 3 3 3 3 0"
    );
    // Daemon pods carry upstream's tolerations and their node pin.
    let pod = pods
        .list(&ListParams::default().labels("app=logs"))
        .await
        .unwrap()
        .items
        .remove(0);
    let spec = pod.spec.unwrap();
    let keys: Vec<String> = spec
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    for k in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(keys.iter().any(|x| x == k), "{keys:?}");
    }
    let pinned = spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms[0]
        .match_fields
        .clone()
        .unwrap()[0]
        .values
        .clone()
        .unwrap();
    assert_eq!(pinned, vec![spec.node_name.unwrap()]);

    // A subset chosen by label follows `kubectl label node`.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &daemonset("ssd", Some(("disk", "ssd"))),
    )
    .unwrap();
    cp.kubectl_ok(&["label", "node", "hollow-node-1", "disk=ssd"])
        .unwrap();
    until_on_nodes(
        &cp,
        &pods,
        "ssd",
        &["hollow-node-1"],
        Duration::from_secs(30),
    )
    .await;
    cp.kubectl_ok(&["label", "node", "hollow-node-2", "disk=ssd"])
        .unwrap();
    until_on_nodes(
        &cp,
        &pods,
        "ssd",
        &["hollow-node-1", "hollow-node-2"],
        Duration::from_secs(30),
    )
    .await;
    cp.kubectl_ok(&["label", "node", "hollow-node-1", "disk-"])
        .unwrap();
    until_on_nodes(
        &cp,
        &pods,
        "ssd",
        &["hollow-node-2"],
        Duration::from_secs(30),
    )
    .await;

    // A rolling update replaces every pod.
    cp.kubectl_ok(&["set", "image", "ds/logs", "agent=fluentd:v2"])
        .unwrap();
    let out = cp
        .kubectl_ok(&["rollout", "status", "ds/logs", "--timeout=45s"])
        .unwrap();
    assert!(out.contains("successfully rolled out"), "{out}");
    until_on_nodes(&cp, &pods, "logs", &all, Duration::from_secs(30)).await;
    let images = cp
        .jsonpath(
            &["get", "pods", "-l", "app=logs"],
            "{.items[*].spec.containers[0].image}",
        )
        .unwrap();
    assert_eq!(images, "fluentd:v2 fluentd:v2 fluentd:v2");
}
