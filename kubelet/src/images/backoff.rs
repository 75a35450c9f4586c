//! Per-key exponential back-off as upstream's client-go `flowcontrol.Backoff`: the first
//! failure waits `initial`, each further one doubles up to `max`; an entry untouched for
//! more than 2 × `max` starts over. Time is passed in so tests need no sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The kubelet's image pull (and container restart) back-off: 10 s doubling to 300 s.
    pub fn kubelet_default() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.last_update) > self.max * 2
    }

    /// Records a failure at `now`: the next back-off period for `key`.
    pub fn next(&mut self, key: &str, now: Instant) -> Duration {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
        backoff
    }

    /// Whether `key` is still waiting out the period its last failure started.
    pub fn is_in_backoff_since_update(&self, key: &str, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| now.saturating_duration_since(e.last_update) < e.backoff)
    }

    /// The current period of `key` (zero when it has none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map(|e| e.backoff).unwrap_or_default()
    }

    /// Forgets `key` (e.g. after a success).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops entries that have expired, so the map does not grow with deleted pods.
    pub fn gc(&mut self, now: Instant) {
        let max = self.max;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_update) <= max * 2);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_expires() {
        let mut b = Backoff::kubelet_default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(!b.is_in_backoff_since_update("k", t0));
        assert_eq!(b.next("k", t0), s(10));
        assert!(b.is_in_backoff_since_update("k", t0 + s(9)));
        assert!(!b.is_in_backoff_since_update("k", t0 + s(10)));
        let mut t = t0;
        let mut periods = Vec::new();
        for _ in 0..7 {
            t += s(11);
            periods.push(b.next("k", t).as_secs());
        }
        assert_eq!(periods, vec![20, 40, 80, 160, 300, 300, 300]);
        // Other keys are independent.
        assert!(!b.is_in_backoff_since_update("other", t));
        // Quiet for more than 2 × max: starts over.
        assert_eq!(b.next("k", t + s(601)), s(10));
        b.gc(t + s(601) + s(601));
        assert!(b.is_empty());
        b.next("a", t);
        b.reset("a");
        assert_eq!(b.get("a"), Duration::ZERO);
    }
}
