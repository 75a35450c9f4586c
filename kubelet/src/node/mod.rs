//! The kubelet's Node: registration, status (capacity, allocatable, addresses, nodeInfo,
//! conditions) posted when it changes and at least every nodeStatusReportFrequency, and the
//! node Lease in kube-node-lease renewed every 10 s (upstream's nodestatus setters and
//! nodelease controller).

pub mod machine;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::run::Context;
use machine::Machine;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The version this kubelet reports; it implements the v1.33 API.
pub const KUBELET_VERSION: &str = "v1.33.0";
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The runtime's health as the Ready condition needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeHealth {
    Ready,
    NotReady(String),
}

/// Upstream's standard labels plus `nodeLabels` from the configuration.
pub fn labels(ctx_node: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), ctx_node.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    labels.extend(extra.clone());
    labels
}

/// The Node object this kubelet registers.
pub fn initial_node(ctx: &Context, status: NodeStatus) -> Node {
    let taints = ctx.config.register_with_taints.clone();
    Node {
        metadata: ObjectMeta {
            name: Some(ctx.node_name.clone()),
            labels: Some(labels(&ctx.node_name, &ctx.config.node_labels)),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            pod_cidr: ctx.config.pod_cidr.clone(),
            pod_cidrs: ctx.config.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: Some(status),
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The node's conditions now; transition times are carried over from `previous` when the
/// status did not change.
pub fn conditions(
    health: &RuntimeHealth,
    previous: &[NodeCondition],
    now: &Time,
) -> Vec<NodeCondition> {
    let ready = match health {
        RuntimeHealth::Ready => condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        ),
        RuntimeHealth::NotReady(message) => {
            condition("Ready", "False", "KubeletNotReady", message, now)
        }
    };
    let mut out = vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now,
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now,
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        ready,
    ];
    for c in &mut out {
        if let Some(old) = previous.iter().find(|o| o.type_ == c.type_) {
            if old.status == c.status && old.last_transition_time.is_some() {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    out
}

/// The whole status this kubelet reports.
pub fn node_status(
    ctx: &Context,
    machine: &Machine,
    runtime_version: &str,
    health: &RuntimeHealth,
    previous: &[NodeCondition],
    now: &Time,
) -> NodeStatus {
    let capacity = machine.capacity(ctx.config.max_pods);
    let allocatable = machine::allocatable(&capacity, &ctx.config);
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ctx.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: ctx.node_name.clone(),
            },
        ]),
        conditions: Some(conditions(health, previous, now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(ctx.config.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: machine.boot_id.clone(),
            container_runtime_version: runtime_version.to_string(),
            kernel_version: machine.kernel_version.clone(),
            kube_proxy_version: KUBELET_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: machine.os_image.clone(),
            system_uuid: machine.system_uuid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Status without heartbeat times: what "changed" means for posting.
fn comparable(status: &NodeStatus) -> serde_json::Value {
    let mut s = status.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_heartbeat_time = None;
    }
    serde_json::to_value(s).unwrap_or_default()
}

/// Asks the runtime whether it and its network are ready, in upstream's words.
pub async fn runtime_health(ctx: &Context) -> RuntimeHealth {
    let status = ctx
        .cri
        .runtime
        .clone()
        .status(cri::api::StatusRequest { verbose: false })
        .await;
    let status = match status {
        Ok(s) => s.into_inner().status.unwrap_or_default(),
        Err(e) => {
            return RuntimeHealth::NotReady(format!("container runtime is down: {}", e.message()))
        }
    };
    let find = |t: &str| status.conditions.iter().find(|c| c.r#type == t);
    for (t, what) in [
        ("RuntimeReady", "container runtime not ready"),
        ("NetworkReady", "container runtime network not ready"),
    ] {
        match find(t) {
            Some(c) if c.status => {}
            Some(c) => {
                return RuntimeHealth::NotReady(format!(
                    "{what}: {t}=false reason:{} message:{}",
                    c.reason, c.message
                ))
            }
            None => {
                return RuntimeHealth::NotReady(
                    "container runtime status check may not have completed yet".into(),
                )
            }
        }
    }
    RuntimeHealth::Ready
}

/// Registers the node (or takes over an existing one), then posts its status when it
/// changes (checked every nodeStatusUpdateFrequency) and at least every
/// nodeStatusReportFrequency, until shutdown.
pub async fn run_status(ctx: Context, runtime_version: String) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let machine = Machine::probe(&ctx.root_dir);
    let mut last_posted: Option<(serde_json::Value, Instant)> = None;
    let mut conditions_now: Vec<NodeCondition> = Vec::new();
    let mut registered = false;
    let mut tick = tokio::time::interval(
        ctx.config
            .node_status_update_frequency
            .min(Duration::from_secs(10))
            .max(Duration::from_secs(1)),
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.shutdown.cancelled() => return,
        }
        let now = Time(jiff::Timestamp::now());
        let health = runtime_health(&ctx).await;
        let status = node_status(
            &ctx,
            &machine,
            &runtime_version,
            &health,
            &conditions_now,
            &now,
        );
        if !registered {
            match register(&ctx, &nodes, status.clone()).await {
                Ok(()) => {
                    registered = true;
                    tracing::info!(node = %ctx.node_name, "node registered");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unable to register node");
                    continue;
                }
            }
        }
        let key = comparable(&status);
        let due = match &last_posted {
            None => true,
            Some((previous, at)) => {
                *previous != key || at.elapsed() >= ctx.config.node_status_report_frequency
            }
        };
        if !due {
            continue;
        }
        let patch = json!({ "status": status });
        match nodes
            .patch_status(
                &ctx.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(node) => {
                conditions_now = status.conditions.clone().unwrap_or_default();
                last_posted = Some((key, Instant::now()));
                if node.status.is_none() {
                    tracing::debug!("node status patch returned no status");
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::warn!(node = %ctx.node_name, "node object is gone; registering again");
                registered = false;
            }
            Err(e) => tracing::warn!(error = %e, "error updating node status"),
        }
    }
}

/// Creates the Node; an existing one gets this kubelet's labels, taints and podCIDR merged in.
async fn register(ctx: &Context, nodes: &Api<Node>, status: NodeStatus) -> Result<(), kube::Error> {
    let node = initial_node(ctx, status);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let mut patch = json!({ "metadata": { "labels": node.metadata.labels } });
            if let Some(cidr) = &ctx.config.pod_cidr {
                patch["spec"] = json!({ "podCIDR": cidr, "podCIDRs": [cidr] });
            }
            let existing = nodes.get(&ctx.node_name).await?;
            if existing
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_ref())
                .is_some()
            {
                // podCIDR is immutable once set.
                if let Some(obj) = patch.as_object_mut() {
                    obj.remove("spec");
                }
            }
            nodes
                .patch(
                    &ctx.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The node's Lease, owned by the Node so it goes with it.
pub fn lease(name: &str, node_uid: Option<&str>, duration_seconds: i32, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".to_string(),
                    kind: "Node".to_string(),
                    name: name.to_string(),
                    uid: uid.to_string(),
                    ..Default::default()
                }]
            }),
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

/// Renews the node Lease every 10 s (creating it when missing), until shutdown.
pub async fn run_lease(ctx: Context) {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let duration = ctx.config.node_lease_duration_seconds;
    loop {
        // Until the Lease is owned by the registered Node, retry every second.
        let next = match renew(&ctx, &leases, &nodes, duration).await {
            Ok(true) => LEASE_RENEW_INTERVAL,
            Ok(false) => Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, "failed to renew the node lease");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = ctx.shutdown.cancelled() => return,
        }
    }
}

async fn renew(
    ctx: &Context,
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    duration: i32,
) -> Result<bool, kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let owned = match leases.get_opt(&ctx.node_name).await? {
        None => {
            // Upstream only sets the owner once the Node exists.
            let node_uid = nodes
                .get_opt(&ctx.node_name)
                .await?
                .and_then(|n| n.metadata.uid);
            leases
                .create(
                    &PostParams::default(),
                    &lease(&ctx.node_name, node_uid.as_deref(), duration, now),
                )
                .await?;
            node_uid.is_some()
        }
        Some(mut existing) => {
            if existing.metadata.owner_references.is_none() {
                if let Some(uid) = nodes
                    .get_opt(&ctx.node_name)
                    .await?
                    .and_then(|n| n.metadata.uid)
                {
                    existing.metadata.owner_references =
                        lease(&ctx.node_name, Some(&uid), duration, now.clone())
                            .metadata
                            .owner_references;
                }
            }
            let spec = existing.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(ctx.node_name.clone());
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = Some(now);
            let owned = existing.metadata.owner_references.is_some();
            leases
                .replace(&ctx.node_name, &PostParams::default(), &existing)
                .await?;
            owned
        }
    };
    Ok(owned)
}

/// A resource list from `name -> quantity string`.
pub fn resource_list<'a>(
    items: impl IntoIterator<Item = (&'a str, String)>,
) -> BTreeMap<String, Quantity> {
    items
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = Time(jiff::Timestamp::from_second(1000).unwrap());
        let t1 = Time(jiff::Timestamp::from_second(2000).unwrap());
        let first = conditions(&RuntimeHealth::NotReady("down".into()), &[], &t0);
        let ready = first.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        let second = conditions(&RuntimeHealth::Ready, &first, &t1);
        let ready = second.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        assert_eq!(ready.last_transition_time, Some(t1.clone()));
        let mem = second.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.last_transition_time, Some(t0));
        assert_eq!(mem.last_heartbeat_time, Some(t1));
        assert_eq!(mem.reason.as_deref(), Some("KubeletHasSufficientMemory"));
    }

    #[test]
    fn standard_labels() {
        let l = labels(
            "n1",
            &BTreeMap::from([("zone".to_string(), "a".to_string())]),
        );
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["beta.kubernetes.io/arch"], "amd64");
        assert_eq!(l["zone"], "a");
    }
}
