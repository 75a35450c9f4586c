//! nodes: cluster-scoped and created with their status by the kubelet; pod CIDRs and the
//! provider ID are set once; `kubectl get nodes` prints Ready/NotReady/Unknown (plus
//! `SchedulingDisabled`) and the roles from `node-role.kubernetes.io/*` labels.

use std::collections::BTreeSet;
use std::net::IpAddr;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::registry::core::{podspec, resourcelist};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField, Subresource};

pub struct NodeStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "string", "The status of the node"),
    Column::new("Roles", "string", "The roles of the node"),
    AGE,
    Column::new("Version", "string", "Kubelet Version reported by the node."),
    Column::new(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).",
    )
    .wide(),
    Column::new(
        "External-IP",
        "string",
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).",
    )
    .wide(),
    Column::new(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    )
    .wide(),
    Column::new(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    )
    .wide(),
    Column::new(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    )
    .wide(),
];

const FIELDS: &[SelectableField] =
    &[SelectableField::new("spec.unschedulable").with_default("false")];

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";

fn validate_taints(node: &Node) -> ErrorList {
    let mut errs = Vec::new();
    // Upstream reports taints under `metadata.taints`.
    let path = Path::new("metadata").child("taints");
    let mut seen = BTreeSet::new();
    for (i, t) in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = path.index(i);
        errs.extend(validation::validate_label_name(&t.key, &p.child("key")));
        let value = t.value.as_deref().unwrap_or("");
        let msgs = validation::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &p.child("value"),
                value,
                msgs.join(";"),
            ));
        }
        errs.extend(podspec::taint_effect(&t.effect, &p.child("effect")));
        if !seen.insert((t.effect.clone(), t.key.clone())) {
            let mut e = FieldError::duplicate(&p, serde_json::to_value(t).unwrap_or_default());
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
        }
    }
    errs
}

fn validate_resources(node: &Node) -> ErrorList {
    let mut errs = Vec::new();
    let status = node.status.clone().unwrap_or_default();
    for (field, list) in [
        ("capacity", &status.capacity),
        ("allocatable", &status.allocatable),
    ] {
        for (name, q) in list.iter().flatten() {
            let p = Path::new("status").child(field).child(name);
            errs.extend(resourcelist::validate_quantity_value(name, q, &p));
        }
    }
    errs
}

fn validate_pod_cidrs(node: &Node) -> ErrorList {
    let mut errs = Vec::new();
    let cidrs = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidrs.clone())
        .unwrap_or_default();
    let path = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(validation::is_valid_cidr(&path.index(i), c));
    }
    if cidrs.len() > 1 {
        let families: BTreeSet<bool> = cidrs
            .iter()
            .filter_map(|c| c.split('/').next()?.parse::<IpAddr>().ok())
            .map(|ip| ip.is_ipv4())
            .collect();
        if families.len() != 2 || cidrs.len() > 2 {
            errs.push(FieldError::invalid(
                &path,
                serde_json::to_value(&cidrs).unwrap_or_default(),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c) {
                errs.push(FieldError::duplicate(&path.index(i), c.as_str()));
            }
        }
    }
    errs
}

/// The STATUS cell: the Ready condition, then `SchedulingDisabled` for cordoned nodes.
fn node_status(node: &Node) -> String {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().rev().find(|c| c.type_ == "Ready"));
    let mut status = vec![match ready {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role=<role>` labels.
pub fn node_roles(node: &Node) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix(ROLE_PREFIX).filter(|r| !r.is_empty()) {
            roles.insert(role.to_string());
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn address(node: &Node, ty: &str) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == ty))
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "<none>".into())
}

impl TypedStrategy for NodeStrategy {
    type Object = Node;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Node>()
            .short_names(&["no"])
            .storage_path("minions")
            .subresource(Subresource::Connect("proxy"))
            .with_status()
    }

    fn default(&self, node: &mut Node) {
        if let Some(status) = node.status.as_mut() {
            resourcelist::normalize(&mut status.capacity);
            resourcelist::normalize(&mut status.allocatable);
            if status.allocatable.is_none() && status.capacity.is_some() {
                status.allocatable = status.capacity.clone();
            }
        }
    }

    fn prepare_for_update(&self, new: &mut Node, old: &Node) {
        new.status = old.status.clone();
    }

    fn validate(&self, node: &Node) -> ErrorList {
        let mut errs = validate_taints(node);
        errs.extend(validate_resources(node));
        errs.extend(validate_pod_cidrs(node));
        errs
    }

    fn validate_update(&self, new: &Node, old: &Node) -> ErrorList {
        let mut errs = validate_resources(new);
        let mut seen = Vec::new();
        for (i, a) in new
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if seen.contains(&a) {
                errs.push(FieldError::duplicate(
                    &Path::new("status").child("addresses").index(i),
                    serde_json::to_value(a).unwrap_or_default(),
                ));
            }
            seen.push(a);
        }
        let spec = |n: &Node| n.spec.clone().unwrap_or_default();
        let (ns, os) = (spec(new), spec(old));
        let old_cidrs = os.pod_cidrs.clone().unwrap_or_default();
        if !old_cidrs.is_empty() && ns.pod_cidrs.clone().unwrap_or_default() != old_cidrs {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("podCIDRs"),
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = os.provider_id.clone().unwrap_or_default();
        if !old_provider.is_empty() && ns.provider_id.clone().unwrap_or_default() != old_provider {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        errs.extend(validate_taints(new));
        if ns.external_id != os.external_id {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("externalID"),
                "may not be updated",
            ));
        }
        errs
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, node: &Node, raw: &Value) -> Vec<Value> {
        let info = node
            .status
            .as_ref()
            .and_then(|s| s.node_info.clone())
            .unwrap_or_default();
        let unknown = |s: String| {
            if s.is_empty() {
                "<unknown>".to_string()
            } else {
                s
            }
        };
        vec![
            node.metadata.name.clone().unwrap_or_default().into(),
            node_status(node).into(),
            node_roles(node).into(),
            table::age(raw),
            info.kubelet_version.clone().into(),
            address(node, "InternalIP").into(),
            address(node, "ExternalIP").into(),
            unknown(info.os_image).into(),
            unknown(info.kernel_version).into(),
            unknown(info.container_runtime_version).into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn s() -> Typed<NodeStrategy> {
        Typed::new(NodeStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn status_survives_create_and_allocatable_defaults_to_capacity() {
        let mut obj = s()
            .decode(json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2", "memory": "2Gi"}}}))
            .unwrap();
        s().prepare_for_create(&mut obj);
        assert_eq!(
            obj["status"]["allocatable"],
            json!({"cpu": "2", "memory": "2Gi"})
        );
        assert!(s().validate(&obj).is_empty());
    }

    #[test]
    fn rows() {
        let obj = json!({"metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1",
                    "containerRuntimeVersion": "containerd://2.0", "architecture": "", "bootID": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "linux", "systemUUID": ""}}});
        let r = s().row(&obj);
        assert_eq!(r[1], "Ready,SchedulingDisabled");
        assert_eq!(r[2], "control-plane,worker");
        assert_eq!(r[4], "v1.33.0");
        assert_eq!(
            &r[5..],
            &[
                json!("10.0.0.1"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("containerd://2.0")
            ]
        );

        let bare = json!({"metadata": {"name": "n2"}});
        let r = s().row(&bare);
        assert_eq!(r[1], "Unknown");
        assert_eq!(r[2], "<none>");
        assert_eq!(r[7], "<unknown>");
        let not_ready = json!({"metadata": {"name": "n3"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(s().row(&not_ready)[1], "NotReady");
    }

    #[test]
    fn validation() {
        let obj = json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": "a", "effect": "Sometimes"}, {"key": "b", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}],
            "podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"]}});
        let errs = messages(&s().validate(&obj));
        assert!(errs.contains(&"metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"".to_string()), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("metadata.taints[2]: Duplicate value")
                    && e.ends_with("taints must be unique by key and effect pair")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.podCIDRs: Invalid value")
                    && e.ends_with("may specify no more than one CIDR for each IP family")),
            "{errs:?}"
        );

        let old = json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.0.0.0/24"], "providerID": "x"}});
        let mut new = old.clone();
        new["spec"]["podCIDRs"] = json!(["10.9.0.0/24"]);
        new["spec"]["providerID"] = json!("y");
        new["spec"]["unschedulable"] = json!(true);
        let errs = messages(&s().validate_update(&new, &old));
        assert_eq!(errs, vec![
            "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
            "spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid",
        ]);
    }

    #[test]
    fn unschedulable_field_selector_defaults_to_false() {
        let f = &s().selectable_fields()[0];
        assert_eq!(f.value(&json!({"metadata": {"name": "n"}})), "false");
        assert_eq!(f.value(&json!({"spec": {"unschedulable": true}})), "true");
    }
}
