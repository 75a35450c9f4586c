//! The scheduler's view of the cluster: every node with the pods bound or assumed to it
//! and their sums, updated incrementally from the pod and node watches and by the
//! scheduling loop itself ("assume": a pod counts on its node from the moment the
//! scheduler picks the node, before the binding is written, so the next pod is placed
//! without waiting for the round trip).

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::types::NodeView;
use crate::framework::{NodeInfo, PodInfo};

#[derive(Debug)]
struct PodState {
    /// Names its node (`node_name`).
    info: Arc<PodInfo>,
    /// Placed by this scheduler, the watch has not yet shown it bound.
    assumed: bool,
}

#[derive(Debug, Default)]
pub struct Cache {
    /// Nodes that exist, in a stable order (the scheduler walks them round-robin).
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods naming nodes the cache does not (yet, or any more) know.
    ghosts: HashMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    /// Pending pods nominated to a node by preemption, by node, and their node by uid.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: HashMap<String, String>,
}

impl Cache {
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        if let Some(i) = self.index.get(name) {
            return &mut self.nodes[*i];
        }
        self.ghosts
            .entry(name.to_string())
            .or_insert_with(|| NodeInfo::new(name))
    }

    /// Add or update a node; returns whether it is new or changed in what the plugins
    /// read (labels, taints, unschedulable, allocatable, images): upstream's node
    /// update events that may let a pending pod fit.
    pub fn set_node(&mut self, name: &str, view: NodeView) -> bool {
        if let Some(i) = self.index.get(name) {
            let ni = &mut self.nodes[*i];
            if ni.node.as_deref() == Some(&view) {
                return false;
            }
            ni.set_node(Arc::new(view));
            return true;
        }
        let mut ni = self
            .ghosts
            .remove(name)
            .unwrap_or_else(|| NodeInfo::new(name));
        ni.set_node(Arc::new(view));
        self.index.insert(name.to_string(), self.nodes.len());
        self.nodes.push(ni);
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let mut ni = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        if !ni.pods.is_empty() {
            ni.node = None;
            self.ghosts.insert(ni.name.clone(), ni);
        }
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    pub fn contains_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Count `pod` (naming its chosen node) on that node before its binding is
    /// confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.uid);
        self.node_mut(&pod.node_name).add_pod(Arc::clone(&pod));
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                info: pod,
                assumed: true,
            },
        );
    }

    /// Undo [`Self::assume`] after a failed binding.
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// A bound pod seen on the watch (added, updated, or confirming an assumption).
    /// Returns whether it is new to the cache.
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>) -> bool {
        let existed = self.remove_pod(&pod.uid).is_some();
        self.node_mut(&pod.node_name).add_pod(Arc::clone(&pod));
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                info: pod,
                assumed: false,
            },
        );
        !existed
    }

    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let state = self.pods.remove(uid)?;
        let node = state.info.node_name();
        if let Some(i) = self.index.get(node) {
            self.nodes[*i].remove_pod(uid);
        } else if let Some(g) = self.ghosts.get_mut(node) {
            g.remove_pod(uid);
            if g.pods.is_empty() {
                self.ghosts.remove(node);
            }
        }
        Some(state.info)
    }

    /// The uids of the pods the cache holds that were not assumed (for a relist).
    pub fn bound_pod_uids(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, p)| !p.assumed)
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Record (or clear, with an empty `node`) the node `pod` was nominated to.
    pub fn set_nominated(&mut self, pod: &Arc<PodInfo>, node: &str) {
        self.clear_nominated(&pod.uid);
        if node.is_empty() {
            return;
        }
        self.nominated
            .entry(node.to_string())
            .or_default()
            .push(Arc::clone(pod));
        self.nominated_node
            .insert(pod.uid.clone(), node.to_string());
    }

    pub fn clear_nominated(&mut self, uid: &str) {
        let Some(node) = self.nominated_node.remove(uid) else {
            return;
        };
        if let Some(list) = self.nominated.get_mut(&node) {
            list.retain(|p| p.uid != uid);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    /// Pods nominated to `node`, other than `except`, with at least `min_priority`.
    pub fn nominated_for(&self, node: &str, except: &str, min_priority: i32) -> Vec<Arc<PodInfo>> {
        self.nominated
            .get(node)
            .map(|l| {
                l.iter()
                    .filter(|p| p.uid != except && p.priority >= min_priority)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Pods nominated to `node` (for preemption's cleanup of lower-priority ones).
    pub fn nominated_on(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map_or(&[], Vec::as_slice)
    }

    pub fn has_nominations(&self) -> bool {
        !self.nominated.is_empty()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn pod(&self, uid: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(uid).map(|p| &p.info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> NodeView {
        let node: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .unwrap();
        NodeView::new(&node)
    }

    fn pod(uid: &str, node: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            &serde_json::from_value(
                json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "resources": {"requests": {"cpu": "1"}}}]}}),
            )
            .unwrap(),
        ))
    }

    #[test]
    fn pods_before_nodes_and_assume_forget() {
        let mut c = Cache::default();
        assert!(c.add_or_update_pod(pod("a", "n1")));
        assert!(c.set_node("n1", node("n1")));
        assert!(c.set_node("n2", node("n2")));
        // The same node again changes nothing a pending pod waits on.
        assert!(!c.set_node("n2", node("n2")));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.assume(pod("b", "n2"));
        assert!(c.is_assumed("b"));
        assert_eq!(c.node("n2").unwrap().requested.milli_cpu, 1000);
        c.forget("b");
        assert_eq!(c.node("n2").unwrap().requested.milli_cpu, 0);
        c.assume(pod("b", "n2"));
        assert!(!c.add_or_update_pod(pod("b", "n2")));
        assert!(!c.is_assumed("b"));
        c.remove_node("n1");
        assert!(c.node("n1").is_none());
        assert_eq!(c.node("n2").unwrap().pods.len(), 1);
        c.remove_pod("a");
        assert!(c.ghosts.is_empty());
    }
}
