//! What only the watch cache has: fan-out to many watchers, its ring, waiting for fresh
//! revisions, recovering from a broken or compacted backend watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use storage::cache::{CacheOptions, CachedStorage};
use storage::etcd::{EtcdOptions, EtcdStorage};
use storage::memory::{MemoryOptions, MemoryStorage};
use storage::{
    KeyValue, ListOptions, ListResult, ProgressRequester, Result, Revision, Storage, StorageError,
    WatchStream,
};
use tokio::sync::broadcast;

use crate::common::*;

const PREFIX: &str = "/registry/pods/";

async fn cached_memory(
    options: CacheOptions,
) -> (Arc<MemoryStorage>, CachedStorage<Arc<MemoryStorage>>) {
    let backend = Arc::new(MemoryStorage::with_options(memory_options()));
    let cache = CachedStorage::new(backend.clone(), options);
    cache.start().await.unwrap();
    (backend, cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_a_thousand_watchers() {
    const WATCHERS: usize = 1000;
    const WRITES: usize = 100;
    let (backend, cache) = cached_memory(cache_options(PREFIX)).await;
    let start = backend.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for i in 0..WATCHERS {
        // Some watch the whole resource, some one namespace.
        let prefix = if i % 2 == 0 {
            PREFIX.to_string()
        } else {
            format!("{PREFIX}default/")
        };
        watches.push(cache.watch(&prefix, start).await.unwrap());
    }
    let sent: Arc<parking_lot::Mutex<Vec<Instant>>> = Arc::default();
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut watch| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(WRITES);
                for i in 0..WRITES {
                    let event = next_event(&mut watch).await;
                    let index: usize = std::str::from_utf8(&event.kv.value)
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(index, i, "events out of order");
                    latencies.push(sent.lock()[index].elapsed());
                }
                latencies
            })
        })
        .collect();
    for i in 0..WRITES {
        sent.lock().push(Instant::now());
        backend
            .create(
                &format!("{PREFIX}default/pod-{i}"),
                Bytes::from(i.to_string()),
                None,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await.unwrap());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!("fan-out to {WATCHERS} watchers: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    // Generous for unoptimized builds on a loaded machine; release builds are far below.
    assert!(
        p99 < Duration::from_millis(500),
        "p99 fan-out latency {p99:?}"
    );
}

/// Past the ring the backend serves the watch while it still has the history; once the
/// backend compacted it too, the watch fails (410 for the client).
#[tokio::test]
async fn watch_older_than_the_ring_goes_to_the_backend_until_compacted() {
    let (backend, cache) = cached_memory(CacheOptions {
        capacity: 10,
        ..cache_options(PREFIX)
    })
    .await;
    let start = backend.current_revision().await.unwrap();
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(
            backend
                .create(&format!("{PREFIX}p{i:02}"), Bytes::from("v"), None)
                .await
                .unwrap(),
        );
    }
    cache
        .wait_for_revision(PREFIX, written[19].mod_revision)
        .await
        .unwrap();
    let mut watch = cache.watch(PREFIX, start).await.unwrap();
    for kv in &written {
        assert_eq!(&next_event(&mut watch).await.kv, kv);
    }
    let mut watch = cache.watch(PREFIX, written[9].mod_revision).await.unwrap();
    for kv in &written[10..] {
        assert_eq!(&next_event(&mut watch).await.kv, kv);
    }
    backend.compact(written[19].mod_revision).await.unwrap();
    assert_watch_compacted(cache.watch(PREFIX, written[8].mod_revision).await).await;
}

#[tokio::test]
async fn slow_watcher_catches_up_from_the_ring() {
    let options = CacheOptions {
        broadcast_capacity: 4,
        ..cache_options(PREFIX)
    };
    let (backend, cache) = cached_memory(options).await;
    let mut watch = cache
        .watch(PREFIX, backend.current_revision().await.unwrap())
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..50 {
        written.push(
            backend
                .create(&format!("{PREFIX}p{i:02}"), Bytes::from("v"), None)
                .await
                .unwrap(),
        );
    }
    cache
        .wait_for_revision(PREFIX, written[49].mod_revision)
        .await
        .unwrap();
    for kv in &written {
        assert_eq!(&next_event(&mut watch).await.kv, kv);
    }
}

/// A client listed from the backend before the cache started: its watch from that older
/// revision is served by the backend, which still holds the history, instead of failing.
#[tokio::test]
async fn watch_older_than_the_cache_falls_back_to_the_backend() {
    let backend = Arc::new(MemoryStorage::with_options(memory_options()));
    let listed = backend.current_revision().await.unwrap();
    let missed = backend
        .create(&format!("{PREFIX}missed"), Bytes::from("v"), None)
        .await
        .unwrap();
    let cache = CachedStorage::new(backend.clone(), cache_options(PREFIX));
    cache.start().await.unwrap();
    let mut watch = cache.watch(PREFIX, listed).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, missed);
    let later = backend
        .create(&format!("{PREFIX}later"), Bytes::from("v"), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, later);
}

#[tokio::test]
async fn watcher_behind_the_ring_fails() {
    let options = CacheOptions {
        broadcast_capacity: 4,
        capacity: 10,
        ..cache_options(PREFIX)
    };
    let (backend, cache) = cached_memory(options).await;
    let mut watch = cache
        .watch(PREFIX, backend.current_revision().await.unwrap())
        .await
        .unwrap();
    let mut last = 0;
    for i in 0..50 {
        last = backend
            .create(&format!("{PREFIX}p{i:02}"), Bytes::from("v"), None)
            .await
            .unwrap()
            .mod_revision;
    }
    cache.wait_for_revision(PREFIX, last).await.unwrap();
    assert!(matches!(
        stream_error(&mut watch).await,
        StorageError::Compacted { .. }
    ));
}

/// A client that listed from the backend watches from a revision the cache has not seen
/// yet (writes to other resources moved it): the cache asks for progress instead of
/// waiting for the periodic one.
async fn waits_for_fresh_revision(backend: Arc<dyn Storage>) {
    let options = CacheOptions {
        progress_interval: Duration::from_secs(3600),
        fresh_timeout: Duration::from_millis(1500),
        ..CacheOptions::new([PREFIX])
    };
    let cache = CachedStorage::new(backend.clone(), options);
    cache.start().await.unwrap();
    let elsewhere = backend
        .create(
            &format!("/registry/other/{}", rand_suffix()),
            Bytes::from("v"),
            None,
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut watch = cache.watch(PREFIX, elsewhere.mod_revision).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    let kv = backend
        .create(
            &format!("{PREFIX}{}", rand_suffix()),
            Bytes::from("v"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, kv);

    let (list, revision) = cache.list_from_cache(PREFIX).await.unwrap();
    assert!(list.contains(&kv));
    assert!(revision >= kv.mod_revision);

    let started = Instant::now();
    match cache
        .watch(PREFIX, kv.mod_revision + 1000)
        .await
        .map(|_| ())
    {
        Err(StorageError::FutureRevision { requested, current }) => {
            assert_eq!(requested, kv.mod_revision + 1000);
            assert!(current >= kv.mod_revision);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn waits_for_fresh_revision_memory() {
    let backend = MemoryStorage::with_options(MemoryOptions {
        progress_interval: Duration::from_secs(3600),
        ..MemoryOptions::default()
    });
    waits_for_fresh_revision(Arc::new(backend)).await;
}

#[tokio::test]
async fn waits_for_fresh_revision_etcd() {
    let options = EtcdOptions {
        progress_interval: Duration::from_secs(3600),
        ..EtcdOptions::default()
    };
    let backend = EtcdStorage::connect(&[shared_etcd().endpoint()], options)
        .await
        .unwrap();
    // Its own prefix on the shared etcd.
    waits_for_fresh_revision(Arc::new(Prefixed {
        inner: backend,
        prefix: format!("/fresh-{}", rand_suffix()),
    }))
    .await;
}

#[tokio::test]
async fn list_from_cache_and_uncached_prefixes() {
    let (backend, cache) = cached_memory(cache_options(PREFIX)).await;
    let a = backend
        .create(&format!("{PREFIX}ns/a"), Bytes::from("a"), None)
        .await
        .unwrap();
    let other = backend
        .create("/registry/services/ns/s", Bytes::from("s"), None)
        .await
        .unwrap();
    cache
        .wait_for_revision(PREFIX, a.mod_revision)
        .await
        .unwrap();
    let (items, revision) = cache
        .list_from_cache(&format!("{PREFIX}ns/"))
        .await
        .unwrap();
    assert_eq!(items, vec![a.clone()]);
    assert!(revision >= a.mod_revision);
    // Not cached: served by the backend.
    assert_eq!(cache.cached_prefix("/registry/services/"), None);
    let (items, _) = cache.list_from_cache("/registry/services/").await.unwrap();
    assert_eq!(items, vec![other.clone()]);
    let mut watch = cache.watch("/registry/services/", 1).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, other);
    cache
        .wait_for_revision("/registry/services/", 1_000_000)
        .await
        .unwrap();
}

/// The cache watches etcd without `prev_kv` and fills in previous values from its own
/// state: its events must equal those of a direct etcd watch with `prev_kv`.
#[tokio::test]
async fn previous_values_from_the_cache_equal_etcds() {
    let etcd = Arc::new(connect(shared_etcd()).await);
    let prefix = format!("/registry/prev-{}/", rand_suffix());
    let cache = CachedStorage::from_arc(etcd.clone(), cache_options(&prefix));
    let before = etcd
        .create(&format!("{prefix}ns/old"), Bytes::from("old"), None)
        .await
        .unwrap();
    cache.start().await.unwrap();
    let start = etcd.current_revision().await.unwrap();
    let a = format!("{prefix}ns/a");
    let created = etcd.create(&a, Bytes::from("1"), None).await.unwrap();
    etcd.update(&a, Bytes::from("2"), created.mod_revision, None)
        .await
        .unwrap();
    etcd.delete(&a, None).await.unwrap();
    // Listed before the watch started: the previous value comes from the list.
    etcd.update(&before.key, Bytes::from("new"), before.mod_revision, None)
        .await
        .unwrap();
    etcd.delete(&before.key, None).await.unwrap();

    let mut direct = etcd.watch(&prefix, start).await.unwrap();
    let mut cached = cache.watch(&prefix, start).await.unwrap();
    for _ in 0..5 {
        let want = next_event(&mut direct).await;
        assert!(want.kind == storage::EventKind::Created || want.prev.is_some());
        assert_eq!(next_event(&mut cached).await, want);
    }
}

#[tokio::test]
async fn dropping_the_cache_ends_its_watches() {
    let (backend, cache) = cached_memory(cache_options(PREFIX)).await;
    let mut watch = cache
        .watch(PREFIX, backend.current_revision().await.unwrap())
        .await
        .unwrap();
    drop(cache);
    assert!(matches!(
        stream_error(&mut watch).await,
        StorageError::Unavailable(_)
    ));
}

#[tokio::test]
async fn rewatches_after_a_broken_backend_watch() {
    let flaky = Arc::new(Flaky::new());
    let cache = CachedStorage::new(flaky.clone(), cache_options(PREFIX));
    cache.start().await.unwrap();
    let mut watch = cache
        .watch(PREFIX, flaky.current_revision().await.unwrap())
        .await
        .unwrap();
    let a = flaky
        .create(&format!("{PREFIX}a"), Bytes::from("a"), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, a);

    // Broken, but the history is still there: watchers notice nothing.
    flaky.break_watches();
    let b = flaky
        .create(&format!("{PREFIX}b"), Bytes::from("b"), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, b);

    // Broken while the history is compacted: the cache re-lists and its watchers must
    // re-list too.
    flaky.break_watches();
    let c = flaky
        .create(&format!("{PREFIX}c"), Bytes::from("c"), None)
        .await
        .unwrap();
    // Compacting at c would still keep c's event; at the revision after it, it is gone.
    let elsewhere = flaky
        .create("/registry/other/x", Bytes::from("x"), None)
        .await
        .unwrap();
    flaky.compact(elsewhere.mod_revision).await.unwrap();
    assert!(matches!(
        stream_error(&mut watch).await,
        StorageError::Compacted { .. }
    ));
    cache
        .wait_for_revision(PREFIX, elsewhere.mod_revision)
        .await
        .unwrap();
    let (items, _) = cache.list_from_cache(PREFIX).await.unwrap();
    assert_eq!(items, vec![a, b.clone(), c.clone()]);
    assert_watch_compacted(cache.watch(PREFIX, b.mod_revision).await).await;
    let mut watch = cache.watch(PREFIX, elsewhere.mod_revision).await.unwrap();
    let d = flaky
        .create(&format!("{PREFIX}d"), Bytes::from("d"), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.kv, d);
}

/// A memory backend whose watch streams can be broken on demand.
struct Flaky {
    inner: MemoryStorage,
    breaker: broadcast::Sender<()>,
}

impl Flaky {
    fn new() -> Self {
        Self {
            inner: MemoryStorage::with_options(memory_options()),
            breaker: broadcast::channel(1).0,
        }
    }

    fn break_watches(&self) {
        let _ = self.breaker.send(());
    }

    fn breakable(&self, stream: WatchStream) -> WatchStream {
        let mut broken = self.breaker.subscribe();
        let stop = async move {
            let _ = broken.recv().await;
        };
        let failure = futures::stream::once(async {
            Err(StorageError::Unavailable("broken on purpose".into()))
        });
        Box::pin(stream.take_until(stop).chain(failure))
    }
}

#[async_trait::async_trait]
impl Storage for Flaky {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        self.inner.list(prefix, opts).await
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(prefix).await
    }
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        self.inner.create(key, value, ttl).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        self.inner.update(key, value, expected, ttl).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        Ok(self.breakable(self.inner.watch(prefix, after).await?))
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        Ok(self.breakable(
            self.inner
                .watch_with_progress(prefix, after, progress)
                .await?,
        ))
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn check_health(&self) -> Result<()> {
        self.inner.check_health().await
    }
}

/// Puts every key of a shared etcd under a prefix of its own, so that tests which expect
/// a quiet keyspace can share one etcd.
struct Prefixed {
    inner: EtcdStorage,
    prefix: String,
}

impl Prefixed {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip(&self, mut kv: KeyValue) -> KeyValue {
        kv.key = kv.key[self.prefix.len()..].to_string();
        kv
    }
}

#[async_trait::async_trait]
impl Storage for Prefixed {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self
            .inner
            .get(&self.key(key))
            .await?
            .map(|kv| self.strip(kv)))
    }
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        let opts = ListOptions {
            start_key: opts.start_key.as_deref().map(|k| self.key(k)),
            ..opts.clone()
        };
        let mut result = self.inner.list(&self.key(prefix), &opts).await?;
        result.items = result.items.into_iter().map(|kv| self.strip(kv)).collect();
        Ok(result)
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(&self.key(prefix)).await
    }
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        Ok(self.strip(self.inner.create(&self.key(key), value, ttl).await?))
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        Ok(self.strip(
            self.inner
                .update(&self.key(key), value, expected, ttl)
                .await?,
        ))
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        Ok(self.strip(self.inner.delete(&self.key(key), expected).await?))
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_with_progress(prefix, after, ProgressRequester::new())
            .await
    }
    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        let strip = self.prefix.len();
        let stream = self
            .inner
            .watch_with_progress(&self.key(prefix), after, progress)
            .await?;
        Ok(Box::pin(stream.map(move |item| {
            item.map(|item| match item {
                storage::WatchItem::Event(mut event) => {
                    event.kv.key = event.kv.key[strip..].to_string();
                    if let Some(prev) = event.prev.as_mut() {
                        prev.key = prev.key[strip..].to_string();
                    }
                    storage::WatchItem::Event(event)
                }
                progress => progress,
            })
        })))
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn check_health(&self) -> Result<()> {
        self.inner.check_health().await
    }
}
