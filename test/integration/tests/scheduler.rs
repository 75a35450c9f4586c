//! kube-scheduler against a real control plane: Node objects created through the API
//! with their capacity, pods created with the real kubectl, and the placements,
//! conditions and events read back as a user would.

use std::time::{Duration, Instant};

use integration::ControlPlane;

fn node_yaml(name: &str, cpu: &str, labels: &[(&str, &str)], taints: &str) -> String {
    let mut l = format!("    kubernetes.io/hostname: {name}\n");
    for (k, v) in labels {
        l.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
{l}spec:
{taints}
status:
  capacity: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}
  allocatable: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}
  conditions:
  - {{type: Ready, status: \"True\", reason: KubeletReady, message: ready}}
"
    )
}

fn pod_yaml(name: &str, cpu: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    name: {name}
spec:
{extra}
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    resources:
      requests:
        cpu: {cpu}
"
    )
}

fn get(cp: &ControlPlane, what: &[&str], path: &str) -> String {
    let expr = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", &expr]);
    cp.kubectl(&args)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Poll until `check` gives `Some`, or panic with the scheduler's log after `timeout`.
fn wait_for<T>(
    cp: &ControlPlane,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\nscheduler log:\n{}",
                cp.component_log("kube-scheduler")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn node_of(cp: &ControlPlane, pod: &str) -> String {
    wait_for(
        cp,
        &format!("{pod} to be bound"),
        Duration::from_secs(20),
        || Some(get(cp, &["pod", pod], "{.spec.nodeName}")).filter(|n| !n.is_empty()),
    )
}

fn pending_message(cp: &ControlPlane, pod: &str) -> String {
    wait_for(
        cp,
        &format!("{pod} to be unschedulable"),
        Duration::from_secs(20),
        || {
            let reason = get(
                cp,
                &["pod", pod],
                "{.status.conditions[?(@.type==\"PodScheduled\")].reason}",
            );
            (reason == "Unschedulable").then(|| {
                get(
                    cp,
                    &["pod", pod],
                    "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
                )
            })
        },
    )
}

fn three_nodes(cp: &ControlPlane) {
    cp.apply(&node_yaml("n1", "2", &[("zone", "a"), ("disk", "ssd")], ""))
        .unwrap();
    cp.apply(&node_yaml("n2", "2", &[("zone", "b")], ""))
        .unwrap();
    cp.apply(&node_yaml(
        "n3",
        "4",
        &[("zone", "b")],
        "  taints:\n  - {key: dedicated, value: gpu, effect: NoSchedule}",
    ))
    .unwrap();
}

#[test]
fn places_pods_by_resources_taints_affinity_and_reports_why_not() {
    let mut cp = ControlPlane::start().unwrap();
    three_nodes(&cp);
    cp.start_component(
        "kube-scheduler",
        &["--leader-elect=false", "--secure-port=0"],
    )
    .unwrap();

    cp.apply(&pod_yaml("ssd", "100m", "  nodeSelector: {disk: ssd}"))
        .unwrap();
    assert_eq!(node_of(&cp, "ssd"), "n1");

    // Tolerating the taint and requiring zone b with a preference for the big node.
    cp.apply(&pod_yaml(
        "gpu",
        "3",
        "  tolerations:
  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: zone, operator: In, values: [b]}",
    ))
    .unwrap();
    assert_eq!(node_of(&cp, "gpu"), "n3");

    // Too big for n1/n2, and n3 is tainted: pending with upstream's message.
    cp.apply(&pod_yaml("big", "3", "")).unwrap();
    let message = pending_message(&cp, "big");
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    let described = cp.kubectl_ok(&["describe", "pod", "big"]).unwrap();
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains("2 Insufficient cpu"), "{described}");
    let events = cp
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=reason=Scheduled",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .unwrap();
    assert!(
        events.contains("Successfully assigned default/ssd to n1"),
        "{events}"
    );

    // A new node that fits moves the pod out of the unschedulable pool.
    cp.apply(&node_yaml("n4", "8", &[("zone", "c")], ""))
        .unwrap();
    assert_eq!(node_of(&cp, "big"), "n4");

    // Required anti-affinity on the hostname: one per untainted node, the rest wait.
    for i in 0..3 {
        cp.apply(&format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: web-{i}
  labels: {{app: web}}
spec:
  nodeSelector: {{zone: a}}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {{matchLabels: {{app: web}}}}
        topologyKey: kubernetes.io/hostname
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
"
        ))
        .unwrap();
    }
    let placed = wait_for(&cp, "one web pod placed", Duration::from_secs(20), || {
        let nodes = get(&cp, &["pods", "-l", "app=web"], "{.items[*].spec.nodeName}");
        (nodes.split_whitespace().count() == 1).then_some(nodes)
    });
    assert_eq!(placed, "n1");
    let waiting = wait_for(&cp, "two web pods pending", Duration::from_secs(20), || {
        let msgs: Vec<String> = (0..3)
            .map(|i| {
                get(
                    &cp,
                    &["pod", &format!("web-{i}")],
                    "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
                )
            })
            .filter(|m| !m.is_empty())
            .collect();
        (msgs.len() == 2).then_some(msgs)
    });
    // Filters run in upstream's order: the taint rejects n3 before node affinity would.
    assert_eq!(
        waiting[0],
        "0/4 nodes are available: 1 node(s) didn't match pod anti-affinity rules, 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."
    );

    // Topology spread over zones a and b (n3 is tainted, n4 has zone c but is excluded
    // by the node affinity): DoNotSchedule keeps the skew at most 1.
    for i in 0..4 {
        cp.apply(&format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: spread-{i}
  labels: {{app: spread}}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {{key: zone, operator: In, values: [a, b]}}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {{matchLabels: {{app: spread}}}}
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
"
        ))
        .unwrap();
    }
    let spread = wait_for(&cp, "spread pods placed", Duration::from_secs(20), || {
        let nodes = get(
            &cp,
            &["pods", "-l", "app=spread"],
            "{.items[*].spec.nodeName}",
        );
        (nodes.split_whitespace().count() == 4).then_some(nodes)
    });
    let in_a = spread.split_whitespace().filter(|n| *n == "n1").count();
    assert_eq!(in_a, 2, "{spread}");
}

#[test]
fn preemption_profiles_and_leader_election() {
    let mut cp = ControlPlane::start().unwrap();
    cp.apply(&node_yaml("only", "2", &[], "")).unwrap();
    cp.apply(
        "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
value: 1000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-never
value: 1000
preemptionPolicy: Never
",
    )
    .unwrap();
    let config = cp.dir.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
profiles:
- schedulerName: default-scheduler
- schedulerName: second-profile
",
    )
    .unwrap();
    let config_flag = format!("--config={}", config.display());
    // Two replicas: only the lease holder schedules.
    cp.start_component("kube-scheduler", &[&config_flag, "--secure-port=0"])
        .unwrap();
    cp.start_component("kube-scheduler", &[&config_flag, "--secure-port=0"])
        .unwrap();

    cp.apply(&pod_yaml("low", "1500m", "")).unwrap();
    assert_eq!(node_of(&cp, "low"), "only");
    let holder = wait_for(&cp, "the lease", Duration::from_secs(20), || {
        Some(get(
            &cp,
            &["lease", "-n", "kube-system", "kube-scheduler"],
            "{.spec.holderIdentity}",
        ))
        .filter(|h| !h.is_empty())
    });
    let log = cp.component_log("kube-scheduler");
    assert_eq!(
        log.matches("acquired the lease").count(),
        1,
        "{holder}\n{log}"
    );

    // preemptionPolicy: Never waits without evicting anyone.
    cp.apply(&pod_yaml(
        "polite",
        "1500m",
        "  priorityClassName: high-never",
    ))
    .unwrap();
    let message = pending_message(&cp, "polite");
    assert_eq!(
        message,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );

    // A higher-priority pod evicts the low one, is nominated, then bound.
    cp.apply(&pod_yaml("urgent", "1500m", "  priorityClassName: high"))
        .unwrap();
    wait_for(
        &cp,
        "the low-priority pod to be preempted",
        Duration::from_secs(20),
        || {
            Some(())
                .filter(|_| !get(&cp, &["pod", "low"], "{.metadata.deletionTimestamp}").is_empty())
        },
    );
    assert_eq!(
        get(&cp, &["pod", "urgent"], "{.status.nominatedNodeName}"),
        "only"
    );
    // No kubelet here: finish the graceful deletion as the node's kubelet would.
    cp.kubectl_ok(&["delete", "pod", "low", "--grace-period=0", "--force"])
        .unwrap();
    assert_eq!(node_of(&cp, "urgent"), "only");
    let preempted = cp
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=reason=Preempted",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .unwrap();
    assert!(preempted.contains("Preempted by pod"), "{preempted}");
    assert_eq!(get(&cp, &["pod", "polite"], "{.spec.nodeName}"), "");

    // The second profile schedules its pods; an unknown scheduler name is left alone.
    cp.apply(&pod_yaml(
        "second",
        "100m",
        "  schedulerName: second-profile\n  priorityClassName: high",
    ))
    .unwrap();
    assert_eq!(node_of(&cp, "second"), "only");
    let events = wait_for(
        &cp,
        "the second profile's event",
        Duration::from_secs(20),
        || {
            let e = get(
                &cp,
                &["events", "--field-selector=involvedObject.name=second"],
                "{.items[*].reportingComponent}",
            );
            (!e.is_empty()).then_some(e)
        },
    );
    assert_eq!(events, "second-profile");
    cp.apply(&pod_yaml(
        "foreign",
        "100m",
        "  schedulerName: someone-else",
    ))
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(&cp, &["pod", "foreign"], "{.status.conditions}"), "");
    assert_eq!(get(&cp, &["pod", "foreign"], "{.spec.nodeName}"), "");
}
