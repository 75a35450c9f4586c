//! Expectations (upstream's ControllerExpectations): a controller that has just created
//! or deleted objects must not act again on a cache that does not show those writes yet,
//! or it would create or delete too many. Here they are tracked by name: a creation is
//! expected until the cache holds the name, a deletion until the cache no longer does,
//! each for at most five minutes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long an unobserved expectation is trusted (upstream's ExpectationsTimeout).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    creating: HashMap<String, Instant>,
    deleting: HashMap<String, Instant>,
}

#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

/// What is still in flight for one controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    pub creations: usize,
    pub deletions: usize,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.creations == 0 && self.deletions == 0
    }
}

impl Expectations {
    pub fn expect_created(&self, controller: &str, name: &str) {
        self.pending
            .lock()
            .entry(controller.to_string())
            .or_default()
            .creating
            .insert(name.to_string(), Instant::now());
    }

    pub fn expect_deleted(&self, controller: &str, name: &str) {
        self.pending
            .lock()
            .entry(controller.to_string())
            .or_default()
            .deleting
            .insert(name.to_string(), Instant::now());
    }

    /// Writes of `controller` that the cache (which holds `present`) does not show yet.
    pub fn in_flight(&self, controller: &str, present: &HashSet<&str>) -> InFlight {
        self.in_flight_split(controller, present, present)
    }

    /// Like [`Self::in_flight`] for objects deleted gracefully: a creation is seen once
    /// the cache holds the name at all (`seen`), a deletion once the name is gone from
    /// the objects still `live` (absent or already marked for deletion), as upstream
    /// counts a pod's deletion observed when its deletionTimestamp shows up.
    pub fn in_flight_split(
        &self,
        controller: &str,
        seen: &HashSet<&str>,
        live: &HashSet<&str>,
    ) -> InFlight {
        let mut all = self.pending.lock();
        let Some(p) = all.get_mut(controller) else {
            return InFlight::default();
        };
        let now = Instant::now();
        p.creating
            .retain(|name, at| !seen.contains(name.as_str()) && now.duration_since(*at) < TIMEOUT);
        p.deleting
            .retain(|name, at| live.contains(name.as_str()) && now.duration_since(*at) < TIMEOUT);
        let in_flight = InFlight {
            creations: p.creating.len(),
            deletions: p.deleting.len(),
        };
        if in_flight.is_empty() {
            all.remove(controller);
        }
        in_flight
    }

    /// Forget a controller (it was deleted).
    pub fn forget(&self, controller: &str) {
        self.pending.lock().remove(controller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_until_seen_deletions_until_gone() {
        let e = Expectations::default();
        e.expect_created("ns/rs", "a");
        e.expect_created("ns/rs", "b");
        e.expect_deleted("ns/rs", "old");
        let present: HashSet<&str> = ["a", "old"].into_iter().collect();
        assert_eq!(
            e.in_flight("ns/rs", &present),
            InFlight {
                creations: 1,
                deletions: 1
            }
        );
        let present: HashSet<&str> = ["a", "b"].into_iter().collect();
        assert!(e.in_flight("ns/rs", &present).is_empty());
        assert!(e.in_flight("other", &present).is_empty());
    }

    #[test]
    fn graceful_deletions_count_once_marked() {
        let e = Expectations::default();
        e.expect_created("ns/rs", "new");
        e.expect_deleted("ns/rs", "old");
        // Both in the cache; "old" is terminating, so no longer live.
        let seen: HashSet<&str> = ["new", "old"].into_iter().collect();
        let live: HashSet<&str> = ["new"].into_iter().collect();
        assert!(e.in_flight_split("ns/rs", &seen, &live).is_empty());
    }
}
