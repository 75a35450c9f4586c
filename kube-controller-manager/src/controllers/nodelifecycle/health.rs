//! A node's health as the controller observes it (upstream's `tryUpdateNodeHealth`):
//! when the kubelet last proved alive, by a new heartbeat in the Ready condition or a
//! renewed Lease, measured on this process's clock so that clock skew between machines
//! does not matter; and the conditions to post when it stayed silent too long.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

/// The conditions the kubelet owns and the controller sets to Unknown when the kubelet
/// goes silent (NetworkUnavailable belongs to the network plugin and is left alone).
pub const KUBELET_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// What the controller remembers of one node between passes.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHealth {
    /// When (on our clock) the kubelet was last seen alive.
    pub probe: Instant,
    /// When (on our clock) the Ready condition last changed.
    pub ready_transition: Instant,
    /// The Ready condition's heartbeat and transition times as last seen.
    pub ready_heartbeat: Option<(Option<Time>, Option<Time>)>,
    /// The Ready condition's status as last seen or posted ("" when absent).
    pub ready_status: String,
    /// The renew time of the node's Lease as last seen.
    pub lease_renew: Option<MicroTime>,
}

pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The outcome of one look at a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub health: NodeHealth,
    /// The Ready status the node had in the cache before this pass ("Unknown" when it
    /// has no Ready condition).
    pub observed_ready: String,
    /// The conditions to post, when the kubelet stayed silent past its grace period and
    /// that changes the Ready condition.
    pub new_conditions: Option<Vec<NodeCondition>>,
}

impl Observation {
    /// The node's Ready status after this pass (posted or as it was).
    pub fn current_ready(&self) -> Option<&str> {
        match &self.new_conditions {
            Some(conds) => conds
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.as_str()),
            None => {
                (!self.health.ready_status.is_empty()).then_some(self.health.ready_status.as_str())
            }
        }
    }
}

pub struct Timing {
    pub now: Instant,
    pub wall_now: jiff::Timestamp,
    pub monitor_grace: Duration,
    pub startup_grace: Duration,
}

/// Look at `node` (and its Lease's renew time) given what was saved before.
pub fn observe(
    saved: Option<&NodeHealth>,
    node: &Node,
    lease_renew: Option<&MicroTime>,
    t: &Timing,
) -> Observation {
    let ready = condition(node, "Ready");
    let created = node.metadata.creation_timestamp.clone();
    // A node that never posted a Ready condition gets the longer startup grace period,
    // counted from its creation (upstream's fake condition at CreationTimestamp).
    let (grace, observed_ready) = match ready {
        Some(c) => (t.monitor_grace, c.status.clone()),
        None => (t.startup_grace, "Unknown".to_string()),
    };
    let current = ready.map(|c| {
        (
            c.last_heartbeat_time.clone(),
            c.last_transition_time.clone(),
        )
    });
    let since_creation = |ts: &Option<Time>| {
        ts.as_ref()
            .map(|c| t.wall_now.duration_since(c.0).unsigned_abs())
            .and_then(|ago| t.now.checked_sub(ago))
            .unwrap_or(t.now)
    };
    let fresh = |probe: Instant, transition: Instant| NodeHealth {
        probe,
        ready_transition: transition,
        ready_heartbeat: current.clone(),
        ready_status: ready.map(|c| c.status.clone()).unwrap_or_default(),
        lease_renew: saved.and_then(|s| s.lease_renew.clone()),
    };
    let mut health = match saved {
        None if ready.is_none() => {
            let at = since_creation(&created);
            fresh(at, at)
        }
        None => fresh(t.now, t.now),
        Some(s) => match (&s.ready_heartbeat, &current) {
            (None, Some(_)) | (Some(_), None) => fresh(t.now, t.now),
            (Some(old), Some(new)) if old.0 != new.0 => {
                let transition = if old.1 != new.1 {
                    t.now
                } else {
                    s.ready_transition
                };
                fresh(t.now, transition)
            }
            _ => NodeHealth {
                ready_status: ready.map(|c| c.status.clone()).unwrap_or_default(),
                ..s.clone()
            },
        },
    };
    // A renewed Lease proves the kubelet alive even when it posts no status.
    if let Some(renew) = lease_renew {
        if health
            .lease_renew
            .as_ref()
            .is_none_or(|old| old.0 < renew.0)
        {
            health.lease_renew = Some(renew.clone());
            health.probe = t.now;
        }
    }
    let mut new_conditions = None;
    if t.now > health.probe + grace {
        let stamp = Time(t.wall_now);
        let mut conds = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for type_ in KUBELET_CONDITIONS {
            match conds.iter_mut().find(|c| c.type_ == type_) {
                None => conds.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(stamp.clone()),
                }),
                Some(c) if c.status != "Unknown" => {
                    c.status = "Unknown".into();
                    c.reason = Some(REASON_UNKNOWN.into());
                    c.message = Some(MESSAGE_UNKNOWN.into());
                    c.last_transition_time = Some(stamp.clone());
                }
                Some(_) => {}
            }
        }
        let new_ready = conds.iter().find(|c| c.type_ == "Ready");
        // Only a change of the Ready condition is written, as upstream compares it alone.
        if new_ready != ready {
            health.ready_status = "Unknown".into();
            health.ready_transition = t.now;
            new_conditions = Some(conds);
        }
    }
    Observation {
        health,
        observed_ready,
        new_conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeStatus;

    fn node_with_ready(status: &str, heartbeat_secs: i64) -> Node {
        let ts = |s: i64| Some(Time(jiff::Timestamp::from_second(s).unwrap()));
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: ts(0),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                conditions: Some(vec![
                    NodeCondition {
                        type_: "MemoryPressure".into(),
                        status: "False".into(),
                        last_heartbeat_time: ts(heartbeat_secs),
                        last_transition_time: ts(0),
                        ..Default::default()
                    },
                    NodeCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        reason: Some("KubeletReady".into()),
                        last_heartbeat_time: ts(heartbeat_secs),
                        last_transition_time: ts(0),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    fn timing(now: Instant) -> Timing {
        Timing {
            now,
            wall_now: jiff::Timestamp::from_second(1000).unwrap(),
            monitor_grace: Duration::from_secs(40),
            startup_grace: Duration::from_secs(60),
        }
    }

    #[test]
    fn silent_node_becomes_unknown_after_grace() {
        let start = Instant::now();
        let node = node_with_ready("True", 10);
        let first = observe(None, &node, None, &timing(start));
        assert!(first.new_conditions.is_none());
        assert_eq!(first.current_ready(), Some("True"));
        // Nothing new within the grace period: still fine.
        let second = observe(
            Some(&first.health),
            &node,
            None,
            &timing(start + Duration::from_secs(30)),
        );
        assert!(second.new_conditions.is_none());
        // Past it: Ready and the other kubelet conditions become Unknown.
        let third = observe(
            Some(&second.health),
            &node,
            None,
            &timing(start + Duration::from_secs(41)),
        );
        let conds = third.new_conditions.clone().expect("conditions posted");
        assert_eq!(third.observed_ready, "True");
        assert_eq!(third.current_ready(), Some("Unknown"));
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.reason.as_deref(), ready.message.as_deref()),
            (Some(REASON_UNKNOWN), Some(MESSAGE_UNKNOWN))
        );
        // The heartbeat is the kubelet's last; the transition is now.
        assert_eq!(
            ready.last_heartbeat_time,
            node_with_ready("True", 10)
                .status
                .unwrap()
                .conditions
                .unwrap()[1]
                .last_heartbeat_time
        );
        assert_eq!(
            ready.last_transition_time.as_ref().map(|t| t.0.as_second()),
            Some(1000)
        );
        assert_eq!(
            conds
                .iter()
                .find(|c| c.type_ == "MemoryPressure")
                .unwrap()
                .status,
            "Unknown"
        );
        // Never-posted conditions are added.
        let disk = conds.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(disk.reason.as_deref(), Some(REASON_NEVER_UPDATED));
    }

    #[test]
    fn renewed_lease_or_heartbeat_keeps_node_alive() {
        let start = Instant::now();
        let node = node_with_ready("True", 10);
        let lease = MicroTime(jiff::Timestamp::from_second(10).unwrap());
        let first = observe(None, &node, Some(&lease), &timing(start));
        let later = start + Duration::from_secs(35);
        let renewed = MicroTime(jiff::Timestamp::from_second(45).unwrap());
        let second = observe(Some(&first.health), &node, Some(&renewed), &timing(later));
        assert_eq!(second.health.probe, later);
        let third = observe(
            Some(&second.health),
            &node,
            Some(&renewed),
            &timing(later + Duration::from_secs(39)),
        );
        assert!(third.new_conditions.is_none());
        // A new status heartbeat counts as well.
        let beat = node_with_ready("True", 60);
        let fourth = observe(
            Some(&third.health),
            &beat,
            Some(&renewed),
            &timing(later + Duration::from_secs(39)),
        );
        assert_eq!(fourth.health.probe, later + Duration::from_secs(39));
        let fifth = observe(
            Some(&fourth.health),
            &beat,
            Some(&renewed),
            &timing(later + Duration::from_secs(100)),
        );
        assert!(fifth.new_conditions.is_some());
    }

    #[test]
    fn already_unknown_is_not_rewritten() {
        let start = Instant::now();
        let mut node = node_with_ready("Unknown", 10);
        for c in node.status.as_mut().unwrap().conditions.as_mut().unwrap() {
            c.status = "Unknown".into();
        }
        let first = observe(None, &node, None, &timing(start));
        let second = observe(
            Some(&first.health),
            &node,
            None,
            &timing(start + Duration::from_secs(100)),
        );
        // Only missing conditions would change; Ready is the same, so nothing is written.
        assert!(second.new_conditions.is_none());
        assert_eq!(second.current_ready(), Some("Unknown"));
    }
}
