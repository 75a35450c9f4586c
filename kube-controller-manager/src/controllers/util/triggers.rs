//! Trigger streams for kube-runtime controllers built on the shared informers, covering
//! two gaps of kube-runtime's shared streams (`Writer::subscribe`):
//!
//! - A subscription yields nothing for deleted objects (only applied ones), so
//!   [`deletions`] reports objects that left a cache, by comparing snapshots.
//! - A subscription whose next object is already gone from the cache returns `Pending`
//!   without arranging to be polled again, and would stall for good (and, once its
//!   buffer fills, stall the shared watch); [`changes`] re-polls it periodically.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use client::informers::{AlreadyStarted, Informer};
use futures::stream::{self, Stream, StreamExt};
use kube::runtime::reflector::Store;
use kube::Resource;

/// How often a subscription is re-polled in case it stalled, and how often caches are
/// compared for deletions.
pub const PERIOD: Duration = Duration::from_secs(1);

fn ticks(period: Duration) -> impl Stream<Item = ()> + Send {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stream::unfold(interval, |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}

/// Every changed object of `informer`'s type, as [`Informer::subscribe`] yields them, but
/// never stalled for longer than [`PERIOD`]. Subscribe before the informers start.
pub fn changes<K>(
    informer: &Informer<K>,
) -> Result<impl Stream<Item = Arc<K>> + Send + 'static, AlreadyStarted>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let handle = informer.subscribe()?;
    // `select` polls both sides with the same waker, so each tick polls the subscription
    // again even when it returned Pending without registering a wake-up.
    let nudged = stream::select(handle.map(Some), ticks(PERIOD).map(|()| None));
    Ok(nudged.filter_map(futures::future::ready))
}

fn uid_key<K: Resource>(obj: &K) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.meta().uid.as_deref().unwrap_or_default().hash(&mut h);
    obj.meta().namespace.hash(&mut h);
    obj.meta().name.hash(&mut h);
    h.finish()
}

/// The last known state of every object that disappears from `store`, found by comparing
/// snapshots every `period` (an object created and deleted between two snapshots is
/// not reported).
pub fn deletions<K>(
    store: Store<K>,
    period: Duration,
) -> impl Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let known: HashMap<u64, Arc<K>> = HashMap::new();
    stream::unfold(
        (store, known, ticks(period).boxed()),
        |(store, known, mut ticks)| async move {
            ticks.next().await;
            let current: HashMap<u64, Arc<K>> = store
                .state()
                .into_iter()
                .map(|o| (uid_key(o.as_ref()), o))
                .collect();
            let gone = vanished(&known, &current);
            Some((stream::iter(gone), (store, current, ticks)))
        },
    )
    .flatten()
}

fn vanished<K>(before: &HashMap<u64, Arc<K>>, now: &HashMap<u64, Arc<K>>) -> Vec<Arc<K>> {
    before
        .iter()
        .filter(|(k, _)| !now.contains_key(k))
        .map(|(_, o)| Arc::clone(o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, uid: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(uid.into());
        Arc::new(p)
    }

    fn snapshot(pods: &[Arc<Pod>]) -> HashMap<u64, Arc<Pod>> {
        pods.iter()
            .map(|p| (uid_key(p.as_ref()), Arc::clone(p)))
            .collect()
    }

    #[test]
    fn vanished_objects_include_replaced_ones() {
        let before = snapshot(&[pod("a", "1"), pod("b", "2"), pod("c", "3")]);
        // "b" is gone; "c" was deleted and created again under the same name.
        let now = snapshot(&[pod("a", "1"), pod("c", "4")]);
        let mut gone: Vec<String> = vanished(&before, &now)
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.name.as_deref().unwrap_or(""),
                    p.metadata.uid.as_deref().unwrap_or("")
                )
            })
            .collect();
        gone.sort();
        assert_eq!(gone, vec!["b/2", "c/3"]);
    }
}
