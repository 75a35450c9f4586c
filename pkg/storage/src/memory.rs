//! An in-process store with etcd's semantics, for fast tests and single-process setups.
//!
//! Like etcd it is a multi-version store: one global revision (a fresh store is at
//! revision 1, so the first write gets revision 2), every key keeps its versions until a
//! compaction, and reads can ask for any revision not yet compacted. Keys with a TTL are
//! deleted by a background task when they expire, each batch of expired keys in one
//! revision (as etcd does when it revokes a lease).
//!
//! Watchers get their events through bounded per-watcher channels that the writer fills
//! with `try_send`, so a watcher never blocks a writer. A watcher whose channel cannot take
//! a whole revision is unregistered; when it has drained its channel it catches up from the
//! history kept for compaction (what etcd does with "unsynced" watchers), and only if that
//! history has been compacted meanwhile does its stream end with `Compacted`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, Sleep};

use crate::{
    into_stream, Event, EventKind, KeyValue, ListOptions, ListResult, ProgressRequester, Result,
    Revision, Storage, StorageError, WatchItem, WatchState, WatchStream,
};

/// Tunables of a [`MemoryStorage`].
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// A watch stream that has yielded nothing for this long yields a `Progress` item.
    pub progress_interval: Duration,
    /// Events buffered per watcher before it has to catch up from history.
    pub watch_buffer: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(5),
            watch_buffer: 1024,
        }
    }
}

/// See the [module docs](self). Cloning gives another handle to the same store.
#[derive(Clone)]
pub struct MemoryStorage {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    options: MemoryOptions,
    /// Wakes the expiry task: a new deadline may be earlier than the one it sleeps until,
    /// or the store is gone.
    expiry_wake: Arc<Notify>,
    expiry_started: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.expiry_wake.notify_one();
    }
}

struct State {
    revision: Revision,
    compacted: Revision,
    /// Every version of every key since the compacted revision, oldest first; `kv: None`
    /// marks a deletion.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event with a revision at or after the compacted revision, in order.
    log: VecDeque<Arc<Event>>,
    watchers: HashMap<u64, WatcherSlot>,
    next_watcher: u64,
    deadlines: HashMap<String, Instant>,
    expiry: BTreeSet<(Instant, String)>,
}

struct Version {
    revision: Revision,
    kv: Option<KeyValue>,
}

/// A watcher just registered: its id and channel, the history it missed, and the revision
/// it is up to date with once it has that history.
struct Registration {
    id: u64,
    events: mpsc::Receiver<Arc<Event>>,
    missed: Vec<Arc<Event>>,
    through: Revision,
}

struct WatcherSlot {
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::with_options(MemoryOptions::default())
    }

    pub fn with_options(options: MemoryOptions) -> Self {
        let state = State {
            revision: 1,
            compacted: 0,
            keys: BTreeMap::new(),
            log: VecDeque::new(),
            watchers: HashMap::new(),
            next_watcher: 0,
            deadlines: HashMap::new(),
            expiry: BTreeSet::new(),
        };
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                options,
                expiry_wake: Arc::new(Notify::new()),
                expiry_started: AtomicBool::new(false),
            }),
        }
    }

    /// How many watch streams are registered (for tests of watcher cleanup).
    pub fn watcher_count(&self) -> usize {
        self.inner.state.lock().watchers.len()
    }

    /// The deadline for `ttl`, starting the expiry task on first use: it is started lazily
    /// so that a store can be built outside a Tokio runtime. It runs on the runtime of the
    /// first write with a TTL, so a store must not outlive that runtime if it uses TTLs.
    fn deadline(&self, ttl: Option<Duration>) -> Result<Option<Instant>> {
        let Some(ttl) = ttl else { return Ok(None) };
        if !self.inner.expiry_started.load(Ordering::Acquire) {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                StorageError::Internal("keys with a TTL need a Tokio runtime".into())
            })?;
            if !self.inner.expiry_started.swap(true, Ordering::AcqRel) {
                handle.spawn(expiry_loop(
                    Arc::downgrade(&self.inner),
                    self.inner.expiry_wake.clone(),
                ));
            }
        }
        Ok(Some(Instant::now() + ttl))
    }

    fn wake_expiry(&self, deadline: Option<Instant>) {
        if deadline.is_some() {
            self.inner.expiry_wake.notify_one();
        }
    }
}

async fn expiry_loop(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let mut state = inner.state.lock();
            state.expire(Instant::now())
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl State {
    fn latest(&self, key: &str) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.kv.as_ref()
    }

    fn at(versions: &[Version], revision: Revision) -> Option<&KeyValue> {
        let visible = versions.partition_point(|v| v.revision <= revision);
        versions.get(visible.checked_sub(1)?)?.kv.as_ref()
    }

    fn record(&mut self, key: &str, revision: Revision, kv: Option<KeyValue>) {
        self.keys
            .entry(key.to_string())
            .or_default()
            .push(Version { revision, kv });
    }

    fn set_deadline(&mut self, key: &str, deadline: Option<Instant>) {
        if let Some(old) = self.deadlines.remove(key) {
            self.expiry.remove(&(old, key.to_string()));
        }
        if let Some(at) = deadline {
            self.deadlines.insert(key.to_string(), at);
            self.expiry.insert((at, key.to_string()));
        }
    }

    /// Appends the events of one revision to the history and hands them to the watchers.
    fn publish(&mut self, events: Vec<Event>) {
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        self.watchers.retain(|id, watcher| {
            let matching = events.iter().filter(|e| e.kv.key.starts_with(&watcher.prefix));
            let wanted = matching.clone().count();
            if wanted == 0 {
                return true;
            }
            // All of a revision or nothing, so that a watcher that catches up from history
            // resumes at a revision boundary.
            if watcher.tx.capacity() < wanted {
                tracing::debug!(watcher = id, prefix = %watcher.prefix, "watcher fell behind; it will catch up from history");
                return false;
            }
            matching.into_iter().all(|e| watcher.tx.try_send(e.clone()).is_ok())
        });
        self.log.extend(events);
    }

    /// Deletes the keys whose deadline has passed, all in one revision; returns the next
    /// deadline.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_first() {
                self.deadlines.remove(&key);
                due.push(key);
            }
        }
        let live: Vec<KeyValue> = due.iter().filter_map(|k| self.latest(k).cloned()).collect();
        if !live.is_empty() {
            self.revision += 1;
            let revision = self.revision;
            let mut events = Vec::with_capacity(live.len());
            for prev in live {
                self.record(&prev.key, revision, None);
                let kv = KeyValue {
                    mod_revision: revision,
                    ..prev.clone()
                };
                events.push(Event {
                    kind: EventKind::Deleted,
                    kv,
                    prev: Some(prev),
                });
            }
            tracing::debug!(revision, keys = events.len(), "expired keys");
            self.publish(events);
        }
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Registers a watcher that has seen everything up to `through`.
    fn register(&mut self, prefix: &str, through: Revision, buffer: usize) -> Result<Registration> {
        // Events at the compacted revision itself are still in the log (etcd lets a watch
        // start at the compacted revision), anything older is gone.
        if through + 1 < self.compacted {
            return Err(StorageError::Compacted {
                requested: through,
                compacted: self.compacted,
            });
        }
        let start = self.log.partition_point(|e| e.revision() <= through);
        let missed = self
            .log
            .range(start..)
            .filter(|e| e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        let (tx, events) = mpsc::channel(buffer.max(1));
        let id = self.next_watcher;
        self.next_watcher += 1;
        self.watchers.insert(
            id,
            WatcherSlot {
                prefix: prefix.to_string(),
                tx,
            },
        );
        Ok(Registration {
            id,
            events,
            missed,
            through: through.max(self.revision),
        })
    }

    fn check_read(&self, revision: Revision) -> Result<()> {
        if revision > self.revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision < self.compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.inner.state.lock().latest(key).cloned())
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        let state = self.inner.state.lock();
        let revision = match opts.revision {
            Some(r) if r > 0 => {
                state.check_read(r)?;
                r
            }
            _ => state.revision,
        };
        // A start key before the prefix would read keys outside it.
        let start = match &opts.start_key {
            Some(s) if s.as_str() > prefix => s.as_str(),
            _ => prefix,
        };
        let limit = opts
            .limit
            .filter(|l| *l > 0)
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let mut items = Vec::new();
        let mut total = 0usize;
        for (key, versions) in state
            .keys
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
        {
            if !key.starts_with(prefix) {
                break;
            }
            let Some(kv) = State::at(versions, revision) else {
                continue;
            };
            total += 1;
            if limit.is_none_or(|l| items.len() < l) {
                items.push(kv.clone());
            }
        }
        let remaining = (total - items.len()) as i64;
        Ok(ListResult {
            items,
            revision,
            more: remaining > 0,
            remaining,
        })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let state = self.inner.state.lock();
        let count = state
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| v.last().is_some_and(|v| v.kv.is_some()))
            .count();
        Ok(count as i64)
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        let deadline = self.deadline(ttl)?;
        let kv = {
            let mut state = self.inner.state.lock();
            if state.latest(key).is_some() {
                return Err(StorageError::AlreadyExists {
                    key: key.to_string(),
                });
            }
            state.revision += 1;
            let revision = state.revision;
            let kv = KeyValue {
                key: key.to_string(),
                value,
                create_revision: revision,
                mod_revision: revision,
            };
            state.record(key, revision, Some(kv.clone()));
            state.set_deadline(key, deadline);
            state.publish(vec![Event {
                kind: EventKind::Created,
                kv: kv.clone(),
                prev: None,
            }]);
            kv
        };
        self.wake_expiry(deadline);
        Ok(kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let deadline = self.deadline(ttl)?;
        let kv = {
            let mut state = self.inner.state.lock();
            let Some(prev) = state.latest(key).cloned() else {
                return Err(StorageError::NotFound {
                    key: key.to_string(),
                });
            };
            if prev.mod_revision != expected {
                return Err(StorageError::Conflict {
                    key: key.to_string(),
                    current: Some(prev),
                });
            }
            state.revision += 1;
            let revision = state.revision;
            let kv = KeyValue {
                key: key.to_string(),
                value,
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            state.record(key, revision, Some(kv.clone()));
            // Like an etcd put without a lease, an update without a TTL makes the key
            // permanent.
            state.set_deadline(key, deadline);
            state.publish(vec![Event {
                kind: EventKind::Updated,
                kv: kv.clone(),
                prev: Some(prev),
            }]);
            kv
        };
        self.wake_expiry(deadline);
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let mut state = self.inner.state.lock();
        let Some(prev) = state.latest(key).cloned() else {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        };
        if expected.is_some_and(|e| e != prev.mod_revision) {
            return Err(StorageError::Conflict {
                key: key.to_string(),
                current: Some(prev),
            });
        }
        state.revision += 1;
        let revision = state.revision;
        state.record(key, revision, None);
        state.set_deadline(key, None);
        let kv = KeyValue {
            mod_revision: revision,
            ..prev.clone()
        };
        state.publish(vec![Event {
            kind: EventKind::Deleted,
            kv: kv.clone(),
            prev: Some(prev),
        }]);
        Ok(kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_inner(prefix, after, None)
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        self.watch_inner(prefix, after, Some(progress))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.state.lock().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.inner.state.lock();
        if revision <= state.compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted: state.compacted,
            });
        }
        if revision > state.revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: state.revision,
            });
        }
        state.compacted = revision;
        state.keys.retain(|_, versions| {
            // Keep the version visible at `revision` and everything newer; a deletion
            // visible at `revision` needs no record any more.
            let visible = versions.partition_point(|v| v.revision <= revision);
            if visible > 0 {
                versions.drain(..visible - 1);
                if versions.first().is_some_and(|v| v.kv.is_none()) {
                    versions.remove(0);
                }
            }
            !versions.is_empty()
        });
        while state.log.front().is_some_and(|e| e.revision() < revision) {
            state.log.pop_front();
        }
        tracing::debug!(revision, "compacted");
        Ok(())
    }

    async fn check_health(&self) -> Result<()> {
        Ok(())
    }
}

impl MemoryStorage {
    fn watch_inner(
        &self,
        prefix: &str,
        after: Revision,
        progress: Option<ProgressRequester>,
    ) -> Result<WatchStream> {
        let after = after.max(0);
        let buffer = self.inner.options.watch_buffer;
        let Registration {
            id,
            events: rx,
            missed,
            through,
        } = self.inner.state.lock().register(prefix, after, buffer)?;
        let interval = self.inner.options.progress_interval;
        let watch = MemoryWatch {
            inner: self.inner.clone(),
            id,
            prefix: prefix.to_string(),
            rx,
            pending: missed
                .iter()
                .map(|e| WatchItem::Event(Event::clone(e)))
                .collect(),
            through,
            progress,
            idle: Box::pin(tokio::time::sleep(interval)),
            interval,
            failed: None,
            done: false,
        };
        Ok(into_stream(watch))
    }
}

struct MemoryWatch {
    inner: Arc<Inner>,
    id: u64,
    prefix: String,
    rx: mpsc::Receiver<Arc<Event>>,
    pending: VecDeque<WatchItem>,
    /// Every event up to this revision is in `pending` or already delivered.
    through: Revision,
    progress: Option<ProgressRequester>,
    idle: Pin<Box<Sleep>>,
    interval: Duration,
    /// Set when the watch cannot go on; yielded after the events queued before it.
    failed: Option<StorageError>,
    done: bool,
}

enum Step {
    Received(Option<Arc<Event>>),
    Progress,
}

impl MemoryWatch {
    fn accept(&mut self, event: &Event) {
        // Only a watch from a future revision gets events it already "has": skip them.
        if event.revision() <= self.through {
            return;
        }
        self.through = event.revision();
        self.pending.push_back(WatchItem::Event(event.clone()));
    }

    /// Re-registers after the writer dropped this watcher for being slow (or on a store
    /// that dropped it otherwise), replaying what it missed from history.
    fn catch_up(&mut self, state: &mut State) -> Result<()> {
        state.watchers.remove(&self.id);
        let Registration {
            id,
            events: rx,
            missed,
            through,
        } = state.register(&self.prefix, self.through, self.inner.options.watch_buffer)?;
        self.id = id;
        self.rx = rx;
        self.pending
            .extend(missed.iter().map(|e| WatchItem::Event(Event::clone(e))));
        self.through = through;
        Ok(())
    }

    /// Queues a `Progress` item for the current revision. Holding the store lock while
    /// draining the channel guarantees that every event up to that revision is queued
    /// before it: writers send only under the lock.
    fn progress_now(&mut self) -> Result<()> {
        let inner = self.inner.clone();
        let mut state = inner.state.lock();
        let revision = state.revision;
        loop {
            match self.rx.try_recv() {
                Ok(event) => self.accept(&event),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.catch_up(&mut state)?;
                    break;
                }
            }
        }
        self.pending
            .push_back(WatchItem::Progress(revision.max(self.through)));
        Ok(())
    }
}

impl WatchState for MemoryWatch {
    async fn next_item(&mut self) -> Option<Result<WatchItem>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.idle.as_mut().reset(Instant::now() + self.interval);
                return Some(Ok(item));
            }
            if self.done {
                return self.failed.take().map(Err);
            }
            let step = {
                let progress = &self.progress;
                let requested = async {
                    match progress {
                        Some(p) => p.requested().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    event = self.rx.recv() => Step::Received(event),
                    () = requested => Step::Progress,
                    () = self.idle.as_mut() => Step::Progress,
                }
            };
            let outcome = match step {
                Step::Received(Some(event)) => {
                    self.accept(&event);
                    Ok(())
                }
                Step::Received(None) => {
                    let inner = self.inner.clone();
                    let mut state = inner.state.lock();
                    self.catch_up(&mut state)
                }
                Step::Progress => self.progress_now(),
            };
            if let Err(e) = outcome {
                self.done = true;
                self.failed = Some(e);
            }
        }
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.inner.state.lock().watchers.remove(&self.id);
    }
}
