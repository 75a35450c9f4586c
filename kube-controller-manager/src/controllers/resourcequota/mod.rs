//! The resource quota controller (upstream `resourcequota`): every ResourceQuota's
//! `status.hard` mirrors its spec and `status.used` is recounted from the objects in
//! its namespace: when the quota changes, when pods, services, claims, config maps,
//! secrets or replication controllers in the namespace change or go, and every
//! `--resource-quota-sync-period`. The API server's quota admission charges writes as
//! they happen; this controller gives back what deletions freed and fills in new
//! quotas.

pub mod usage;

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use parking_lot::RwLock;

use self::usage::ResourceList;
use crate::context::Context;
use crate::controllers::util::discovery::{self, Discovered};
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "resourcequota-controller";
/// Counted objects watched as metadata only, to recount when they go.
const COUNTED: &[&str] = &["configmaps", "secrets", "replicationcontrollers"];

struct Controller {
    client: kube::Client,
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    discovered: RwLock<Discovered>,
}

enum Trigger {
    Quota(String),
    Namespace(String),
    All,
}

fn ns_of<K: kube::Resource>(o: &K) -> Option<Trigger> {
    o.meta().namespace.clone().map(Trigger::Namespace)
}

fn metadata_changes(client: kube::Client, plural: &'static str) -> BoxStream<'static, Trigger> {
    let ar = kube::discovery::ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: String::new(),
        plural: plural.into(),
    };
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|e| {
            futures::future::ready(match e {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => ns_of(&o),
                _ => None,
            })
        })
        .boxed()
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let quota_inf = ctx.informers.get::<ResourceQuota>();
    let pod_inf = ctx.informers.get::<Pod>();
    let svc_inf = ctx.informers.get::<Service>();
    let pvc_inf = ctx.informers.get::<PersistentVolumeClaim>();
    let mut streams: Vec<BoxStream<'static, Trigger>> = vec![
        triggers::changes(&quota_inf)?
            .filter_map(|q| {
                let key = q
                    .metadata
                    .namespace
                    .as_deref()
                    .zip(q.metadata.name.as_deref())
                    .map(|(ns, name)| Trigger::Quota(format!("{ns}/{name}")));
                futures::future::ready(key)
            })
            .boxed(),
        triggers::changes(&pod_inf)?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        pod_inf
            .subscribe_deletions()?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        triggers::changes(&svc_inf)?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        svc_inf
            .subscribe_deletions()?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        triggers::changes(&pvc_inf)?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        pvc_inf
            .subscribe_deletions()?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
        quota_inf
            .subscribe_deletions()?
            .filter_map(|o| futures::future::ready(ns_of(o.as_ref())))
            .boxed(),
    ];
    for plural in COUNTED {
        streams.push(metadata_changes(ctx.client.clone(), plural));
    }
    let period = ctx.options.resource_quota_sync_period;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    streams.push(
        stream::unfold(ticker, |mut t| async move {
            t.tick().await;
            Some((Trigger::All, t))
        })
        .boxed(),
    );
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        quotas: quota_inf.store().clone(),
        pods: pod_inf.store().clone(),
        services: svc_inf.store().clone(),
        claims: pvc_inf.store().clone(),
        discovered: RwLock::new(Discovered::default()),
    });
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(ctx.shutdown.clone());
    let workers = usize::from(ctx.options.concurrent_resource_quota_syncs);
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        let feeder = {
            let queue = Arc::clone(&queue);
            let controller = Arc::clone(&controller);
            async move {
                let mut all = stream::select_all(streams);
                while let Some(t) = all.next().await {
                    let keys: Vec<String> = match t {
                        Trigger::Quota(k) => vec![k],
                        Trigger::Namespace(ns) => controller.quota_keys(Some(&ns)),
                        Trigger::All => {
                            controller.refresh_discovery().await;
                            controller.quota_keys(None)
                        }
                    };
                    for k in keys {
                        queue.add(k);
                    }
                }
            }
        };
        let work = {
            let queue = Arc::clone(&queue);
            let controller = Arc::clone(&controller);
            async move {
                if !client::informers::synced(&controller.quotas).await
                    || !client::informers::synced(&controller.pods).await
                    || !client::informers::synced(&controller.services).await
                    || !client::informers::synced(&controller.claims).await
                {
                    return;
                }
                controller.refresh_discovery().await;
                tracing::info!(controller = NAME, "caches synced");
                for k in controller.quota_keys(None) {
                    queue.add(k);
                }
                run_workers(queue, workers, move |key| {
                    let controller = Arc::clone(&controller);
                    async move { controller.sync(&key).await }
                })
                .await
            }
        };
        tokio::select! {
            _ = feeder => {}
            _ = work => {}
            _ = shutdown.cancelled() => {}
        }
    }))
}

impl Controller {
    fn quota_keys(&self, ns: Option<&str>) -> Vec<String> {
        self.quotas
            .state()
            .iter()
            .filter(|q| ns.is_none() || q.metadata.namespace.as_deref() == ns)
            .filter_map(|q| {
                Some(format!(
                    "{}/{}",
                    q.metadata.namespace.as_deref()?,
                    q.metadata.name.as_deref()?
                ))
            })
            .collect()
    }

    async fn refresh_discovery(&self) {
        match discovery::preferred_resources(&self.client).await {
            Ok(d) => *self.discovered.write() = d,
            Err(e) => tracing::warn!(controller = NAME, error = %e, "discovery failed"),
        }
    }

    /// Objects of `group`/`plural` in `ns`.
    async fn count(&self, ns: &str, group: &str, plural: &str) -> Result<usize, kube::Error> {
        if group.is_empty() {
            match plural {
                "pods" => {
                    return Ok(self
                        .pods
                        .state()
                        .iter()
                        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                        .count())
                }
                "services" => {
                    return Ok(self
                        .services
                        .state()
                        .iter()
                        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                        .count())
                }
                "persistentvolumeclaims" => {
                    return Ok(self
                        .claims
                        .state()
                        .iter()
                        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                        .count())
                }
                "resourcequotas" => {
                    return Ok(self
                        .quotas
                        .state()
                        .iter()
                        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                        .count())
                }
                _ => {}
            }
        }
        let resource = self
            .discovered
            .read()
            .resources
            .iter()
            .find(|r| r.group == group && r.plural == plural && r.namespaced)
            .cloned();
        let Some(resource) = resource else {
            // Not served (yet): nothing to count.
            return Ok(0);
        };
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(self.client.clone(), ns, &resource.api_resource());
        Ok(api.list(&ListParams::default()).await?.items.len())
    }

    /// The quota's new `status.used`.
    async fn used(
        &self,
        quota: &ResourceQuota,
        ns: &str,
        wanted: &[String],
    ) -> Result<ResourceList, kube::Error> {
        let mut used = ResourceList::new();
        let pods = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns));
        let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        used.extend(usage::pods_usage(quota, &pods, wanted));
        if !usage::scoped(quota) {
            let services = self
                .services
                .state_filter(|s| s.metadata.namespace.as_deref() == Some(ns));
            let services: Vec<&Service> = services.iter().map(AsRef::as_ref).collect();
            used.extend(usage::services_usage(&services, wanted));
            let claims = self
                .claims
                .state_filter(|c| c.metadata.namespace.as_deref() == Some(ns));
            let claims: Vec<&PersistentVolumeClaim> = claims.iter().map(AsRef::as_ref).collect();
            used.extend(usage::claims_usage(&claims, wanted));
            for name in wanted {
                if used.contains_key(name) {
                    continue;
                }
                if let Some((group, plural)) = usage::count_target(name) {
                    let n = self.count(ns, &group, &plural).await?;
                    used.insert(name.clone(), usage::count_quantity(n));
                }
            }
        }
        // Every hard resource has a usage, zero when nothing is charged to it.
        for name in wanted {
            used.entry(name.clone())
                .or_insert_with(|| usage::count_quantity(0));
        }
        Ok(used)
    }

    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(quota) = self.quotas.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        let hard = usage::parse_list(quota.spec.as_ref().and_then(|s| s.hard.as_ref()));
        let wanted: Vec<String> = hard.keys().cloned().collect();
        let used = match self.used(&quota, ns, &wanted).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(controller = NAME, key, error = %e, "counting usage");
                return Outcome::Retry;
            }
        };
        let status = quota.status.as_ref();
        let old_hard = usage::parse_list(status.and_then(|s| s.hard.as_ref()));
        let old_used = usage::parse_list(status.and_then(|s| s.used.as_ref()));
        if usage::equal(&old_hard, &hard) && usage::equal(&old_used, &used) {
            return Outcome::Forget;
        }
        let to_api = |l: &ResourceList| {
            l.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity::from(v),
                    )
                })
                .collect()
        };
        let mut updated = (*quota).clone();
        let st = updated.status.get_or_insert_with(Default::default);
        st.hard = Some(to_api(&hard));
        st.used = Some(to_api(&used));
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Outcome::Forget,
            Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Forget,
            Err(e) => {
                tracing::debug!(controller = NAME, key, error = %e, "updating quota status; retrying");
                Outcome::Retry
            }
        }
    }
}
