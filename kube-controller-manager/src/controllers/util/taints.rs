//! Taints and tolerations (upstream's `pkg/util/taints`, the toleration helpers of
//! `k8s.io/api/core/v1` and `controller.AddOrUpdateTaintOnNode` /
//! `RemoveTaintOffNode`): matching a pod's tolerations against a node's taints, and
//! changing the taints of a node without losing concurrent writes.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// A taint with a key and an effect (the identity of a taint on a node).
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        value: None,
        time_added: None,
    }
}

/// Whether two taints are the same taint: same key and effect (upstream's `MatchTaint`).
pub fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether `taints` holds a taint with the key and effect of `t`.
pub fn taint_exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| same_taint(x, t))
}

/// The taints of a node (empty when it has none).
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`): the
/// effects match (an empty effect matches all), and either the key is empty with
/// `Exists` (tolerates everything), or the keys match and `Exists` or equal values.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether every taint is tolerated, and the tolerations that tolerate them (upstream's
/// `GetMatchingTolerations`): for each taint the first toleration that tolerates it.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> (bool, Vec<&'a Toleration>) {
    let mut used = Vec::new();
    for t in taints {
        match tolerations.iter().find(|tol| tolerates(tol, t)) {
            Some(tol) => used.push(tol),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

/// `taints` with `add` added (a taint already present by key and effect is kept as it
/// is, so its `timeAdded` survives) and `remove` removed; `None` when nothing changes.
pub fn swap_taints(taints: &[Taint], add: &[Taint], remove: &[Taint]) -> Option<Vec<Taint>> {
    let mut result: Vec<Taint> = taints
        .iter()
        .filter(|t| !taint_exists(remove, t) || taint_exists(add, t))
        .cloned()
        .collect();
    for t in add {
        if !taint_exists(&result, t) {
            result.push(t.clone());
        }
    }
    if result.len() == taints.len() && result.iter().zip(taints).all(|(a, b)| a == b) {
        None
    } else {
        Some(result)
    }
}

/// How many times a taint change is retried on write conflicts.
const CONFLICT_RETRIES: usize = 5;

/// Add `add` and remove `remove` on the node named `name`, starting from `cached` (a copy
/// from an informer) and re-reading the node after a conflict. New taints get
/// `timeAdded` = now, as upstream's `SwapNodeControllerTaint` sets it. Returns whether
/// the node was changed; a node that no longer exists is no error.
pub async fn update_node_taints(
    api: &Api<Node>,
    name: &str,
    cached: Option<&Node>,
    add: &[Taint],
    remove: &[Taint],
) -> Result<bool, kube::Error> {
    let now = Time(jiff::Timestamp::now());
    let add: Vec<Taint> = add
        .iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t.clone()
        })
        .collect();
    let mut current = cached.cloned();
    for attempt in 0..CONFLICT_RETRIES {
        let node = match current.take() {
            Some(n) => n,
            None => match api.get_opt(name).await? {
                Some(n) => n,
                None => return Ok(false),
            },
        };
        let Some(taints) = swap_taints(node_taints(&node), &add, remove) else {
            return Ok(false);
        };
        let taints = if taints.is_empty() {
            serde_json::Value::Null
        } else {
            json!(taints)
        };
        // The resourceVersion makes the write conditional: a concurrent change of the
        // taints (kubectl taint, another controller) is re-read, never overwritten.
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt + 1 < CONFLICT_RETRIES => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: key.map(str::to_string),
            operator: Some(op.to_string()),
            value: value.map(str::to_string),
            effect: effect.map(str::to_string),
            toleration_seconds: None,
        }
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let mut t = taint("dedicated", NO_EXECUTE);
        t.value = Some("gpu".into());
        assert!(tolerates(
            &tol(Some("dedicated"), "Equal", Some("gpu"), Some(NO_EXECUTE)),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), "Equal", Some("cpu"), Some(NO_EXECUTE)),
            &t
        ));
        assert!(tolerates(&tol(Some("dedicated"), "Exists", None, None), &t));
        assert!(!tolerates(
            &tol(Some("dedicated"), "Exists", None, Some(NO_SCHEDULE)),
            &t
        ));
        // An empty key with Exists tolerates every taint.
        assert!(tolerates(&tol(None, "Exists", None, None), &t));
        assert!(!tolerates(&tol(Some("other"), "Exists", None, None), &t));
        let taints = vec![t.clone(), taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE)];
        let tols = vec![tol(Some("dedicated"), "Exists", None, None)];
        assert!(!matching_tolerations(&taints, &tols).0);
        let tols = vec![
            tol(Some("dedicated"), "Exists", None, None),
            tol(
                Some(TAINT_NODE_UNREACHABLE),
                "Exists",
                None,
                Some(NO_EXECUTE),
            ),
        ];
        let (all, used) = matching_tolerations(&taints, &tols);
        assert!(all);
        assert_eq!(used.len(), 2);
    }

    #[test]
    fn swapping_keeps_existing_taints_and_their_time() {
        let mut old = taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE);
        old.time_added = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let taints = vec![taint("user", NO_SCHEDULE), old.clone()];
        // Already there: nothing to do.
        assert_eq!(
            swap_taints(&taints, &[taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE)], &[]),
            None
        );
        // Swap unreachable for not-ready; the user's taint stays.
        let swapped = swap_taints(
            &taints,
            &[taint(TAINT_NODE_NOT_READY, NO_EXECUTE)],
            &[taint(TAINT_NODE_UNREACHABLE, NO_EXECUTE)],
        )
        .unwrap();
        assert_eq!(
            swapped,
            vec![
                taint("user", NO_SCHEDULE),
                taint(TAINT_NODE_NOT_READY, NO_EXECUTE)
            ]
        );
        // Removing something absent changes nothing.
        assert_eq!(
            swap_taints(&taints, &[], &[taint(TAINT_NODE_NOT_READY, NO_EXECUTE)]),
            None
        );
        // The same key with another effect is another taint.
        assert!(swap_taints(&taints, &[taint(TAINT_NODE_UNREACHABLE, NO_SCHEDULE)], &[]).is_some());
    }
}
