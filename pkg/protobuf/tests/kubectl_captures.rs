//! Bodies the real kubectl 1.32 sent (see tests/data/kubectl/README.md) decode to the JSON
//! upstream gives the same objects.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/kubectl")
}

fn check(name: &str) -> Value {
    let dir = data_dir();
    let body = std::fs::read(dir.join(format!("{name}.pb"))).unwrap();
    let want: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let (type_meta, got) = k8s_protobuf::decode_envelope(&body).unwrap();
    assert_eq!(
        got,
        want,
        "{name}:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    assert_eq!(got["kind"], type_meta.kind.as_str());
    assert_eq!(got["apiVersion"], type_meta.api_version.as_str());
    // Same key order as upstream's JSON, too.
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        serde_json::to_string(&want).unwrap(),
        "{name}: key order"
    );
    got
}

#[test]
fn every_capture_decodes_to_upstream_json() {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "pb").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    assert!(names.len() >= 18, "{names:?}");
    for name in &names {
        check(name);
    }
}

#[test]
fn configmap_capture_is_typed() {
    let v = check("create-configmap");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(v).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("x"));
    assert_eq!(cm.data.unwrap()["a"], "b");
}

#[test]
fn deployment_capture_is_typed() {
    let v = check("create-deployment");
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(v).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx"));
}

#[test]
fn truncated_captures_fail_cleanly() {
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pb") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        for cut in 0..body.len() {
            // Cuts that end on a field boundary are valid shorter messages; the rest must
            // be errors, and nothing may panic.
            let _ = k8s_protobuf::decode_envelope(&body[..cut]);
        }
        // Cutting inside the raw object (declared longer than what follows) is an error.
        assert!(
            k8s_protobuf::decode_envelope(&body[..body.len() - 5]).is_err(),
            "{path:?}"
        );
    }
}
