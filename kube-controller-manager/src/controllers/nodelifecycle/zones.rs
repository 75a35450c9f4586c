//! Zones and the rate at which their failed nodes are tainted for eviction (upstream's
//! zone states and `RateLimitedTimedQueue`): a zone with few failures evicts at
//! `--node-eviction-rate`; one where most nodes failed evicts slowly, or not at all in a
//! small cluster; when every zone failed completely the controller assumes the problem
//! is its own (or the network's) and stops evicting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

/// Upstream's `EvictionRateLimiterBurst`.
pub const EVICTION_BURST: f64 = 1.0;

/// A zone's health, by the share of its nodes that are not Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    PartialDisruption,
    FullDisruption,
}

impl ZoneState {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Initial => "Initial",
            ZoneState::Normal => "Normal",
            ZoneState::PartialDisruption => "PartialDisruption",
            ZoneState::FullDisruption => "FullDisruption",
        }
    }
}

/// The zone of a node: region and zone labels joined as upstream's `GetZoneKey` does
/// (empty when the node has neither).
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |stable: &str, beta: &str| {
        labels
            .and_then(|l| l.get(stable).or_else(|| l.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// A zone's state from the Ready statuses of its nodes (`None`: no Ready condition):
/// full disruption when none is Ready, partial when at least three and at least
/// `unhealthy_threshold` of them are not Ready. Returns the unhealthy count too.
pub fn compute_zone_state(ready: &[Option<&str>], unhealthy_threshold: f32) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|s| **s == Some("True")).count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f32 / (ready.len() as f32) >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// A token bucket: `qps` tokens per second, at most `burst` saved; a rate of zero never
/// lets anything through (upstream's fake never-rate-limiter).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(qps: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A node waiting in a zone's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedValue {
    pub node: String,
    pub uid: String,
    pub added_at: Instant,
    pub process_at: Instant,
}

/// Nodes to taint, in order of due time, each at most once: an item that was processed
/// stays known (so adding it again is a no-op) until it is removed, as upstream's
/// `UniqueQueue` keeps its set.
#[derive(Debug)]
pub struct RateLimitedTimedQueue {
    limiter: TokenBucket,
    queue: BTreeMap<(Instant, u64), TimedValue>,
    /// Every known node, with its queue slot while it waits.
    known: HashMap<String, Option<(Instant, u64)>>,
    seq: u64,
}

impl RateLimitedTimedQueue {
    pub fn new(qps: f64, now: Instant) -> Self {
        RateLimitedTimedQueue {
            limiter: TokenBucket::new(qps, EVICTION_BURST, now),
            queue: BTreeMap::new(),
            known: HashMap::new(),
            seq: 0,
        }
    }

    /// Add a node unless it is already known; returns whether it was added.
    pub fn add(&mut self, node: &str, uid: &str, now: Instant) -> bool {
        if self.known.contains_key(node) {
            return false;
        }
        let value = TimedValue {
            node: node.to_string(),
            uid: uid.to_string(),
            added_at: now,
            process_at: now,
        };
        self.insert(value);
        true
    }

    fn insert(&mut self, value: TimedValue) {
        self.seq += 1;
        let slot = (value.process_at, self.seq);
        self.known.insert(value.node.clone(), Some(slot));
        self.queue.insert(slot, value);
    }

    /// Forget a node entirely; returns whether it was known.
    pub fn remove(&mut self, node: &str) -> bool {
        match self.known.remove(node) {
            Some(Some(slot)) => {
                self.queue.remove(&slot);
                true
            }
            Some(None) => true,
            None => false,
        }
    }

    /// The nodes due now, as far as the rate limit allows, taken off the queue (they
    /// stay known). A failed one goes back with [`Self::retry`].
    pub fn take_due(&mut self, now: Instant) -> Vec<TimedValue> {
        let mut due = Vec::new();
        while let Some((&slot, _)) = self.queue.first_key_value() {
            if slot.0 > now || !self.limiter.try_accept(now) {
                break;
            }
            if let Some(value) = self.queue.remove(&slot) {
                self.known.insert(value.node.clone(), None);
                due.push(value);
            }
        }
        due
    }

    /// Put a node back to be tried again after `wait`, unless it was removed meanwhile.
    pub fn retry(&mut self, mut value: TimedValue, wait: Duration, now: Instant) {
        if matches!(self.known.get(&value.node), Some(None)) {
            value.process_at = now + wait;
            self.insert(value);
        }
    }

    /// Change the rate (upstream's `SwapLimiter`); the saved tokens start empty so a
    /// change of state never releases a burst.
    pub fn swap_limiter(&mut self, qps: f64, now: Instant) {
        if (self.limiter.qps() - qps).abs() < f64::EPSILON {
            return;
        }
        let mut limiter = TokenBucket::new(qps, EVICTION_BURST, now);
        limiter.tokens = 0.0;
        self.limiter = limiter;
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_states_follow_upstream() {
        let t = Some("True");
        let u = Some("Unknown");
        assert_eq!(compute_zone_state(&[t, t, u], 0.55), (1, ZoneState::Normal));
        assert_eq!(
            compute_zone_state(&[u, u], 0.55),
            (2, ZoneState::FullDisruption)
        );
        // Two failed nodes are never a partial disruption, whatever the share.
        assert_eq!(compute_zone_state(&[t, u, u], 0.55), (2, ZoneState::Normal));
        assert_eq!(
            compute_zone_state(&[t, u, u, None], 0.55),
            (3, ZoneState::PartialDisruption)
        );
        assert_eq!(
            compute_zone_state(&[t, t, t, u, u, u, t], 0.55),
            (3, ZoneState::Normal)
        );
    }

    #[test]
    fn zone_keys_join_region_and_zone() {
        let mut node = Node::default();
        assert_eq!(zone_key(&node), "");
        node.metadata.labels =
            Some([("topology.kubernetes.io/zone".to_string(), "a".to_string())].into());
        assert_eq!(zone_key(&node), ":\x00:a");
    }

    #[test]
    fn queue_is_rate_limited_and_unique() {
        let start = Instant::now();
        let mut q = RateLimitedTimedQueue::new(1.0, start);
        assert!(q.add("a", "1", start));
        assert!(q.add("b", "2", start));
        assert!(!q.add("a", "1", start));
        // The burst lets one through; the next needs a second.
        let due = q.take_due(start);
        assert_eq!(
            due.iter().map(|v| v.node.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        assert!(q.take_due(start + Duration::from_millis(500)).is_empty());
        let due = q.take_due(start + Duration::from_millis(1100));
        assert_eq!(due[0].node, "b");
        // Processed nodes stay known until removed.
        assert!(!q.add("a", "1", start));
        assert!(q.remove("a"));
        assert!(q.add("a", "1", start));
        // A failed item is retried after its wait.
        let later = start + Duration::from_secs(5);
        let due = q.take_due(later);
        q.retry(due[0].clone(), Duration::from_secs(1), later);
        assert!(q.take_due(later + Duration::from_millis(500)).is_empty());
        assert_eq!(q.take_due(later + Duration::from_secs(3)).len(), 1);
        // No rate: nothing passes.
        q.swap_limiter(0.0, later);
        q.add("c", "3", later);
        assert!(q.take_due(later + Duration::from_secs(100)).is_empty());
    }
}
