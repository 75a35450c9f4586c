//! The real kubectl (v1.32) against etcd + our kube-apiserver, as a user drives it.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use integration::ControlPlane;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels:
    app: web
data:
  color: blue
";

#[test]
fn create_apply_get_describe_label_annotate() {
    let cp = ControlPlane::start().unwrap();
    let dir = cp.dir.path();
    let file = dir.join("cm.yaml");
    std::fs::write(&file, CONFIGMAP).unwrap();
    let f = file.to_str().unwrap();

    assert_eq!(
        cp.kubectl_ok(&["create", "-f", f]).unwrap().trim(),
        "configmap/settings created"
    );
    let again = cp.kubectl(&["create", "-f", f]).unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(r#"configmaps "settings" already exists"#),
        "{}",
        stderr(&again)
    );

    // apply on an object made by create warns, then reports unchanged on a re-apply.
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", f]).unwrap().trim(),
        "configmap/settings configured"
    );
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", f]).unwrap().trim(),
        "configmap/settings unchanged"
    );
    std::fs::write(&file, CONFIGMAP.replace("blue", "green")).unwrap();
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", f]).unwrap().trim(),
        "configmap/settings configured"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data.color}"])
            .unwrap(),
        "green"
    );

    let table = cp.kubectl_ok(&["get", "configmaps"]).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "DATA", "AGE"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("settings") && l.split_whitespace().nth(1) == Some("1")),
        "{table}"
    );

    let yaml = cp
        .kubectl_ok(&["get", "cm", "settings", "-o", "yaml"])
        .unwrap();
    assert!(
        yaml.contains("kind: ConfigMap")
            && yaml.contains("color: green")
            && yaml.contains("resourceVersion:")
    );
    let json: serde_json::Value = serde_json::from_str(
        &cp.kubectl_ok(&["get", "cm", "settings", "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["metadata"]["labels"]["app"], "web");
    assert!(json["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    let cols = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "settings",
            "-o",
            "custom-columns=NAME:.metadata.name,COLOR:.data.color",
        ])
        .unwrap();
    assert_eq!(
        cols.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["settings", "green"]
    );
    let wide = cp.kubectl_ok(&["get", "namespaces", "-o", "wide"]).unwrap();
    assert!(
        wide.lines()
            .any(|l| l.starts_with("kube-system") && l.contains("Active")),
        "{wide}"
    );

    let described = cp
        .kubectl_ok(&["describe", "configmap", "settings"])
        .unwrap();
    assert!(
        described.contains("Name:")
            && described.contains("settings")
            && described.contains("color"),
        "{described}"
    );

    cp.kubectl_ok(&["label", "cm", "settings", "tier=frontend"])
        .unwrap();
    cp.kubectl_ok(&["annotate", "cm", "settings", "owner=team-a"])
        .unwrap();
    let selected = cp
        .kubectl_ok(&["get", "cm", "-l", "tier=frontend", "-o", "name"])
        .unwrap();
    assert_eq!(selected.trim(), "configmap/settings");
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "-l", "tier!=frontend", "-o", "name"])
            .unwrap()
            .trim(),
        ""
    );
    let owner = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.metadata.annotations.owner}",
        ])
        .unwrap();
    assert_eq!(owner, "team-a");
    // Overwriting a label needs --overwrite, as upstream.
    let clash = cp
        .kubectl(&["label", "cm", "settings", "tier=backend"])
        .unwrap();
    assert!(!clash.status.success());
    cp.kubectl_ok(&["label", "cm", "settings", "tier=backend", "--overwrite"])
        .unwrap();
    cp.kubectl_ok(&["label", "cm", "settings", "tier-"])
        .unwrap();
    let labels = cp
        .kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.metadata.labels}"])
        .unwrap();
    assert!(!labels.contains("tier"), "{labels}");
}

#[test]
fn patch_all_three_types_and_field_selectors() {
    let cp = ControlPlane::start().unwrap();
    cp.kubectl_stdin(&["create", "-f", "-"], CONFIGMAP).unwrap();
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"size":"large"}}"#,
    ])
    .unwrap();
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"color":null}}"#,
    ])
    .unwrap();
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/shape","value":"round"}]"#,
    ])
    .unwrap();
    let data = cp
        .kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data}"])
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data, serde_json::json!({"size": "large", "shape": "round"}));
    // A JSON patch test that fails changes nothing.
    let bad = cp
        .kubectl(&["patch", "cm", "settings", "--type=json", "-p", r#"[{"op":"test","path":"/data/size","value":"small"},{"op":"remove","path":"/data/size"}]"#])
        .unwrap();
    assert!(!bad.status.success());
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data.size}"])
            .unwrap(),
        "large"
    );
    // Field selectors.
    let named = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=settings",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(named.trim(), "configmap/settings");
    let unsupported = cp
        .kubectl(&["get", "cm", "--field-selector", "data.size=large"])
        .unwrap();
    assert!(
        stderr(&unsupported).contains("field label not supported: data.size"),
        "{}",
        stderr(&unsupported)
    );
}

#[test]
fn get_watch_shows_live_changes() {
    let cp = ControlPlane::start().unwrap();
    let mut watch = cp
        .kubectl_cmd(&["get", "configmaps", "--watch", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    cp.kubectl_stdin(&["create", "-f", "-"], CONFIGMAP).unwrap();
    cp.kubectl_ok(&["patch", "cm", "settings", "-p", r#"{"data":{"n":"1"}}"#])
        .unwrap();
    cp.kubectl_ok(&["delete", "cm", "settings"]).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = stdout(&out);
    let events: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .filter(|(_, name)| *name == "settings")
        .collect();
    assert_eq!(
        events,
        vec![
            ("ADDED", "settings"),
            ("MODIFIED", "settings"),
            ("DELETED", "settings")
        ],
        "{text}"
    );
}

#[test]
fn edit_with_an_editor_script() {
    let cp = ControlPlane::start().unwrap();
    cp.kubectl_stdin(&["create", "-f", "-"], CONFIGMAP).unwrap();
    let editor = cp.dir.path().join("editor.sh");
    let mut f = std::fs::File::create(&editor).unwrap();
    writeln!(f, "#!/bin/sh\nsed -i 's/color: blue/color: purple/' \"$1\"").unwrap();
    drop(f);
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let out = cp
        .kubectl_cmd(&["edit", "cm", "settings"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("configmap/settings edited"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "settings", "-o", "jsonpath={.data.color}"])
            .unwrap(),
        "purple"
    );
}

#[test]
fn delete_with_each_propagation_policy() {
    let cp = ControlPlane::start().unwrap();
    for name in ["bg", "fg", "orphan"] {
        cp.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"])
            .unwrap();
    }
    // Background: gone at once.
    assert_eq!(
        cp.kubectl_ok(&["delete", "cm", "bg", "--cascade=background"])
            .unwrap()
            .trim(),
        r#"configmap "bg" deleted"#
    );
    assert!(!cp.kubectl(&["get", "cm", "bg"]).unwrap().status.success());
    // Foreground and orphan: the object waits for the garbage collector with the
    // matching finalizer and a deletion timestamp.
    cp.kubectl_ok(&["delete", "cm", "fg", "--cascade=foreground", "--wait=false"])
        .unwrap();
    let fg = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "fg",
            "-o",
            "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
        ])
        .unwrap();
    assert!(
        fg.contains("foregroundDeletion") && fg.contains('T'),
        "{fg}"
    );
    cp.kubectl_ok(&["delete", "cm", "orphan", "--cascade=orphan", "--wait=false"])
        .unwrap();
    let orphan = cp
        .kubectl_ok(&[
            "get",
            "cm",
            "orphan",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ])
        .unwrap();
    assert!(orphan.contains("orphan"), "{orphan}");
    // Removing the finalizer (as the garbage collector will) completes the deletion.
    cp.kubectl_ok(&[
        "patch",
        "cm",
        "fg",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .unwrap();
    assert!(!cp.kubectl(&["get", "cm", "fg"]).unwrap().status.success());
    // A dry run deletes nothing.
    cp.kubectl_ok(&["create", "configmap", "keep", "--from-literal=k=v"])
        .unwrap();
    cp.kubectl_ok(&["delete", "cm", "keep", "--dry-run=server"])
        .unwrap();
    cp.kubectl_ok(&["get", "cm", "keep"]).unwrap();
    // Delete by label selector (deletecollection semantics through kubectl).
    cp.kubectl_ok(&["label", "cm", "keep", "purge=yes"])
        .unwrap();
    cp.kubectl_ok(&["delete", "cm", "-l", "purge=yes"]).unwrap();
    assert!(!cp.kubectl(&["get", "cm", "keep"]).unwrap().status.success());
}

#[test]
fn discovery_explain_and_raw() {
    let cp = ControlPlane::start().unwrap();
    let resources = cp.kubectl_ok(&["api-resources"]).unwrap();
    let header: Vec<&str> = resources
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for line in [
        "configmaps cm v1 true ConfigMap",
        "namespaces ns v1 false Namespace",
        "services svc v1 true Service",
    ] {
        let want: Vec<&str> = line.split(' ').collect();
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == want),
            "{line} missing in\n{resources}"
        );
    }
    let versions = cp.kubectl_ok(&["api-versions"]).unwrap();
    assert!(versions.lines().any(|l| l == "v1"), "{versions}");
    let explain = cp.kubectl_ok(&["explain", "configmap.data"]).unwrap();
    assert!(
        explain.contains("KIND:")
            && explain.contains("ConfigMap")
            && explain.contains("FIELD: data <map[string]string>"),
        "{explain}"
    );
    let explain = cp.kubectl_ok(&["explain", "services.spec.ports"]).unwrap();
    assert!(explain.contains("targetPort"), "{explain}");
    assert_eq!(cp.kubectl_ok(&["get", "--raw", "/readyz"]).unwrap(), "ok");
    let verbose = cp.kubectl_ok(&["get", "--raw", "/readyz?verbose"]).unwrap();
    assert!(
        verbose.contains("[+]etcd ok") && verbose.contains("readyz check passed"),
        "{verbose}"
    );
    let version = cp.kubectl_ok(&["version", "-o", "json"]).unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "33");
    let metrics = cp.kubectl_ok(&["get", "--raw", "/metrics"]).unwrap();
    assert!(
        metrics.contains("apiserver_request_total{"),
        "metrics:\n{}",
        &metrics[..metrics.len().min(2000)]
    );
    assert!(metrics.contains("etcd_request_duration_seconds_bucket{"));
}

#[test]
fn services_get_cluster_ips_and_node_ports() {
    let cp = ControlPlane::start().unwrap();
    cp.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .unwrap();
    cp.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ])
    .unwrap();
    let table = cp.kubectl_ok(&["get", "svc", "web", "np"]).unwrap();
    let web: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(web[1], "ClusterIP");
    assert!(web[2].starts_with("10."), "{table}");
    assert_eq!(web[4], "80/TCP");
    let np: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("np"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(np[4], "80:30080/TCP", "{table}");
    // The same node port cannot be handed out twice.
    let clash = cp
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=81:8080",
            "--node-port=30080",
        ])
        .unwrap();
    assert!(
        stderr(&clash).contains("provided port is already allocated"),
        "{}",
        stderr(&clash)
    );
    // Deleting gives the port back.
    cp.kubectl_ok(&["delete", "svc", "np"]).unwrap();
    cp.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=81:8080",
        "--node-port=30080",
    ])
    .unwrap();
}

/// `kubectl apply` and `create` validate by default (server-side, fieldValidation=Strict).
#[test]
fn default_validation_rejects_unknown_fields() {
    let cp = ControlPlane::start().unwrap();
    let bad = CONFIGMAP.replace("\ndata:", "\ndta:\n  x: y\ndata:");
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &bad).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"unknown field "dta""#),
        "{}",
        stderr(&out)
    );
    assert!(!cp
        .kubectl(&["get", "cm", "settings"])
        .unwrap()
        .status
        .success());
    let out = cp
        .kubectl_stdin(&["create", "--validate=false", "-f", "-"], &bad)
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn system_namespaces_exist_from_the_start() {
    let cp = ControlPlane::start().unwrap();
    let out = cp.kubectl_ok(&["get", "ns", "-o", "name"]).unwrap();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.lines().any(|l| l == format!("namespace/{ns}")), "{out}");
    }
}
