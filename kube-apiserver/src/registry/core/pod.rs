//! pods: upstream's defaults and validation, status Pending with the QoS class on create,
//! an immutable spec except images, active deadline, tolerations additions, scheduling gate
//! removals and the grace period quirk, and `kubectl get pods`' READY/STATUS/RESTARTS.
//! The binding and streaming subresources are served by `handlers::binding`.

use std::collections::BTreeMap;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::quantity::Quantity;
use apimachinery::validation;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus, Toleration};
use serde_json::Value;

use crate::registry::core::podspec::{self, PodValidationOptions};
use crate::registry::core::semantic;
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField, Subresource};

pub struct PodStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::new(
        "IP",
        "string",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    )
    .wide(),
    Column::new(
        "Node",
        "string",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    )
    .wide(),
    Column::new(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    )
    .wide(),
    Column::new(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    )
    .wide(),
];

const FIELDS: &[SelectableField] = &[
    SelectableField::new("spec.nodeName"),
    SelectableField::new("spec.restartPolicy"),
    SelectableField::new("spec.schedulerName"),
    SelectableField::new("spec.serviceAccountName"),
    SelectableField::new("spec.hostNetwork").with_default("false"),
    SelectableField::new("status.phase"),
    SelectableField::new("status.podIP"),
    SelectableField::new("status.nominatedNodeName"),
];

/// The fields a pod update may change, as upstream lists them in its error.
const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

fn spec(pod: &Pod) -> PodSpec {
    pod.spec.clone().unwrap_or_default()
}

impl TypedStrategy for PodStrategy {
    type Object = Pod;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Pod>()
            .short_names(&["po"])
            .categories(&["all"])
            .with_status()
            .subresource(Subresource::Connect("attach"))
            .subresource(Subresource::Binding)
            .subresource(Subresource::Eviction)
            .subresource(Subresource::Connect("exec"))
            .subresource(Subresource::Connect("log"))
            .subresource(Subresource::Connect("portforward"))
            .subresource(Subresource::Connect("proxy"))
            .tracks_generation()
            .returns_deleted_object()
    }

    fn grace_period(&self, pod: &Pod, requested: Option<i64>) -> i64 {
        // Pods not yet bound to a node, or finished, have nothing to stop gracefully.
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !bound || matches!(phase, Some("Succeeded" | "Failed")) {
            return 0;
        }
        let period = requested
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        // Upstream turns a negative period into one second rather than an immediate delete.
        if period < 0 {
            1
        } else {
            period
        }
    }

    fn default(&self, pod: &mut Pod) {
        podspec::default_pod(pod);
    }

    fn prepare_for_create(&self, pod: &mut Pod) {
        // A QoS class the client sent wins, as upstream's GetPodQOS reads it first.
        let qos = pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| qos_class(&spec(pod)).to_string());
        let mut status = PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos),
            ..Default::default()
        };
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty())
        {
            status.conditions = Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("SchedulingGated".into()),
                message: Some("Scheduling is blocked due to non-empty scheduling gates".into()),
                ..Default::default()
            }]);
        }
        pod.status = Some(status);
    }

    fn prepare_for_update(&self, new: &mut Pod, old: &Pod) {
        new.status = old.status.clone();
    }

    fn prepare_for_status_update(&self, new: &mut Pod, old: &Pod) {
        // Old kubelets drop the QoS class when rejecting a pod; it is immutable anyway.
        let old_qos = old.status.as_ref().and_then(|s| s.qos_class.clone());
        let status = new.status.get_or_insert_with(Default::default);
        if status.qos_class.as_deref().is_none_or(str::is_empty) {
            status.qos_class = old_qos;
        }
    }

    fn validate(&self, pod: &Pod) -> ErrorList {
        let mut errs = validate_metadata_and_spec(pod);
        let spec = spec(pod);
        let path = Path::new("spec");
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            errs.push(FieldError::forbidden(
                &path.child("ephemeralContainers"),
                "cannot be set on create",
            ));
        }
        let gated = spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty());
        if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) && gated {
            errs.push(FieldError::forbidden(
                &path.child("nodeName"),
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> ErrorList {
        let mut errs = validate_metadata_and_spec(new);
        errs.extend(validate_annotation_updates(new, old));
        errs.extend(validate_spec_update(&spec(new), &spec(old)));
        let qos = |p: &Pod| p.status.as_ref().and_then(|s| s.qos_class.clone());
        if qos(new) != qos(old) {
            errs.push(FieldError::invalid(
                &Path::new("status").child("qosClass"),
                qos(new).unwrap_or_default(),
                validation::FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        errs
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, pod: &Pod, raw: &Value) -> Vec<Value> {
        pod_row(pod, raw)
    }
}

/// Upstream's `validatePodMetadataAndSpec` (metadata itself is checked by the store).
fn validate_metadata_and_spec(pod: &Pod) -> ErrorList {
    let spec = spec(pod);
    let spec_path = Path::new("spec");
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let mut errs = podspec::validate_pod_specific_annotations(
        &annotations,
        &spec,
        &Path::new("metadata").child("annotations"),
    );
    errs.extend(podspec::validate_pod_spec(
        &spec,
        pod.metadata.name.as_deref(),
        &spec_path,
        PodValidationOptions {
            resource_is_pod: true,
        },
    ));
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        for (vi, vol) in spec.volumes.iter().flatten().enumerate() {
            let Some(projected) = &vol.projected else {
                continue;
            };
            for (si, src) in projected.sources.iter().flatten().enumerate() {
                if src.service_account_token.is_some() {
                    errs.push(FieldError::forbidden(
                        &spec_path
                            .child("volumes")
                            .index(vi)
                            .child("projected")
                            .child("sources")
                            .index(si)
                            .child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for (field, list) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            errs.extend(podspec::validate_container_only_for_pod(
                c,
                &spec_path.child(field).index(i),
            ));
        }
    }
    errs
}

/// The mirror-pod annotation cannot be added, changed or removed.
fn validate_annotation_updates(new: &Pod, old: &Pod) -> ErrorList {
    let path = Path::new("metadata").child("annotations");
    let new_a = new.metadata.annotations.clone().unwrap_or_default();
    let old_a = old.metadata.annotations.clone().unwrap_or_default();
    let mut errs = Vec::new();
    match (old_a.get(MIRROR_ANNOTATION), new_a.get(MIRROR_ANNOTATION)) {
        (Some(o), n) if n != Some(o) => errs.push(FieldError::forbidden(
            &path.key(MIRROR_ANNOTATION),
            "may not remove or update mirror pod annotation",
        )),
        (None, Some(_)) => errs.push(FieldError::forbidden(
            &path.key(MIRROR_ANNOTATION),
            "may not add mirror pod annotation",
        )),
        _ => {}
    }
    errs
}

/// Upstream's `ValidatePodUpdate` rules for the spec.
fn validate_spec_update(new: &PodSpec, old: &PodSpec) -> ErrorList {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    let new_init = new.init_containers.clone().unwrap_or_default();
    let old_init = old.init_containers.clone().unwrap_or_default();
    for (field, n, o) in [
        ("containers", &new.containers, &old.containers),
        ("initContainers", &new_init, &old_init),
    ] {
        let p = path.child(field);
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            if image.is_empty() {
                errs.push(FieldError::required(&p.index(i).child("image"), ""));
            }
            if image.trim().len() != image.len() {
                errs.push(FieldError::invalid(
                    &p.index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let deadline = path.child("activeDeadlineSeconds");
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                &deadline,
                n,
                validation::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                &deadline,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            &deadline,
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    errs.extend(validate_only_added_tolerations(
        new.tolerations.as_deref().unwrap_or_default(),
        old.tolerations.as_deref().unwrap_or_default(),
        &path.child("tolerations"),
    ));
    let old_gates: Vec<&str> = old
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, gate) in new.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(&gate.name.as_str()) {
            errs.push(FieldError::forbidden(
                &path.child("schedulingGates").index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }
    if semantic(new) == semantic(old) {
        return errs;
    }
    let mut munged = new.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old.containers) {
        c.image = o.image.clone();
    }
    for (c, o) in munged.init_containers.iter_mut().flatten().zip(&old_init) {
        c.image = o.image.clone();
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.scheduling_gates = old.scheduling_gates.clone();
    munged.tolerations = old.tolerations.clone();
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    let gated = old.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty());
    if gated {
        // A gated pod may gain node selector entries and node affinity constraints.
        let old_sel = old.node_selector.clone().unwrap_or_default();
        let new_sel = munged.node_selector.clone().unwrap_or_default();
        if old_sel.iter().any(|(k, v)| new_sel.get(k) != Some(v)) {
            errs.push(FieldError::invalid(
                &path.child("nodeSelector"),
                serde_json::to_value(&new_sel).unwrap_or_default(),
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            ));
        }
        munged.node_selector = old.node_selector.clone();
        let old_na = old.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        match munged.affinity.as_mut() {
            Some(a) => a.node_affinity = old_na,
            None if old_na.is_some() => {
                munged.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                    node_affinity: old_na,
                    ..Default::default()
                })
            }
            None => {}
        }
        if old.affinity.is_none()
            && munged.affinity.as_ref().is_some_and(|a| {
                a.pod_affinity.is_none()
                    && a.pod_anti_affinity.is_none()
                    && a.node_affinity.is_none()
            })
        {
            munged.affinity = None;
        }
    }
    if semantic(&munged) != semantic(old) {
        errs.push(FieldError::forbidden(
            &path,
            format!("pod updates may not change fields other than {UPDATABLE_FIELDS}"),
        ));
    }
    errs
}

/// Existing tolerations may only change their `tolerationSeconds`; new ones may be added.
fn validate_only_added_tolerations(
    new: &[Toleration],
    old: &[Toleration],
    path: &Path,
) -> ErrorList {
    for o in old {
        let found = new.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            &o == n
        });
        if !found {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    podspec::validate_tolerations(new, path)
}

/// Upstream's `ComputePodQOS`: BestEffort without cpu/memory requests or limits,
/// Guaranteed when every container limits both and requests equal limits, else Burstable.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        let r = c.resources.clone().unwrap_or_default();
        for (name, q) in r.requests.iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            let q = Quantity::try_from(q).unwrap_or_default();
            if q.sign() > 0 {
                *requests.entry(name.clone()).or_default() += &q;
            }
        }
        let mut found = Vec::new();
        for (name, q) in r.limits.iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            let q = Quantity::try_from(q).unwrap_or_default();
            if q.sign() > 0 {
                found.push(name.as_str());
                *limits.entry(name.clone()).or_default() += &q;
            }
        }
        if !(found.contains(&"cpu") && found.contains(&"memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, r)| limits.get(k) == Some(r))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

fn seconds_since(t: &jiff::Timestamp) -> i64 {
    jiff::Timestamp::now().as_second() - t.as_second()
}

/// Upstream's `printPod`.
fn pod_row(pod: &Pod, raw: &Value) -> Vec<Value> {
    let spec = spec(pod);
    let status = pod.status.clone().unwrap_or_default();
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut total = spec.containers.len();
    let mut ready = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut last_sidecar_restart: Option<jiff::Timestamp> = None;
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let conditions = status.conditions.clone().unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };
    total += init_specs
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .count();
    let later = |cur: &mut Option<jiff::Timestamp>, t: Option<jiff::Timestamp>| {
        if let Some(t) = t {
            if cur.is_none_or(|c| c < t) {
                *cur = Some(t);
            }
        }
    };
    let finished = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        c.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| t.0)
    };
    let mut initializing = false;
    let init_statuses = status.init_container_statuses.clone().unwrap_or_default();
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        later(&mut last_restart, finished(c));
        if restartable(&c.name) {
            sidecar_restarts += i64::from(c.restart_count);
            later(&mut last_sidecar_restart, finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        if let Some(t) = state.terminated.as_ref().filter(|t| t.exit_code == 0) {
            let _ = t;
            continue;
        }
        if restartable(&c.name) && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .find(|c| c.type_ == "Initialized")
        .is_some_and(|c| c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let statuses = status.container_statuses.clone().unwrap_or_default();
        for c in statuses.iter().rev() {
            restarts += i64::from(c.restart_count);
            later(&mut last_restart, finished(c));
            let state = c.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                    Some(r) => r,
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_cell = match last_restart.filter(|_| restarts != 0) {
        Some(t) => format!(
            "{restarts} ({} ago)",
            apimachinery::duration::human_duration_seconds(seconds_since(&t))
        ),
        None => restarts.to_string(),
    };
    let none = |v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let pod_ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone());
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| c.type_ == g.condition_type)
                    .is_some_and(|c| c.status == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        Value::String(pod.metadata.name.clone().unwrap_or_default()),
        Value::String(format!("{ready}/{total}")),
        Value::String(reason),
        Value::String(restarts_cell),
        table::age(raw),
        Value::String(none(pod_ip)),
        Value::String(none(spec.node_name.clone())),
        Value::String(none(status.nominated_node_name.clone())),
        Value::String(readiness_gates),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    #[test]
    fn grace_period_applies_to_bound_running_pods_only() {
        let s = Typed::new(PodStrategy);
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(s.grace_period(&pod, None), 0, "unbound");
        pod["spec"]["nodeName"] = json!("n1");
        assert_eq!(s.grace_period(&pod, None), 30);
        assert_eq!(s.grace_period(&pod, Some(5)), 5);
        assert_eq!(s.grace_period(&pod, Some(-3)), 1);
        pod["spec"]["terminationGracePeriodSeconds"] = json!(7);
        assert_eq!(s.grace_period(&pod, None), 7);
        pod["status"] = json!({"phase": "Succeeded"});
        assert_eq!(s.grace_period(&pod, None), 0, "finished");
    }

    fn strategy() -> Typed<PodStrategy> {
        Typed::new(PodStrategy)
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn created(spec: Value) -> Value {
        let s = strategy();
        let mut obj = s.decode(pod(spec)).unwrap();
        s.prepare_for_create(&mut obj);
        obj
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults_and_status_on_create() {
        let obj = created(json!({"containers": [{"name": "c", "image": "nginx",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}));
        assert_eq!(obj["spec"]["enableServiceLinks"], json!(true));
        assert_eq!(obj["spec"]["restartPolicy"], "Always");
        assert_eq!(obj["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(
            obj["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(
            obj["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert!(strategy().validate(&obj).is_empty());
    }

    #[test]
    fn qos_classes() {
        let spec = |v: Value| -> PodSpec { serde_json::from_value(v).unwrap() };
        assert_eq!(
            qos_class(&spec(json!({"containers": [{"name": "c"}]}))),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]})
            )),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(json!({"containers": [{"name": "c", "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(json!({"containers": [{"name": "c", "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]}))),
            "Burstable"
        );
    }

    #[test]
    fn scheduling_gates_add_a_condition_and_forbid_node_name() {
        let obj = created(json!({"containers": [{"name": "c", "image": "i"}],
            "schedulingGates": [{"name": "example.com/gate"}], "nodeName": "n1"}));
        assert_eq!(obj["status"]["conditions"][0]["reason"], "SchedulingGated");
        let errs = messages(&strategy().validate(&obj));
        assert!(errs.contains(&"spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared".to_string()), "{errs:?}");
    }

    #[test]
    fn update_rules() {
        let s = strategy();
        let old = created(json!({"containers": [{"name": "c", "image": "nginx:1"}],
            "tolerations": [{"key": "a", "operator": "Exists"}]}));
        // Image changes and toleration additions are allowed.
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
        let mut new = s.decode(new).unwrap();
        s.prepare_for_update(&mut new, &old);
        assert!(
            s.validate_update(&new, &old).is_empty(),
            "{:?}",
            messages(&s.validate_update(&new, &old))
        );
        // Anything else is forbidden, with upstream's message.
        let mut new = old.clone();
        new["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        let new = s.decode(new).unwrap();
        let errs = messages(&s.validate_update(&new, &old));
        assert_eq!(
            errs,
            vec![format!(
                "spec: Forbidden: pod updates may not change fields other than {UPDATABLE_FIELDS}"
            )]
        );
        // Removing a toleration is forbidden.
        let mut new = old.clone();
        new["spec"]["tolerations"] = json!([]);
        let errs = messages(&s.validate_update(&s.decode(new).unwrap(), &old));
        assert_eq!(errs, vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds".to_string()]);
        // Adding a container is forbidden.
        let mut new = old.clone();
        new["spec"]["containers"] =
            json!([{"name": "c", "image": "nginx:1"}, {"name": "d", "image": "x"}]);
        let errs = messages(&s.validate_update(&s.decode(new).unwrap(), &old));
        assert!(
            errs.contains(
                &"spec.containers: Forbidden: pod updates may not add or remove containers"
                    .to_string()
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn status_is_kept_on_update_and_backfilled_on_status_update() {
        let s = strategy();
        let old = created(json!({"containers": [{"name": "c", "image": "i"}]}));
        let mut new = old.clone();
        new["status"] = json!({"phase": "Running"});
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["status"]["phase"], "Pending");
        let mut new = old.clone();
        new["status"] = json!({"phase": "Running"});
        s.prepare_for_status_update(&mut new, &old);
        assert_eq!(new["status"]["phase"], "Running");
        assert_eq!(new["status"]["qosClass"], "BestEffort");
    }

    fn row(obj: Value) -> Vec<Value> {
        strategy().row(&obj)
    }

    #[test]
    fn printed_rows() {
        let base = created(
            json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        let r = row(base.clone());
        assert_eq!(r[1], "0/2");
        assert_eq!(r[2], "Pending");
        assert_eq!(r[3], "0");
        assert_eq!(
            &r[5..],
            &[
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );

        let mut running = base.clone();
        running["spec"]["nodeName"] = json!("node-1");
        running["status"] = json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 3, "image": "i", "imageID": "",
             "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1,
             "finishedAt": jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(120)).unwrap().to_string()}}},
            {"name": "b", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]});
        let r = row(running);
        assert_eq!(r[1], "1/2");
        assert_eq!(r[2], "CrashLoopBackOff");
        assert_eq!(r[3], "3 (2m ago)");
        assert_eq!(r[5], "10.0.0.5");
        assert_eq!(r[6], "node-1");

        let mut init = created(json!({"containers": [{"name": "a", "image": "i"}],
            "initContainers": [{"name": "i1", "image": "i"}, {"name": "i2", "image": "i"}]}));
        init["status"]["initContainerStatuses"] = json!([
            {"name": "i1", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}},
        ]);
        assert_eq!(row(init.clone())[2], "Init:1/2");
        init["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(row(init)[2], "Init:CrashLoopBackOff");

        let mut creating = base.clone();
        creating["status"]["containerStatuses"] = json!([
            {"name": "a", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "ContainerCreating"}}}]);
        assert_eq!(row(creating)[2], "ContainerCreating");

        let mut done = base.clone();
        done["status"] = json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(row(done.clone())[2], "Completed");
        done["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(row(done)[2], "Completed");

        let mut deleting = base;
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(row(deleting)[2], "Terminating");
    }

    #[test]
    fn completed_with_running_container_is_not_ready() {
        let mut obj = created(
            json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        obj["status"]["containerStatuses"] = json!([
            {"name": "a", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]);
        assert_eq!(row(obj)[2], "NotReady");
    }

    #[test]
    fn field_selectors() {
        let obj = created(json!({"containers": [{"name": "a", "image": "i"}]}));
        let fields = strategy().selectable_fields();
        let get = |name: &str| fields.iter().find(|f| f.name == name).unwrap().value(&obj);
        assert_eq!(get("spec.hostNetwork"), "false");
        assert_eq!(get("status.phase"), "Pending");
        assert_eq!(get("spec.restartPolicy"), "Always");
        assert_eq!(get("spec.nodeName"), "");
    }
}
