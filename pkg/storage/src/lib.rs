//! Storage for the API server, at exactly the level of etcd's v3 API (as kine does): keys
//! with values, create/modify revisions, compare-and-swap writes, range reads at a
//! revision, and watches from a revision. Objects are opaque bytes here; the API server
//! owns their encoding and key layout (`/registry/<resource>/<namespace>/<name>`).
//!
//! Backends:
//! - [`etcd::EtcdStorage`]: the real one (etcd v3 through `etcd-client`).
//! - [`memory::MemoryStorage`]: same semantics in process memory, for fast unit tests.
//! - [`cache::CachedStorage`]: a watch cache in front of either, so that many watchers of
//!   one resource share one backend watch.
//!
//! [`guaranteed_update`] is the compare-and-swap retry loop every read-modify-write goes
//! through (upstream's `GuaranteedUpdate`). With the `testing` feature,
//! [`testing::EtcdServer`] runs a throwaway etcd for integration tests.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

pub mod cache;
pub mod etcd;
pub mod memory;
#[cfg(feature = "testing")]
pub mod testing;
mod update;

pub use update::{guaranteed_update, UpdateAction, UpdateOutcome};

/// A point in the store's history: etcd's revision, which is what Kubernetes calls the
/// resourceVersion.
pub type Revision = i64;

/// One stored key with its value and the revisions that created and last modified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The new value; for `Deleted`, the last value the key held, with `mod_revision` set
    /// to the revision of the deletion (what upstream reports as the resourceVersion of a
    /// DELETED event).
    pub kv: KeyValue,
    /// The value before this change (`None` for `Created`).
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What a watch stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    Event(Event),
    /// Every change up to and including this revision has been delivered; sent when the
    /// stream is otherwise idle so that watchers can advance (upstream's bookmarks).
    Progress(Revision),
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// A compare-and-swap failed; `current` is what the key holds now (`None` if it is
    /// gone), so that a retry loop needs no extra read.
    #[error("key {key:?} was modified concurrently")]
    Conflict {
        key: String,
        current: Option<KeyValue>,
    },
    #[error("revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How to read a range of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision; `None` reads the latest (a consistent read).
    pub revision: Option<Revision>,
    /// At most this many keys; `None` for all.
    pub limit: Option<i64>,
    /// Start at this key (inclusive) instead of the prefix; used by paging, where the
    /// continue token holds the last key returned followed by `\0`.
    pub start_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// Whether keys remain after the last one returned.
    pub more: bool,
    /// How many keys remain after the last one returned (0 when unknown or none).
    pub remaining: i64,
}

/// The storage the API server writes through. Every method is one round trip to the
/// backend (one etcd request or transaction).
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The latest value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order.
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult>;

    /// How many keys start with `prefix` now.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Store a new key; fails with `AlreadyExists` if it exists. With a `ttl` the key is
    /// deleted by the store when it expires (upstream uses this for Events).
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue>;

    /// Replace the value of `key` if its mod revision is still `expected`; otherwise fails
    /// with `Conflict` carrying the current value, or `NotFound`.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue>;

    /// Delete `key`, if `expected` is given only while its mod revision still equals it.
    /// Returns the deleted value with `mod_revision` set to the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Changes to keys under `prefix` made after revision `after`, then live ones. Fails
    /// with `Compacted` when `after` is older than the history kept. (As in etcd, a
    /// compaction at revision C keeps the events of C itself, so `after = C - 1` still
    /// works; the watch cache keeps a bounded ring of events instead and fails for any
    /// `after` older than the ring.)
    ///
    /// The stream yields the events of one revision one after the other, without waiting
    /// in between (the watch cache relies on this to apply a revision atomically), and a
    /// `Progress` item whenever it has been idle for the backend's progress interval. It
    /// ends with an error item when the watch cannot go on (for example `Compacted` when
    /// the watcher fell behind the history kept, or `Unavailable`); the caller then
    /// re-watches from the last revision it saw.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Like [`Storage::watch`], and in addition the stream yields a `Progress` item soon
    /// after each [`ProgressRequester::request`] (etcd's progress request), so that a
    /// reader waiting for a revision need not wait for the periodic one. Backends that
    /// cannot do this keep the default, which relies on the periodic progress items only.
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        let _ = progress;
        self.watch(prefix, after).await
    }

    /// Like [`Storage::watch_with_progress`], for a consumer that keeps the current state
    /// of the prefix itself (the watch cache) and so knows every previous value: events
    /// need not carry `prev`, and a `Deleted` event's `kv` may carry only the key and the
    /// deletion's revision (empty value, `create_revision` 0). etcd then need not read
    /// the previous value of every change (its `prev_kv` is one extra range read per
    /// event). Backends that have the previous values at hand keep the default.
    async fn watch_changes(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        self.watch_with_progress(prefix, after, progress).await
    }

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forget history before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Whether the backend answers (for `/readyz` and `/livez`).
    async fn check_health(&self) -> Result<()>;
}

/// The key that sorts right after every key starting with `prefix` (etcd's range end).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An all-0xff prefix has no end: range to the end of the keyspace.
    vec![0]
}

/// Asks a watch stream for a `Progress` item now (see [`Storage::watch_with_progress`]).
/// Cloning gives another handle to the same stream; requests made before the stream acts
/// on them collapse into one.
#[derive(Debug, Clone, Default)]
pub struct ProgressRequester {
    notify: Arc<tokio::sync::Notify>,
}

impl ProgressRequester {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for a `Progress` item as soon as the stream knows everything up to the current
    /// revision has been delivered.
    pub fn request(&self) {
        self.notify.notify_one();
    }

    /// Resolves once a request is pending (for backends implementing the request).
    pub async fn requested(&self) {
        self.notify.notified().await;
    }
}

/// Lets callers share one backend between a [`cache::CachedStorage`] and direct users
/// (`Arc<EtcdStorage>`, `Arc<dyn Storage>`).
#[async_trait::async_trait]
impl<T: Storage + ?Sized> Storage for Arc<T> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        (**self).get(key).await
    }
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        (**self).list(prefix, opts).await
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        (**self).count(prefix).await
    }
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        (**self).create(key, value, ttl).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        (**self).update(key, value, expected, ttl).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        (**self).delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        (**self).watch(prefix, after).await
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        (**self).watch_with_progress(prefix, after, progress).await
    }
    async fn watch_changes(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        (**self).watch_changes(prefix, after, progress).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        (**self).current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        (**self).compact(revision).await
    }
    async fn check_health(&self) -> Result<()> {
        (**self).check_health().await
    }
}

/// A watch in progress, polled step by step: the backends build their streams from one
/// of these so that they need no task per watcher (the work happens when the consumer
/// polls).
pub(crate) trait WatchState: Send + 'static {
    /// The next item, or `None` once the stream has ended.
    fn next_item(&mut self) -> impl std::future::Future<Output = Option<Result<WatchItem>>> + Send;
}

pub(crate) fn into_stream<W: WatchState>(state: W) -> WatchStream {
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        Some((item, state))
    }))
}
