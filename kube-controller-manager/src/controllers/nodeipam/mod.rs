//! The node IPAM controller (upstream `node-ipam`, its `RangeAllocator`): with
//! `--allocate-node-cidrs`, every node gets `spec.podCIDR` / `spec.podCIDRs` cut from
//! `--cluster-cidr` (one CIDR per family in a dual-stack cluster) with the mask size of
//! `--node-cidr-mask-size` (or `-ipv4` / `-ipv6`). CIDRs already on nodes are occupied
//! at start, ranges of `--service-cluster-ip-range` are never given out, a deleted
//! node's CIDRs are released, and when the range is exhausted the node gets a
//! `CIDRNotAvailable` event and is retried later.

pub mod cidrset;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::Store;
use parking_lot::Mutex;
use serde_json::json;

use self::cidrset::{CidrSet, CidrSetError};
use crate::context::Context;
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;
use crate::options::Options;
use client::events::EventSink;

pub const NAME: &str = "node-ipam";
/// Upstream's event source for node status changes.
const COMPONENT: &str = "cidrAllocator";
/// Workers updating nodes (upstream's `cidrUpdateWorkers`).
const WORKERS: u16 = 30;
/// How long a node whose CIDR could not be allocated waits before the next try.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--cluster-cidr is required when --allocate-node-cidrs is set")]
    NoClusterCidr,
    #[error("--cluster-cidr takes at most one IPv4 and one IPv6 CIDR, got {0:?}")]
    BadClusterCidrs(Vec<IpNet>),
    #[error("usage of --node-cidr-mask-size is not allowed with dual-stack clusters; use --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6")]
    MaskSizeDualStack,
    #[error(
        "--node-cidr-mask-size-ipv4 / -ipv6 are for dual-stack clusters; use --node-cidr-mask-size"
    )]
    MaskSizeSingleStack,
    #[error("cluster CIDR {cidr}: {source}")]
    CidrSet { cidr: IpNet, source: CidrSetError },
    #[error("allocating a CIDR for node {node}: {source}")]
    Allocate { node: String, source: CidrSetError },
    #[error("updating the pod CIDRs of node {node}: {source}")]
    Patch { node: String, source: kube::Error },
}

/// The node CIDR sets, one per cluster CIDR, built from the flags (upstream's
/// `processCIDRs` and `setNodeCIDRMaskSizes`).
pub fn cidr_sets(o: &Options) -> Result<Vec<CidrSet>, Error> {
    let cidrs = &o.cluster_cidr;
    if cidrs.is_empty() {
        return Err(Error::NoClusterCidr);
    }
    let dual = match cidrs.as_slice() {
        [_] => false,
        [a, b] if a.addr().is_ipv4() != b.addr().is_ipv4() => true,
        _ => return Err(Error::BadClusterCidrs(cidrs.clone())),
    };
    if dual && o.node_cidr_mask_size.is_some() {
        return Err(Error::MaskSizeDualStack);
    }
    if !dual && (o.node_cidr_mask_size_ipv4.is_some() || o.node_cidr_mask_size_ipv6.is_some()) {
        // Upstream reads the per-family sizes only in dual stack; accept them when they
        // agree with the only family rather than silently ignoring a typo'd setup.
        let v4 = cidrs[0].addr().is_ipv4();
        let per_family = if v4 {
            o.node_cidr_mask_size_ipv4
        } else {
            o.node_cidr_mask_size_ipv6
        };
        if per_family.is_none() || o.node_cidr_mask_size.is_some() {
            return Err(Error::MaskSizeSingleStack);
        }
    }
    let mut sets = Vec::new();
    for cidr in cidrs {
        let v4 = cidr.addr().is_ipv4();
        let size = if v4 {
            o.node_cidr_mask_size
                .or(o.node_cidr_mask_size_ipv4)
                .unwrap_or(24)
        } else {
            o.node_cidr_mask_size
                .or(o.node_cidr_mask_size_ipv6)
                .unwrap_or(64)
        };
        let mut set = CidrSet::new(*cidr, size).map_err(|source| Error::CidrSet {
            cidr: *cidr,
            source,
        })?;
        for service in [
            o.service_cluster_ip_range,
            o.secondary_service_cluster_ip_range,
        ]
        .into_iter()
        .flatten()
        {
            // Only a service range overlapping this cluster CIDR is excluded.
            if service.addr().is_ipv4() == v4 && (cidr.contains(&service) || service.contains(cidr))
            {
                let _ = set.occupy(&service);
            }
        }
        sets.push(set);
    }
    Ok(sets)
}

/// A node's pod CIDRs as set in its spec.
pub fn node_cidrs(node: &Node) -> Vec<IpNet> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let list = match (&spec.pod_cidrs, &spec.pod_cidr) {
        (Some(l), _) if !l.is_empty() => l.clone(),
        (_, Some(c)) if !c.is_empty() => vec![c.clone()],
        _ => Vec::new(),
    };
    list.iter().filter_map(|c| c.parse().ok()).collect()
}

#[derive(Default)]
struct State {
    sets: Vec<CidrSet>,
    /// CIDRs handed to a node whose update is not yet seen in the cache: name → (uid,
    /// CIDRs), so a second look at the node reuses them instead of allocating again.
    pending: HashMap<String, (String, Vec<IpNet>)>,
}

impl State {
    /// Mark the CIDRs a node has as used (upstream's `occupyCIDRs`).
    fn occupy(&mut self, node: &Node) {
        for (i, cidr) in node_cidrs(node).iter().enumerate() {
            match self.sets.get_mut(i) {
                Some(set) => {
                    if let Err(e) = set.occupy(cidr) {
                        tracing::warn!(node = node.metadata.name.as_deref().unwrap_or_default(), %cidr, error = %e, "node CIDR outside the cluster CIDR");
                    }
                }
                None => {
                    tracing::warn!(node = node.metadata.name.as_deref().unwrap_or_default(), %cidr, "node has more pod CIDRs than there are cluster CIDRs");
                }
            }
        }
    }

    /// Release the CIDRs of a deleted node (upstream's `ReleaseCIDR`).
    fn release(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut cidrs = node_cidrs(node);
        if let Some((uid, pending)) = self.pending.remove(&name) {
            if node.metadata.uid.as_deref() == Some(uid.as_str()) && cidrs.is_empty() {
                cidrs = pending;
            }
        }
        for (i, cidr) in cidrs.iter().enumerate() {
            if let Some(set) = self.sets.get_mut(i) {
                if set.contains(cidr) {
                    let _ = set.release(cidr);
                    tracing::info!(node = %name, %cidr, "released node CIDR");
                }
            }
        }
    }

    /// One CIDR from each set for a node, all or nothing.
    fn allocate(&mut self, node: &str, uid: &str) -> Result<Vec<IpNet>, CidrSetError> {
        if let Some((u, cidrs)) = self.pending.get(node) {
            if u == uid {
                return Ok(cidrs.clone());
            }
        }
        let mut got: Vec<IpNet> = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate_next() {
                Ok(c) => got.push(c),
                Err(e) => {
                    for (j, c) in got.iter().enumerate() {
                        let _ = self.sets[j].release(c);
                    }
                    return Err(e);
                }
            }
        }
        self.pending
            .insert(node.to_string(), (uid.to_string(), got.clone()));
        Ok(got)
    }
}

struct NodeIpam {
    nodes_api: Api<Node>,
    nodes: Store<Node>,
    state: Mutex<State>,
    events: EventSink,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    if !ctx.options.allocate_node_cidrs {
        tracing::info!(
            controller = NAME,
            "--allocate-node-cidrs is not set; node CIDRs are not allocated"
        );
        return Ok(Box::pin(async {}));
    }
    let sets = cidr_sets(&ctx.options)?;
    let informer = ctx.informers.get::<Node>();
    let changes = triggers::changes(&informer)?;
    let nodes = informer.store().clone();
    let ipam = Arc::new(NodeIpam {
        nodes_api: Api::all(ctx.client.clone()),
        nodes: nodes.clone(),
        state: Mutex::new(State {
            sets,
            pending: HashMap::new(),
        }),
        events: ctx.events(COMPONENT),
    });
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        if !client::informers::synced(&ipam.nodes).await {
            return;
        }
        // Occupy what the nodes already have before handing anything out.
        {
            let mut st = ipam.state.lock();
            for node in ipam.nodes.state() {
                st.occupy(&node);
            }
        }
        tracing::info!(controller = NAME, "caches synced; node CIDRs recovered");
        let deletions = {
            let ipam = Arc::clone(&ipam);
            let gone = triggers::deletions(nodes.clone(), triggers::PERIOD);
            let shutdown = shutdown.clone();
            async move {
                let mut gone = std::pin::pin!(gone);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        node = gone.next() => match node {
                            Some(node) => ipam.state.lock().release(&node),
                            None => return,
                        },
                    }
                }
            }
        };
        let allocate = Controller::for_shared_stream(changes, nodes)
            .with_config(controller::Config::default().concurrency(WORKERS))
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(reconcile, error_policy, Arc::clone(&ipam))
            .for_each(|_| async {});
        tokio::join!(allocate, deletions);
    }))
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Give a node without pod CIDRs its CIDRs (upstream's `AllocateOrOccupyCIDR` and
/// `updateCIDRsAllocation`).
async fn reconcile(node: Arc<Node>, ipam: Arc<NodeIpam>) -> Result<Action, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let uid = node.metadata.uid.clone().unwrap_or_default();
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let existing = node_cidrs(&node);
    if !existing.is_empty() {
        let mut st = ipam.state.lock();
        st.pending.remove(&name);
        // Occupying again is harmless and covers nodes whose CIDRs were set by someone
        // else after the start.
        st.occupy(&node);
        return Ok(Action::await_change());
    }
    let allocated = ipam.state.lock().allocate(&name, &uid);
    let cidrs = match allocated {
        Ok(c) => c,
        Err(source) => {
            // Upstream records the node status change and retries.
            ipam.events.normal(
                node_ref(&node),
                "CIDRNotAvailable",
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            tracing::warn!(node = %name, error = %source, "no CIDR available for node");
            return Ok(Action::requeue(RETRY));
        }
    };
    let strings: Vec<String> = cidrs.iter().map(IpNet::to_string).collect();
    let patch = json!({
        "metadata": {"uid": uid},
        "spec": {"podCIDR": strings[0], "podCIDRs": strings},
    });
    match ipam
        .nodes_api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = %name, cidrs = ?strings, "set node pod CIDRs");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => {
            // Gone, replaced, or given other CIDRs meanwhile: hand ours back. The
            // node's next change brings whatever it has now.
            tracing::info!(node = %name, reason = %e.message, "node CIDR update refused; releasing the CIDRs");
            let mut st = ipam.state.lock();
            st.pending.remove(&name);
            for (i, c) in cidrs.iter().enumerate() {
                if let Some(set) = st.sets.get_mut(i) {
                    let _ = set.release(c);
                }
            }
            Ok(Action::requeue(RETRY))
        }
        Err(source) => Err(Error::Patch { node: name, source }),
    }
}

fn error_policy(node: Arc<Node>, error: &Error, _: Arc<NodeIpam>) -> Action {
    tracing::warn!(node = node.metadata.name.as_deref().unwrap_or_default(), %error, "failed to allocate node CIDRs; requeueing");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn opts(args: &[&str]) -> Options {
        let mut all = vec!["kcm", "--allocate-node-cidrs"];
        all.extend_from_slice(args);
        Options::parse_from(all)
    }

    fn node(name: &str, uid: &str, cidrs: &[&str]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.uid = Some(uid.into());
        if !cidrs.is_empty() {
            n.spec = Some(NodeSpec {
                pod_cidr: Some(cidrs[0].into()),
                pod_cidrs: Some(cidrs.iter().map(|c| c.to_string()).collect()),
                ..Default::default()
            });
        }
        n
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn flags_make_the_sets() {
        let sets = cidr_sets(&opts(&["--cluster-cidr=10.244.0.0/16"])).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].node_prefix(), 24);
        let sets = cidr_sets(&opts(&[
            "--cluster-cidr=10.244.0.0/16,fd00:10::/48",
            "--node-cidr-mask-size-ipv4=25",
        ]))
        .unwrap();
        assert_eq!((sets[0].node_prefix(), sets[1].node_prefix()), (25, 64));
        assert!(matches!(
            cidr_sets(&opts(&[
                "--cluster-cidr=10.244.0.0/16,fd00:10::/48",
                "--node-cidr-mask-size=24"
            ])),
            Err(Error::MaskSizeDualStack)
        ));
        assert!(matches!(cidr_sets(&opts(&[])), Err(Error::NoClusterCidr)));
        assert!(matches!(
            cidr_sets(&opts(&["--cluster-cidr=10.0.0.0/16,10.1.0.0/16"])),
            Err(Error::BadClusterCidrs(_))
        ));
        // The service range inside the cluster CIDR is never handed out.
        let mut sets = cidr_sets(&opts(&[
            "--cluster-cidr=10.96.0.0/22",
            "--service-cluster-ip-range=10.96.0.0/24",
        ]))
        .unwrap();
        assert_eq!(sets[0].allocate_next().unwrap(), net("10.96.1.0/24"));
    }

    #[test]
    fn occupy_allocate_release() {
        let mut st = State {
            sets: cidr_sets(&opts(&["--cluster-cidr=10.0.0.0/22"])).unwrap(),
            pending: HashMap::new(),
        };
        // Recovered at start: 10.0.0.0/24 is taken.
        st.occupy(&node("a", "1", &["10.0.0.0/24"]));
        let b = st.allocate("b", "2").unwrap();
        assert_eq!(b, vec![net("10.0.1.0/24")]);
        // A second look before the update shows up in the cache: the same CIDRs.
        assert_eq!(st.allocate("b", "2").unwrap(), b);
        assert_eq!(st.allocate("c", "3").unwrap(), vec![net("10.0.2.0/24")]);
        assert_eq!(st.allocate("d", "4").unwrap(), vec![net("10.0.3.0/24")]);
        assert_eq!(st.allocate("e", "5"), Err(CidrSetError::Full));
        // Deleting a node frees its CIDR for the next one.
        st.release(&node("a", "1", &["10.0.0.0/24"]));
        assert_eq!(st.allocate("e", "5").unwrap(), vec![net("10.0.0.0/24")]);
        // A node deleted before its update was seen releases what was pending.
        st.release(&node("c", "3", &[]));
        assert_eq!(st.allocate("f", "6").unwrap(), vec![net("10.0.2.0/24")]);
    }

    #[test]
    fn dual_stack_allocation_is_all_or_nothing() {
        let mut st = State {
            sets: cidr_sets(&opts(&[
                "--cluster-cidr=10.0.0.0/24,fd00::/63",
                "--node-cidr-mask-size-ipv4=24",
                "--node-cidr-mask-size-ipv6=64",
            ]))
            .unwrap(),
            pending: HashMap::new(),
        };
        assert_eq!(
            st.allocate("a", "1").unwrap(),
            vec![net("10.0.0.0/24"), net("fd00::/64")]
        );
        // IPv4 is full: the IPv6 CIDR is not kept either.
        assert!(st.allocate("b", "2").is_err());
        assert_eq!(st.sets[1].allocated(), 1);
    }
}
