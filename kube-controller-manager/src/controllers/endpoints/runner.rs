//! The loop the endpoints and endpointslice controllers share: a work queue of service
//! keys (`namespace/name`), fed by changes and deletions of services, of pods (every
//! service of the pod's namespace is looked at, so a pod whose labels changed leaves
//! the services it no longer matches), of the controller's own objects, and a periodic
//! resync.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::informers::{AlreadyStarted, Informer};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::Resource;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

/// How often every service is looked at again.
const RESYNC: Duration = Duration::from_secs(60);

enum Trigger {
    Service(String),
    Namespace(String),
}

pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn key_of<K: Resource>(obj: &K) -> Option<String> {
    Some(format!(
        "{}/{}",
        obj.meta().namespace.as_deref()?,
        obj.meta().name.as_deref()?
    ))
}

/// A store's readiness as a boxed future (for [`ServiceController::run`]).
pub fn ready<K>(store: Store<K>) -> BoxFuture<'static, bool>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    Box::pin(async move { client::informers::synced(&store).await })
}

/// Service keys from changes and deletions of the controller's own objects.
pub fn owned_changes<K>(
    informer: &Informer<K>,
    key: fn(&K) -> Option<String>,
) -> Result<BoxStream<'static, String>, AlreadyStarted>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let changes = triggers::changes(informer)?;
    let deletions = informer.subscribe_deletions()?;
    Ok(stream::select(changes, deletions)
        .filter_map(move |o| futures::future::ready(key(&o)))
        .boxed())
}

pub struct ServiceController {
    pub services: Store<Service>,
    pub pods: Store<Pod>,
    /// Taken by `run` (behind a lock only so the controller can be shared).
    triggers: parking_lot::Mutex<Option<BoxStream<'static, Trigger>>>,
    queue: Arc<WorkQueue<String>>,
    shutdown: CancellationToken,
    name: &'static str,
}

impl ServiceController {
    pub fn new(
        ctx: &Context,
        name: &'static str,
        owned: BoxStream<'static, String>,
    ) -> Result<Self, AlreadyStarted> {
        let svc_informer = ctx.informers.get::<Service>();
        let pod_informer = ctx.informers.get::<Pod>();
        let services = stream::select(
            triggers::changes(&svc_informer)?,
            svc_informer.subscribe_deletions()?,
        )
        .filter_map(|s| futures::future::ready(key_of(s.as_ref()).map(Trigger::Service)));
        let pods = stream::select(
            triggers::changes(&pod_informer)?,
            pod_informer.subscribe_deletions()?,
        )
        .filter_map(|p| {
            futures::future::ready(p.metadata.namespace.clone().map(Trigger::Namespace))
        });
        let owned = owned.map(Trigger::Service);
        let all = stream::select(stream::select(services, pods), owned).boxed();
        Ok(ServiceController {
            services: svc_informer.store().clone(),
            pods: pod_informer.store().clone(),
            triggers: parking_lot::Mutex::new(Some(all)),
            queue: WorkQueue::new(ctx.shutdown.clone()),
            shutdown: ctx.shutdown.clone(),
            name,
        })
    }

    fn enqueue_namespace(&self, ns: &str) {
        for svc in self
            .services
            .state_filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        {
            if let Some(k) = key_of(svc.as_ref()) {
                self.queue.add(k);
            }
        }
    }

    /// Run `sync` for each queued service key on `workers` workers, once the service
    /// and pod caches and `also_ready` are ready.
    pub fn run<F, Fut>(
        self,
        workers: usize,
        also_ready: Vec<BoxFuture<'static, bool>>,
        sync: F,
    ) -> ControllerFuture
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        Box::pin(async move {
            let triggers = self
                .triggers
                .lock()
                .take()
                .unwrap_or_else(|| stream::empty().boxed());
            let this = Arc::new(self);
            let feeder = {
                let this = Arc::clone(&this);
                async move {
                    let mut triggers = triggers;
                    let mut resync = tokio::time::interval(RESYNC);
                    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            t = triggers.next() => match t {
                                Some(Trigger::Service(k)) => this.queue.add(k),
                                Some(Trigger::Namespace(ns)) => this.enqueue_namespace(&ns),
                                None => break,
                            },
                            _ = resync.tick() => {
                                for svc in this.services.state() {
                                    if let Some(k) = key_of(svc.as_ref()) {
                                        this.queue.add(k);
                                    }
                                }
                            }
                        }
                    }
                }
            };
            let work = {
                let this = Arc::clone(&this);
                async move {
                    if !client::informers::synced(&this.services).await
                        || !client::informers::synced(&this.pods).await
                    {
                        return;
                    }
                    for r in also_ready {
                        if !r.await {
                            return;
                        }
                    }
                    tracing::info!(controller = this.name, "caches synced");
                    for svc in this.services.state() {
                        if let Some(k) = key_of(svc.as_ref()) {
                            this.queue.add(k);
                        }
                    }
                    run_workers(Arc::clone(&this.queue), workers, sync).await
                }
            };
            let shutdown = this.shutdown.clone();
            tokio::select! {
                _ = feeder => {}
                _ = work => {}
                _ = shutdown.cancelled() => {}
            }
        })
    }
}
