//! A watch cache in front of a backend (upstream's cacher): for each configured resource
//! prefix one backend list and one backend watch keep an in-memory copy of the current
//! state and a ring of recent events, and every watch of a key range under that prefix is
//! served from memory. N watchers of pods thus cost one etcd watch, not N.
//!
//! Per cached prefix a task (started on first use, or by [`CachedStorage::start`]) lists
//! the prefix at some revision R, watches from R (without previous values, which the
//! cache fills in from its state), and applies each revision's events
//! atomically to the state and the ring, then hands them to a broadcast channel that all
//! watchers of the prefix read. Events are shared (`Arc`), and no lock is held while a
//! watcher waits. A watcher that falls further behind than the broadcast buffer catches up
//! from the ring; if the ring no longer reaches back far enough its stream ends with
//! `Compacted`, and the client re-lists (upstream's 410 Gone).
//!
//! A watch from a revision older than the ring fails with `Compacted`. A watch from a
//! revision newer than the cache has seen waits, asking the backend for progress, until
//! the cache catches up, and fails with `FutureRevision` after
//! [`CacheOptions::fresh_timeout`] (upstream's "Too large resource version").
//!
//! When the backend watch fails the task re-watches from the last revision applied; when
//! that revision has been compacted it re-lists, and the existing watchers' streams end
//! with `Compacted` because the events in between are lost, as upstream does. Only
//! watches are served from the cache, plus [`CachedStorage::list_from_cache`] for reads
//! that accept any recent state (upstream's `resourceVersion=0`); everything else goes to
//! the backend.
//!
//! Upstream's "watch from resourceVersion 0" (the current state as synthetic ADDED events,
//! then changes) is the API server's to build: `list_from_cache` then `watch` from the
//! revision it returned.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::{
    into_stream, Event, EventKind, KeyValue, ListOptions, ListResult, ProgressRequester, Result,
    Revision, Storage, StorageError, WatchItem, WatchState, WatchStream,
};

/// What to cache and how much.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Key prefixes to cache, e.g. `/registry/pods/`. A watch is served from the cache
    /// when its prefix starts with one of these.
    pub prefixes: Vec<String>,
    /// Events kept per prefix for watchers that start from a past revision.
    pub capacity: usize,
    /// Events a watcher may lag behind the newest before it has to catch up from the ring.
    pub broadcast_capacity: usize,
    /// A watch stream that has yielded nothing for this long yields a `Progress` item.
    pub progress_interval: Duration,
    /// How long a watch from a revision the cache has not seen yet waits for it.
    pub fresh_timeout: Duration,
    /// How long a request waits for the first list of a prefix.
    pub ready_timeout: Duration,
    /// Keys per backend request when (re)listing a prefix.
    pub list_page_size: i64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            prefixes: Vec::new(),
            capacity: 1000,
            broadcast_capacity: 1024,
            progress_interval: Duration::from_secs(5),
            // Upstream's resourceVersionTooHighRetrySeconds.
            fresh_timeout: Duration::from_secs(3),
            ready_timeout: Duration::from_secs(10),
            list_page_size: 10_000,
        }
    }
}

impl CacheOptions {
    pub fn new<P: Into<String>>(prefixes: impl IntoIterator<Item = P>) -> Self {
        Self {
            prefixes: prefixes.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// See the [module docs](self).
pub struct CachedStorage<S: Storage> {
    backend: Arc<S>,
    caches: Vec<Arc<PrefixCache>>,
}

struct PrefixCache {
    prefix: String,
    options: CacheOptions,
    state: Mutex<CacheState>,
    events: broadcast::Sender<CacheMsg>,
    /// The revision through which every event has been applied and broadcast; `None`
    /// until the first list.
    published: watch::Sender<Option<Revision>>,
    /// Asks the backend watch for progress (for watchers waiting for a revision).
    progress: ProgressRequester,
    task: Mutex<Task>,
}

enum Task {
    NotStarted,
    Running(JoinHandle<()>),
    Stopped,
}

struct CacheState {
    /// Bumped on every (re)list; a watcher of an older generation missed events.
    generation: u64,
    /// Every event up to this revision has been applied.
    revision: Revision,
    items: BTreeMap<String, KeyValue>,
    ring: VecDeque<Entry>,
    /// Watches from this revision or later can be served from the ring.
    oldest: Revision,
    /// Sequence number of the last event applied; orders events within a revision too.
    seq: u64,
}

struct Entry {
    seq: u64,
    event: Arc<Event>,
}

#[derive(Clone)]
enum CacheMsg {
    Event {
        seq: u64,
        event: Arc<Event>,
    },
    Progress(Revision),
    /// The prefix was re-listed: watchers of an older generation missed events.
    Reset {
        generation: u64,
        revision: Revision,
    },
    /// The cache was dropped.
    Closed,
}

impl<S: Storage> CachedStorage<S> {
    /// A cache in front of `backend`; nothing happens until a cached prefix is used or
    /// [`CachedStorage::start`] is called.
    pub fn new(backend: S, options: CacheOptions) -> Self {
        Self::from_arc(Arc::new(backend), options)
    }

    /// Like [`CachedStorage::new`], for a backend shared with other users.
    pub fn from_arc(backend: Arc<S>, options: CacheOptions) -> Self {
        let caches = options
            .prefixes
            .iter()
            .map(|prefix| {
                let (events, _) = broadcast::channel(options.broadcast_capacity.max(1));
                let (published, _) = watch::channel(None);
                Arc::new(PrefixCache {
                    prefix: prefix.clone(),
                    options: CacheOptions {
                        capacity: options.capacity.max(1),
                        ..options.clone()
                    },
                    state: Mutex::new(CacheState {
                        generation: 0,
                        revision: 0,
                        items: BTreeMap::new(),
                        ring: VecDeque::new(),
                        oldest: 0,
                        seq: 0,
                    }),
                    events,
                    published,
                    progress: ProgressRequester::new(),
                    task: Mutex::new(Task::NotStarted),
                })
            })
            .collect();
        Self { backend, caches }
    }

    pub fn backend(&self) -> &Arc<S> {
        &self.backend
    }

    /// Starts every cached prefix now and waits until each has its first list.
    pub async fn start(&self) -> Result<()> {
        for cache in &self.caches {
            self.ready(cache).await?;
        }
        Ok(())
    }

    /// The cached prefix serving watches of `prefix`, if any.
    pub fn cached_prefix(&self, prefix: &str) -> Option<&str> {
        self.cache_for(prefix).map(|c| c.prefix.as_str())
    }

    /// The keys under `prefix` as the cache holds them, and the revision that state is
    /// at: a possibly slightly stale but cheap read (upstream's `resourceVersion=0`). A
    /// prefix that is not cached is read from the backend.
    pub async fn list_from_cache(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let Some(cache) = self.cache_for(prefix) else {
            let result = self.backend.list(prefix, &ListOptions::default()).await?;
            return Ok((result.items, result.revision));
        };
        self.ready(cache).await?;
        let state = cache.state.lock();
        let items = state
            .items
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok((items, state.revision))
    }

    /// Waits until the cache serving `prefix` has seen `revision` (asking the backend for
    /// progress), for reads that must be at least that fresh. Fails with `FutureRevision`
    /// after [`CacheOptions::fresh_timeout`]. A prefix that is not cached is always fresh.
    pub async fn wait_for_revision(&self, prefix: &str, revision: Revision) -> Result<()> {
        let Some(cache) = self.cache_for(prefix) else {
            return Ok(());
        };
        self.ready(cache).await?;
        cache.wait_fresh(revision).await
    }

    fn cache_for(&self, prefix: &str) -> Option<&Arc<PrefixCache>> {
        self.caches
            .iter()
            .filter(|c| prefix.starts_with(&c.prefix))
            .max_by_key(|c| c.prefix.len())
    }

    async fn ready(&self, cache: &Arc<PrefixCache>) -> Result<()> {
        {
            let mut task = cache.task.lock();
            match &*task {
                Task::NotStarted => {
                    *task =
                        Task::Running(tokio::spawn(reflect(cache.clone(), self.backend.clone())));
                }
                Task::Running(_) => {}
                Task::Stopped => {
                    return Err(StorageError::Unavailable(
                        "the watch cache is stopped".into(),
                    ))
                }
            }
        }
        let mut published = cache.published.subscribe();
        let ready = tokio::time::timeout(
            cache.options.ready_timeout,
            published.wait_for(Option::is_some),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if ready {
            Ok(())
        } else {
            Err(StorageError::Unavailable(format!(
                "the watch cache of {} is not ready yet",
                cache.prefix
            )))
        }
    }

    async fn watch_cached(
        &self,
        prefix: &str,
        after: Revision,
        progress: Option<ProgressRequester>,
    ) -> Result<WatchStream> {
        let Some(cache) = self.cache_for(prefix) else {
            return match progress {
                Some(progress) => {
                    self.backend
                        .watch_with_progress(prefix, after, progress)
                        .await
                }
                None => self.backend.watch(prefix, after).await,
            };
        };
        self.ready(cache).await?;
        cache.wait_fresh(after).await?;
        match cache.subscribe(prefix, after, progress.clone()) {
            Ok(watch) => Ok(into_stream(watch)),
            // Older than the cache reaches back: a client that listed from the backend
            // before this cache started (or re-listed). The backend may still hold that
            // history, and answers `Compacted` itself when it does not, so only truly
            // lost history makes the client re-list.
            Err(StorageError::Compacted { .. }) => match progress {
                Some(progress) => {
                    self.backend
                        .watch_with_progress(prefix, after, progress)
                        .await
                }
                None => self.backend.watch(prefix, after).await,
            },
            Err(error) => Err(error),
        }
    }
}

impl<S: Storage> Drop for CachedStorage<S> {
    fn drop(&mut self) {
        for cache in &self.caches {
            if let Task::Running(handle) = std::mem::replace(&mut *cache.task.lock(), Task::Stopped)
            {
                handle.abort();
            }
            let _ = cache.events.send(CacheMsg::Closed);
        }
    }
}

/// Keeps one prefix's cache in sync with the backend, for as long as the cache lives.
async fn reflect<S: Storage>(cache: Arc<PrefixCache>, backend: Arc<S>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(100);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);
    let mut backoff = MIN_BACKOFF;
    let mut need_list = true;
    loop {
        if need_list {
            match list_all(&*backend, &cache.prefix, cache.options.list_page_size).await {
                Ok((items, revision)) => {
                    cache.replace(items, revision);
                    need_list = false;
                }
                Err(error) => {
                    tracing::warn!(prefix = %cache.prefix, %error, "watch cache cannot list; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let from = cache.state.lock().revision;
        let error = match backend
            .watch_changes(&cache.prefix, from, cache.progress.clone())
            .await
        {
            Ok(stream) => {
                let (error, healthy) = cache.consume(stream).await;
                if healthy {
                    backoff = MIN_BACKOFF;
                }
                error
            }
            Err(error) => error,
        };
        if let StorageError::Compacted { .. } = error {
            tracing::info!(prefix = %cache.prefix, from, "watch cache fell behind compaction; re-listing");
            need_list = true;
            continue;
        }
        tracing::warn!(prefix = %cache.prefix, from, %error, "watch cache lost its backend watch; re-watching");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Lists all of `prefix` at one revision, page by page.
async fn list_all<S: Storage + ?Sized>(
    backend: &S,
    prefix: &str,
    page: i64,
) -> Result<(Vec<KeyValue>, Revision)> {
    let mut options = ListOptions {
        limit: Some(page.max(1)),
        ..ListOptions::default()
    };
    let mut items = Vec::new();
    loop {
        let ListResult {
            items: batch,
            revision,
            more,
            ..
        } = backend.list(prefix, &options).await?;
        options.revision = Some(revision);
        let last = batch.last().map(|kv| format!("{}\0", kv.key));
        items.extend(batch);
        match last {
            Some(next) if more => options.start_key = Some(next),
            _ => return Ok((items, revision)),
        }
    }
}

impl PrefixCache {
    fn published(&self) -> Option<Revision> {
        *self.published.borrow()
    }

    fn publish(&self, revision: Revision) {
        self.published.send_if_modified(|current| {
            if current.is_none_or(|c| c < revision) {
                *current = Some(revision);
                true
            } else {
                false
            }
        });
    }

    fn replace(&self, items: Vec<KeyValue>, revision: Revision) {
        let (relisted, generation) = {
            let mut state = self.state.lock();
            let relisted = self.published().is_some();
            state.generation += 1;
            state.items = items.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
            state.ring.clear();
            state.oldest = revision;
            state.revision = revision;
            (relisted, state.generation)
        };
        tracing::debug!(prefix = %self.prefix, revision, "watch cache listed");
        if relisted {
            let _ = self.events.send(CacheMsg::Reset {
                generation,
                revision,
            });
        }
        self.publish(revision);
    }

    /// Applies the backend's events until its stream ends; returns why, and whether the
    /// stream delivered anything (so that the caller can reset its backoff).
    async fn consume(&self, mut stream: WatchStream) -> (StorageError, bool) {
        let mut batch: Vec<Event> = Vec::new();
        let mut healthy = false;
        loop {
            // Backends yield a revision's events back to back, so the revision is complete
            // when the next item is not ready at once.
            let next = if batch.is_empty() {
                stream.next().await
            } else {
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        self.commit(&mut batch);
                        continue;
                    }
                }
            };
            healthy |= matches!(next, Some(Ok(_)));
            match next {
                Some(Ok(WatchItem::Event(event))) => {
                    if batch
                        .first()
                        .is_some_and(|first| first.revision() != event.revision())
                    {
                        self.commit(&mut batch);
                    }
                    batch.push(event);
                }
                Some(Ok(WatchItem::Progress(revision))) => {
                    self.commit(&mut batch);
                    self.progress(revision);
                }
                // A partial revision in `batch` is dropped; the re-watch delivers it again.
                Some(Err(error)) => return (error, healthy),
                None => {
                    return (
                        StorageError::Unavailable("the backend watch ended".into()),
                        healthy,
                    )
                }
            }
        }
    }

    fn commit(&self, batch: &mut Vec<Event>) {
        let Some(revision) = batch.first().map(Event::revision) else {
            return;
        };
        let mut entries = Vec::with_capacity(batch.len());
        {
            let mut state = self.state.lock();
            if revision <= state.revision {
                batch.clear();
                return;
            }
            for mut event in batch.drain(..) {
                // The backend watch need not carry previous values (`watch_changes`): the
                // state holds them.
                match event.kind {
                    EventKind::Deleted => {
                        let last = state.items.remove(&event.kv.key);
                        if event.prev.is_none() {
                            if let Some(last) = last {
                                event.kv.value = last.value.clone();
                                event.kv.create_revision = last.create_revision;
                                event.prev = Some(last);
                            }
                        }
                    }
                    EventKind::Created | EventKind::Updated => {
                        let last = state.items.insert(event.kv.key.clone(), event.kv.clone());
                        if event.kind == EventKind::Updated && event.prev.is_none() {
                            event.prev = last;
                        }
                    }
                }
                state.seq += 1;
                let entry = Entry {
                    seq: state.seq,
                    event: Arc::new(event),
                };
                entries.push((entry.seq, entry.event.clone()));
                state.ring.push_back(entry);
            }
            while state.ring.len() > self.options.capacity {
                if let Some(evicted) = state.ring.pop_front() {
                    state.oldest = state.oldest.max(evicted.event.revision());
                }
            }
            state.revision = revision;
        }
        // Sent outside the lock; watchers that subscribe meanwhile skip by sequence number
        // what their snapshot of the ring already had.
        for (seq, event) in entries {
            let _ = self.events.send(CacheMsg::Event { seq, event });
        }
        self.publish(revision);
    }

    fn progress(&self, revision: Revision) {
        let revision = {
            let mut state = self.state.lock();
            state.revision = state.revision.max(revision);
            state.revision
        };
        let _ = self.events.send(CacheMsg::Progress(revision));
        self.publish(revision);
    }

    async fn wait_fresh(&self, revision: Revision) -> Result<()> {
        let mut published = self.published.subscribe();
        let fresh = |seen: &Option<Revision>| seen.is_some_and(|seen| seen >= revision);
        if fresh(&published.borrow()) {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.fresh_timeout;
        // Ask again now and then: an answer to an earlier request may have reported a
        // revision from before `revision` was written.
        const ASK_EVERY: Duration = Duration::from_millis(250);
        loop {
            self.progress.request();
            let wait_until = deadline.min(Instant::now() + ASK_EVERY);
            match tokio::time::timeout_at(wait_until, published.wait_for(fresh)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => {
                    return Err(StorageError::Unavailable(
                        "the watch cache is stopped".into(),
                    ))
                }
                Err(_) if Instant::now() >= deadline => {
                    let current = self.published().unwrap_or_default();
                    return Err(StorageError::FutureRevision {
                        requested: revision,
                        current,
                    });
                }
                Err(_) => {}
            }
        }
    }

    fn subscribe(
        self: &Arc<Self>,
        prefix: &str,
        after: Revision,
        progress: Option<ProgressRequester>,
    ) -> Result<CacheWatch> {
        let state = self.state.lock();
        if after < state.oldest {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: state.oldest,
            });
        }
        let start = state.ring.partition_point(|e| e.event.revision() <= after);
        let pending = state
            .ring
            .range(start..)
            .filter(|e| e.event.kv.key.starts_with(prefix))
            .map(|e| WatchItem::Event(Event::clone(&e.event)))
            .collect();
        let interval = self.options.progress_interval;
        Ok(CacheWatch {
            cache: self.clone(),
            prefix: prefix.to_string(),
            events: self.events.subscribe(),
            pending,
            last_seq: state.seq,
            generation: state.generation,
            last_event: state.revision,
            through: state.revision.max(after),
            progress,
            idle: Box::pin(tokio::time::sleep(interval)),
            interval,
            failed: None,
            done: false,
        })
    }
}

struct CacheWatch {
    cache: Arc<PrefixCache>,
    prefix: String,
    events: broadcast::Receiver<CacheMsg>,
    pending: VecDeque<WatchItem>,
    /// Sequence number of the last event taken from the ring or the channel.
    last_seq: u64,
    generation: u64,
    /// Revision of the last event taken (events of that revision may still follow).
    last_event: Revision,
    /// Every event up to this revision has been queued or delivered.
    through: Revision,
    progress: Option<ProgressRequester>,
    idle: Pin<Box<Sleep>>,
    interval: Duration,
    failed: Option<StorageError>,
    done: bool,
}

enum Step {
    Message(std::result::Result<CacheMsg, broadcast::error::RecvError>),
    RequestProgress,
    Idle,
}

impl CacheWatch {
    fn fail(&mut self, error: StorageError) {
        self.done = true;
        self.failed = Some(error);
    }

    fn on_message(&mut self, message: CacheMsg) {
        match message {
            CacheMsg::Event { seq, event } => {
                if seq <= self.last_seq {
                    return;
                }
                self.last_seq = seq;
                self.last_event = event.revision();
                self.through = self.through.max(event.revision() - 1);
                if event.kv.key.starts_with(&self.prefix) {
                    self.pending
                        .push_back(WatchItem::Event(Event::clone(&event)));
                }
            }
            CacheMsg::Progress(revision) => {
                self.through = self.through.max(revision);
                self.pending.push_back(WatchItem::Progress(self.through));
            }
            CacheMsg::Reset {
                generation,
                revision,
            } => {
                if generation > self.generation {
                    self.fail(StorageError::Compacted {
                        requested: self.through,
                        compacted: revision,
                    });
                }
            }
            CacheMsg::Closed => self.fail(StorageError::Unavailable(
                "the watch cache is stopped".into(),
            )),
        }
    }

    /// After missing broadcast messages: replay what the ring still has, or give up.
    fn catch_up(&mut self) {
        let cache = self.cache.clone();
        let state = cache.state.lock();
        let missed_too_much = state.generation != self.generation
            || match state.ring.front() {
                Some(first) => first.seq > self.last_seq + 1,
                None => state.seq > self.last_seq,
            };
        if missed_too_much {
            tracing::debug!(prefix = %self.prefix, "watcher fell behind the watch cache");
            self.fail(StorageError::Compacted {
                requested: self.through,
                compacted: state.oldest,
            });
            return;
        }
        let start = state.ring.partition_point(|e| e.seq <= self.last_seq);
        for entry in state.ring.range(start..) {
            if entry.event.kv.key.starts_with(&self.prefix) {
                self.pending
                    .push_back(WatchItem::Event(Event::clone(&entry.event)));
            }
        }
        self.last_seq = state.seq;
        self.last_event = state.revision;
        self.through = self.through.max(state.revision);
        self.events = cache.events.subscribe();
    }

    /// Idle for a while: report the revision every event has been broadcast through,
    /// after taking what is already queued for us (so that nothing up to it is pending).
    fn idle_progress(&mut self) {
        let published = self.cache.published().unwrap_or_default();
        while !self.done {
            match self.events.try_recv() {
                Ok(message) => self.on_message(message),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.catch_up();
                    break;
                }
                Err(broadcast::error::TryRecvError::Closed) => self.fail(
                    StorageError::Unavailable("the watch cache is stopped".into()),
                ),
            }
        }
        if !self.done && published >= self.last_event {
            self.through = self.through.max(published);
            self.pending.push_back(WatchItem::Progress(self.through));
        }
        self.idle.as_mut().reset(Instant::now() + self.interval);
    }
}

impl WatchState for CacheWatch {
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
                    message = self.events.recv() => Step::Message(message),
                    () = requested => Step::RequestProgress,
                    () = self.idle.as_mut() => Step::Idle,
                }
            };
            match step {
                Step::Message(Ok(message)) => self.on_message(message),
                Step::Message(Err(broadcast::error::RecvError::Lagged(_))) => self.catch_up(),
                Step::Message(Err(broadcast::error::RecvError::Closed)) => self.fail(
                    StorageError::Unavailable("the watch cache is stopped".into()),
                ),
                // The answer comes back through the broadcast as a `Progress` message.
                Step::RequestProgress => self.cache.progress.request(),
                Step::Idle => self.idle_progress(),
            }
        }
    }
}

#[async_trait::async_trait]
impl<S: Storage> Storage for CachedStorage<S> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.backend.get(key).await
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        self.backend.list(prefix, opts).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        self.backend.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        self.backend.create(key, value, ttl).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        self.backend.update(key, value, expected, ttl).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.backend.delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_cached(prefix, after, None).await
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        self.watch_cached(prefix, after, Some(progress)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.backend.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.backend.compact(revision).await
    }

    async fn check_health(&self) -> Result<()> {
        self.backend.check_health().await
    }
}
