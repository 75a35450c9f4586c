//! The shared client library against a real API server: informers and leader election.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::leader::LeaderElection;
use client::SharedInformers;
use futures::StreamExt;
use integration::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn shared_informers_cache_and_notify() {
    let cp = ControlPlane::start().unwrap();
    let kube = cp.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(kube.clone(), "default");
    api.create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();

    let informers = SharedInformers::new(kube);
    let informer = informers.get::<ConfigMap>();
    let mut changes = informer.subscribe().unwrap();
    // The same type from another controller shares the cache.
    let again = informers.get::<ConfigMap>();
    informers.start();
    assert!(
        informer.subscribe().is_err(),
        "subscriptions close at start"
    );
    tokio::time::timeout(Duration::from_secs(10), informer.store().wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert!(again
        .store()
        .state()
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some("before")));

    api.create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(cm) = changes.next().await {
            if cm.metadata.name.as_deref() == Some("after") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(seen);
    assert_eq!(
        again
            .store()
            .state()
            .iter()
            .filter(|c| c.metadata.namespace.as_deref() == Some("default"))
            .count(),
        2
    );
}

/// `wait_for_cache_sync` returns while subscriptions are still unread, and after it
/// every concurrent `wait_until_ready` on the caches completes (kube-runtime wakes only
/// the latest of concurrent waiters on a store that is not ready yet).
#[tokio::test(flavor = "multi_thread")]
async fn cache_sync_releases_every_waiter() {
    let cp = ControlPlane::start().unwrap();
    let kube = cp.client().await.unwrap();
    let informers = SharedInformers::new(kube);
    let configmaps = informers.get::<ConfigMap>();
    let nodes = informers.get::<k8s_openapi::api::core::v1::Node>();
    let _unread = configmaps.subscribe().unwrap();
    informers.start();
    tokio::time::timeout(Duration::from_secs(10), informers.wait_for_cache_sync())
        .await
        .unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let a = configmaps.store().clone();
            let b = nodes.store().clone();
            tokio::spawn(async move {
                a.wait_until_ready().await.unwrap();
                b.wait_until_ready().await.unwrap();
            })
        })
        .collect();
    for w in waiters {
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn only_one_replica_leads_at_a_time() {
    let cp = ControlPlane::start().unwrap();
    let leading = Arc::new(AtomicUsize::new(0));
    let max_leading = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Several candidates start at once, so that they race for the lease.
    for i in 0..4 {
        let kube = cp.client().await.unwrap();
        let (leading, max_leading) = (Arc::clone(&leading), Arc::clone(&max_leading));
        let election = LeaderElection::new("test-component", format!("replica-{i}"));
        tasks.push(tokio::spawn(async move {
            election
                .run(kube, async move {
                    let now = leading.fetch_add(1, Ordering::SeqCst) + 1;
                    max_leading.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    leading.fetch_sub(1, Ordering::SeqCst);
                })
                .await
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(90), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    // Every replica led (one after the other), never two at once.
    assert_eq!(max_leading.load(Ordering::SeqCst), 1);
    let holder = cp
        .kubectl_ok(&[
            "get",
            "lease",
            "test-component",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap();
    assert!(
        holder.is_empty() || holder.starts_with("replica-"),
        "{holder}"
    );
}
