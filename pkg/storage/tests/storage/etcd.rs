//! What only the etcd backend has: connection failures, shared leases, progress requests
//! against etcd's ordering quirks.

use std::time::Duration;

use bytes::Bytes;
use storage::etcd::{EtcdOptions, EtcdStorage};
use storage::testing::EtcdServer;
use storage::{ListOptions, ProgressRequester, Storage, StorageError, WatchItem};

use crate::common::*;

#[tokio::test]
async fn connect_to_nothing_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        ..EtcdOptions::default()
    };
    let started = std::time::Instant::now();
    match EtcdStorage::connect(&[format!("http://127.0.0.1:{port}")], options).await {
        Err(StorageError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn unavailable_once_etcd_stops() {
    let server = EtcdServer::start().unwrap();
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(1),
        health_timeout: Duration::from_millis(500),
        ..etcd_options()
    };
    let s = EtcdStorage::connect(&[server.endpoint()], options)
        .await
        .unwrap();
    s.check_health().await.unwrap();
    assert!(s.server_version().starts_with('3'));
    let mut watch = s.watch("/p/", 1).await.unwrap();
    drop(server);
    assert!(matches!(
        s.check_health().await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        s.get("/p/a").await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        stream_error(&mut watch).await,
        StorageError::Unavailable(_)
    ));
}

#[tokio::test]
async fn keys_with_the_same_ttl_share_a_lease() {
    let s = connect(shared_etcd()).await;
    let mut client = s.client().clone();
    let mut leases = Vec::new();
    for i in 0..3 {
        let key = format!("/registry/leases-test/{i}");
        s.create(&key, Bytes::from("v"), Some(Duration::from_secs(100)))
            .await
            .unwrap();
        let response = client.get(key, None).await.unwrap();
        leases.push(response.kvs()[0].lease());
    }
    assert_ne!(leases[0], 0);
    assert!(leases.iter().all(|l| *l == leases[0]), "{leases:?}");
    // Another TTL gets another lease.
    s.create(
        "/registry/leases-test/other",
        Bytes::from("v"),
        Some(Duration::from_secs(200)),
    )
    .await
    .unwrap();
    let response = client
        .get("/registry/leases-test/other", None)
        .await
        .unwrap();
    assert_ne!(response.kvs()[0].lease(), leases[0]);
}

#[tokio::test]
async fn progress_on_request() {
    let options = EtcdOptions {
        progress_interval: Duration::from_secs(3600),
        ..etcd_options()
    };
    let s = EtcdStorage::connect(&[shared_etcd().endpoint()], options)
        .await
        .unwrap();
    let written = s
        .create(
            "/registry/progress-request/elsewhere",
            Bytes::from("v"),
            None,
        )
        .await
        .unwrap();
    let progress = ProgressRequester::new();
    let mut watch = s
        .watch_with_progress(
            "/registry/progress-request/p/",
            written.mod_revision,
            progress.clone(),
        )
        .await
        .unwrap();
    progress.request();
    let revision = tokio::time::timeout(Duration::from_secs(2), next_progress(&mut watch))
        .await
        .unwrap();
    assert!(revision >= written.mod_revision);
}

/// etcd 3.4 answers a progress request before replaying history to a new watcher; the
/// backend must not report progress past events it has not delivered yet.
#[tokio::test]
async fn progress_never_overtakes_replayed_events() {
    let s = connect(shared_etcd()).await;
    for round in 0..5 {
        let prefix = format!("/registry/progress-order/{round}/");
        let start = s.current_revision().await.unwrap();
        let kv = s
            .create(&format!("{prefix}a"), Bytes::from("v"), None)
            .await
            .unwrap();
        let progress = ProgressRequester::new();
        let mut watch = s
            .watch_with_progress(&prefix, start, progress.clone())
            .await
            .unwrap();
        progress.request();
        match next_item(&mut watch).await {
            WatchItem::Event(event) => assert_eq!(event.kv, kv),
            WatchItem::Progress(revision) => {
                assert!(
                    revision < kv.mod_revision,
                    "progress {revision} before the event at {}",
                    kv.mod_revision
                )
            }
        }
    }
}

#[tokio::test]
async fn compaction_reports_the_compacted_revision() {
    let server = EtcdServer::start().unwrap();
    let s = connect(&server).await;
    let kv = s.create("/p/a", Bytes::from("1"), None).await.unwrap();
    s.update("/p/a", Bytes::from("2"), kv.mod_revision, None)
        .await
        .unwrap();
    let current = s.current_revision().await.unwrap();
    s.compact(current).await.unwrap();
    // A second client has not seen the compaction itself.
    let other = connect(&server).await;
    match other
        .list(
            "/p/",
            &ListOptions {
                revision: Some(1),
                ..ListOptions::default()
            },
        )
        .await
    {
        Err(StorageError::Compacted {
            requested: 1,
            compacted,
        }) => assert_eq!(compacted, current),
        other => panic!("expected Compacted, got {other:?}"),
    }
    match other.watch("/p/", 0).await.map(|_| ()) {
        Err(StorageError::Compacted {
            requested: 0,
            compacted,
        }) => assert_eq!(compacted, current),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

/// A range larger than one gRPC message (4 MiB in etcd-client) is still read whole, as
/// one snapshot; a limited read returns fewer keys with `more`.
#[tokio::test]
async fn lists_larger_than_one_message() {
    let s = connect(shared_etcd()).await;
    let prefix = "/registry/big-list-test/";
    let value = Bytes::from(vec![b'x'; 1024 * 1024]);
    for i in 0..6 {
        s.create(&format!("{prefix}{i}"), value.clone(), None)
            .await
            .unwrap();
    }
    let all = s.list(prefix, &ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 6);
    assert!(!all.more);
    let revisions: std::collections::BTreeSet<_> =
        all.items.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(revisions.len(), 6);
    let page = s
        .list(
            prefix,
            &ListOptions {
                limit: Some(6),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!page.items.is_empty() && page.items.len() < 6 && page.more);
}
