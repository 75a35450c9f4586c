//! The payloads of content-backed volumes, as upstream's volume plugins compute them:
//! configMap and secret (`MakePayload`), downwardAPI (`CollectData`, with
//! `fieldpath.ExtractFieldPathAsString` and `resource.ExtractResourceValueByContainerName`).
//! Pure functions over the objects; fetching them is the volume manager's job.

use std::collections::BTreeMap;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret,
};

use super::atomic_writer::{FileProjection, Payload};
use super::subpath::subscript;

/// Upstream's `defaultMode` of configMap, secret, downwardAPI and projected volumes.
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(item: Option<i32>, default_mode: i32) -> u32 {
    u32::try_from(item.unwrap_or(default_mode)).unwrap_or(0o644) & 0o7777
}

/// Keys → contents of one object, the way both payload builders look them up.
fn project(
    entries: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, data) in entries {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: data.clone(),
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = entries.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: data.clone(),
                        mode: mode(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// A configMap's payload; `None` stands for an optional configMap that does not exist.
pub fn config_map_payload(
    config_map: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut entries = BTreeMap::new();
    if let Some(cm) = config_map {
        for (k, v) in cm.data.iter().flatten() {
            entries.insert(k.clone(), v.as_bytes().to_vec());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
    }
    project(&entries, items, default_mode, optional, |key| {
        format!("configmap references non-existent config key: {key}")
    })
}

/// A secret's payload; `None` stands for an optional secret that does not exist.
pub fn secret_payload(
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut entries = BTreeMap::new();
    if let Some(secret) = secret {
        for (k, v) in secret.data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
        // stringData is write-only in the API; honour it for objects built in memory.
        for (k, v) in secret.string_data.iter().flatten() {
            entries.insert(k.clone(), v.as_bytes().to_vec());
        }
    }
    project(&entries, items, default_mode, optional, |key| {
        format!("references non-existent secret key: {key}")
    })
}

/// What resourceFieldRef falls back to for limits a container does not set: the node's
/// allocatable resources (upstream's `MergeContainerResourceLimits`).
#[derive(Debug, Clone, Default)]
pub struct NodeAllocatable {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
    pub ephemeral_storage: Option<Quantity>,
}

/// A downwardAPI volume's payload (paths cleaned as upstream's `filepath.Clean`).
pub fn downward_api_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    node: &NodeAllocatable,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let data = if let Some(field) = &item.field_ref {
            field_path_value(pod, &field.field_path)
        } else if let Some(resource) = &item.resource_field_ref {
            resource_value(pod, resource, node)
        } else {
            Ok(String::new())
        };
        match data {
            Ok(data) => {
                payload.insert(
                    clean(&item.path),
                    FileProjection {
                        data: data.into_bytes(),
                        mode: mode(item.mode, default_mode),
                    },
                );
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(payload)
    } else {
        Err(crate::volumes::aggregate(&errors))
    }
}

fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Upstream's `fieldpath.ExtractFieldPathAsString` for the fields a downwardAPI volume
/// may reference.
pub fn field_path_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    match path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref().unwrap_or(&empty))),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref().unwrap_or(&empty))),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(format!("unsupported fieldPath: {path}")),
    }
}

/// Upstream's `FormatMap`: `key="value"` lines in key order, values quoted as Go's %q.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` for the characters label and annotation values hold.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Upstream's `ExtractResourceValueByContainerNameAndNodeAllocatable`.
pub fn resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node: &NodeAllocatable,
) -> Result<String, String> {
    let name = selector.container_name.as_deref().unwrap_or_default();
    let container = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| format!("container {name} not found"))?;
    let resources = container.resources.as_ref();
    let get = |limits: bool, key: &str| -> Result<Option<Quantity>, String> {
        let map = resources.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        });
        map.and_then(|m| m.get(key))
            .map(|q| Quantity::parse(&q.0).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let divisor = match &selector.divisor {
        Some(d) => Some(Quantity::parse(&d.0).map_err(|e| format!("divisor: {e}"))?),
        None => None,
    }
    .filter(|d| !d.is_zero());
    let (limits, key) = match selector.resource.split_once('.') {
        Some(("limits", key)) => (true, key),
        Some(("requests", key)) => (false, key),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ))
        }
    };
    let mut value = get(limits, key)?;
    if limits && value.is_none() {
        value = match key {
            "cpu" => node.cpu.clone(),
            "memory" => node.memory.clone(),
            "ephemeral-storage" => node.ephemeral_storage.clone(),
            _ => None,
        };
    }
    let value =
        value.unwrap_or_else(|| Quantity::new(0, apimachinery::quantity::Format::DecimalSI));
    match key {
        // ceil(milli / divisor milli)
        "cpu" => {
            let d = divisor.map(|d| d.milli_value()).unwrap_or(1000).max(1);
            Ok(div_ceil(value.milli_value(), d).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let d = divisor.map(|d| d.value()).unwrap_or(1).max(1);
            Ok(div_ceil(value.value(), d).to_string())
        }
        k if k.starts_with("hugepages-") => {
            let d = divisor.map(|d| d.value()).unwrap_or(1).max(1);
            Ok(div_ceil(value.value(), d).to_string())
        }
        _ => Err(format!(
            "unsupported container resource : {}",
            selector.resource
        )),
    }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn s(p: &Payload, k: &str) -> String {
        String::from_utf8(p[k].data.clone()).unwrap()
    }

    fn items(v: serde_json::Value) -> Vec<KeyToPath> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_map_keys_items_and_modes() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cm"},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"bin": "AAEC"}
        }))
        .unwrap();
        let all = config_map_payload(Some(&cm), None, DEFAULT_MODE, false).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), vec!["a", "b", "bin"]);
        assert_eq!(all["bin"].data, vec![0, 1, 2]);
        assert_eq!(all["a"].mode, 0o644);

        let some = config_map_payload(
            Some(&cm),
            Some(&items(
                json!([{"key": "a", "path": "dir/x", "mode": 0o400}, {"key": "b", "path": "y"}]),
            )),
            0o600,
            false,
        )
        .unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), vec!["dir/x", "y"]);
        assert_eq!(some["dir/x"].mode, 0o400);
        assert_eq!(some["y"].mode, 0o600);
        assert_eq!(s(&some, "y"), "2");

        let missing = items(json!([{"key": "zzz", "path": "z"}]));
        assert_eq!(
            config_map_payload(Some(&cm), Some(&missing), DEFAULT_MODE, false).unwrap_err(),
            "configmap references non-existent config key: zzz"
        );
        assert!(
            config_map_payload(Some(&cm), Some(&missing), DEFAULT_MODE, true)
                .unwrap()
                .is_empty()
        );
        assert!(config_map_payload(None, None, DEFAULT_MODE, true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn secret_payload_decoded() {
        let secret = Secret {
            data: Some([("token".to_string(), ByteString(b"s3cr3t".to_vec()))].into()),
            ..Default::default()
        };
        let p = secret_payload(Some(&secret), None, DEFAULT_MODE, false).unwrap();
        assert_eq!(s(&p, "token"), "s3cr3t");
        let missing = items(json!([{"key": "nope", "path": "n"}]));
        assert_eq!(
            secret_payload(Some(&secret), Some(&missing), DEFAULT_MODE, false).unwrap_err(),
            "references non-existent secret key: nope"
        );
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "uid-1",
                "labels": {"app": "web", "tier": "a\"b"},
                "annotations": {"note": "line1\nline2"}
            },
            "spec": {"containers": [{
                "name": "c",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "32Mi"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn downward_api_fields() {
        let files: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "./annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
            {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o400},
            {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
            {"path": "cpu_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
            {"path": "cpu_request", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu", "divisor": "1m"}},
            {"path": "mem_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
            {"path": "mem_request", "resourceFieldRef": {"containerName": "c", "resource": "requests.memory"}}
        ]))
        .unwrap();
        let node = NodeAllocatable {
            cpu: Some(Quantity::parse("3500m").unwrap()),
            ..Default::default()
        };
        let p = downward_api_payload(&pod(), &files, DEFAULT_MODE, &node).unwrap();
        assert_eq!(s(&p, "labels"), "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(s(&p, "annotations"), "note=\"line1\\nline2\"");
        assert_eq!(s(&p, "name"), "p");
        assert_eq!(s(&p, "ns"), "ns");
        assert_eq!(s(&p, "uid"), "uid-1");
        assert_eq!(p["uid"].mode, 0o400);
        assert_eq!(s(&p, "app"), "web");
        // No cpu limit: node allocatable 3.5 cores, rounded up to 4.
        assert_eq!(s(&p, "cpu_limit"), "4");
        assert_eq!(s(&p, "cpu_request"), "250");
        assert_eq!(s(&p, "mem_limit"), "64");
        assert_eq!(s(&p, "mem_request"), (32 * 1024 * 1024).to_string());

        let bad: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}},
            {"path": "y", "resourceFieldRef": {"containerName": "nope", "resource": "limits.cpu"}}
        ]))
        .unwrap();
        assert_eq!(
            downward_api_payload(&pod(), &bad, DEFAULT_MODE, &node).unwrap_err(),
            "[unsupported fieldPath: spec.nodeName, container nope not found]"
        );
    }
}
