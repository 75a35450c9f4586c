//! Fixtures and helpers shared by the tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use storage::cache::{CacheOptions, CachedStorage};
use storage::etcd::{EtcdOptions, EtcdStorage};
use storage::memory::{MemoryOptions, MemoryStorage};
use storage::testing::EtcdServer;
use storage::{Event, Result, Storage, StorageError, WatchItem, WatchStream};

/// Progress interval of every fixture, short so that tests see progress items quickly.
pub const PROGRESS: Duration = Duration::from_millis(100);
/// How long a test waits for an item it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Etcd,
    CachedMemory,
    CachedEtcd,
}

#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// A store of its own (fresh revision counter, free to compact).
    pub fresh: bool,
    /// Start the watch cache before the test runs (so its ring holds the test's events);
    /// otherwise the cache starts on first use.
    pub eager_cache: bool,
}

pub const SHARED: Setup = Setup {
    fresh: false,
    eager_cache: true,
};
pub const FRESH: Setup = Setup {
    fresh: true,
    eager_cache: true,
};
pub const FRESH_LAZY: Setup = Setup {
    fresh: true,
    eager_cache: false,
};

pub struct Fixture {
    pub storage: Arc<dyn Storage>,
    /// The prefix the test works under (the cached prefix for cached backends).
    pub prefix: String,
    _etcd: Option<EtcdServer>,
}

static SHARED_ETCD: OnceLock<EtcdServer> = OnceLock::new();
static UNIQUE: AtomicU64 = AtomicU64::new(0);

pub fn shared_etcd() -> &'static EtcdServer {
    SHARED_ETCD.get_or_init(|| EtcdServer::start().expect("start the shared test etcd"))
}

pub fn etcd_options() -> EtcdOptions {
    EtcdOptions {
        progress_interval: PROGRESS,
        ..EtcdOptions::default()
    }
}

pub fn memory_options() -> MemoryOptions {
    MemoryOptions {
        progress_interval: PROGRESS,
        ..MemoryOptions::default()
    }
}

pub fn cache_options(prefix: &str) -> CacheOptions {
    CacheOptions {
        progress_interval: PROGRESS,
        ..CacheOptions::new([prefix])
    }
}

pub async fn connect(server: &EtcdServer) -> EtcdStorage {
    EtcdStorage::connect(&[server.endpoint()], etcd_options())
        .await
        .expect("connect to the test etcd")
}

pub async fn fixture(backend: Backend, name: &str, setup: Setup) -> Fixture {
    let unique = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let prefix = format!("/registry/{name}-{backend:?}-{unique}/").to_lowercase();
    let mut own_etcd = None;
    let base: Arc<dyn Storage> = match backend {
        Backend::Memory | Backend::CachedMemory => {
            Arc::new(MemoryStorage::with_options(memory_options()))
        }
        Backend::Etcd | Backend::CachedEtcd => {
            let storage = if setup.fresh {
                let server = EtcdServer::start_async().await.expect("start a test etcd");
                let storage = connect(&server).await;
                own_etcd = Some(server);
                storage
            } else {
                connect(shared_etcd()).await
            };
            Arc::new(storage)
        }
    };
    let storage: Arc<dyn Storage> = match backend {
        Backend::CachedMemory | Backend::CachedEtcd => {
            let cached = CachedStorage::from_arc(Arc::new(base), cache_options(&prefix));
            if setup.eager_cache {
                cached.start().await.expect("start the watch cache");
            }
            Arc::new(cached)
        }
        Backend::Memory | Backend::Etcd => base,
    };
    Fixture {
        storage,
        prefix,
        _etcd: own_etcd,
    }
}

/// The next item of a watch, failing the test on an error, the end, or a timeout.
pub async fn next_item(stream: &mut WatchStream) -> WatchItem {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(item))) => item,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch item within {PATIENCE:?}"),
    }
}

/// The next event of a watch, skipping progress items.
pub async fn next_event(stream: &mut WatchStream) -> Event {
    loop {
        if let WatchItem::Event(event) = next_item(stream).await {
            return event;
        }
    }
}

/// The next progress item of a watch, failing on events.
pub async fn next_progress(stream: &mut WatchStream) -> i64 {
    match next_item(stream).await {
        WatchItem::Progress(revision) => revision,
        WatchItem::Event(event) => panic!("expected progress, got {event:?}"),
    }
}

/// The error a watch stream ends with, after any events.
pub async fn stream_error(stream: &mut WatchStream) -> StorageError {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return e,
            Ok(None) => panic!("watch ended without an error"),
            Err(_) => panic!("watch did not fail within {PATIENCE:?}"),
        }
    }
}

/// Asserts that nothing but progress arrives for `quiet`.
pub async fn assert_no_event(stream: &mut WatchStream, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(item) = tokio::time::timeout_at(deadline, stream.next()).await {
        match item {
            Some(Ok(WatchItem::Progress(_))) => {}
            other => panic!("expected no event, got {other:?}"),
        }
    }
}

/// Asserts that a watch fails with `Compacted`, at once or as its stream's first error
/// (backends differ in when they notice).
pub async fn assert_watch_compacted(result: Result<WatchStream>) {
    match result {
        Err(StorageError::Compacted { .. }) => {}
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(mut stream) => match stream_error(&mut stream).await {
            StorageError::Compacted { .. } => {}
            other => panic!("expected Compacted, got {other:?}"),
        },
    }
}

pub fn assert_compacted<T>(result: Result<T>) {
    match result {
        Err(StorageError::Compacted { .. }) => {}
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(_) => panic!("expected Compacted, got success"),
    }
}
