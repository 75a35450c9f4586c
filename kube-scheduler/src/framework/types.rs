//! What the plugins look at: a pod with everything derived from it once ([`PodInfo`]:
//! requests, host ports, parsed affinity terms), and a node with the pods on it and their
//! sums ([`NodeInfo`]), kept up to date incrementally by the cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::labels::Selector;
use apimachinery::quantity::Quantity as ParsedQuantity;
use k8s_openapi::api::core::v1::{
    Container, Node, ObjectReference, Pod, PodAffinityTerm, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// An empty label map, for objects without labels.
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Upstream's defaults for containers that request no CPU / memory, used when scoring so
/// that best-effort pods still count for something (`schedutil.DefaultMilliCPURequest`,
/// `DefaultMemoryRequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources, as upstream's `framework.Resource`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended, hugepages and other scalar resources, by name.
    pub scalar: Vec<(String, i64)>,
}

fn quantity_value(name: &str, q: &Quantity) -> i64 {
    match ParsedQuantity::parse(&q.0) {
        Ok(p) if name == "cpu" => p.milli_value(),
        Ok(p) => p.value(),
        Err(_) => 0,
    }
}

impl Resource {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resource {
        let mut r = Resource::default();
        r.add_list(list);
        r
    }

    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            other => self
                .scalar
                .iter()
                .find(|(n, _)| n == other)
                .map_or(0, |(_, v)| *v),
        }
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        if let Some(i) = self.scalar.iter().position(|(n, _)| n == name) {
            return &mut self.scalar[i].1;
        }
        self.scalar.push((name.to_string(), 0));
        let last = self.scalar.len() - 1;
        &mut self.scalar[last].1
    }

    fn slot(&mut self, name: &str) -> Option<&mut i64> {
        match name {
            "cpu" => Some(&mut self.milli_cpu),
            "memory" => Some(&mut self.memory),
            "ephemeral-storage" => Some(&mut self.ephemeral_storage),
            "pods" => Some(&mut self.allowed_pod_number),
            // Persistent volume capacity is not a node resource.
            "storage" => None,
            other => Some(self.scalar_mut(other)),
        }
    }

    pub fn add_list(&mut self, list: Option<&BTreeMap<String, Quantity>>) {
        for (name, q) in list.into_iter().flatten() {
            let v = quantity_value(name, q);
            if let Some(slot) = self.slot(name) {
                *slot += v;
            }
        }
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) += v;
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) -= v;
        }
    }

    /// Each dimension becomes the larger of the two.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(other.allowed_pod_number);
        for (n, v) in &other.scalar {
            let slot = self.scalar_mut(n);
            *slot = (*slot).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

fn container_requests(c: &Container) -> Option<&BTreeMap<String, Quantity>> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container's requests; with `non_missing`, CPU and memory that are absent count as
/// upstream's scoring defaults.
fn container_resource(c: &Container, non_missing: bool) -> Resource {
    let list = container_requests(c);
    let mut r = Resource::from_list(list);
    if non_missing {
        let has = |k: &str| list.is_some_and(|l| l.contains_key(k));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The pod's effective requests as upstream's `resourcehelper.PodRequests`: the sum of
/// the regular containers and the sidecars (restartable init containers), or the
/// largest need while an init container runs (it plus the sidecars started before it)
/// if that is larger, plus the pod overhead.
pub fn pod_requests(pod: &Pod, non_missing: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_resource(c, non_missing));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_resource(c, non_missing);
        if is_sidecar(c) {
            reqs.add(&r);
            sidecars.add(&r);
            init_max.set_max(&sidecars);
        } else {
            let mut while_running = r;
            while_running.add(&sidecars);
            init_max.set_max(&while_running);
        }
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add_list(Some(overhead));
    }
    reqs
}

/// A host port a pod uses: (IP, protocol, port) with upstream's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream's `HostPortInfo.CheckConflict`: the same protocol and port conflict when
    /// either side listens on every address or both on the same one.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == "0.0.0.0" || other.ip == "0.0.0.0" || self.ip == other.ip)
    }
}

/// The host ports of the containers that run for the pod's whole life (regular ones and
/// sidecars), as upstream's `GetHostPorts`.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c));
    let mut out = Vec::new();
    for c in sidecars.chain(spec.containers.iter()) {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|hp| *hp > 0) else {
                continue;
            };
            let ip = p
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())
                .unwrap_or("0.0.0.0");
            out.push(HostPort {
                ip: ip.to_string(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                port: host_port,
            });
        }
    }
    out
}

/// A parsed pod (anti-)affinity term, as upstream's `framework.AffinityTerm`.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: Vec<String>,
    /// `None` when the term has no namespace selector (selects no namespace).
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    pub fn new(pod_namespace: &str, term: &PodAffinityTerm) -> AffinityTerm {
        let selector =
            apimachinery::labels::label_selector_as_selector(term.label_selector.as_ref())
                .unwrap_or_else(|_| Selector::nothing());
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(pod_namespace.to_string());
        }
        let namespace_selector = term
            .namespace_selector
            .as_ref()
            .map(|s| Selector::from_label_selector(s).unwrap_or_else(|_| Selector::nothing()));
        AffinityTerm {
            namespaces,
            namespace_selector,
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` (in a namespace labelled `ns_labels`) is selected by the term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
        let ns_ok = self.namespaces.iter().any(|n| n == pod.namespace())
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(ns_labels));
        ns_ok && self.selector.matches(pod.labels())
    }
}

#[derive(Debug, Clone)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

/// What the scheduler keeps of a pod, derived from it once: the fields the plugins read
/// of the pods already on nodes (labels, requests, host ports, parsed affinity terms)
/// and the identity the scheduler writes back with. Not the object itself: the cache
/// holds one of these for every bound, assumed and nominated pod, and a whole `Pod`
/// costs several times as much (its containers alone are kilobytes).
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: String,
    /// Length of the namespace at the start of `key`.
    namespace_len: usize,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`; the chosen node for an assumed pod.
    pub node_name: String,
    pub priority: i32,
    /// Marked for deletion.
    pub terminating: bool,
    /// `status.startTime`, or the creation time when not started (for ordering victims).
    pub start_time: Option<jiff::Timestamp>,
    /// What NodeResourcesFit checks and a node's `requested` counts.
    pub requests: Resource,
    /// CPU and memory with upstream's defaults for absent requests (for scoring).
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

impl PodInfo {
    pub fn new(pod: &Pod) -> PodInfo {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let requests = pod_requests(pod, false);
        let non_zero = pod_requests(pod, true);
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(namespace, t))
                .collect()
        };
        let preferred =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .into_iter()
                    .flatten()
                    .filter(|t| t.weight != 0)
                    .map(|t| WeightedAffinityTerm {
                        term: AffinityTerm::new(namespace, &t.pod_affinity_term),
                        weight: t.weight,
                    })
                    .collect::<Vec<_>>()
            };
        PodInfo {
            key: format!("{namespace}/{name}"),
            namespace_len: namespace.len(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
                .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            non_zero_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            requests,
            host_ports: host_ports(pod),
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        }
    }

    /// The same pod counted on `node` (the scheduler's assumption before the binding
    /// is confirmed).
    pub fn on_node(&self, node: &str) -> PodInfo {
        PodInfo {
            node_name: node.to_string(),
            ..self.clone()
        }
    }

    pub fn namespace(&self) -> &str {
        &self.key[..self.namespace_len]
    }

    pub fn name(&self) -> &str {
        self.key.get(self.namespace_len + 1..).unwrap_or_default()
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    pub fn is_terminating(&self) -> bool {
        self.terminating
    }

    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// The pod's start time (for ordering victims); the creation time when not started.
    pub fn start_time(&self) -> Option<jiff::Timestamp> {
        self.start_time
    }

    /// A reference to the pod for events.
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(self.name().to_string()),
            namespace: Some(self.namespace().to_string()),
            uid: Some(self.uid.clone()),
            resource_version: Some(self.resource_version.clone()),
            ..Default::default()
        }
    }
}

/// A pod waiting to be scheduled: its [`PodInfo`] and the whole object, whose spec
/// Filter and Score read (node affinity and selector, tolerations, topology spread
/// constraints, volumes). Only the queue and the scheduling cycle hold these; once the
/// pod is assumed or bound the cache keeps the `PodInfo` alone.
#[derive(Debug)]
pub struct PendingPod {
    pub info: Arc<PodInfo>,
    pub pod: Pod,
}

impl std::ops::Deref for PendingPod {
    type Target = PodInfo;

    fn deref(&self) -> &PodInfo {
        &self.info
    }
}

impl PendingPod {
    pub fn new(pod: Pod) -> PendingPod {
        PendingPod {
            info: Arc::new(PodInfo::new(&pod)),
            pod,
        }
    }

    pub fn spec(&self) -> Option<&PodSpec> {
        self.pod.spec.as_ref()
    }

    pub fn scheduler_name(&self) -> &str {
        self.spec()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME)
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.spec()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[])
    }

    pub fn nominated_node_name(&self) -> &str {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or("")
    }
}

/// What the plugins read of a Node object (its conditions, addresses, system info and
/// the rest are not kept: a few kilobytes per node).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// `status.allocatable`, or the capacity when allocatable is not reported.
    pub allocatable: Resource,
    /// Normalised image names on the node and their sizes (ImageLocality).
    pub images: BTreeMap<String, i64>,
}

impl NodeView {
    pub fn new(node: &Node) -> NodeView {
        let status = node.status.as_ref();
        let spec = node.spec.as_ref();
        let mut images = BTreeMap::new();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                images.insert(normalized_image_name(name), image.size_bytes.unwrap_or(0));
            }
        }
        NodeView {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: Resource::from_list(
                status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
            ),
            images,
        }
    }
}

/// A node, the pods on it (bound or assumed) and their sums.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `None` while only pods naming the node are known (they may arrive before it).
    pub node: Option<Arc<NodeView>>,
    pub name: String,
    pub pods: Vec<Arc<PodInfo>>,
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    pub requested: Resource,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub allocatable: Resource,
}

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn set_node(&mut self, node: Arc<NodeView>) {
        self.allocatable = node.allocatable.clone();
        self.node = Some(node);
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.as_ref().map_or(&NO_LABELS, |n| &n.labels)
    }

    pub fn taints(&self) -> &[Taint] {
        self.node.as_ref().map_or(&[], |n| &n.taints)
    }

    pub fn unschedulable(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.unschedulable)
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_cpu += pod.non_zero_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity.push(Arc::clone(&pod));
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity.push(Arc::clone(&pod));
        }
        self.pods.push(pod);
    }

    /// Remove the pod with `uid`; returns it when it was there.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.pods_with_affinity.retain(|p| p.uid != uid);
        self.pods_with_required_anti_affinity
            .retain(|p| p.uid != uid);
        self.requested.sub(&pod.requests);
        self.non_zero_cpu -= pod.non_zero_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(pod)
    }

    /// The most pods the node takes (its allocatable `pods`).
    pub fn allowed_pod_number(&self) -> i64 {
        self.allocatable.allowed_pod_number
    }
}

/// Upstream's `normalizedImageName`: an image without a tag or digest means `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn requests_take_init_containers_sidecars_and_overhead() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m"}}}
            ],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"name": "big", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}}
            ],
            "overhead": {"cpu": "100m", "memory": "10Mi"}
        }));
        let r = pod_requests(&p, false);
        // Regular 1.5 + sidecar 0.2 = 1.7; the init container needs 3 + sidecar 0.2.
        assert_eq!(r.milli_cpu, 3200 + 100);
        assert_eq!(r.memory, 1024 * 1024 * 1024 + 10 * 1024 * 1024);
        let nz = pod_requests(&p, true);
        // Container b has no memory request: it counts 200Mi when scoring, and the
        // sidecar counts the defaults for both.
        assert_eq!(
            nz.memory,
            (1024 + 200 + 200) * 1024 * 1024 + 10 * 1024 * 1024
        );
    }

    #[test]
    fn host_ports_default_ip_and_protocol() {
        let p = pod(json!({"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 81},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}
        ]}]}));
        let ports = host_ports(&p);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].ip, "0.0.0.0");
        assert_eq!(ports[0].protocol, "TCP");
        assert!(ports[0].conflicts(&HostPort {
            ip: "127.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080
        }));
        assert!(!ports[1].conflicts(&HostPort {
            ip: "10.0.0.2".into(),
            protocol: "UDP".into(),
            port: 53
        }));
    }

    #[test]
    fn node_info_sums_follow_adds_and_removes() {
        let mut ni = NodeInfo::new("n");
        let p = Arc::new(PodInfo::new(&pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m"}}, "ports": [{"containerPort": 1, "hostPort": 9}]}
        ]}))));
        ni.add_pod(Arc::clone(&p));
        assert_eq!(ni.requested.milli_cpu, 250);
        assert_eq!(ni.non_zero_memory, DEFAULT_MEMORY_REQUEST);
        assert_eq!(ni.used_ports.len(), 1);
        assert!(ni.remove_pod("u1").is_some());
        assert_eq!(ni.requested, Resource::default());
        assert!(ni.used_ports.is_empty());
        assert_eq!(ni.non_zero_memory, 0);
    }

    #[test]
    fn pod_info_keeps_what_is_read_of_placed_pods() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "prod", "uid": "u9",
                "resourceVersion": "42", "labels": {"app": "web"},
                "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"nodeName": "n1", "priority": 7, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": "1"}}}]}
        }))
        .unwrap();
        let info = PodInfo::new(&p);
        assert_eq!((info.namespace(), info.name()), ("prod", "web-1"));
        assert_eq!(info.key, "prod/web-1");
        assert_eq!(info.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!((info.node_name(), info.priority), ("n1", 7));
        assert_eq!(
            info.start_time().map(|t| t.as_second()),
            Some(1_767_323_045)
        );
        let r = info.reference();
        assert_eq!(r.name.as_deref(), Some("web-1"));
        assert_eq!(r.resource_version.as_deref(), Some("42"));
        let moved = info.on_node("n2");
        assert_eq!(moved.node_name(), "n2");
        assert_eq!(moved.requests.milli_cpu, 1000);

        let cluster_scoped = PodInfo::new(
            &serde_json::from_value::<Pod>(json!({"metadata": {"name": "x"}})).unwrap(),
        );
        assert_eq!(
            (cluster_scoped.namespace(), cluster_scoped.name()),
            ("", "x")
        );
    }

    #[test]
    fn node_view_changes_only_with_what_plugins_read() {
        let node = |taint: &str, condition: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": "n", "labels": {"zone": "a"}},
                "spec": {"taints": [{"key": taint, "effect": "NoSchedule"}]},
                "status": {"allocatable": {"cpu": "2", "pods": "10"},
                    "conditions": [{"type": "Ready", "status": condition}]}
            }))
            .unwrap()
        };
        let v = NodeView::new(&node("a", "True"));
        assert_eq!(v.allocatable.milli_cpu, 2000);
        assert_eq!(v.taints.len(), 1);
        assert_eq!(v, NodeView::new(&node("a", "False")));
        assert_ne!(v, NodeView::new(&node("b", "True")));
    }

    #[test]
    fn image_names_are_normalised() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.2"), "nginx:1.2");
        assert_eq!(
            normalized_image_name("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(normalized_image_name("x@sha256:ab"), "x@sha256:ab");
    }
}
