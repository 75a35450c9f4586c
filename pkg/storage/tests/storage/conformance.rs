//! The behaviour every backend shares, written once against `&dyn Storage` and run for
//! each backend by `conformance!` at the bottom.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use storage::{
    guaranteed_update, EventKind, KeyValue, ListOptions, Storage, StorageError, UpdateAction,
    UpdateOutcome, WatchItem,
};

use crate::common::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub async fn crud_and_compare_and_swap(s: &dyn Storage, p: &str) {
    let key = format!("{p}a");
    assert_eq!(s.get(&key).await.unwrap(), None);

    let created = s.create(&key, b("1"), None).await.unwrap();
    assert_eq!(created.key, key);
    assert_eq!(created.value, b("1"));
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(s.get(&key).await.unwrap(), Some(created.clone()));
    assert!(s.current_revision().await.unwrap() >= created.mod_revision);

    match s.create(&key, b("again"), None).await {
        Err(StorageError::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    // A stale expected revision: the conflict carries the current value.
    match s.update(&key, b("2"), created.mod_revision - 1, None).await {
        Err(StorageError::Conflict { key: k, current }) => {
            assert_eq!(k, key);
            assert_eq!(current, Some(created.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }

    let updated = s
        .update(&key, b("2"), created.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(updated.value, b("2"));
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(s.get(&key).await.unwrap(), Some(updated.clone()));

    let missing = format!("{p}missing");
    match s.update(&missing, b("x"), 5, None).await {
        Err(StorageError::NotFound { key: k }) => assert_eq!(k, missing),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // An expected revision of 0 must not create the key.
    assert!(matches!(
        s.update(&missing, b("x"), 0, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(s.get(&missing).await.unwrap(), None);

    match s.delete(&key, Some(created.mod_revision)).await {
        Err(StorageError::Conflict { current, .. }) => assert_eq!(current, Some(updated.clone())),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let deleted = s.delete(&key, Some(updated.mod_revision)).await.unwrap();
    assert_eq!(deleted.key, key);
    assert_eq!(deleted.value, b("2"));
    assert_eq!(deleted.create_revision, created.create_revision);
    assert!(deleted.mod_revision > updated.mod_revision);
    assert_eq!(s.get(&key).await.unwrap(), None);
    assert!(s.current_revision().await.unwrap() >= deleted.mod_revision);

    assert!(matches!(
        s.delete(&key, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(&key, Some(deleted.mod_revision)).await,
        Err(StorageError::NotFound { .. })
    ));

    // Unconditional delete, and re-creating a deleted key starts a new life.
    let again = s.create(&key, b("3"), None).await.unwrap();
    assert!(again.create_revision > deleted.mod_revision);
    let gone = s.delete(&key, None).await.unwrap();
    assert_eq!(gone.value, b("3"));
    s.check_health().await.unwrap();
}

pub async fn fresh_store_revisions(s: &dyn Storage, p: &str) {
    assert_eq!(s.current_revision().await.unwrap(), 1);
    let first = s.create(&format!("{p}a"), b("1"), None).await.unwrap();
    assert_eq!((first.create_revision, first.mod_revision), (2, 2));
    let second = s.create(&format!("{p}b"), b("1"), None).await.unwrap();
    assert_eq!(second.mod_revision, 3);
    let updated = s.update(&format!("{p}a"), b("2"), 2, None).await.unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (2, 4));
    assert_eq!(s.current_revision().await.unwrap(), 4);
    let listed = s.list(p, &ListOptions::default()).await.unwrap();
    assert_eq!(listed.revision, 4);
}

fn keys(items: &[KeyValue]) -> Vec<String> {
    items.iter().map(|kv| kv.key.clone()).collect()
}

pub async fn list_at_past_revisions(s: &dyn Storage, p: &str) {
    let (ka, kb) = (format!("{p}a"), format!("{p}b"));
    let a1 = s.create(&ka, b("a1"), None).await.unwrap();
    let b1 = s.create(&kb, b("b1"), None).await.unwrap();
    let a2 = s.update(&ka, b("a2"), a1.mod_revision, None).await.unwrap();
    let b_gone = s.delete(&kb, None).await.unwrap();

    let at = |revision| ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    };
    let r1 = s.list(p, &at(a1.mod_revision)).await.unwrap();
    assert_eq!(r1.items, vec![a1.clone()]);
    assert_eq!(r1.revision, a1.mod_revision);
    let r2 = s.list(p, &at(b1.mod_revision)).await.unwrap();
    assert_eq!(r2.items, vec![a1.clone(), b1.clone()]);
    let r3 = s.list(p, &at(a2.mod_revision)).await.unwrap();
    assert_eq!(r3.items, vec![a2.clone(), b1.clone()]);
    let r4 = s.list(p, &at(b_gone.mod_revision)).await.unwrap();
    assert_eq!(r4.items, vec![a2.clone()]);
    let latest = s.list(p, &ListOptions::default()).await.unwrap();
    assert_eq!(latest.items, vec![a2.clone()]);
    assert!(latest.revision >= b_gone.mod_revision);
    assert!(!latest.more);
    assert_eq!(latest.remaining, 0);
    assert_eq!(s.count(p).await.unwrap(), 1);

    let current = s.current_revision().await.unwrap();
    match s.list(p, &at(current + 1000)).await {
        Err(StorageError::FutureRevision {
            requested,
            current: reported,
        }) => {
            assert_eq!(requested, current + 1000);
            assert!(reported >= current);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn paging(s: &dyn Storage, p: &str) {
    for i in 0..5 {
        s.create(&format!("{p}k{i}"), b("v"), None).await.unwrap();
    }
    let first = s
        .list(
            p,
            &ListOptions {
                limit: Some(2),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(keys(&first.items), vec![format!("{p}k0"), format!("{p}k1")]);
    assert!(first.more);
    assert_eq!(first.remaining, 3);

    // A key written after the first page is not in the later pages read at its revision.
    s.create(&format!("{p}k5"), b("v"), None).await.unwrap();

    let page = |start: &str| ListOptions {
        revision: Some(first.revision),
        limit: Some(2),
        start_key: Some(format!("{start}\0")),
    };
    let second = s.list(p, &page(&first.items[1].key)).await.unwrap();
    assert_eq!(
        keys(&second.items),
        vec![format!("{p}k2"), format!("{p}k3")]
    );
    assert!(second.more);
    assert_eq!(second.remaining, 1);
    assert_eq!(second.revision, first.revision);
    let third = s.list(p, &page(&second.items[1].key)).await.unwrap();
    assert_eq!(keys(&third.items), vec![format!("{p}k4")]);
    assert!(!third.more);
    assert_eq!(third.remaining, 0);

    let all = s.list(p, &ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 6);
    assert!(!all.more);
    // A start key before the prefix does not leak keys from outside it.
    // Sorts between "/" and the prefix.
    let outside = format!("{}.", p.trim_end_matches('/'));
    s.create(&outside, b("v"), None).await.unwrap();
    let from_start = s
        .list(
            p,
            &ListOptions {
                start_key: Some("/".into()),
                limit: Some(100),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(from_start.items.len(), 6);
    s.delete(&outside, None).await.unwrap();
}

pub async fn ttl_expiry(s: &dyn Storage, p: &str) {
    let start = s.current_revision().await.unwrap();
    let mut watch = s.watch(p, start).await.unwrap();
    let (expiring, kept, plain) = (
        format!("{p}expiring"),
        format!("{p}kept"),
        format!("{p}plain"),
    );
    s.create(&expiring, b("e"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let kept_kv = s
        .create(&kept, b("k"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.create(&plain, b("p"), None).await.unwrap();
    // An update without a TTL makes the key permanent.
    s.update(&kept, b("k2"), kept_kv.mod_revision, None)
        .await
        .unwrap();
    assert!(s.get(&expiring).await.unwrap().is_some());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while s.get(&expiring).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.get(&kept).await.unwrap().is_some());
    assert!(s.get(&plain).await.unwrap().is_some());

    let mut kinds = Vec::new();
    while kinds.len() < 5 {
        let event = next_event(&mut watch).await;
        kinds.push((event.kind, event.kv.key.clone()));
        if event.kind == EventKind::Deleted {
            assert_eq!(event.kv.value, b("e"));
        }
    }
    assert_eq!(kinds.last(), Some(&(EventKind::Deleted, expiring.clone())));
}

pub async fn watch_replay_then_live(s: &dyn Storage, p: &str) {
    let key = format!("{p}a");
    let start = s.current_revision().await.unwrap();
    let created = s.create(&key, b("1"), None).await.unwrap();
    let updated = s
        .update(&key, b("2"), created.mod_revision, None)
        .await
        .unwrap();
    let deleted = s.delete(&key, None).await.unwrap();

    let mut watch = s.watch(p, start).await.unwrap();
    let e1 = next_event(&mut watch).await;
    assert_eq!(e1.kind, EventKind::Created);
    assert_eq!(e1.kv, created);
    assert_eq!(e1.prev, None);
    let e2 = next_event(&mut watch).await;
    assert_eq!(e2.kind, EventKind::Updated);
    assert_eq!(e2.kv, updated);
    assert_eq!(e2.prev, Some(created.clone()));
    let e3 = next_event(&mut watch).await;
    assert_eq!(e3.kind, EventKind::Deleted);
    assert_eq!(e3.kv, deleted);
    assert_eq!(e3.revision(), deleted.mod_revision);
    assert_eq!(e3.prev, Some(updated.clone()));

    let live = s.create(&format!("{p}b"), b("live"), None).await.unwrap();
    let e4 = next_event(&mut watch).await;
    assert_eq!(e4.kind, EventKind::Created);
    assert_eq!(e4.kv, live);

    // From the middle of the history.
    let mut later = s.watch(p, updated.mod_revision).await.unwrap();
    assert_eq!(next_event(&mut later).await.kv, deleted);
    assert_eq!(next_event(&mut later).await.kv, live);

    // From now: only what comes next.
    let mut now = s.watch(p, live.mod_revision).await.unwrap();
    let next = s.create(&format!("{p}c"), b("c"), None).await.unwrap();
    assert_eq!(next_event(&mut now).await.kv, next);
}

pub async fn watch_compacted(s: &dyn Storage, p: &str) {
    let key = format!("{p}a");
    let v1 = s.create(&key, b("1"), None).await.unwrap();
    let v2 = s.update(&key, b("2"), v1.mod_revision, None).await.unwrap();
    let v3 = s.update(&key, b("3"), v2.mod_revision, None).await.unwrap();
    let current = s.current_revision().await.unwrap();
    s.compact(current).await.unwrap();

    assert_compacted(s.watch(p, v1.mod_revision - 1).await);
    assert_compacted(
        s.list(
            p,
            &ListOptions {
                revision: Some(v1.mod_revision),
                ..ListOptions::default()
            },
        )
        .await,
    );
    assert_compacted(s.compact(current).await);
    let listed = s
        .list(
            p,
            &ListOptions {
                revision: Some(current),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![v3.clone()]);

    let mut watch = s.watch(p, current).await.unwrap();
    let v4 = s.update(&key, b("4"), v3.mod_revision, None).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(event.kv, v4);
    assert_eq!(event.prev, Some(v3));
}

pub async fn progress_items(s: &dyn Storage, p: &str) {
    let start = s.current_revision().await.unwrap();
    let mut watch = s.watch(p, start).await.unwrap();
    let first = next_progress(&mut watch).await;
    assert!(
        first >= start,
        "progress {first} before the watch start {start}"
    );

    let created = s.create(&format!("{p}a"), b("1"), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv, created);
    // A write elsewhere moves the revision without an event for this watch.
    let elsewhere_key = format!("{}-elsewhere", p.trim_end_matches('/'));
    let elsewhere = s.create(&elsewhere_key, b("x"), None).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress never reached {}",
            elsewhere.mod_revision
        );
        let revision = next_progress(&mut watch).await;
        assert!(revision >= created.mod_revision);
        if revision >= elsewhere.mod_revision {
            break;
        }
    }
    s.delete(&elsewhere_key, None).await.unwrap();
}

pub async fn many_watchers_in_order(s: &dyn Storage, p: &str) {
    const WATCHERS: usize = 100;
    const WRITES: usize = 50;
    let start = s.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..WATCHERS {
        watches.push(s.watch(p, start).await.unwrap());
    }
    let mut written = Vec::new();
    for i in 0..WRITES {
        let key = format!("{p}k{}", i % 7);
        let kv = match s.get(&key).await.unwrap() {
            Some(kv) => s
                .update(&key, b(&i.to_string()), kv.mod_revision, None)
                .await
                .unwrap(),
            None => s.create(&key, b(&i.to_string()), None).await.unwrap(),
        };
        written.push(kv);
    }
    let readers = watches.into_iter().map(|mut watch| {
        let expected = written.clone();
        tokio::spawn(async move {
            for kv in expected {
                assert_eq!(next_event(&mut watch).await.kv, kv);
            }
        })
    });
    for reader in futures::future::join_all(readers).await {
        reader.unwrap();
    }
}

pub async fn prefix_isolation(s: &dyn Storage, p: &str) {
    let (pa, pab) = (format!("{p}a/"), format!("{p}ab/"));
    let start = s.current_revision().await.unwrap();
    let mut watch_a = s.watch(&pa, start).await.unwrap();
    let mut watch_ab = s.watch(&pab, start).await.unwrap();
    let in_ab = s.create(&format!("{pab}y"), b("y"), None).await.unwrap();
    let in_a = s.create(&format!("{pa}x"), b("x"), None).await.unwrap();
    s.create(&format!("{p}a"), b("bare"), None).await.unwrap();

    let listed = s.list(&pa, &ListOptions::default()).await.unwrap();
    assert_eq!(listed.items, vec![in_a.clone()]);
    assert_eq!(s.count(&pa).await.unwrap(), 1);
    assert_eq!(s.count(&pab).await.unwrap(), 1);
    assert_eq!(s.count(p).await.unwrap(), 3);

    assert_eq!(next_event(&mut watch_a).await.kv, in_a);
    assert_eq!(next_event(&mut watch_ab).await.kv, in_ab);
    assert_no_event(&mut watch_a, Duration::from_millis(300)).await;
    assert_no_event(&mut watch_ab, Duration::from_millis(10)).await;
}

pub async fn guaranteed_updates(s: &dyn Storage, p: &str) {
    let key = format!("{p}counter");
    let increment = |current: Option<&KeyValue>| -> Result<UpdateAction, StorageError> {
        let n: u64 = current
            .map(|kv| std::str::from_utf8(&kv.value).unwrap().parse().unwrap())
            .unwrap_or(0);
        Ok(UpdateAction::Put(b(&(n + 1).to_string())))
    };
    // Concurrent writers, each retrying on conflicts.
    let tasks = (0..8).map(|_| async {
        for _ in 0..5 {
            guaranteed_update(s, &key, None, increment).await.unwrap();
        }
    });
    futures::future::join_all(tasks).await;
    let current = s.get(&key).await.unwrap().unwrap();
    assert_eq!(current.value, b("40"));

    // A stale cached value costs a conflict, not a wrong result.
    let stale = KeyValue {
        value: b("1"),
        mod_revision: current.mod_revision - 1,
        ..current.clone()
    };
    match guaranteed_update(s, &key, Some(stale.clone()), increment)
        .await
        .unwrap()
    {
        UpdateOutcome::Put(kv) => assert_eq!(kv.value, b("41")),
        other => panic!("expected a put, got {other:?}"),
    }
    // A no-op decided on stale data is re-checked against the store.
    let mut seen = Vec::new();
    let outcome = guaranteed_update(s, &key, Some(stale), |current: Option<&KeyValue>| {
        seen.push(current.map(|kv| kv.value.clone()));
        Ok::<_, StorageError>(UpdateAction::NoChange)
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![Some(b("1")), Some(b("41"))]);
    assert!(matches!(outcome, UpdateOutcome::Unchanged(Some(kv)) if kv.value == b("41")));

    match guaranteed_update(s, &key, None, |_: Option<&KeyValue>| {
        Ok::<_, StorageError>(UpdateAction::Delete)
    })
    .await
    .unwrap()
    {
        UpdateOutcome::Deleted(kv) => assert_eq!(kv.value, b("41")),
        other => panic!("expected a delete, got {other:?}"),
    }
    let result = guaranteed_update(s, &key, None, |_: Option<&KeyValue>| {
        Ok::<_, StorageError>(UpdateAction::Delete)
    })
    .await;
    assert!(matches!(result, Err(StorageError::NotFound { .. })));
}

/// A watch stream that is dropped stops costing anything; later watches still work.
pub async fn dropped_watch(s: &dyn Storage, p: &str) {
    let start = s.current_revision().await.unwrap();
    drop(s.watch(p, start).await.unwrap());
    let mut watch = s.watch(p, start).await.unwrap();
    let kv = s.create(&format!("{p}a"), b("1"), None).await.unwrap();
    let item = watch.next().await.unwrap().unwrap();
    let item = match item {
        WatchItem::Progress(_) => next_event(&mut watch).await,
        WatchItem::Event(event) => event,
    };
    assert_eq!(item.kv, kv);
}

macro_rules! conformance {
    ($($module:ident => $backend:expr),* $(,)?) => {$(
        mod $module {
            use crate::common::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crud_and_compare_and_swap() {
                let f = fixture($backend, "crud", SHARED).await;
                super::crud_and_compare_and_swap(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fresh_store_revisions() {
                let f = fixture($backend, "fresh", FRESH).await;
                super::fresh_store_revisions(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_at_past_revisions() {
                let f = fixture($backend, "past", SHARED).await;
                super::list_at_past_revisions(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn paging() {
                let f = fixture($backend, "paging", SHARED).await;
                super::paging(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ttl_expiry() {
                let f = fixture($backend, "ttl", SHARED).await;
                super::ttl_expiry(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_replay_then_live() {
                let f = fixture($backend, "replay", SHARED).await;
                super::watch_replay_then_live(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_compacted() {
                let f = fixture($backend, "compacted", FRESH_LAZY).await;
                super::watch_compacted(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn progress_items() {
                let f = fixture($backend, "progress", SHARED).await;
                super::progress_items(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_watchers_in_order() {
                let f = fixture($backend, "many", SHARED).await;
                super::many_watchers_in_order(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prefix_isolation() {
                let f = fixture($backend, "isolation", SHARED).await;
                super::prefix_isolation(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn guaranteed_updates() {
                let f = fixture($backend, "guaranteed", SHARED).await;
                super::guaranteed_updates(&*f.storage, &f.prefix).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dropped_watch() {
                let f = fixture($backend, "dropped", SHARED).await;
                super::dropped_watch(&*f.storage, &f.prefix).await;
            }
        }
    )*};
}

conformance! {
    memory => Backend::Memory,
    etcd => Backend::Etcd,
    cached_memory => Backend::CachedMemory,
    cached_etcd => Backend::CachedEtcd,
}
