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

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

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
    Conflict { key: String, current: Option<KeyValue> },
    #[error("revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },
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
    async fn update(&self, key: &str, value: Bytes, expected: Revision, ttl: Option<Duration>) -> Result<KeyValue>;

    /// Delete `key`, if `expected` is given only while its mod revision still equals it.
    /// Returns the deleted value with `mod_revision` set to the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Changes to keys under `prefix` made after revision `after`, then live ones. Fails
    /// with `Compacted` when `after` is older than the history kept.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

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
