//! What only the in-memory backend has: catching slow watchers up from history, and
//! watcher bookkeeping.

use std::time::Duration;

use bytes::Bytes;
use storage::memory::{MemoryOptions, MemoryStorage};
use storage::{ProgressRequester, Storage, StorageError, WatchItem};

use crate::common::*;

fn small_buffer() -> MemoryStorage {
    MemoryStorage::with_options(MemoryOptions {
        watch_buffer: 4,
        ..memory_options()
    })
}

#[tokio::test]
async fn slow_watcher_catches_up_from_history() {
    let s = small_buffer();
    let mut watch = s.watch("/p/", 1).await.unwrap();
    let mut written = Vec::new();
    for i in 0..100 {
        written.push(
            s.create(&format!("/p/{i:03}"), Bytes::from("v"), None)
                .await
                .unwrap(),
        );
    }
    for kv in written {
        assert_eq!(next_event(&mut watch).await.kv, kv);
    }
    // Caught up, it is live again.
    let live = s.create("/p/live", Bytes::from("v"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, live);
}

#[tokio::test]
async fn slow_watcher_past_compaction_fails() {
    let s = small_buffer();
    let mut watch = s.watch("/p/", 1).await.unwrap();
    for i in 0..20 {
        s.create(&format!("/p/{i:03}"), Bytes::from("v"), None)
            .await
            .unwrap();
    }
    s.compact(s.current_revision().await.unwrap())
        .await
        .unwrap();
    // The buffered events come first, then the error.
    let mut events = 0;
    loop {
        match tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut watch))
            .await
            .unwrap()
        {
            Some(Ok(WatchItem::Event(_))) => events += 1,
            Some(Ok(WatchItem::Progress(_))) => {}
            Some(Err(StorageError::Compacted { .. })) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(events, 4);
}

#[tokio::test]
async fn dropped_watch_unregisters() {
    let s = MemoryStorage::new();
    let watch = s.watch("/p/", 1).await.unwrap();
    let other = s.watch("/q/", 1).await.unwrap();
    assert_eq!(s.watcher_count(), 2);
    drop(watch);
    drop(other);
    assert_eq!(s.watcher_count(), 0);
}

#[tokio::test]
async fn progress_on_request() {
    let s = MemoryStorage::with_options(MemoryOptions {
        progress_interval: Duration::from_secs(3600),
        ..MemoryOptions::default()
    });
    s.create("/elsewhere", Bytes::from("v"), None)
        .await
        .unwrap();
    let progress = ProgressRequester::new();
    let mut watch = s
        .watch_with_progress("/p/", 1, progress.clone())
        .await
        .unwrap();
    progress.request();
    let revision = tokio::time::timeout(Duration::from_secs(1), next_progress(&mut watch))
        .await
        .unwrap();
    assert_eq!(revision, 2);
}

#[tokio::test]
async fn expired_keys_are_deleted_once() {
    let s = MemoryStorage::new();
    let kv = s
        .create("/p/a", Bytes::from("v"), Some(Duration::from_millis(50)))
        .await
        .unwrap();
    let mut watch = s.watch("/p/", kv.mod_revision).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(event.kind, storage::EventKind::Deleted);
    assert_eq!(event.kv.value, Bytes::from("v"));
    assert_eq!(s.get("/p/a").await.unwrap(), None);
    // A key deleted before its deadline is not deleted again.
    let kv = s
        .create("/p/b", Bytes::from("v"), Some(Duration::from_millis(50)))
        .await
        .unwrap();
    s.delete("/p/b", None).await.unwrap();
    let recreated = s.create("/p/b", Bytes::from("w"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.get("/p/b").await.unwrap(), Some(recreated));
    assert!(kv.mod_revision > 0);
}

#[tokio::test]
async fn watch_from_a_future_revision() {
    let s = MemoryStorage::new();
    let mut watch = s.watch("/p/", 3).await.unwrap();
    s.create("/p/a", Bytes::from("v"), None).await.unwrap();
    s.create("/p/b", Bytes::from("v"), None).await.unwrap();
    let c = s.create("/p/c", Bytes::from("v"), None).await.unwrap();
    assert_eq!(c.mod_revision, 4);
    assert_eq!(next_event(&mut watch).await.kv, c);
}
