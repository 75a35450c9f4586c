//! The DaemonSet controller (upstream `daemonset`): one pod on every node the pod
//! template admits (nodeSelector, required node affinity, taints it tolerates, with the
//! tolerations upstream adds to every daemon pod), pinned to its node by a required
//! node affinity on `metadata.name` and bound by the scheduler. Pods on nodes that no
//! longer admit them are deleted; failed pods are replaced. Templates are recorded as
//! ControllerRevisions; `RollingUpdate` replaces old pods within `maxUnavailable`, or
//! starts new ones beside them within `maxSurge`; `OnDelete` leaves that to the user.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, Pod, PodSpec, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use crate::context::Context;
use crate::controllers::replicaset::logic::is_available;
use crate::controllers::util::expectations::Expectations;
use crate::controllers::util::history::{self, CONTROLLER_REVISION_HASH_LABEL};
use crate::controllers::util::keyed::{self, key_of, split_key};
use crate::controllers::util::queue::Outcome;
use crate::controllers::util::taints::{self, NO_EXECUTE, NO_SCHEDULE};
use crate::controllers::util::{nodes, pods, refs};
use crate::controllers::ControllerFuture;
use client::events::EventSink;

pub const NAME: &str = "daemonset";
const COMPONENT: &str = "daemonset-controller";
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

struct DsController {
    client: kube::Client,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    events: EventSink,
    expectations: Expectations,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let ds_informer = ctx.informers.get::<DaemonSet>();
    let pod_informer = ctx.informers.get::<Pod>();
    let node_informer = ctx.informers.get::<Node>();
    let rev_informer = ctx.informers.get::<ControllerRevision>();
    let mut keys = keyed::own_keys(&ds_informer)?;
    keys.extend(keyed::owner_keys(&pod_informer, "DaemonSet")?);
    // A node change concerns every daemon set.
    let all_sets = ds_informer.store().clone();
    keys.extend(keyed::mapped_keys(&node_informer, move |_n: &Node| {
        all_sets
            .state()
            .iter()
            .map(|d| key_of(&d.metadata))
            .collect()
    })?);
    let c = Arc::new(DsController {
        client: ctx.client.clone(),
        sets: ds_informer.store().clone(),
        pods: pod_informer.store().clone(),
        nodes: node_informer.store().clone(),
        revisions: rev_informer.store().clone(),
        events: ctx.events(COMPONENT),
        expectations: Expectations::default(),
    });
    let workers = usize::from(ctx.options.concurrent_daemonset_syncs);
    let shutdown = ctx.shutdown.clone();
    let ready = {
        let c = Arc::clone(&c);
        async move {
            client::informers::synced(&c.sets).await
                && client::informers::synced(&c.pods).await
                && client::informers::synced(&c.nodes).await
                && client::informers::synced(&c.revisions).await
        }
    };
    Ok(Box::pin(async move {
        keyed::run(keys, ready, workers, shutdown, move |key| {
            let c = Arc::clone(&c);
            async move { c.sync(&key).await }
        })
        .await;
    }))
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        value: None,
        toleration_seconds: None,
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemons stay on not-ready and
/// unreachable nodes, and go on nodes under pressure or cordoned (and, for host
/// network pods, without a network).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        toleration(taints::TAINT_NODE_NOT_READY, NO_EXECUTE),
        toleration(taints::TAINT_NODE_UNREACHABLE, NO_EXECUTE),
        toleration(taints::TAINT_NODE_DISK_PRESSURE, NO_SCHEDULE),
        toleration(taints::TAINT_NODE_MEMORY_PRESSURE, NO_SCHEDULE),
        toleration(taints::TAINT_NODE_PID_PRESSURE, NO_SCHEDULE),
        toleration(taints::TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE),
    ];
    if spec.host_network == Some(true) {
        add.push(toleration(
            taints::TAINT_NODE_NETWORK_UNAVAILABLE,
            NO_SCHEDULE,
        ));
    }
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for t in add {
        // Replace a toleration of the same key and effect (upstream updates it).
        tols.retain(|o| !(o.key == t.key && o.effect == t.effect));
        tols.push(t);
    }
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity
/// becomes a single term selecting `node` by `metadata.name`.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// Whether a daemon pod should run on `node`, and whether one already there may keep
/// running (upstream's `NodeShouldRunDaemonPod`).
pub fn should_run(template: &PodTemplateSpec, node: &Node) -> (bool, bool) {
    let mut spec = template.spec.clone().unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    if !nodes::matches_required_affinity(&spec, node) {
        return (false, false);
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let node_taints = taints::node_taints(node);
    if nodes::untolerated_taint(node_taints, tolerations, |t| {
        t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE
    })
    .is_some()
    {
        let no_execute =
            nodes::untolerated_taint(node_taints, tolerations, |t| t.effect == NO_EXECUTE)
                .is_some();
        return (false, !no_execute);
    }
    (true, true)
}

/// `maxUnavailable` and `maxSurge` against the number of nodes that should run a pod,
/// rounded up as upstream; both zero means one unavailable.
pub fn budgets(ds: &DaemonSet, desired: usize) -> (usize, usize) {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    let scaled = |v: Option<&IntOrString>, default: usize| match v {
        None => default,
        Some(IntOrString::Int(i)) => usize::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let pct: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (desired * pct).div_ceil(100)
        }
    };
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), 1);
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), 0);
    if unavailable == 0 && surge == 0 {
        return (1, 0);
    }
    (unavailable, surge)
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

impl DsController {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        let Some(ds) = self.sets.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            return Outcome::Forget;
        };
        match self.sync_ds(key, &ds).await {
            Ok(Some(d)) => Outcome::After(d),
            Ok(None) => Outcome::Forget,
            Err(e) => {
                tracing::info!(controller = NAME, daemonset = key, error = %e, "sync failed");
                Outcome::Retry
            }
        }
    }

    /// The hash of the current template's revision (created if new).
    async fn revision(&self, ds: &DaemonSet) -> Result<String, kube::Error> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let revs = history::owned(&self.revisions, ds);
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut collisions = ds
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let rev = history::for_template(&api, ds, &revs, &template, &mut collisions).await?;
        // Keep revisionHistoryLimit old revisions.
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let old: Vec<&ControllerRevision> = revs
            .iter()
            .filter(|r| r.metadata.name != rev.metadata.name)
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if old.len() > keep {
            for r in &old[..old.len() - keep] {
                let _ = api
                    .delete(
                        r.metadata.name.as_deref().unwrap_or_default(),
                        &DeleteParams::default(),
                    )
                    .await;
            }
        }
        Ok(rev
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
            .cloned()
            .unwrap_or_default())
    }

    async fn sync_ds(&self, key: &str, ds: &DaemonSet) -> Result<Option<Duration>, kube::Error> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let Some(spec) = ds.spec.as_ref() else {
            return Ok(None);
        };
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let regarding = ds.object_ref(&());
        let hash = self.revision(ds).await?;
        let selector = apimachinery::labels::label_selector_as_selector(Some(&spec.selector))
            .unwrap_or_else(|_| apimachinery::labels::Selector::nothing());
        let candidates: Vec<Pod> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| match refs::controller_of(&p.metadata) {
                Some(r) => r.uid == uid,
                None => p
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| selector.matches(l)),
            })
            .map(|p| (*p).clone())
            .collect();
        let claimed = refs::claim(&pods_api, ds, candidates, |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| selector.matches(l))
        })
        .await?;
        let seen: HashSet<&str> = claimed
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let live: HashSet<&str> = claimed
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let satisfied = self
            .expectations
            .in_flight_split(key, &seen, &live)
            .is_empty();
        let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
        for p in &claimed {
            if let Some(n) = p.spec.as_ref().and_then(nodes::target_node) {
                by_node.entry(n.to_string()).or_default().push(p);
            }
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let all_nodes = self.nodes.state();
        let mut desired = 0usize;
        let mut to_create: Vec<String> = Vec::new();
        let mut to_delete: Vec<&Pod> = Vec::new();
        let mut old_on_node: Vec<(String, Vec<&Pod>)> = Vec::new();
        let mut st = DaemonSetStatus::default();
        let (mut current, mut misscheduled, mut ready, mut available, mut updated) =
            (0, 0, 0, 0, 0);
        for node in &all_nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let (run, keep) = should_run(&spec.template, node);
            let node_pods: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
            let active: Vec<&Pod> = node_pods
                .iter()
                .copied()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if run {
                desired += 1;
            }
            if !active.is_empty() {
                if run {
                    current += 1;
                } else {
                    misscheduled += 1;
                }
            }
            if run || keep {
                // Failed pods go (and come back on the next sync).
                let (failed, running): (Vec<&Pod>, Vec<&Pod>) = active.iter().partition(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
                });
                to_delete.extend(failed);
                if running.is_empty()
                    && run
                    && node_pods
                        .iter()
                        .all(|p| p.metadata.deletion_timestamp.is_none())
                {
                    to_create.push(name.clone());
                }
                let new: Vec<&Pod> = running
                    .iter()
                    .copied()
                    .filter(|p| hash_of(p) == Some(hash.as_str()))
                    .collect();
                let old: Vec<&Pod> = running
                    .iter()
                    .copied()
                    .filter(|p| hash_of(p) != Some(hash.as_str()))
                    .collect();
                // More than one pod of a revision: keep the oldest.
                for group in [&new, &old] {
                    if group.len() > 1 {
                        let mut g = group.clone();
                        g.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                        to_delete.extend(g.into_iter().skip(1));
                    }
                }
                if let Some(p) = new.first().or(old.first()) {
                    if pods::is_ready(p) {
                        ready += 1;
                        if is_available(p, min_ready, now) {
                            available += 1;
                        }
                    }
                }
                if !new.is_empty() {
                    updated += 1;
                }
                if !old.is_empty() {
                    old_on_node.push((name.clone(), running.clone()));
                }
            } else {
                to_delete.extend(active);
            }
        }
        // Pods whose node is gone.
        for (node, ps) in &by_node {
            if !all_nodes
                .iter()
                .any(|n| n.metadata.name.as_ref() == Some(node))
            {
                to_delete.extend(
                    ps.iter()
                        .copied()
                        .filter(|p| p.metadata.deletion_timestamp.is_none()),
                );
            }
        }
        let rolling = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        let mut requeue = None;
        if satisfied && ds.metadata.deletion_timestamp.is_none() {
            if rolling {
                let (max_unavailable, max_surge) = budgets(ds, desired);
                let mut unavailable = desired.saturating_sub(available);
                let mut surge_left = max_surge;
                for (node, running) in &old_on_node {
                    let new = running.iter().find(|p| hash_of(p) == Some(hash.as_str()));
                    let olds: Vec<&Pod> = running
                        .iter()
                        .copied()
                        .filter(|p| hash_of(p) != Some(hash.as_str()))
                        .collect();
                    let old_available = olds.iter().any(|p| is_available(p, min_ready, now));
                    if max_surge == 0 {
                        if !old_available {
                            to_delete.extend(olds);
                        } else if unavailable < max_unavailable {
                            to_delete.extend(olds);
                            unavailable += 1;
                        }
                        continue;
                    }
                    match new {
                        Some(n) if is_available(n, min_ready, now) => to_delete.extend(olds),
                        Some(_) => {}
                        None if !old_available => {
                            to_create.push(node.clone());
                        }
                        None if surge_left > 0 => {
                            surge_left -= 1;
                            to_create.push(node.clone());
                        }
                        None => {}
                    }
                }
                if min_ready > 0 {
                    requeue = Some(Duration::from_secs(1));
                }
            }
            to_delete.sort_by_key(|p| p.metadata.name.clone());
            to_delete.dedup_by_key(|p| p.metadata.name.clone());
            pods::delete_controlled(
                &pods_api,
                &self.events,
                &self.expectations,
                key,
                &regarding,
                &to_delete,
            )
            .await;
            self.create_pods(key, ds, &pods_api, &regarding, &hash, &to_create)
                .await;
        }

        let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        st.desired_number_scheduled = as_i32(desired);
        st.current_number_scheduled = as_i32(current);
        st.number_misscheduled = as_i32(misscheduled);
        st.number_ready = as_i32(ready);
        st.number_available = (available > 0).then(|| as_i32(available));
        st.number_unavailable = (desired > available).then(|| as_i32(desired - available));
        st.updated_number_scheduled = (updated > 0).then(|| as_i32(updated));
        st.observed_generation = ds.metadata.generation;
        st.collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
        st.conditions = ds.status.as_ref().and_then(|s| s.conditions.clone());
        if Some(&st) != ds.status.as_ref() {
            let mut updated_ds = ds.clone();
            updated_ds.status = Some(st);
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
            api.replace_status(
                ds.metadata.name.as_deref().unwrap_or_default(),
                &PostParams::default(),
                &updated_ds,
            )
            .await?;
        }
        Ok(requeue)
    }

    async fn create_pods(
        &self,
        key: &str,
        ds: &DaemonSet,
        api: &Api<Pod>,
        regarding: &ObjectReference,
        hash: &str,
        nodes_: &[String],
    ) {
        let Some(spec) = ds.spec.as_ref() else {
            return;
        };
        let ds_name = ds.metadata.name.clone().unwrap_or_default();
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        for node in nodes_ {
            let mut pod = pods::from_template(
                &spec.template,
                &ns,
                &pods::name_prefix(&ds_name),
                refs::controller_ref(ds),
            );
            let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.to_string());
            labels.insert(
                TEMPLATE_GENERATION_LABEL.into(),
                ds.metadata.generation.unwrap_or(1).to_string(),
            );
            if let Some(ps) = pod.spec.as_mut() {
                add_daemon_tolerations(ps);
                pin_to_node(ps, node);
            }
            match api.create(&PostParams::default(), &pod).await {
                Ok(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    self.expectations.expect_created(key, &name);
                    self.events.normal(
                        regarding.clone(),
                        "SuccessfulCreate",
                        "Create",
                        format!("Created pod: {name}"),
                    );
                }
                Err(e) => {
                    self.events.warning(
                        regarding.clone(),
                        "FailedCreate",
                        "Create",
                        format!("Error creating: {e}"),
                    );
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n.spec = Some(NodeSpec {
            taints: Some(taints),
            ..Default::default()
        });
        n
    }

    fn template(selector: Option<(&str, &str)>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                node_selector: selector
                    .map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())])),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn eligibility_follows_selectors_and_taints() {
        let t = template(Some(("disk", "ssd")));
        assert_eq!(
            should_run(&t, &node("a", &[("disk", "ssd")], vec![])),
            (true, true)
        );
        assert_eq!(should_run(&t, &node("b", &[], vec![])), (false, false));
        let any = template(None);
        // Cordoned, not ready and under pressure: daemons tolerate these.
        let tolerated = vec![
            taints::taint(taints::TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE),
            taints::taint(taints::TAINT_NODE_NOT_READY, NO_EXECUTE),
            taints::taint(taints::TAINT_NODE_DISK_PRESSURE, NO_SCHEDULE),
        ];
        assert_eq!(should_run(&any, &node("c", &[], tolerated)), (true, true));
        // A foreign NoSchedule taint: not placed, but a running pod may stay.
        let dedicated = vec![taints::taint("dedicated", NO_SCHEDULE)];
        assert_eq!(should_run(&any, &node("d", &[], dedicated)), (false, true));
        let evict = vec![taints::taint("dedicated", NO_EXECUTE)];
        assert_eq!(should_run(&any, &node("e", &[], evict)), (false, false));
        // Network-unavailable is tolerated only by host network pods.
        let net = vec![taints::taint(
            taints::TAINT_NODE_NETWORK_UNAVAILABLE,
            NO_SCHEDULE,
        )];
        assert!(!should_run(&any, &node("f", &[], net.clone())).0);
        let mut host = template(None);
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert!(should_run(&host, &node("f", &[], net)).0);
    }

    #[test]
    fn pods_are_pinned_by_node_affinity() {
        let mut spec = PodSpec::default();
        pin_to_node(&mut spec, "n1");
        assert_eq!(nodes::target_node(&spec), Some("n1"));
        assert!(nodes::matches_required_affinity(
            &spec,
            &node("n1", &[], vec![])
        ));
        assert!(!nodes::matches_required_affinity(
            &spec,
            &node("n2", &[], vec![])
        ));
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.unwrap().len(), 6);
    }

    #[test]
    fn budgets_round_up_and_default_to_one() {
        let mut ds = DaemonSet::default();
        assert_eq!(budgets(&ds, 10), (1, 0));
        ds.spec = Some(k8s_openapi::api::apps::v1::DaemonSetSpec {
            update_strategy: Some(k8s_openapi::api::apps::v1::DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("25%".into())),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            ..Default::default()
        });
        assert_eq!(budgets(&ds, 10), (3, 0));
    }
}
