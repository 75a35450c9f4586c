//! Workload and cluster objects through the real kubectl, as the seed tutorials use them
//! (the controllers that act on them come with their own issue; here the API's part:
//! storage, defaults, validation, subresources, printing, admission).

use integration::ControlPlane;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deploy
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
        image: nginx:1.25.3
        ports:
        - containerPort: 80
";

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn header(table: &str) -> Vec<&str> {
    fields(table.lines().next().unwrap_or_default())
}

#[test]
fn deployments_scale_set_image_pause_and_autoscale() {
    let cp = ControlPlane::start().unwrap();
    let applied = cp.kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT).unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // Defaults as upstream.
    let strategy = cp.jsonpath(&["get", "deploy", "nginx-deploy"], "{.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.containers[0].imagePullPolicy} {.metadata.generation}").unwrap();
    assert_eq!(strategy, "25% 10 600 IfNotPresent 1");
    let table = cp
        .kubectl_ok(&["get", "deployments", "-o", "wide"])
        .unwrap();
    assert_eq!(
        header(&table),
        vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let row = fields(table.lines().nth(1).unwrap());
    assert_eq!(
        (row[0], row[1], row[5], row[6], row[7]),
        ("nginx-deploy", "0/3", "nginx", "nginx:1.25.3", "app=nginx")
    );

    // kubectl scale goes through the scale subresource.
    assert_eq!(
        cp.kubectl_ok(&["scale", "deployment", "nginx-deploy", "--replicas=5"])
            .unwrap()
            .trim(),
        "deployment.apps/nginx-deploy scaled"
    );
    let scale: serde_json::Value = serde_json::from_str(
        &cp.kubectl_ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/nginx-deploy/scale",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=nginx");
    // A precondition on the current replicas that does not hold is refused.
    let out = cp
        .kubectl(&[
            "scale",
            "deployment",
            "nginx-deploy",
            "--current-replicas=2",
            "--replicas=1",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        cp.jsonpath(&["get", "deploy", "nginx-deploy"], "{.spec.replicas}")
            .unwrap(),
        "5"
    );

    // set image and set resources change the template and bump the generation.
    cp.kubectl_ok(&[
        "set",
        "image",
        "deployment/nginx-deploy",
        "nginx=nginx:1.26",
    ])
    .unwrap();
    cp.kubectl_ok(&[
        "set",
        "resources",
        "deploy",
        "nginx-deploy",
        "-c",
        "nginx",
        "--limits=cpu=200m,memory=128Mi",
        "--requests=cpu=100m,memory=64Mi",
    ])
    .unwrap();
    let after = cp.jsonpath(&["get", "deploy", "nginx-deploy"], "{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].resources.limits.cpu} {.metadata.generation}").unwrap();
    assert_eq!(after, "nginx:1.26 200m 4");
    cp.kubectl_ok(&["rollout", "pause", "deployment/nginx-deploy"])
        .unwrap();
    assert_eq!(
        cp.jsonpath(&["get", "deploy", "nginx-deploy"], "{.spec.paused}")
            .unwrap(),
        "true"
    );
    cp.kubectl_ok(&["rollout", "resume", "deployment/nginx-deploy"])
        .unwrap();
    assert_eq!(
        cp.jsonpath(&["get", "deploy", "nginx-deploy"], "{.spec.paused}")
            .unwrap(),
        ""
    );

    // A selector that does not match the template is invalid, with upstream's message.
    let bad = DEPLOYMENT
        .replace("name: nginx-deploy", "name: broken")
        .replace(
            "      app: nginx\n  template",
            "      app: other\n  template",
        );
    let out = cp.kubectl_stdin(&["create", "-f", "-"], &bad).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );

    // kubectl autoscale makes an autoscaling/v2 HorizontalPodAutoscaler, also readable as v1.
    cp.kubectl_ok(&[
        "autoscale",
        "deployment",
        "nginx-deploy",
        "--cpu-percent=50",
        "--min=1",
        "--max=10",
    ])
    .unwrap();
    let hpa = cp.kubectl_ok(&["get", "hpa"]).unwrap();
    assert_eq!(
        header(&hpa),
        vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row = fields(hpa.lines().nth(1).unwrap());
    // TARGETS is "cpu: <unknown>/50%" until metrics exist.
    assert_eq!(
        (row[0], row[1], row[2], row[4], row[5]),
        ("nginx-deploy", "Deployment/nginx-deploy", "cpu:", "1", "10"),
        "{hpa}"
    );
    let v1 = cp
        .kubectl_ok(&[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/nginx-deploy",
        ])
        .unwrap();
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);

    let all = cp.kubectl_ok(&["get", "all"]).unwrap();
    assert!(
        all.contains("deployment.apps/nginx-deploy") && all.contains("service/kubernetes"),
        "{all}"
    );
}

#[test]
fn replication_controllers_statefulsets_jobs_and_cronjobs() {
    let cp = ControlPlane::start().unwrap();
    let rc = "apiVersion: v1
kind: ReplicationController
metadata:
  name: mysql
spec:
  replicas: 1
  selector:
    app: mysql
  template:
    metadata:
      labels:
        app: mysql
    spec:
      containers:
      - name: mysql
        image: mysql
";
    cp.kubectl_stdin(&["create", "-f", "-"], rc).unwrap();
    cp.kubectl_ok(&["scale", "rc", "mysql", "--replicas=2"])
        .unwrap();
    let table = cp.kubectl_ok(&["get", "rc", "-o", "wide"]).unwrap();
    assert_eq!(
        header(&table),
        vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(fields(table.lines().nth(1).unwrap())[1], "2");
    // Untagged images are pulled Always, as upstream defaults them.
    assert_eq!(
        cp.jsonpath(
            &["get", "rc", "mysql"],
            "{.spec.template.spec.containers[0].imagePullPolicy}"
        )
        .unwrap(),
        "Always"
    );

    let sts = DEPLOYMENT
        .replace("kind: Deployment", "kind: StatefulSet")
        .replace("name: nginx-deploy", "name: web")
        .replace("  replicas: 3\n", "  replicas: 2\n  serviceName: nginx\n");
    let out = cp.kubectl_stdin(&["create", "-f", "-"], &sts).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&["scale", "statefulset", "web", "--replicas=5"])
        .unwrap();
    cp.kubectl_ok(&[
        "patch",
        "statefulset",
        "web",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])
    .unwrap();
    assert_eq!(
        cp.jsonpath(
            &["get", "sts", "web"],
            "{.spec.replicas} {.spec.podManagementPolicy} {.spec.updateStrategy.type}"
        )
        .unwrap(),
        "3 OrderedReady RollingUpdate"
    );
    // serviceName is immutable.
    let out = cp
        .kubectl(&[
            "patch",
            "sts",
            "web",
            "-p",
            r#"{"spec":{"serviceName":"other"}}"#,
        ])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Forbidden: updates to statefulset spec for fields other than"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    cp.kubectl_ok(&[
        "create",
        "job",
        "pi",
        "--image=perl",
        "--",
        "perl",
        "-e",
        "print 1",
    ])
    .unwrap();
    let job = cp.jsonpath(&["get", "job", "pi"], "{.spec.backoffLimit} {.spec.completions} {.spec.template.spec.restartPolicy} {.spec.selector.matchLabels}").unwrap();
    assert!(
        job.starts_with("6 1 Never {\"batch.kubernetes.io/controller-uid\":"),
        "{job}"
    );
    cp.kubectl_ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ])
    .unwrap();
    let cron = cp.kubectl_ok(&["get", "cronjobs"]).unwrap();
    assert_eq!(
        fields(cron.lines().nth(1).unwrap())[..2].to_vec(),
        vec!["tick", "*/5"]
    );
    let out = cp
        .kubectl(&[
            "create",
            "cronjob",
            "bad",
            "--image=busybox",
            "--schedule=61 * * * *",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.schedule"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pods_limit_ranges_quotas_and_nodes() {
    let cp = ControlPlane::start().unwrap();
    cp.kubectl_ok(&["create", "namespace", "default-cpu-example"])
        .unwrap();
    let limits = "apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-limit-range
spec:
  limits:
  - default:
      cpu: 1
    defaultRequest:
      cpu: 0.5
    type: Container
";
    cp.kubectl_stdin(
        &["create", "-f", "-", "--namespace=default-cpu-example"],
        limits,
    )
    .unwrap();
    let pod = "apiVersion: v1
kind: Pod
metadata:
  name: default-cpu-demo
spec:
  containers:
  - name: default-cpu-demo-ctr
    image: nginx
";
    cp.kubectl_stdin(
        &["create", "-f", "-", "--namespace=default-cpu-example"],
        pod,
    )
    .unwrap();
    let resources = cp.jsonpath(&["get", "pod", "default-cpu-demo", "-n", "default-cpu-example"], "{.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.cpu} {.status.phase} {.status.qosClass}").unwrap();
    assert_eq!(resources, "500m 1 Pending Burstable");
    let pods = cp
        .kubectl_ok(&["get", "pods", "-n", "default-cpu-example", "-o", "wide"])
        .unwrap();
    assert_eq!(
        header(&pods),
        vec![
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert_eq!(
        fields(pods.lines().nth(1).unwrap())[..4].to_vec(),
        vec!["default-cpu-demo", "0/1", "Pending", "0"]
    );
    let described = cp
        .kubectl_ok(&[
            "describe",
            "pod",
            "default-cpu-demo",
            "-n",
            "default-cpu-example",
        ])
        .unwrap();
    assert!(
        described.contains("QoS Class:") && described.contains("Burstable"),
        "{described}"
    );

    // A quota that the next pod would exceed refuses it with upstream's message.
    cp.kubectl_ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "default-cpu-example",
        "--hard=limits.cpu=1500m",
    ])
    .unwrap();
    let out = cp
        .kubectl_stdin(
            &["create", "-f", "-", "--namespace=default-cpu-example"],
            &pod.replace("name: default-cpu-demo\n", "name: second\n"),
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded quota: compute, requested: limits.cpu=1, used: limits.cpu=1, limited: limits.cpu=1500m"), "{err}");
    // Invalid pods are refused with field paths.
    let out = cp
        .kubectl_stdin(
            &["create", "-f", "-"],
            &pod.replace("    image: nginx\n", ""),
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.containers[0].image: Required value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nodes: cordon, taint and label, as an operator does.
    let node = "apiVersion: v1
kind: Node
metadata:
  name: node1
";
    cp.kubectl_stdin(&["create", "-f", "-"], node).unwrap();
    cp.kubectl_ok(&["cordon", "node1"]).unwrap();
    cp.kubectl_ok(&["taint", "nodes", "node1", "key1=value1:NoSchedule"])
        .unwrap();
    cp.kubectl_ok(&["label", "nodes", "node1", "disktype=ssd"])
        .unwrap();
    let n = cp
        .jsonpath(
            &["get", "node", "node1"],
            "{.spec.unschedulable} {.spec.taints[0].key} {.metadata.labels.disktype}",
        )
        .unwrap();
    assert_eq!(n, "true key1 ssd");
    let nodes = cp.kubectl_ok(&["get", "nodes"]).unwrap();
    assert_eq!(
        header(&nodes),
        vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    assert!(nodes.contains("SchedulingDisabled"), "{nodes}");
    let unschedulable = cp
        .kubectl_ok(&[
            "get",
            "nodes",
            "--field-selector",
            "spec.unschedulable=true",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(unschedulable.trim(), "node/node1");
    cp.kubectl_ok(&["uncordon", "node1"]).unwrap();

    // Service accounts and the explain docs the tutorials read.
    cp.kubectl_ok(&["create", "serviceaccount", "myacct"])
        .unwrap();
    assert!(cp
        .kubectl_ok(&["get", "serviceaccount", "myacct", "-o", "yaml"])
        .unwrap()
        .contains("name: myacct"));
    let explain = cp
        .kubectl_ok(&["explain", "service.spec.sessionAffinity"])
        .unwrap();
    assert!(explain.contains("ClientIP"), "{explain}");
}
