//! The dependency graph of the garbage collector (upstream's `GraphBuilder`): every
//! object of every deletable resource, by uid, with its owner references and the
//! reverse index from owners to dependents. Changes to the graph return the work they
//! cause, which the collector queues; decisions about one object are pure functions
//! here so they can be tested without a cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::controllers::util::discovery::Resource;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// One object as the collector knows it (metadata only).
#[derive(Debug, Clone)]
pub struct Node {
    pub resource: Arc<Resource>,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_meta(resource: Arc<Resource>, meta: &ObjectMeta) -> Option<Node> {
        Some(Node {
            resource,
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: waits for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has(FOREGROUND)
    }

    /// Being deleted with its dependents orphaned.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has(ORPHAN)
    }

    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.resource.group_resource(), ns, self.name),
            None => format!("{}/{}", self.resource.group_resource(), self.name),
        }
    }
}

/// Work for the collector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Look at this object: delete it if its owners are gone, or, when it is being
    /// deleted in the foreground, finish that once its blocking dependents are gone.
    AttemptToDelete(String),
    /// Remove this object's dependents' references to it, then its orphan finalizer.
    Orphan(String),
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner uid → dependents' uids (the owner need not be known).
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The known dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// Dependents that block the deletion of `uid` (their reference to it has
    /// `blockOwnerDeletion`).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// The uids of every object of `resource`.
    pub fn uids_of(&self, resource: &Resource) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| *n.resource == *resource)
            .map(|n| n.uid.clone())
            .collect()
    }

    /// An object was added or changed.
    pub fn upsert(&mut self, node: Node) -> Vec<Work> {
        let mut work = Vec::new();
        let uid = node.uid.clone();
        let old = self.nodes.remove(&uid);
        let old_owners: HashSet<String> = old
            .as_ref()
            .map(|o| o.owners.iter().map(|r| r.uid.clone()).collect())
            .unwrap_or_default();
        let new_owners: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        for gone in old_owners.difference(&new_owners) {
            if let Some(set) = self.dependents.get_mut(gone) {
                set.remove(&uid);
                if set.is_empty() {
                    self.dependents.remove(gone);
                }
            }
            // Its owner may have been waiting for this reference to go.
            work.push(Work::AttemptToDelete(gone.clone()));
        }
        for added in new_owners.difference(&old_owners) {
            self.dependents
                .entry(added.clone())
                .or_default()
                .insert(uid.clone());
        }
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        if owners_changed && !node.owners.is_empty() {
            // An owner that is unknown or being deleted in the foreground may mean this
            // object is to be collected.
            let suspicious = node.owners.iter().any(|r| {
                self.nodes
                    .get(&r.uid)
                    .is_none_or(|owner| owner.deleting_dependents())
            });
            if suspicious {
                work.push(Work::AttemptToDelete(uid.clone()));
            }
        }
        let was_deleting_dependents = old.as_ref().is_some_and(Node::deleting_dependents);
        if node.deleting_dependents() && !was_deleting_dependents {
            work.push(Work::AttemptToDelete(uid.clone()));
            for d in self.dependents.get(&uid).into_iter().flatten() {
                work.push(Work::AttemptToDelete(d.clone()));
            }
        }
        if node.orphaning() {
            work.push(Work::Orphan(uid.clone()));
        }
        self.nodes.insert(uid, node);
        work
    }

    /// An object is gone: its dependents may be garbage now, and an owner deleting in
    /// the foreground may be waiting for it.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = Vec::new();
        let Some(node) = self.nodes.remove(uid) else {
            return work;
        };
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(Node::deleting_dependents)
            {
                work.push(Work::AttemptToDelete(owner.uid.clone()));
            }
        }
        for d in self.dependents.get(uid).into_iter().flatten() {
            work.push(Work::AttemptToDelete(d.clone()));
        }
        work
    }

    /// Work that a full look at the graph finds (after the first sync): objects with
    /// owners, and objects waiting on the collector.
    pub fn all_work(&self) -> Vec<Work> {
        let mut work = Vec::new();
        for n in self.nodes.values() {
            if n.orphaning() {
                work.push(Work::Orphan(n.uid.clone()));
            } else if n.deleting_dependents() || !n.owners.is_empty() {
                work.push(Work::AttemptToDelete(n.uid.clone()));
            }
        }
        work
    }
}

/// What an owner reference points at, as found in the graph or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Absent, or replaced by an object with another uid.
    Dangling,
    /// Being deleted in the foreground (waiting for its dependents).
    WaitingForDependents,
}

/// The decision about an object that is not itself being deleted (upstream's
/// `attemptToDeleteItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Another owner keeps it: drop the references to these (dangling or waiting)
    /// owners.
    RemoveOwnerReferences(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(&'static str),
}

pub fn decide(node: &Node, owners: &[(String, OwnerState)], has_dependents: bool) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let not_solid: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s != OwnerState::Solid)
        .map(|(uid, _)| uid.clone())
        .collect();
    if solid {
        if not_solid.is_empty() {
            return Decision::Keep;
        }
        return Decision::RemoveOwnerReferences(not_solid);
    }
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependents);
    if waiting && has_dependents {
        // An owner waits for this object: delete it in the foreground too, so the wait
        // covers its own dependents.
        return Decision::Delete("Foreground");
    }
    // No owner keeps it; its own finalizers choose how its dependents go.
    if node.finalizers.iter().any(|f| f == ORPHAN) {
        Decision::Delete("Orphan")
    } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
        Decision::Delete("Foreground")
    } else {
        Decision::Delete("Background")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str, plural: &str) -> Arc<Resource> {
        Arc::new(Resource {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced: true,
            verbs: vec!["list".into(), "watch".into(), "delete".into()],
        })
    }

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("owner-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: Vec<OwnerReference>) -> Node {
        Node {
            resource: resource("ConfigMap", "configmaps"),
            namespace: Some("default".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn dependents_are_indexed_and_unknown_owners_are_looked_at() {
        let mut g = Graph::default();
        assert!(g.upsert(node("owner", vec![])).is_empty());
        // Owner known and alive: nothing to do.
        assert!(g
            .upsert(node("a", vec![owner_ref("owner", true)]))
            .is_empty());
        // Owner unknown: the dependent is examined.
        assert_eq!(
            g.upsert(node("b", vec![owner_ref("ghost", false)])),
            vec![Work::AttemptToDelete("b".into())]
        );
        assert_eq!(g.dependents("owner").len(), 1);
        assert_eq!(g.blocking_dependents("owner").len(), 1);
        // The owner goes: its dependents are examined.
        assert_eq!(g.remove("owner"), vec![Work::AttemptToDelete("a".into())]);
    }

    #[test]
    fn foreground_deletion_examines_owner_and_dependents_and_orphaning_is_queued() {
        let mut g = Graph::default();
        g.upsert(node("owner", vec![]));
        g.upsert(node("a", vec![owner_ref("owner", true)]));
        let mut deleting = node("owner", vec![]);
        deleting.deleting = true;
        deleting.finalizers = vec![FOREGROUND.into()];
        let mut work = g.upsert(deleting);
        work.sort();
        assert_eq!(
            work,
            vec![
                Work::AttemptToDelete("a".into()),
                Work::AttemptToDelete("owner".into())
            ]
        );
        // The blocking dependent goes: the owner is looked at again.
        assert_eq!(g.remove("a"), vec![Work::AttemptToDelete("owner".into())]);
        let mut orphaning = node("o2", vec![]);
        orphaning.deleting = true;
        orphaning.finalizers = vec![ORPHAN.into()];
        assert_eq!(g.upsert(orphaning), vec![Work::Orphan("o2".into())]);
    }

    #[test]
    fn decisions_follow_upstream() {
        let n = node("a", vec![owner_ref("x", false), owner_ref("y", false)]);
        use OwnerState::*;
        assert_eq!(decide(&n, &[], false), Decision::Keep);
        assert_eq!(
            decide(&n, &[("x".into(), Solid), ("y".into(), Solid)], false),
            Decision::Keep
        );
        assert_eq!(
            decide(&n, &[("x".into(), Solid), ("y".into(), Dangling)], false),
            Decision::RemoveOwnerReferences(vec!["y".into()])
        );
        assert_eq!(
            decide(&n, &[("x".into(), Dangling), ("y".into(), Dangling)], false),
            Decision::Delete("Background")
        );
        assert_eq!(
            decide(&n, &[("x".into(), WaitingForDependents)], true),
            Decision::Delete("Foreground")
        );
        assert_eq!(
            decide(&n, &[("x".into(), WaitingForDependents)], false),
            Decision::Delete("Background")
        );
        let mut orphaning = n.clone();
        orphaning.finalizers = vec![ORPHAN.into()];
        assert_eq!(
            decide(&orphaning, &[("x".into(), Dangling)], false),
            Decision::Delete("Orphan")
        );
    }
}
