//! The Node objects and their Leases: what a kubelet registers and keeps renewing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde_json::json;

use crate::options::Options;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const KUBELET_VERSION: &str = "v1.33.0-hollow";
pub const RUNTIME_VERSION: &str = "hollow://0.1";

/// Name of node `i`.
pub fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// The fake InternalIP of node `i`.
pub fn internal_ip(o: &Options, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(o.node_ip_base).wrapping_add(i as u32 + 1))
}

fn resources(o: &Options) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(o.cpu.clone())),
        ("memory".to_string(), Quantity(o.memory.clone())),
        ("pods".to_string(), Quantity(o.pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(o.ephemeral_storage.clone()),
        ),
    ])
}

/// The kubelet's four standard conditions of a healthy node.
pub fn conditions(now: &Time, since: &Time) -> Vec<NodeCondition> {
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(since.clone()),
    };
    vec![
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// Node `i` as registered.
pub fn node(o: &Options, i: usize, now: &Time) -> Node {
    let name = name(&o.name_prefix, i);
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    labels.extend(o.node_labels.iter().cloned());
    // A stable fake machine identity per node name.
    let id = crate::pods::short_hash(&name);
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!o.register_with_taints.is_empty()).then(|| o.register_with_taints.clone()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(resources(o)),
            allocatable: Some(resources(o)),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_string(),
                    address: internal_ip(o, i).to_string(),
                },
                NodeAddress {
                    type_: "Hostname".to_string(),
                    address: name.clone(),
                },
            ]),
            conditions: Some(conditions(now, now)),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".to_string(),
                boot_id: id.clone(),
                container_runtime_version: RUNTIME_VERSION.to_string(),
                kernel_version: "6.1.0-hollow".to_string(),
                kube_proxy_version: KUBELET_VERSION.to_string(),
                kubelet_version: KUBELET_VERSION.to_string(),
                machine_id: id.clone(),
                operating_system: "linux".to_string(),
                os_image: "Hollow Linux".to_string(),
                system_uuid: id,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The merge patch a node posts as its status heartbeat (also used to take over a node
/// that already exists). Conditions are replaced as a whole: they are all the kubelet's.
pub fn status_patch(o: &Options, i: usize, now: &Time, since: &Time) -> serde_json::Value {
    let n = node(o, i, now);
    let mut status = n.status.unwrap_or_default();
    status.conditions = Some(conditions(now, since));
    json!({ "status": status })
}

/// The Lease of a node, owned by the node so it goes with it.
pub fn lease(name: &str, node_uid: &str, duration_seconds: i32, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: name.to_string(),
                uid: node_uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

pub fn renew_patch(name: &str, duration_seconds: i32, now: MicroTime) -> serde_json::Value {
    json!({ "spec": {
        "holderIdentity": name,
        "leaseDurationSeconds": duration_seconds,
        "renewTime": now,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn node_shape() {
        let o = Options::try_parse_from([
            "hollow-node",
            "--nodes=2",
            "--name-prefix=h",
            "--node-labels=zone=a",
            "--register-with-taints=k=v:NoSchedule",
        ])
        .unwrap();
        let now = Time(jiff::Timestamp::now());
        let n = node(&o, 1, &now);
        assert_eq!(n.metadata.name.as_deref(), Some("h-1"));
        let labels = n.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "h-1");
        assert_eq!(labels["zone"], "a");
        assert_eq!(
            n.spec.as_ref().unwrap().taints.as_ref().unwrap()[0].key,
            "k"
        );
        let status = n.status.unwrap();
        assert_eq!(status.capacity.as_ref().unwrap()["pods"].0, "110");
        assert_eq!(status.addresses.as_ref().unwrap()[0].address, "172.16.0.2");
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            status.node_info.unwrap().kubelet_version,
            KUBELET_VERSION.to_string()
        );
        assert_ne!(internal_ip(&o, 0), internal_ip(&o, 1));
    }
}
