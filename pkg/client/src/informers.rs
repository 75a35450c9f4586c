//! Shared informers: each resource type is listed and watched once per process, into one
//! cache that every controller reads, and whose changes every controller can subscribe
//! to (upstream's SharedInformerFactory). Built on kube-runtime's shared reflector.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

/// Changes buffered per subscriber before the watch waits for slow readers.
const SUBSCRIBER_BUFFER: usize = 1024;

/// One resource type's cache, with the subscriptions controllers took before start.
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store: Store<K>,
    /// Present until the informer starts; subscriptions come from it.
    writer: Arc<Mutex<Option<reflector::store::Writer<K>>>>,
    /// Subscribers to deletions, taken before the informer starts.
    deletions: Arc<Mutex<Vec<mpsc::Sender<Arc<K>>>>>,
}

impl<K> Clone for Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            writer: Arc::clone(&self.writer),
            deletions: Arc::clone(&self.deletions),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("informer for {0} already started: subscribe before SharedInformers::start")]
pub struct AlreadyStarted(String);

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The cache. Objects in it are shared: never mutate them, copy first.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// A stream of every changed object, for a controller's trigger. Subscriptions are
    /// taken before [`SharedInformers::start`], and each must be read: the shared watch
    /// waits for a subscriber whose buffer is full.
    pub fn subscribe(&self) -> Result<ReflectHandle<K>, AlreadyStarted> {
        self.writer
            .lock()
            .as_ref()
            .and_then(reflector::store::Writer::subscribe)
            .ok_or_else(|| AlreadyStarted(K::kind(&()).to_string()))
    }

    /// A stream of deleted objects (their last known state), which [`Self::subscribe`]
    /// does not carry: deletions the watch reports, and objects that a relist (after
    /// the watch was cut off) no longer finds. Taken before [`SharedInformers::start`]
    /// and read continuously, like `subscribe`.
    pub fn subscribe_deletions(
        &self,
    ) -> Result<impl Stream<Item = Arc<K>> + Send + 'static, AlreadyStarted>
    where
        K: Send + Sync,
    {
        if self.writer.lock().is_none() {
            return Err(AlreadyStarted(K::kind(&()).to_string()));
        }
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.deletions.lock().push(tx);
        Ok(rx)
    }
}

/// Hands deleted objects to the deletion subscribers, waiting for slow ones as the
/// change subscriptions do.
async fn dispatch_deleted<K>(subscribers: &mut Vec<mpsc::Sender<Arc<K>>>, obj: Arc<K>) {
    let mut closed = Vec::new();
    for (i, tx) in subscribers.iter_mut().enumerate() {
        if tx.send(Arc::clone(&obj)).await.is_err() {
            closed.push(i);
        }
    }
    for i in closed.into_iter().rev() {
        subscribers.remove(i);
    }
}

type Starter = Box<dyn FnOnce() + Send>;
/// Waits until one informer's cache holds its first list (false: it never will).
type ReadyWait = Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

/// The informers of one process: created on first use, watching once started.
pub struct SharedInformers {
    client: Client,
    informers: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    pending: Mutex<Vec<Starter>>,
    started: std::sync::atomic::AtomicBool,
    /// Per informer: its kind and a wait for its cache's first list.
    synced: Mutex<Vec<(String, ReadyWait)>>,
    /// The kinds `wait_for_cache_sync` saw synced.
    seen_synced: Mutex<Vec<String>>,
}

impl SharedInformers {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(SharedInformers {
            client,
            informers: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            started: std::sync::atomic::AtomicBool::new(false),
            synced: Mutex::new(Vec::new()),
            seen_synced: Mutex::new(Vec::new()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of `K` across all namespaces. One created after [`Self::start`]
    /// starts at once.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut informers = self.informers.lock();
        if let Some(existing) = informers
            .get(&TypeId::of::<K>())
            .and_then(|b| b.downcast_ref::<Informer<K>>())
        {
            return existing.clone();
        }
        let (store, writer) = reflector::store_shared::<K>(SUBSCRIBER_BUFFER);
        let informer = Informer {
            store,
            writer: Arc::new(Mutex::new(Some(writer))),
            deletions: Arc::new(Mutex::new(Vec::new())),
        };
        informers.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        let api: Api<K> = Api::all(self.client.clone());
        let slot = Arc::clone(&informer.writer);
        let deletions = Arc::clone(&informer.deletions);
        let reader = informer.store.clone();
        let ready = informer.store.clone();
        let wait: ReadyWait = Arc::new(move || {
            let ready = ready.clone();
            Box::pin(async move { synced(&ready).await })
        });
        self.synced.lock().push((K::kind(&()).to_string(), wait));
        let starter: Starter = Box::new(move || {
            let Some(writer) = slot.lock().take() else {
                return;
            };
            let mut subscribers = std::mem::take(&mut *deletions.lock());
            let kind = K::kind(&()).to_string();
            tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default())
                    .default_backoff()
                    // No controller reads managedFields; upstream's controller manager
                    // drops them from its caches too (they are often half of an object).
                    .modify(|obj| {
                        if let Some(fields) = obj.meta_mut().managed_fields.as_mut() {
                            fields.clear();
                            fields.shrink_to_fit();
                        }
                    })
                    .reflect_shared(writer)
                    .boxed();
                // The cache as it was when a relist began: whatever the relist does not
                // find again was deleted while the watch was down.
                let mut before_relist: Option<Vec<Arc<K>>> = None;
                while let Some(event) = events.next().await {
                    match event {
                        Err(e) => {
                            tracing::warn!(kind, error = %e, "informer watch failed; retrying")
                        }
                        Ok(_) if subscribers.is_empty() => {}
                        Ok(watcher::Event::Delete(obj)) => {
                            dispatch_deleted(&mut subscribers, Arc::new(obj)).await
                        }
                        Ok(watcher::Event::Init) => before_relist = Some(reader.state()),
                        Ok(watcher::Event::InitDone) => {
                            for old in before_relist.take().unwrap_or_default() {
                                let now = reader.get(&ObjectRef::from_obj(&*old));
                                if now.is_none_or(|n| n.meta().uid != old.meta().uid) {
                                    dispatch_deleted(&mut subscribers, old).await;
                                }
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        });
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            starter();
        } else {
            self.pending.lock().push(starter);
        }
        informer
    }

    /// Wait until every informer created so far has its first list in its cache
    /// (upstream's `WaitForCacheSync`).
    ///
    /// Call it from one task while nothing else waits on these caches, and start the
    /// users of the caches afterwards: kube-runtime's `Store::wait_until_ready` keeps
    /// only the latest waiter's waker, so of several tasks waiting on one store before
    /// it is ready all but one may never wake. Once this returns, every
    /// `wait_until_ready` on these stores completes at once.
    pub async fn wait_for_cache_sync(&self) {
        let waits: Vec<(String, ReadyWait)> = self.synced.lock().clone();
        for (kind, wait) in waits {
            if self.seen_synced.lock().contains(&kind) {
                continue;
            }
            if wait().await {
                self.seen_synced.lock().push(kind);
            } else {
                tracing::warn!(kind, "informer stopped before its cache synced");
            }
        }
    }

    /// The kinds `wait_for_cache_sync` has not seen synced (yet).
    pub fn unsynced(&self) -> Vec<String> {
        let seen = self.seen_synced.lock().clone();
        self.synced
            .lock()
            .iter()
            .map(|(kind, _)| kind.clone())
            .filter(|k| !seen.contains(k))
            .collect()
    }

    /// Start every informer created so far (and, from now on, each new one at once).
    pub fn start(&self) {
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let pending = std::mem::take(&mut *self.pending.lock());
        for start in pending {
            start();
        }
    }
}

/// Wait until `store` has its first full list; false if its writer is gone.
///
/// kube-runtime's `Store::wait_until_ready` keeps only the waker of the task that polled
/// it last (a oneshot receiver behind it), so of several tasks waiting on one shared
/// store one may never wake. Polling it again every 100 ms re-registers each waiter.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(ready) => return ready.is_ok(),
            Err(_) => continue,
        }
    }
}
