//! What each kind of object costs in quota terms (upstream's `pkg/quota/v1/evaluator/core`
//! and the generic object-count evaluator): which quota resource names a kind answers
//! for, whether an object falls in a quota's scopes, and an object's usage.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::validation;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, PodAffinityTerm, ResourceQuota, ScopedResourceSelectorRequirement,
    Service, WeightedPodAffinityTerm,
};
use serde_json::Value;

use crate::admission::resources::{self, count, ResourceList};
use crate::admission::{Attributes, Operation};

/// The resources a pod is charged for, besides hugepages and extended resources.
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// Quota names with these prefixes are charged from pods' requests.
const POD_RESOURCE_PREFIXES: &[&str] = &["hugepages-", "requests.hugepages-"];

/// A quota on these makes every container state them (a historical rule upstream keeps).
const REQUIRED_PER_CONTAINER: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];

const CLAIM_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];

/// `<class>.storageclass.storage.k8s.io/<resource>` charges claims of one storage class.
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Core kinds whose object counts also have a name without `count/`.
const LEGACY_COUNT_ALIASES: &[&str] = &[
    "configmaps",
    "resourcequotas",
    "replicationcontrollers",
    "secrets",
];

/// Resources quota never charges for.
const IGNORED: &[(&str, &str)] = &[("", "events")];

/// How one kind of object is measured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Evaluator {
    Pods,
    Services,
    Claims,
    /// Any other kind: its object count (`count/<resource>[.<group>]`).
    Count {
        group: String,
        plural: String,
    },
}

impl Evaluator {
    /// The evaluator of a kind, `None` for kinds quota ignores.
    pub fn for_resource(group: &str, plural: &str) -> Option<Evaluator> {
        if IGNORED.contains(&(group, plural)) {
            return None;
        }
        Some(match (group, plural) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::Claims,
            _ => Evaluator::Count {
                group: group.to_string(),
                plural: plural.to_string(),
            },
        })
    }

    /// The evaluator that measures a quota resource name, if any.
    pub fn owning(name: &str) -> Option<Evaluator> {
        for ev in [Evaluator::Pods, Evaluator::Services, Evaluator::Claims] {
            if ev.matches_resource(name) {
                return Some(ev);
            }
        }
        if LEGACY_COUNT_ALIASES.contains(&name) {
            return Evaluator::for_resource("", name);
        }
        let counted = name.strip_prefix("count/")?;
        let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
        Evaluator::for_resource(group, plural)
    }

    /// The `(group, plural)` of the kind.
    pub fn group_resource(&self) -> (String, String) {
        match self {
            Evaluator::Pods => (String::new(), "pods".into()),
            Evaluator::Services => (String::new(), "services".into()),
            Evaluator::Claims => (String::new(), "persistentvolumeclaims".into()),
            Evaluator::Count { group, plural } => (group.clone(), plural.clone()),
        }
    }

    fn count_name(&self) -> String {
        let (group, plural) = self.group_resource();
        if group.is_empty() {
            format!("count/{plural}")
        } else {
            format!("count/{plural}.{group}")
        }
    }

    /// Whether a write can change this kind's usage (upstream's `Handles`).
    pub fn handles(&self, attrs: &Attributes) -> bool {
        match (self, attrs.operation) {
            (_, Operation::Create) => true,
            (Evaluator::Services | Evaluator::Claims, Operation::Update) => true,
            // A pod's usage only moves between the Terminating and NotTerminating scopes.
            (Evaluator::Pods, Operation::Update) => {
                let terminating = |v: Option<&Value>| {
                    v.and_then(|v| serde_json::from_value::<Pod>(v.clone()).ok())
                        .is_some_and(|p| is_terminating(&p))
                };
                terminating(attrs.object.as_ref()) != terminating(attrs.old_object.as_ref())
            }
            _ => false,
        }
    }

    fn matches_resource(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || POD_RESOURCE_PREFIXES.iter().any(|p| name.starts_with(p))
                    || is_extended_resource_name_for_quota(name)
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::Claims => {
                name == "count/persistentvolumeclaims"
                    || CLAIM_RESOURCES.contains(&name)
                    || CLAIM_RESOURCES
                        .iter()
                        .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Evaluator::Count { group, plural } => {
                name == self.count_name()
                    || (group.is_empty()
                        && LEGACY_COUNT_ALIASES.contains(&name)
                        && name == plural.as_str())
            }
        }
    }

    /// The names among `names` this kind is charged for (upstream's
    /// `MatchingResources`).
    pub fn matching_resources<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        names
            .into_iter()
            .filter(|n| self.matches_resource(n))
            .cloned()
            .collect()
    }

    /// Whether `obj` falls in one scope selector; only pods have scopes.
    pub fn matches_scope(&self, selector: &ScopedResourceSelectorRequirement, obj: &Value) -> bool {
        let Evaluator::Pods = self else {
            return false;
        };
        let Ok(pod) = serde_json::from_value::<Pod>(obj.clone()) else {
            return false;
        };
        pod_matches_scope(selector, &pod)
    }

    /// Whether the quota tracks this object: it names something the kind is charged
    /// for and the object is in all its scopes (upstream's `Matches`).
    pub fn matches(&self, quota: &ResourceQuota, hard: &ResourceList, obj: &Value) -> bool {
        !self.matching_resources(hard.keys()).is_empty()
            && scope_selectors(quota)
                .iter()
                .all(|s| self.matches_scope(s, obj))
    }

    /// What the object must state for the quota resources `required` to be chargeable
    /// (upstream's `Constraints`): an error message, or `None`.
    pub fn constraints(&self, required: &[String], obj: &Value) -> Option<String> {
        let Evaluator::Pods = self else {
            return None;
        };
        let pod = serde_json::from_value::<Pod>(obj.clone()).ok()?;
        let spec = pod.spec.as_ref()?;
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| REQUIRED_PER_CONTAINER.contains(r))
            .collect();
        let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let res = c.resources.as_ref();
            let usage = compute_usage(
                &resources::parse_list(res.and_then(|r| r.requests.as_ref())),
                &resources::parse_list(res.and_then(|r| r.limits.as_ref())),
            );
            for name in required.iter().copied() {
                if !usage.contains_key(name) {
                    missing.entry(name).or_default().insert(c.name.as_str());
                }
            }
        }
        if missing.is_empty() {
            return None;
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(res, names)| {
                format!(
                    "{res} for: {}",
                    names.iter().copied().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Some(format!("must specify {}", parts.join("; ")))
    }

    /// The object's usage (upstream's `Usage`).
    pub fn usage(&self, obj: &Value) -> ResourceList {
        match self {
            Evaluator::Pods => serde_json::from_value::<Pod>(obj.clone())
                .map(|p| pod_usage(&p, jiff::Timestamp::now()))
                .unwrap_or_default(),
            Evaluator::Services => serde_json::from_value::<Service>(obj.clone())
                .map(|s| service_usage(&s))
                .unwrap_or_default(),
            Evaluator::Claims => serde_json::from_value::<PersistentVolumeClaim>(obj.clone())
                .map(|c| claim_usage(&c))
                .unwrap_or_default(),
            Evaluator::Count { group, plural } => {
                let mut usage = ResourceList::new();
                usage.insert(self.count_name(), count(1));
                if group.is_empty() && LEGACY_COUNT_ALIASES.contains(&plural.as_str()) {
                    usage.insert(plural.clone(), count(1));
                }
                usage
            }
        }
    }
}

/// A quota's scopes as selectors: `spec.scopes` (Exists) and `spec.scopeSelector`.
pub fn scope_selectors(quota: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let Some(spec) = quota.spec.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<ScopedResourceSelectorRequirement> = spec
        .scopes
        .iter()
        .flatten()
        .map(|s| ScopedResourceSelectorRequirement {
            scope_name: s.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    out.extend(
        spec.scope_selector
            .iter()
            .flat_map(|s| s.match_expressions.iter().flatten())
            .cloned(),
    );
    out
}

/// Whether a resource name is neither native nor already a quota name, and would make
/// a valid `requests.<name>` (upstream's `IsExtendedResourceName`).
fn is_extended_resource_name(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && validation::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Native resources have no domain or a `kubernetes.io/` one.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `requests.<extended resource>` quota names.
fn is_extended_resource_name_for_quota(name: &str) -> bool {
    !is_native_resource(name) && name.starts_with("requests.")
}

/// Pods with an active deadline are in the Terminating scope.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|s| s >= 0)
}

fn pod_matches_scope(selector: &ScopedResourceSelectorRequirement, pod: &Pod) -> bool {
    match selector.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => resources::is_best_effort(pod),
        "NotBestEffort" => !resources::is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .spec
                .as_ref()
                .and_then(|s| s.priority_class_name.as_deref())
                .filter(|c| !c.is_empty());
            let values = selector.values.as_deref().unwrap_or_default();
            match selector.operator.as_str() {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_pod_affinity(pod),
        _ => false,
    }
}

fn uses_cross_namespace_pod_affinity(pod: &Pod) -> bool {
    let cross = |t: &PodAffinityTerm| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    };
    let any = |required: Option<&Vec<PodAffinityTerm>>,
               preferred: Option<&Vec<WeightedPodAffinityTerm>>| {
        required.into_iter().flatten().any(cross)
            || preferred
                .into_iter()
                .flatten()
                .any(|w| cross(&w.pod_affinity_term))
    };
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    affinity.pod_affinity.as_ref().is_some_and(|a| {
        any(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || affinity.pod_anti_affinity.as_ref().is_some_and(|a| {
        any(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
}

/// Quota names charged for the given requests and limits (upstream's
/// `podComputeUsageHelper`).
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), count(1));
    for res in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(res) {
            out.insert(res.to_string(), q.clone());
            out.insert(format!("requests.{res}"), q.clone());
        }
        if let Some(q) = limits.get(res) {
            out.insert(format!("limits.{res}"), q.clone());
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), q.clone());
            out.insert(format!("requests.{name}"), q.clone());
        }
        if is_extended_resource_name(name) {
            out.insert(format!("requests.{name}"), q.clone());
        }
    }
    out
}

/// Whether a pod still counts against compute quota: not finished, and not stuck
/// terminating past its grace period.
fn pod_is_charged(pod: &Pod, now: jiff::Timestamp) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return false;
    }
    if let (Some(deleted), Some(grace)) = (
        pod.metadata.deletion_timestamp.as_ref(),
        pod.metadata.deletion_grace_period_seconds,
    ) {
        let deadline = deleted.0 + jiff::SignedDuration::from_secs(grace);
        if now > deadline {
            return false;
        }
    }
    true
}

/// A pod's usage: its object count always, compute resources while it runs (upstream's
/// `PodUsageFunc`).
pub fn pod_usage(pod: &Pod, now: jiff::Timestamp) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("count/pods".into(), count(1));
    if !pod_is_charged(pod, now) {
        return usage;
    }
    let requests = resources::pod_requests(pod, true);
    let limits = resources::pod_limits(pod, true);
    resources::add(&usage, &compute_usage(&requests, &limits))
}

fn service_usage(svc: &Service) -> ResourceList {
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let port_count = ports.map_or(0, Vec::len) as i64;
    let mut usage = ResourceList::new();
    usage.insert("count/services".into(), count(1));
    usage.insert("services".into(), count(1));
    usage.insert("services.loadbalancers".into(), resources::zero());
    usage.insert("services.nodeports".into(), resources::zero());
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => {
            usage.insert("services.nodeports".into(), count(port_count));
        }
        Some("LoadBalancer") => {
            // Without allocated node ports only the ports that name one count.
            let node_ports =
                if spec.and_then(|s| s.allocate_load_balancer_node_ports) == Some(false) {
                    ports
                        .into_iter()
                        .flatten()
                        .filter(|p| p.node_port.is_some_and(|n| n != 0))
                        .count() as i64
                } else {
                    port_count
                };
            usage.insert("services.nodeports".into(), count(node_ports));
            usage.insert("services.loadbalancers".into(), count(1));
        }
        _ => {}
    }
    usage
}

/// The storage class a claim asks for, the beta annotation first.
fn claim_class(claim: &PersistentVolumeClaim) -> String {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .cloned()
        .or_else(|| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
        })
        .unwrap_or_default()
}

fn claim_usage(claim: &PersistentVolumeClaim) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("persistentvolumeclaims".into(), count(1));
    usage.insert("count/persistentvolumeclaims".into(), count(1));
    let class = claim_class(claim);
    if !class.is_empty() {
        usage.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            count(1),
        );
    }
    let requested = resources::parse_list(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
    .remove("storage");
    // A claim whose expansion failed is charged what was allocated, if more.
    let allocated = resources::parse_list(
        claim
            .status
            .as_ref()
            .and_then(|s| s.allocated_resources.as_ref()),
    )
    .remove("storage");
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a.cmp_value(&r).is_gt() => Some(a),
        (r, _) => r,
    };
    if let Some(mut storage) = storage {
        // Whole bytes, as quota validation wants.
        storage.round_up(0);
        usage.insert("requests.storage".into(), storage.clone());
        if !class.is_empty() {
            usage.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage,
            );
        }
    }
    usage
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admission::resources::pretty_print;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn owners_of_quota_names() {
        assert_eq!(Evaluator::owning("requests.cpu"), Some(Evaluator::Pods));
        assert_eq!(Evaluator::owning("count/pods"), Some(Evaluator::Pods));
        assert_eq!(
            Evaluator::owning("requests.nvidia.com/gpu"),
            Some(Evaluator::Pods)
        );
        assert_eq!(
            Evaluator::owning("services.nodeports"),
            Some(Evaluator::Services)
        );
        assert_eq!(
            Evaluator::owning("gold.storageclass.storage.k8s.io/requests.storage"),
            Some(Evaluator::Claims)
        );
        assert_eq!(
            Evaluator::owning("count/deployments.apps"),
            Evaluator::for_resource("apps", "deployments")
        );
        assert_eq!(
            Evaluator::owning("configmaps"),
            Evaluator::for_resource("", "configmaps")
        );
        assert_eq!(Evaluator::owning("count/events"), None);
        assert_eq!(Evaluator::owning("bogus"), None);
    }

    #[test]
    fn pod_usage_counts_requests_limits_and_objects() {
        let p: Pod = serde_json::from_value(pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1"},
                                        "limits": {"cpu": "500m", "memory": "128Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
        ]})))
        .unwrap();
        assert_eq!(
            pretty_print(&pod_usage(&p, jiff::Timestamp::now())),
            "count/pods=1,cpu=500m,limits.cpu=500m,limits.memory=128Mi,memory=64Mi,pods=1,\
             requests.cpu=500m,requests.memory=64Mi,requests.nvidia.com/gpu=1"
        );
        let mut done = p.clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert_eq!(
            pretty_print(&pod_usage(&done, jiff::Timestamp::now())),
            "count/pods=1"
        );
    }

    #[test]
    fn pods_must_state_quota_tracked_compute_resources() {
        let obj = pod(
            json!({"containers": [{"name": "nginx"}, {"name": "ok", "resources": {
            "requests": {"memory": "1Gi"}, "limits": {"cpu": "1"}}}]}),
        );
        let required = vec![
            "limits.cpu".to_string(),
            "requests.memory".to_string(),
            "pods".to_string(),
        ];
        assert_eq!(
            Evaluator::Pods.constraints(&required, &obj).unwrap(),
            "must specify limits.cpu for: nginx; requests.memory for: nginx"
        );
    }

    #[test]
    fn scopes_select_pods() {
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"],
                     "scopeSelector": {"matchExpressions": [
                         {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}
        }))
        .unwrap();
        let hard = resources::parse_list(quota.spec.as_ref().unwrap().hard.as_ref());
        let best_effort_high =
            pod(json!({"containers": [{"name": "a"}], "priorityClassName": "high"}));
        let best_effort_low =
            pod(json!({"containers": [{"name": "a"}], "priorityClassName": "low"}));
        let burstable_high = pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
                                        "priorityClassName": "high"}),
        );
        assert!(Evaluator::Pods.matches(&quota, &hard, &best_effort_high));
        assert!(!Evaluator::Pods.matches(&quota, &hard, &best_effort_low));
        assert!(!Evaluator::Pods.matches(&quota, &hard, &burstable_high));
        // Scoped quotas never track other kinds.
        let svc = json!({"metadata": {"name": "s"}, "spec": {}});
        assert!(!Evaluator::Services.matches(&quota, &hard, &svc));
    }

    #[test]
    fn service_and_claim_usage() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}))
        .unwrap();
        assert_eq!(
            pretty_print(&service_usage(&svc)),
            "count/services=1,services=1,services.loadbalancers=0,services.nodeports=2"
        );
        let claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c"},
            "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1.5Gi"}}}}))
            .unwrap();
        assert_eq!(
            pretty_print(&claim_usage(&claim)),
            "count/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,\
             gold.storageclass.storage.k8s.io/requests.storage=1536Mi,persistentvolumeclaims=1,\
             requests.storage=1536Mi"
        );
    }
}
