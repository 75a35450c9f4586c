//! Shared informers: each resource type is listed and watched once per process, into one
//! cache that every controller reads, and whose changes every controller can subscribe
//! to (upstream's SharedInformerFactory). Built on kube-runtime's shared reflector.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ReflectHandle, Store};
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
}

impl<K> Clone for Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            writer: Arc::clone(&self.writer),
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
}

type Starter = Box<dyn FnOnce() + Send>;

/// The informers of one process: created on first use, watching once started.
pub struct SharedInformers {
    client: Client,
    informers: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    pending: Mutex<Vec<Starter>>,
    started: std::sync::atomic::AtomicBool,
}

impl SharedInformers {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(SharedInformers {
            client,
            informers: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            started: std::sync::atomic::AtomicBool::new(false),
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
        };
        informers.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        let api: Api<K> = Api::all(self.client.clone());
        let slot = Arc::clone(&informer.writer);
        let starter: Starter = Box::new(move || {
            let Some(writer) = slot.lock().take() else {
                return;
            };
            let kind = K::kind(&()).to_string();
            tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect_shared(writer)
                    .boxed();
                while let Some(event) = events.next().await {
                    if let Err(e) = event {
                        tracing::warn!(kind, error = %e, "informer watch failed; retrying");
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
