//! Server-side apply and managedFields, driven by the real kubectl (v1.32).
#![allow(clippy::unwrap_used)]

use integration::ControlPlane;
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: blue
  size: large
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

fn get_json(cp: &ControlPlane, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&cp.kubectl_ok(&args).unwrap()).unwrap()
}

/// The entry of `manager` with `operation`, if any.
fn entry(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .cloned()
}

fn write(cp: &ControlPlane, name: &str, content: &str) -> String {
    let path = cp.dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn server_side_apply_creates_updates_and_resolves_conflicts() {
    let cp = ControlPlane::start().unwrap();
    let cm = write(&cp, "cm.yaml", CONFIGMAP);
    assert_eq!(
        cp.kubectl_ok(&["apply", "--server-side", "-f", &cm])
            .unwrap()
            .trim(),
        "configmap/settings serverside-applied"
    );
    let obj = get_json(&cp, &["configmap", "settings"]);
    let e = entry(&obj, "kubectl", "Apply").expect("kubectl's apply entry");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        serde_json::json!({"f:data": {"f:color": {}, "f:size": {}}})
    );

    // Re-applying without a key removes it; a changed value is updated.
    let cm2 = write(
        &cp,
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: red\n",
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", &cm2])
        .unwrap();
    let obj = get_json(&cp, &["configmap", "settings"]);
    assert_eq!(obj["data"], serde_json::json!({"color": "red"}));

    // Another manager changing kubectl's field conflicts, with upstream's message.
    let other = write(&cp, "other.yaml", &CONFIGMAP.replace("blue", "green"));
    let out = cp
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &other,
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .data.color"#),
        "{}",
        stderr(&out)
    );
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ])
    .unwrap();
    let obj = get_json(&cp, &["configmap", "settings"]);
    assert_eq!(obj["data"]["color"], "green");
    assert_eq!(obj["data"]["size"], "large");
    let theirs = entry(&obj, "other", "Apply").expect("other's apply entry");
    assert_eq!(
        theirs["fieldsV1"],
        serde_json::json!({"f:data": {"f:color": {}, "f:size": {}}})
    );
    // kubectl lost color to the forced apply and owns nothing else, so its entry is gone.
    assert!(entry(&obj, "kubectl", "Apply").is_none(), "{obj:#}");

    // Both managers show in the YAML kubectl prints with --show-managed-fields.
    let svc = write(&cp, "svc.yaml", SERVICE);
    cp.kubectl_ok(&["apply", "--server-side", "-f", &svc])
        .unwrap();
    let svc2 = write(
        &cp,
        "svc2.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    team: a\n",
    );
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=labeller",
        "-f",
        &svc2,
    ])
    .unwrap();
    let yaml = cp
        .kubectl_ok(&[
            "get",
            "service",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .unwrap();
    assert!(yaml.contains("manager: kubectl\n"), "{yaml}");
    assert!(yaml.contains("manager: labeller\n"), "{yaml}");
    assert!(yaml.contains("operation: Apply"), "{yaml}");
    assert!(yaml.contains(r#"k:{"port":80,"protocol":"TCP"}"#), "{yaml}");
    // Without the flag kubectl hides them.
    let plain = cp
        .kubectl_ok(&["get", "service", "web", "-o", "yaml"])
        .unwrap();
    assert!(!plain.contains("managedFields"), "{plain}");

    // Changing the service's ports by apply: the list is merged by port and protocol.
    let svc3 = write(
        &cp,
        "svc3.yaml",
        &SERVICE.replace(
            "targetPort: 8080",
            "targetPort: 9090\n  - name: https\n    port: 443",
        ),
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", &svc3])
        .unwrap();
    let obj = get_json(&cp, &["service", "web"]);
    let ports = obj["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2, "{obj:#}");
    assert_eq!(ports[0]["targetPort"], 9090);
    assert_eq!(obj["metadata"]["labels"]["team"], "a");
}

#[test]
fn client_side_apply_moves_to_server_side_apply() {
    let cp = ControlPlane::start().unwrap();
    let cm = write(&cp, "cm.yaml", CONFIGMAP);
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", &cm]).unwrap().trim(),
        "configmap/settings created"
    );
    let obj = get_json(&cp, &["configmap", "settings"]);
    let csa = entry(&obj, "kubectl-client-side-apply", "Update").expect("client-side apply entry");
    assert_eq!(csa["apiVersion"], "v1");
    assert!(
        csa["fieldsV1"]["f:data"].get("f:color").is_some(),
        "{csa:#}"
    );

    // Another manager conflicts with the client-side applier.
    let changed = write(&cp, "changed.yaml", &CONFIGMAP.replace("blue", "green"));
    let out = cp
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &changed,
        ])
        .unwrap();
    assert!(
        stderr(&out).contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.color"#
        ),
        "{}",
        stderr(&out)
    );

    // kubectl itself takes the fields over without conflict, and keeps the annotation.
    assert_eq!(
        cp.kubectl_ok(&["apply", "--server-side", "-f", &changed])
            .unwrap()
            .trim(),
        "configmap/settings serverside-applied"
    );
    let obj = get_json(&cp, &["configmap", "settings"]);
    assert_eq!(obj["data"]["color"], "green");
    let applied = entry(&obj, "kubectl", "Apply").expect("kubectl's apply entry");
    assert_eq!(
        applied["fieldsV1"],
        serde_json::json!({"f:data": {"f:color": {}, "f:size": {}}})
    );
    let annotation = obj["metadata"]["annotations"]
        ["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(annotation.contains(r#""color":"green""#), "{annotation}");

    // And back to client-side apply, which still works from the annotation.
    cp.kubectl_ok(&["apply", "-f", &cm]).unwrap();
    let obj = get_json(&cp, &["configmap", "settings"]);
    assert_eq!(obj["data"]["color"], "blue");
}

#[test]
fn kubectl_writes_are_recorded_as_updates() {
    let cp = ControlPlane::start().unwrap();
    let cm = write(&cp, "cm.yaml", CONFIGMAP);
    cp.kubectl_ok(&["create", "-f", &cm]).unwrap();
    cp.kubectl_ok(&["label", "configmap", "settings", "tier=gold"])
        .unwrap();
    cp.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"pink"}}"#,
    ])
    .unwrap();
    let obj = get_json(&cp, &["configmap", "settings"]);
    let created = entry(&obj, "kubectl-create", "Update").expect("kubectl-create entry");
    assert_eq!(
        created["fieldsV1"],
        serde_json::json!({"f:data": {".": {}, "f:size": {}}})
    );
    let labelled = entry(&obj, "kubectl-label", "Update").expect("kubectl-label entry");
    assert_eq!(
        labelled["fieldsV1"],
        serde_json::json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}})
    );
    let patched = entry(&obj, "kubectl-patch", "Update").expect("kubectl-patch entry");
    assert_eq!(
        patched["fieldsV1"],
        serde_json::json!({"f:data": {"f:color": {}}})
    );
    let time = patched["time"].as_str().unwrap();
    assert_eq!(time.len(), "2024-01-01T00:00:00Z".len(), "{time}");

    // A replace takes the fields it changes.
    let replaced = write(
        &cp,
        "replaced.yaml",
        &format!(
            "{}  shape: round\n",
            CONFIGMAP.replace(
                "metadata:\n  name: settings\n",
                "metadata:\n  name: settings\n  labels:\n    tier: gold\n"
            )
        ),
    );
    cp.kubectl_ok(&["replace", "-f", &replaced]).unwrap();
    let obj = get_json(&cp, &["configmap", "settings"]);
    let replacer = entry(&obj, "kubectl-replace", "Update").expect("kubectl-replace entry");
    assert_eq!(
        replacer["fieldsV1"],
        serde_json::json!({"f:data": {"f:color": {}, "f:shape": {}}})
    );
    assert!(entry(&obj, "kubectl-patch", "Update").is_none(), "{obj:#}");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
";

#[test]
fn scaling_takes_replicas_from_the_applier() {
    let cp = ControlPlane::start().unwrap();
    let deploy = write(&cp, "deploy.yaml", DEPLOYMENT);
    cp.kubectl_ok(&["apply", "--server-side", "-f", &deploy])
        .unwrap();
    let obj = get_json(&cp, &["deployment", "web"]);
    let applied = entry(&obj, "kubectl", "Apply").expect("kubectl's apply entry");
    let containers = &applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert_eq!(
        containers["k:{\"name\":\"web\"}"]["f:ports"],
        serde_json::json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );

    cp.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"])
        .unwrap();
    let obj = get_json(&cp, &["deployment", "web"]);
    let scaler = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "scale")
        .cloned()
        .expect("an entry through the scale subresource");
    assert_eq!(scaler["operation"], "Update");
    assert_eq!(scaler["apiVersion"], "apps/v1");
    assert_eq!(
        scaler["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
    let applied = entry(&obj, "kubectl", "Apply").unwrap();
    assert!(
        applied["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{applied:#}"
    );

    // The Scale itself shows its owner.
    let scale: Value = serde_json::from_str(
        &cp.kubectl_ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        scale["metadata"]["managedFields"][0]["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );

    // Applying the old count again conflicts with the scaler.
    let out = cp
        .kubectl(&["apply", "--server-side", "-f", &deploy])
        .unwrap();
    assert!(!out.status.success());
    let message = format!(
        "Apply failed with 1 conflict: conflict with {} with subresource \"scale\" using apps/v1: .spec.replicas",
        serde_json::to_string(&scaler["manager"]).unwrap()
    );
    assert!(stderr(&out).contains(&message), "{}", stderr(&out));
}
