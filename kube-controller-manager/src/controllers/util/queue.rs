//! A work queue for controllers that do not reconcile one cached object per key (the
//! garbage collector's graph nodes): upstream's rate-limited workqueue. A key is handed
//! to one worker at a time; a key added while it is processed runs again afterwards;
//! failures are retried with a per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Upstream's default per-item backoff: 5ms doubling up to 1000s.
const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    /// Added while processing: queued again when done.
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    shutdown: CancellationToken,
}

impl<K> WorkQueue<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    pub fn new(shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
            shutdown,
        })
    }

    pub fn add(&self, key: K) {
        let mut s = self.state.lock();
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.queue.push_back(key);
            drop(s);
            self.ready.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => queue.add(key),
                _ = queue.shutdown.cancelled() => {}
            }
        });
    }

    /// Retry `key` after its backoff, which doubles with every failure until
    /// [`Self::forget`].
    pub fn add_rate_limited(self: &Arc<Self>, key: K) {
        let failures = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        self.add_after(key, backoff(failures));
    }

    pub fn forget(&self, key: &K) {
        self.state.lock().failures.remove(key);
    }

    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key, or `None` once shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.state.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.queued.remove(&key);
                    s.processing.insert(key.clone());
                    return Some(key);
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = self.shutdown.cancelled() => return None,
            }
        }
    }

    pub fn done(&self, key: &K) {
        let mut s = self.state.lock();
        s.processing.remove(key);
        if s.dirty.remove(key) && s.queued.insert(key.clone()) {
            s.queue.push_back(key.clone());
            drop(s);
            self.ready.notify_one();
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// What a worker decided about a key.
pub enum Outcome {
    /// Done; forget its failures.
    Forget,
    /// Try again after its backoff.
    Retry,
    /// Look again after a while (not a failure).
    After(Duration),
}

/// Run `workers` workers over `queue` until it shuts down.
pub async fn run_workers<K, F, Fut>(queue: Arc<WorkQueue<K>>, workers: usize, work: F)
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = Arc::clone(&queue);
        let work = Arc::clone(&work);
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match work(key.clone()).await {
                    Outcome::Forget => queue.forget(&key),
                    Outcome::Retry => queue.add_rate_limited(key.clone()),
                    Outcome::After(d) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), d);
                    }
                }
                queue.done(&key);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_and_rerun_when_added_during_processing() {
        let q = WorkQueue::new(CancellationToken::new());
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Added while processing: not handed out twice at once, but again after done.
        q.add("a");
        assert_eq!(q.get().await.unwrap(), "b");
        q.done(&"b");
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn shutdown_ends_waiting_workers() {
        let token = CancellationToken::new();
        let q: Arc<WorkQueue<u32>> = WorkQueue::new(token.clone());
        token.cancel();
        assert_eq!(q.get().await, None);
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(100), MAX_DELAY);
    }
}
