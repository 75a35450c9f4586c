//! The scheduling queue (upstream's PriorityQueue): an active heap ordered by priority,
//! then by the time the pod entered the queue (PrioritySort); a backoff queue holding
//! pods that failed until their backoff (initial 1 s, doubling per attempt up to 10 s)
//! ends; and an unschedulable pool whose pods go back when a cluster event one of the
//! plugins that rejected them cares about happens, or after 5 minutes at the latest.
//!
//! The scheduling loop runs on its own thread, so the queue blocks on a condition
//! variable rather than being async.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::framework::types::PendingPod;

/// The longest a pod stays in the unschedulable pool without an event.
pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(5 * 60);

/// A pod as the queue holds it.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub info: Arc<PendingPod>,
    /// When the pod entered the queue (ordering among equal priorities).
    pub timestamp: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the pod was first popped (for the latency metric).
    pub initial_attempt: Option<Instant>,
    /// Plugins that rejected the pod in its last attempt (bits of [`crate::config::Plugin`]).
    pub rejected_by: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
}

#[derive(Debug)]
struct Entry {
    pod: QueuedPod,
    place: Where,
    /// Bumped on every move so stale heap items are skipped.
    generation: u64,
    backoff_until: Instant,
    unschedulable_since: Instant,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    timestamp: Instant,
    uid: String,
    generation: u64,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: higher priority first, then the earlier time.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.timestamp.cmp(&self.timestamp))
            .then_with(|| other.uid.cmp(&self.uid))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct InFlight {
    /// The newest version of the pod seen while it was being scheduled.
    latest: Option<Arc<PendingPod>>,
    deleted: bool,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, String, u64)>>,
    in_flight: HashMap<String, InFlight>,
    /// Incremented on every pop; a move request records the cycle it happened in, so a
    /// pod whose attempt overlapped a cluster event is retried instead of parked.
    scheduling_cycle: u64,
    move_request_cycle: u64,
    /// Source of entry generations.
    generation: u64,
    /// The pods in the unschedulable pool (so events need not scan the whole queue).
    unschedulable: std::collections::HashSet<String>,
    last_flush: Instant,
    closed: bool,
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    cond: Condvar,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// What [`SchedulingQueue::pop`] hands out.
#[derive(Debug)]
pub struct Popped {
    pub pod: QueuedPod,
    pub cycle: u64,
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> SchedulingQueue {
        SchedulingQueue {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                active: BinaryHeap::new(),
                backoff: BinaryHeap::new(),
                in_flight: HashMap::new(),
                scheduling_cycle: 0,
                move_request_cycle: 0,
                generation: 0,
                unschedulable: Default::default(),
                last_flush: Instant::now(),
                closed: false,
            }),
            cond: Condvar::new(),
            initial_backoff,
            max_backoff,
        }
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn push_active(inner: &mut Inner, uid: &str) {
        inner.unschedulable.remove(uid);
        inner.generation += 1;
        let generation = inner.generation;
        if let Some(e) = inner.entries.get_mut(uid) {
            e.place = Where::Active;
            e.generation = generation;
            inner.active.push(ActiveItem {
                priority: e.pod.info.priority,
                timestamp: e.pod.timestamp,
                uid: uid.to_string(),
                generation,
            });
        }
    }

    fn push_backoff(inner: &mut Inner, uid: &str) {
        inner.unschedulable.remove(uid);
        inner.generation += 1;
        let generation = inner.generation;
        if let Some(e) = inner.entries.get_mut(uid) {
            e.place = Where::Backoff;
            e.generation = generation;
            inner
                .backoff
                .push(Reverse((e.backoff_until, uid.to_string(), generation)));
        }
    }

    /// A new pending pod, or a newer version of one.
    pub fn add_or_update(&self, info: Arc<PendingPod>) {
        let mut inner = self.inner.lock();
        let uid = info.uid.clone();
        if let Some(f) = inner.in_flight.get_mut(&uid) {
            f.latest = Some(info);
            return;
        }
        let now = Instant::now();
        match inner.entries.get_mut(&uid) {
            Some(e) => {
                let changed = e.pod.info.pod.spec != info.pod.spec
                    || e.pod.info.pod.metadata.labels != info.pod.metadata.labels;
                e.pod.info = info;
                // An update that may make the pod schedulable takes it out of the pool.
                if e.place == Where::Unschedulable && changed {
                    if e.backoff_until > now {
                        Self::push_backoff(&mut inner, &uid);
                    } else {
                        Self::push_active(&mut inner, &uid);
                    }
                    self.cond.notify_one();
                }
            }
            None => {
                inner.entries.insert(
                    uid.clone(),
                    Entry {
                        pod: QueuedPod {
                            info,
                            timestamp: now,
                            attempts: 0,
                            initial_attempt: None,
                            rejected_by: 0,
                        },
                        place: Where::Active,
                        generation: 0,
                        backoff_until: now,
                        unschedulable_since: now,
                    },
                );
                Self::push_active(&mut inner, &uid);
                self.cond.notify_one();
            }
        }
    }

    /// The pod was deleted or bound by someone else.
    pub fn delete(&self, uid: &str) {
        let mut inner = self.inner.lock();
        inner.entries.remove(uid);
        inner.unschedulable.remove(uid);
        if let Some(f) = inner.in_flight.get_mut(uid) {
            f.deleted = true;
        }
    }

    /// Wait for the next pod; `None` once closed.
    pub fn pop(&self) -> Option<Popped> {
        let mut inner = self.inner.lock();
        loop {
            if inner.closed {
                return None;
            }
            let now = Instant::now();
            self.flush(&mut inner, now);
            while let Some(item) = inner.active.pop() {
                let valid = inner
                    .entries
                    .get(&item.uid)
                    .is_some_and(|e| e.generation == item.generation && e.place == Where::Active);
                if !valid {
                    continue;
                }
                let Some(mut entry) = inner.entries.remove(&item.uid) else {
                    continue;
                };
                entry.pod.attempts += 1;
                entry.pod.initial_attempt.get_or_insert(now);
                inner.scheduling_cycle += 1;
                inner.in_flight.insert(item.uid, InFlight::default());
                return Some(Popped {
                    pod: entry.pod,
                    cycle: inner.scheduling_cycle,
                });
            }
            let wait = inner
                .backoff
                .peek()
                .map(|Reverse((t, _, _))| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            self.cond.wait_for(&mut inner, wait);
        }
    }

    /// Backoffs that ended go active; pods parked too long are retried.
    fn flush(&self, inner: &mut Inner, now: Instant) {
        while let Some(Reverse((t, _, _))) = inner.backoff.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, uid, generation))) = inner.backoff.pop() else {
                break;
            };
            if inner
                .entries
                .get(&uid)
                .is_some_and(|e| e.generation == generation && e.place == Where::Backoff)
            {
                Self::push_active(inner, &uid);
            }
        }
        if now.duration_since(inner.last_flush) >= Duration::from_secs(30) {
            inner.last_flush = now;
            let stale: Vec<String> = inner
                .unschedulable
                .iter()
                .filter(|u| {
                    inner.entries.get(*u).is_some_and(|e| {
                        now.duration_since(e.unschedulable_since) >= MAX_UNSCHEDULABLE_DURATION
                    })
                })
                .cloned()
                .collect();
            for uid in stale {
                Self::requeue(inner, &uid, now);
            }
        }
    }

    fn requeue(inner: &mut Inner, uid: &str, now: Instant) {
        let backing_off = inner
            .entries
            .get(uid)
            .is_some_and(|e| e.backoff_until > now);
        if backing_off {
            Self::push_backoff(inner, uid);
        } else {
            Self::push_active(inner, uid);
        }
    }

    /// The attempt ended with the pod bound (or handed to the binder).
    pub fn done(&self, uid: &str) {
        self.inner.lock().in_flight.remove(uid);
    }

    /// The attempt failed: park the pod in the unschedulable pool (`unschedulable`) or
    /// back it off (errors, and attempts that overlapped a cluster event).
    pub fn requeue_failed(&self, mut pod: QueuedPod, cycle: u64, unschedulable: bool) {
        let mut inner = self.inner.lock();
        let uid = pod.info.uid.clone();
        // Binding failures come after the attempt was done; the pod is still wanted.
        let flight = inner.in_flight.remove(&uid).unwrap_or_default();
        if flight.deleted {
            return;
        }
        if let Some(latest) = flight.latest {
            if !latest.node_name().is_empty() {
                return;
            }
            pod.info = latest;
        }
        let now = Instant::now();
        let backoff_until = now + self.backoff_duration(pod.attempts);
        inner.entries.insert(
            uid.clone(),
            Entry {
                pod,
                place: Where::Unschedulable,
                generation: 0,
                backoff_until,
                unschedulable_since: now,
            },
        );
        if unschedulable && inner.move_request_cycle < cycle {
            inner.generation += 1;
            let generation = inner.generation;
            if let Some(e) = inner.entries.get_mut(&uid) {
                e.generation = generation;
            }
            inner.unschedulable.insert(uid);
        } else {
            Self::push_backoff(&mut inner, &uid);
        }
        self.cond.notify_one();
    }

    /// A cluster event that may help pods rejected by the plugins in `plugins` (a mask
    /// of [`crate::config::Plugin`] bits; `u32::MAX` for any).
    pub fn move_unschedulable(&self, plugins: u32) {
        let mut inner = self.inner.lock();
        inner.move_request_cycle = inner.scheduling_cycle;
        let now = Instant::now();
        if inner.unschedulable.is_empty() {
            return;
        }
        let moving: Vec<String> = inner
            .unschedulable
            .iter()
            .filter(|u| {
                inner.entries.get(*u).is_some_and(|e| {
                    e.place == Where::Unschedulable
                        && (e.pod.rejected_by == 0 || e.pod.rejected_by & plugins != 0)
                })
            })
            .cloned()
            .collect();
        if moving.is_empty() {
            return;
        }
        for uid in moving {
            Self::requeue(&mut inner, &uid, now);
        }
        self.cond.notify_all();
    }

    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.cond.notify_all();
    }

    /// (active, backoff, unschedulable) pod counts, for metrics and tests.
    pub fn lengths(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        let mut counts = (0, 0, 0);
        for e in inner.entries.values() {
            match e.place {
                Where::Active => counts.0 += 1,
                Where::Backoff => counts.1 += 1,
                Where::Unschedulable => counts.2 += 1,
            }
        }
        counts
    }

    /// The pods waiting in the queue (for preemption's nominated-pod checks).
    pub fn contains(&self, uid: &str) -> bool {
        let inner = self.inner.lock();
        inner.entries.contains_key(uid) || inner.in_flight.contains_key(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, priority: i32) -> Arc<PendingPod> {
        Arc::new(PendingPod::new(
            serde_json::from_value(
                json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
                "spec": {"priority": priority, "containers": []}}),
            )
            .unwrap(),
        ))
    }

    #[test]
    fn priority_then_fifo() {
        let q = SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10));
        q.add_or_update(pod("low", 0));
        q.add_or_update(pod("a", 10));
        q.add_or_update(pod("b", 10));
        let order: Vec<String> = (0..3)
            .map(|_| q.pop().unwrap().pod.info.uid.clone())
            .collect();
        assert_eq!(order, ["a", "b", "low"]);
    }

    #[test]
    fn unschedulable_pool_moves_on_matching_events() {
        let q = SchedulingQueue::new(Duration::from_millis(1), Duration::from_millis(1));
        q.add_or_update(pod("p", 0));
        let mut popped = q.pop().unwrap();
        popped.pod.rejected_by = crate::config::Plugin::NodeResourcesFit.bit();
        q.requeue_failed(popped.pod, popped.cycle, true);
        assert_eq!(q.lengths(), (0, 0, 1));
        q.move_unschedulable(crate::config::Plugin::InterPodAffinity.bit());
        assert_eq!(q.lengths(), (0, 0, 1));
        std::thread::sleep(Duration::from_millis(5));
        q.move_unschedulable(crate::config::Plugin::NodeResourcesFit.bit());
        assert_eq!(q.lengths(), (1, 0, 0));
        let again = q.pop().unwrap();
        assert_eq!(again.pod.attempts, 2);
    }

    #[test]
    fn event_during_attempt_means_backoff_not_pool() {
        let q = SchedulingQueue::new(Duration::from_millis(1), Duration::from_millis(1));
        q.add_or_update(pod("p", 0));
        let popped = q.pop().unwrap();
        q.move_unschedulable(u32::MAX);
        q.requeue_failed(popped.pod, popped.cycle, true);
        assert_eq!(q.lengths(), (0, 1, 0));
        assert_eq!(q.pop().unwrap().pod.info.uid, "p");
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let q = SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(3), Duration::from_secs(4));
        assert_eq!(q.backoff_duration(9), Duration::from_secs(10));
    }
}
