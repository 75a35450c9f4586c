//! The loop most workload controllers share: change and deletion streams of the shared
//! informers are mapped to `namespace/name` keys of the objects to sync, and a work
//! queue hands each key to one worker at a time (upstream's informer event handlers
//! feeding a rate-limited workqueue).

use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use tokio_util::sync::CancellationToken;

use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::refs;

/// A stream of keys to sync.
pub type Keys = BoxStream<'static, String>;

/// `namespace/name` of an object.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Split a key into namespace and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The key of the controller of kind `kind` that owns the object, if any.
pub fn owner_key(meta: &ObjectMeta, kind: &str) -> Option<String> {
    let r = refs::controller_of(meta)?;
    if r.kind != kind {
        return None;
    }
    Some(format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        r.name
    ))
}

/// Keys of the changed and deleted objects of `K` (the objects themselves).
pub fn own_keys<K>(
    informer: &client::informers::Informer<K>,
) -> Result<Vec<Keys>, client::informers::AlreadyStarted>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let changes = crate::controllers::util::triggers::changes(informer)?;
    let deletions = informer.subscribe_deletions()?;
    Ok(vec![
        changes.map(|o| key_of(o.meta())).boxed(),
        deletions.map(|o| key_of(o.meta())).boxed(),
    ])
}

/// Keys of the owners (of kind `kind`) of changed and deleted objects of `K`.
pub fn owner_keys<K>(
    informer: &client::informers::Informer<K>,
    kind: &'static str,
) -> Result<Vec<Keys>, client::informers::AlreadyStarted>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    mapped_keys(informer, move |o: &K| {
        owner_key(o.meta(), kind).into_iter().collect()
    })
}

/// Keys computed by `map` from changed and deleted objects of `K`.
pub fn mapped_keys<K, F>(
    informer: &client::informers::Informer<K>,
    map: F,
) -> Result<Vec<Keys>, client::informers::AlreadyStarted>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    F: Fn(&K) -> Vec<String> + Send + Sync + 'static,
{
    let map = Arc::new(map);
    let m2 = Arc::clone(&map);
    let changes = crate::controllers::util::triggers::changes(informer)?;
    let deletions = informer.subscribe_deletions()?;
    Ok(vec![
        changes
            .flat_map(move |o| futures::stream::iter(map(&o)))
            .boxed(),
        deletions
            .flat_map(move |o| futures::stream::iter(m2(&o)))
            .boxed(),
    ])
}

/// Feed `keys` into `queue` until shutdown, then run `workers` workers of `work`. The
/// streams must be read from the start (the shared watch waits for full subscribers),
/// so they are drained even before `ready` (cache sync) completes.
pub async fn run<F, Fut, R>(
    keys: Vec<Keys>,
    ready: R,
    workers: usize,
    shutdown: CancellationToken,
    work: F,
) where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send,
    R: std::future::Future<Output = bool> + Send,
{
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(shutdown.clone());
    let feeder = {
        let queue = Arc::clone(&queue);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut all = futures::stream::select_all(keys);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    k = all.next() => match k {
                        Some(k) => {
                            tracing::trace!(key = %k, "queued");
                            queue.add(k);
                        }
                        None => break,
                    },
                }
            }
        })
    };
    if ready.await {
        tracing::debug!("caches synced; starting workers");
        run_workers(queue, workers, work).await;
    }
    feeder.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn owner_keys_follow_controller_refs() {
        let meta = ObjectMeta {
            namespace: Some("ns".into()),
            name: Some("p".into()),
            owner_references: Some(vec![OwnerReference {
                kind: "Job".into(),
                name: "pi".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(owner_key(&meta, "Job").as_deref(), Some("ns/pi"));
        assert_eq!(owner_key(&meta, "StatefulSet"), None);
        assert_eq!(key_of(&meta), "ns/p");
        assert_eq!(split_key("ns/p"), ("ns", "p"));
    }
}
