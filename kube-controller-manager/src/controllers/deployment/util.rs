//! The deployment controller's decisions, free of I/O (upstream
//! `pkg/controller/deployment/util`): surge and unavailability fenceposts, the
//! pod-template-hash, revision and replica annotations, proportional scaling, status and
//! conditions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const DEFAULT_LABEL_KEY: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream caps the revision-history annotation at this many characters.
const MAX_REV_HISTORY_CHARS: usize = 2000;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs_status(rs).2
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.progressDeadlineSeconds`, unless unset or "forever" (MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Upstream's `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let product = pct * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).ok()
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down),
/// with 1 unavailable when both come out 0.
pub fn fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let pct25 = IntOrString::String("25%".into());
    let surge_v = rolling
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(pct25.clone());
    let unavailable_v = rolling
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(pct25);
    let surge = scaled_value(&surge_v, desired, true).unwrap_or(0);
    let mut unavailable = scaled_value(&unavailable_v, desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    fenceposts(d, replicas(d)).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let r = replicas(d);
    if is_recreate(d) || r == 0 {
        return 0;
    }
    fenceposts(d, r).1.min(r)
}

/// Go's `rand.SafeEncodeString`: each byte mapped onto letters and digits that never
/// spell words.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The pod-template-hash of a template (upstream's `ComputeHash`: FNV-1a over the
/// template, plus the collision count, safely encoded). Our serialization of the
/// template differs from Go's, so the values differ from upstream's, which nothing
/// relies on.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// Drop nulls, empty objects and empty arrays, which semantic equality treats as absent
/// (kubectl's rollback writes Go's `"resources": {}` where the original had none).
fn prune(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .map(|v| prune(v).unwrap_or(Value::Null))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other => Some(other),
    }
}

fn without_hash(t: &PodTemplateSpec) -> Option<serde_json::Value> {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(DEFAULT_LABEL_KEY);
    }
    prune(serde_json::to_value(t).unwrap_or_default())
}

/// Upstream's `EqualIgnoreHash` (semantic: empty and absent are equal).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The replica set whose template is the deployment's (the oldest such).
pub fn find_new(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let t = template(d);
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
    order.into_iter().find(|i| {
        rss[*i]
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|rt| equal_ignore_hash(rt, &t))
    })
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(rs, DESIRED_REPLICAS)
}

/// Whether the desired/max replica annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation_i32(rs, DESIRED_REPLICAS) != Some(desired)
        || annotation_i32(rs, MAX_REPLICAS) != Some(max)
}

pub fn set_replicas_annotations(
    annotations: &mut BTreeMap<String, String>,
    desired: i32,
    max: i32,
) {
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
}

/// Annotations a deployment does not hand down to its replica sets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | DEPRECATED_ROLLBACK_TO
    )
}

/// Upstream's `SetNewReplicaSetAnnotations`: copy the deployment's annotations, raise
/// the revision to `new_revision` (keeping the old one in the revision history when the
/// set comes back into use, as on a rollback), and for a set about to be created the
/// replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    annotations: &mut BTreeMap<String, String>,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_int: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if old_int < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY.into(), old);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_CHARS {
                    revisions = revisions.split_off(start);
                    revisions.push(&old);
                    annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
                }
            }
        }
    }
    if !exists {
        let r = replicas(d);
        set_replicas_annotations(annotations, r, r + max_surge(d));
        changed = true;
    }
    changed
}

/// Upstream's `NewRSNewReplicas`: how big the new replica set may be now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs_replicas: i32) -> i32 {
    if is_recreate(d) {
        return replicas(d);
    }
    let r = replicas(d);
    let surge = max_surge(d);
    let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let max_total = r + surge;
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current).min(r - new_rs_replicas);
    new_rs_replicas + up
}

/// Upstream's `IsSaturated`.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let r = replicas(d);
    desired_replicas_annotation(rs) == Some(r) && rs_replicas(rs) == r && rs_available(rs) == r
}

/// Upstream's `getReplicaSetFraction`: how many replicas `rs` gains (or loses) when the
/// deployment is resized, proportionally to its share of the old size.
pub fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let r = replicas(d);
    if r == 0 {
        return -rs_replicas(rs);
    }
    let max = r + max_surge(d);
    let before = annotation_i32(rs, MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if before == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max) / f64::from(before);
    // Go's integer.RoundToInt32 rounds half away from zero; the value fits in i32.
    #[allow(clippy::cast_possible_truncation)]
    let rounded = size.round() as i32;
    rounded - rs_replicas(rs)
}

/// Upstream's `GetProportion`.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The new sizes of `rss` (active sets) when the deployment changed size in the middle
/// of a rollout (upstream's proportional scaling in `scale`). Returns the sizes in the
/// order of `rss` and whether it is a scale up.
pub fn proportional_sizes(d: &Deployment, rss: &[&ReplicaSet]) -> (Vec<i32>, bool) {
    let total: i32 = rss.iter().map(|rs| rs_replicas(rs)).sum();
    let r = replicas(d);
    let allowed = if r > 0 { r + max_surge(d) } else { 0 };
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..rss.len()).collect();
    // Larger first; on ties newer first when scaling up, older first when scaling down.
    order.sort_by(|a, b| {
        let (ra, rb) = (rss[*a], rss[*b]);
        rs_replicas(rb).cmp(&rs_replicas(ra)).then_with(|| {
            if to_add > 0 {
                by_creation(rb, ra)
            } else {
                by_creation(ra, rb)
            }
        })
    });
    let mut sizes: Vec<i32> = rss.iter().map(|rs| rs_replicas(rs)).collect();
    let mut added = 0;
    if to_add != 0 {
        for &i in &order {
            let p = proportion(rss[i], d, to_add, added);
            sizes[i] += p;
            added += p;
        }
        let leftover = to_add - added;
        if leftover != 0 {
            if let Some(&first) = order.first() {
                sizes[first] = (sizes[first] + leftover).max(0);
            }
        }
    }
    (sizes, to_add > 0)
}

fn time_now(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(time_now(now)),
        last_transition_time: Some(time_now(now)),
    }
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream's `SetDeploymentCondition`: unchanged if status and reason are the same;
/// the transition time kept when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time.clone_from(&cur.last_transition_time);
        }
    }
    remove_condition(status, &c.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            status.conditions = None;
        }
    }
}

/// Upstream's `calculateStatus`.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| rs_status(rs).0).sum()),
        updated_replicas: Some(new_rs.map_or(0, |rs| rs_status(rs).0)),
        ready_replicas: Some(all.iter().map(|rs| rs_status(rs).1).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: current.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

fn num(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Upstream's `DeploymentComplete`.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    num(s.updated_replicas) == r
        && num(s.replicas) == r
        && num(s.available_replicas) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, fewer old, more ready or more
/// available replicas than the last status said.
pub fn progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = num(old.replicas) - num(old.updated_replicas);
    let new_old = num(s.replicas) - num(s.updated_replicas);
    num(s.updated_replicas) > num(old.updated_replicas)
        || new_old < old_old
        || num(s.ready_replicas) > num(old.ready_replicas)
        || num(s.available_replicas) > num(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    fn rs(name: &str, created: i64, replicas: i32, max_replicas: Option<i32>) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                annotations: max_replicas
                    .map(|m| [(MAX_REPLICAS.to_string(), m.to_string())].into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn fenceposts_round_as_upstream() {
        assert_eq!(scaled_value(&pct("25%"), 10, true), Some(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Some(2));
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, false), Some(4));
        assert_eq!(scaled_value(&pct("abc"), 10, false), None);
        let d = deployment(3, pct("25%"), pct("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = deployment(10, IntOrString::Int(0), IntOrString::Int(0));
        assert_eq!(fenceposts(&d, 10), (0, 1));
        let d = deployment(2, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(10, pct("30%"), IntOrString::Int(0));
        let old = rs("old", 1, 10, None);
        let new = rs("new", 2, 0, None);
        // 10 + 3 surge allowed, 10 in use: 3 more.
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 0), 3);
        let old = rs("old", 1, 13, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 0), 0);
        // Never beyond the desired count.
        let old = rs("old", 1, 0, None);
        let new = rs("new", 2, 9, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 9), 10);
    }

    #[test]
    fn proportional_scaling_splits_by_share() {
        // Upstream's example: 10 replicas, maxSurge 3, mid rollout with 8 old and 5 new,
        // scaled to 15 (max 18): +5, split 3 to the old and 2 to the new set.
        let mut d = deployment(15, IntOrString::Int(3), IntOrString::Int(2));
        d.status = Some(DeploymentStatus::default());
        let old = rs("old", 1, 8, Some(13));
        let new = rs("new", 2, 5, Some(13));
        let (sizes, up) = proportional_sizes(&d, &[&old, &new]);
        assert!(up);
        assert_eq!(sizes.iter().sum::<i32>(), 18);
        assert_eq!(sizes, vec![11, 7]);
        // Scaling down to zero empties everything.
        let d0 = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        let (sizes, up) = proportional_sizes(&d0, &[&old, &new]);
        assert!(!up);
        assert_eq!(sizes, vec![0, 0]);
    }

    #[test]
    fn revision_annotations_keep_history_on_rollback() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(
            [
                ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
                (REVISION.to_string(), "2".to_string()),
            ]
            .into(),
        );
        let mut a = BTreeMap::new();
        assert!(set_new_rs_annotations(&d, &mut a, 1, false));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("1"));
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
        assert_eq!(
            a.get("kubernetes.io/change-cause").map(String::as_str),
            Some("v2")
        );
        assert!(!set_new_rs_annotations(&d, &mut a, 1, true));
        // Rolled back to: revision 3, history keeps 1; again to 5, history "1,3".
        assert!(set_new_rs_annotations(&d, &mut a, 3, true));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        set_new_rs_annotations(&d, &mut a, 5, true);
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("5"));
    }

    #[test]
    fn hashes_differ_by_template_and_collision_count() {
        let t = PodTemplateSpec::default();
        let h = compute_hash(&t, None);
        assert!(!h.is_empty());
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(h, compute_hash(&t, None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        let mut labelled = t.clone();
        labelled.metadata = Some(ObjectMeta {
            labels: Some([(DEFAULT_LABEL_KEY.to_string(), h.clone())].into()),
            ..Default::default()
        });
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .clear();
        assert!(equal_ignore_hash(&t, &labelled));
        let go_style: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"creationTimestamp": null, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {}}]}
        }))
        .unwrap();
        let ours: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "x", DEFAULT_LABEL_KEY: "abc"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap();
        assert!(equal_ignore_hash(&go_style, &ours));
    }

    #[test]
    fn conditions_and_completion() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.metadata.generation = Some(2);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(600);
        let mut new = rs("new", 1, 3, None);
        new.status = Some(ReplicaSetStatus {
            replicas: 3,
            ready_replicas: Some(3),
            available_replicas: Some(3),
            ..Default::default()
        });
        let s = calculate_status(&d, &[&new], Some(&new), now);
        assert!(complete(&d, &s));
        assert!(progressing(&d, &s));
        let c = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(c.reason.as_deref(), Some(MIN_AVAILABLE));

        let mut s2 = s.clone();
        set_condition(
            &mut s2,
            new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), now),
        );
        assert!(!timed_out(
            &d,
            &s2,
            now + jiff::SignedDuration::from_secs(600)
        ));
        assert!(timed_out(
            &d,
            &s2,
            now + jiff::SignedDuration::from_secs(601)
        ));
        // Same status, other reason: the transition time stays.
        let later = now + jiff::SignedDuration::from_secs(60);
        set_condition(
            &mut s2,
            new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, "y".into(), later),
        );
        let c = get_condition(&s2, PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(time_now(now)));
        assert_eq!(c.last_update_time, Some(time_now(later)));
        assert!(!timed_out(
            &d,
            &s2,
            later + jiff::SignedDuration::from_secs(6000)
        ));
    }
}
