//! ResourceQuota: a write that would take a namespace's usage past one of its
//! ResourceQuotas is refused, and admitted writes are charged to the quotas' status, as
//! upstream's `plugin/pkg/admission/resourcequota`.
//!
//! Upstream charges `status.used`, which the resourcequota controller keeps current
//! (it recounts after deletions and fills in new quotas). This plugin does not depend on
//! that controller:
//! - `status.used` is the ledger, charged with a compare-and-swap on the quota (as
//!   upstream), so that two writes cannot both fit in the same room;
//! - when the ledger is missing or stale (a new quota, `spec.hard` changed) or says a
//!   write does not fit, usage is recounted from the live objects, and the write is
//!   judged and charged against that count;
//! - a recount has to see writes that were admitted but are not stored yet: admitted
//!   writes are remembered for a moment (until they are seen in storage, at most
//!   [`SETTLE`]), and a recount waits for the ones still in flight. Writes are judged one
//!   at a time per namespace in this server.
//!
//! - a new or edited quota gets its `status` (hard and a recount of used) as soon as it
//!   is stored, as the controller's first sync would give it.
//!
//! A recount in one API server cannot see another server's in-flight writes; with
//! several servers the ledger path is exact and the recount path is not.

pub mod evaluator;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::StatusError;
use k8s_openapi::api::core::v1::ResourceQuota as Quota;
use serde_json::Value;

use crate::admission::resources::{self, ResourceList};
use crate::admission::{Admission, Attributes, Operation, Plugin};
use crate::object;
use crate::registry::store::{ListParams, RequestContext, Store, UpdateTarget};
use evaluator::Evaluator;

/// Stores by `(group, plural)`.
pub type StoreMap = HashMap<(String, String), Arc<Store>>;

/// How long an admitted write may take to reach storage before a recount stops waiting
/// for it.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How often in-flight writes are looked for.
const POLL: Duration = Duration::from_millis(20);

/// Attempts at charging quotas whose status changed under us (upstream: 3 retries).
const RETRIES: usize = 3;

/// An admitted write that may not be stored yet.
#[derive(Debug, Clone)]
struct Reservation {
    id: u64,
    evaluator: Evaluator,
    name: String,
    uid: String,
    /// The version an update was made against; empty for a create.
    base_version: String,
    at: Instant,
}

impl Reservation {
    /// Whether `live` (the stored object of that name) is this write, landed: the object
    /// it created, or the object it updated at a newer version.
    fn landed_as(&self, live: &Value) -> bool {
        object::uid(live) == self.uid
            && (self.base_version.is_empty() || object::resource_version(live) != self.base_version)
    }

    /// Whether `live` shows that this write never happened: the name belongs to another
    /// object.
    fn lost_to(&self, live: &Value) -> bool {
        object::uid(live) != self.uid
    }
}

type Pending = Arc<parking_lot::Mutex<HashMap<String, Vec<Reservation>>>>;

pub struct ResourceQuota {
    inner: Arc<Inner>,
}

/// The plugin's state, shared with its background tasks.
struct Inner {
    quotas: Arc<Store>,
    stores: StoreMap,
    /// One admission at a time per namespace.
    locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Admitted writes by namespace.
    pending: Pending,
    next_id: AtomicU64,
}

/// A quota that tracks the object under admission.
struct Tracking {
    quota: Quota,
    hard: ResourceList,
}

impl Tracking {
    fn name(&self) -> &str {
        self.quota.metadata.name.as_deref().unwrap_or_default()
    }

    /// `status.used` when it can be trusted for `names`: kept for the current
    /// `spec.hard` and holding every one of them.
    fn ledger(&self, names: &[String]) -> Option<ResourceList> {
        let status = self.quota.status.as_ref()?;
        let status_hard = resources::parse_list(status.hard.as_ref());
        if !resources::equals(&status_hard, &self.hard) {
            return None;
        }
        let used = resources::parse_list(status.used.as_ref());
        names.iter().all(|n| used.contains_key(n)).then_some(used)
    }
}

impl ResourceQuota {
    pub fn new(quotas: Arc<Store>, stores: StoreMap) -> Self {
        ResourceQuota {
            inner: Arc::new(Inner {
                quotas,
                stores,
                locks: parking_lot::Mutex::new(HashMap::new()),
                pending: Arc::new(parking_lot::Mutex::new(HashMap::new())),
                next_id: AtomicU64::new(0),
            }),
        }
    }
}

/// Poll for a write to reach storage: the stored object once `landed` says it is the
/// write, `None` if another object took the name or [`SETTLE`] passed.
async fn wait_for_write(
    store: &Store,
    namespace: &str,
    name: &str,
    landed: impl Fn(&Value) -> Option<bool>,
) -> Option<Value> {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if let Ok(live) = store.get(namespace, name).await {
            match landed(&live) {
                Some(true) => return Some(live),
                Some(false) => return None,
                None => {}
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

impl Inner {
    fn namespace_lock(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock();
        // Forget namespaces nobody is admitting into.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(namespace.to_string()).or_default())
    }

    async fn list_quotas(&self, namespace: &str) -> Result<Vec<Quota>, StatusError> {
        Ok(self
            .quotas
            .list_cached(Some(namespace))
            .await?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }

    /// The quota's usage counted from the live objects of the namespace, for every hard
    /// resource some kind answers for (upstream's `CalculateUsage`).
    async fn recount(&self, namespace: &str, t: &Tracking) -> Result<ResourceList, StatusError> {
        loop {
            let (usage, in_flight) = self.measure(namespace, t).await?;
            let wait_until = in_flight.iter().map(|r| r.at + SETTLE).max();
            match wait_until {
                Some(until) if Instant::now() < until => tokio::time::sleep(POLL).await,
                _ => {
                    // What is still not stored is not coming.
                    let ids: Vec<u64> = in_flight.iter().map(|r| r.id).collect();
                    self.forget(namespace, &ids);
                    return Ok(usage);
                }
            }
        }
    }

    /// One count, and the admitted writes it does not show yet.
    async fn measure(
        &self,
        namespace: &str,
        t: &Tracking,
    ) -> Result<(ResourceList, Vec<Reservation>), StatusError> {
        let mut owners: Vec<Evaluator> =
            t.hard.keys().filter_map(|n| Evaluator::owning(n)).collect();
        owners.sort();
        owners.dedup();
        let selectors = evaluator::scope_selectors(&t.quota);
        let pending = self.pending_in(namespace);
        let mut usage = ResourceList::new();
        let mut in_flight = Vec::new();
        let mut resolved = Vec::new();
        for ev in owners {
            let names = ev.matching_resources(t.hard.keys());
            for name in &names {
                usage.insert(name.clone(), resources::zero());
            }
            let Some(store) = self.stores.get(&ev.group_resource()) else {
                continue;
            };
            let items = store
                .list(Some(namespace), &ListParams::default())
                .await?
                .items;
            for item in &items {
                if selectors.iter().all(|s| ev.matches_scope(s, item)) {
                    resources::add_all(&mut usage, &resources::mask(&ev.usage(item), &names));
                }
            }
            for r in pending.iter().filter(|r| r.evaluator == ev) {
                match items.iter().find(|i| object::name(i) == r.name) {
                    Some(live) if r.landed_as(live) || r.lost_to(live) => resolved.push(r.id),
                    _ => in_flight.push(r.clone()),
                }
            }
        }
        self.forget(namespace, &resolved);
        Ok((usage, in_flight))
    }

    /// The namespace's admitted writes that may still be in flight.
    fn pending_in(&self, namespace: &str) -> Vec<Reservation> {
        let mut pending = self.pending.lock();
        let Some(list) = pending.get_mut(namespace) else {
            return Vec::new();
        };
        list.retain(|r| r.at.elapsed() < SETTLE);
        let out = list.clone();
        if list.is_empty() {
            pending.remove(namespace);
        }
        out
    }

    fn forget(&self, namespace: &str, ids: &[u64]) {
        forget(&self.pending, namespace, ids);
    }

    /// Remember an admitted write until it is seen in storage.
    fn reserve(&self, evaluator: &Evaluator, namespace: &str, obj: &Value) {
        let Some(store) = self.stores.get(&evaluator.group_resource()).cloned() else {
            return;
        };
        let r = Reservation {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            evaluator: evaluator.clone(),
            name: object::name(obj).to_string(),
            uid: object::uid(obj).to_string(),
            base_version: object::resource_version(obj).to_string(),
            at: Instant::now(),
        };
        self.pending
            .lock()
            .entry(namespace.to_string())
            .or_default()
            .push(r.clone());
        // Watch for the write to land, so that a recount soon after does not wait for
        // an object that was stored and already deleted again.
        let pending = Arc::clone(&self.pending);
        let namespace = namespace.to_string();
        tokio::spawn(async move {
            wait_for_write(&store, &namespace, &r.name, |live| {
                (r.landed_as(live) || r.lost_to(live)).then_some(true)
            })
            .await;
            forget(&pending, &namespace, &[r.id]);
        });
    }

    /// Once a created or edited quota is stored, give it the status the controller's
    /// first sync would: `hard` from the spec and `used` recounted.
    fn sync_when_stored(self: &Arc<Self>, namespace: &str, quota: &Value) {
        let inner = Arc::clone(self);
        let namespace = namespace.to_string();
        let (name, uid) = (
            object::name(quota).to_string(),
            object::uid(quota).to_string(),
        );
        let base_version = object::resource_version(quota).to_string();
        tokio::spawn(async move {
            let landed = |live: &Value| {
                if object::uid(live) != uid {
                    return Some(false);
                }
                (base_version.is_empty() || object::resource_version(live) != base_version)
                    .then_some(true)
            };
            if wait_for_write(&inner.quotas, &namespace, &name, landed)
                .await
                .is_none()
            {
                return;
            }
            let lock = inner.namespace_lock(&namespace);
            let _serialized = lock.lock().await;
            // Read again under the lock: an admission may have charged it meanwhile.
            let Some(quota) = inner
                .quotas
                .get(&namespace, &name)
                .await
                .ok()
                .and_then(|v| serde_json::from_value::<Quota>(v).ok())
            else {
                return;
            };
            let hard = resources::parse_list(quota.spec.as_ref().and_then(|s| s.hard.as_ref()));
            let t = Tracking { quota, hard };
            let tracked: Vec<String> = t
                .hard
                .keys()
                .filter(|n| Evaluator::owning(n).is_some())
                .cloned()
                .collect();
            if t.ledger(&tracked).is_some() {
                return;
            }
            let result = match inner.recount(&namespace, &t).await {
                Ok(used) => inner.charge(&namespace, &t, &used).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::debug!(quota = %name, namespace = %namespace, error = %e, "quota status not filled in");
            }
        });
    }

    /// Judge the write against every quota of the namespace and charge the ones that
    /// track it.
    async fn check(
        &self,
        attrs: &Attributes,
        ev: &Evaluator,
        obj: &Value,
        mut quotas: Vec<Quota>,
    ) -> Result<(), StatusError> {
        let mut charged = false;
        for attempt in 0..RETRIES {
            let charges = self.evaluate(attrs, ev, obj, &quotas).await?;
            if charges.is_empty() || attrs.dry_run {
                if charged {
                    self.reserve(ev, &attrs.namespace, obj);
                }
                return Ok(());
            }
            let mut failed = Vec::new();
            let mut last_error = None;
            for (t, used) in &charges {
                match self.charge(&attrs.namespace, t, used).await {
                    Ok(()) => charged = true,
                    Err(e) => {
                        failed.push(t.name().to_string());
                        last_error = Some(e);
                    }
                }
            }
            if failed.is_empty() {
                self.reserve(ev, &attrs.namespace, obj);
                return Ok(());
            }
            // Judge again against the new state of the quotas that changed under us.
            if attempt + 1 == RETRIES {
                return Err(
                    last_error.unwrap_or_else(|| StatusError::internal("quota update failed"))
                );
            }
            quotas = self
                .list_quotas(&attrs.namespace)
                .await?
                .into_iter()
                .filter(|q| q.metadata.name.as_ref().is_some_and(|n| failed.contains(n)))
                .collect();
        }
        Ok(())
    }

    /// The new `status.used` of each quota the write is charged to, or why it does not
    /// fit (upstream's `CheckRequest`).
    async fn evaluate(
        &self,
        attrs: &Attributes,
        ev: &Evaluator,
        obj: &Value,
        quotas: &[Quota],
    ) -> Result<Vec<(Tracking, ResourceList)>, StatusError> {
        let mut tracking = Vec::new();
        for quota in quotas {
            let hard = resources::parse_list(quota.spec.as_ref().and_then(|s| s.hard.as_ref()));
            if !ev.matches(quota, &hard, obj) {
                continue;
            }
            let t = Tracking {
                quota: quota.clone(),
                hard,
            };
            let restricted = ev.matching_resources(t.hard.keys());
            if let Some(msg) = ev.constraints(&restricted, obj) {
                return Err(attrs.forbidden(format!("failed quota: {}: {msg}", t.name())));
            }
            tracking.push(t);
        }

        let mut delta = ev.usage(obj);
        let negative = resources::negative(&delta);
        if !negative.is_empty() {
            return Err(attrs.forbidden(format!(
                "quota usage is negative for resource(s): {}",
                negative.join(",")
            )));
        }
        if attrs.operation == Operation::Update {
            let Some(old) = attrs.old_object.as_ref() else {
                return Err(attrs.forbidden(
                    "unable to get previous usage since prior version of object was not found",
                ));
            };
            // An update that creates the object is charged in full.
            if !object::resource_version(old).is_empty() {
                delta = resources::subtract_non_negative(&delta, &ev.usage(old));
            }
        }
        if resources::is_zero(&delta) {
            return Ok(Vec::new());
        }

        let mut charges = Vec::new();
        for t in tracking {
            let requested = resources::mask(&delta, t.hard.keys());
            if requested.is_empty() {
                continue;
            }
            let requested_names: Vec<String> = requested.keys().cloned().collect();
            // Upstream wants usage for everything the kind answers for.
            let mut needed = ev.matching_resources(t.hard.keys());
            needed.extend(requested_names.iter().cloned());
            let (mut used, mut recounted) = match t.ledger(&needed) {
                Some(used) => (used, false),
                None => (self.recount(&attrs.namespace, &t).await?, true),
            };
            loop {
                let new_used = resources::add(&used, &requested);
                let exceeded =
                    resources::exceeded(&resources::mask(&new_used, &requested_names), &t.hard);
                if exceeded.is_empty() {
                    charges.push((t, new_used));
                    break;
                }
                if !recounted {
                    // The ledger may still hold what was deleted since.
                    used = self.recount(&attrs.namespace, &t).await?;
                    recounted = true;
                    continue;
                }
                return Err(attrs.forbidden(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    t.name(),
                    resources::pretty_print(&resources::mask(&requested, &exceeded)),
                    resources::pretty_print(&resources::mask(&used, &exceeded)),
                    resources::pretty_print(&resources::mask(&t.hard, &exceeded)),
                )));
            }
        }
        Ok(charges)
    }

    /// Write the quota's new status if it is still the version judged.
    async fn charge(
        &self,
        namespace: &str,
        t: &Tracking,
        used: &ResourceList,
    ) -> Result<(), StatusError> {
        let judged_rv = t
            .quota
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let status = serde_json::json!({
            "hard": resources::to_api(&t.hard),
            "used": resources::to_api(&resources::mask(used, t.hard.keys())),
        });
        let resource = self.quotas.info().group_resource();
        let name = t.name().to_string();
        // The store's update callback has the store's error type.
        #[allow(clippy::result_large_err)]
        let update = |current: Option<&Value>| {
            let current = current.ok_or_else(|| StatusError::not_found(&resource, &name))?;
            if object::resource_version(current) != judged_rv {
                return Err(StatusError::object_modified(&resource, &name));
            }
            let mut new = current.clone();
            if let Some(map) = new.as_object_mut() {
                map.insert("status".into(), status.clone());
            }
            Ok(new)
        };
        self.quotas
            .update_with(
                namespace,
                &name,
                UpdateTarget::Status,
                false,
                &RequestContext::default(),
                // Charging a quota is not itself subject to admission.
                &Admission::default(),
                update,
            )
            .await
            .map(|_| ())
    }
}

fn forget(pending: &Pending, namespace: &str, ids: &[u64]) {
    if ids.is_empty() {
        return;
    }
    let mut pending = pending.lock();
    if let Some(list) = pending.get_mut(namespace) {
        list.retain(|r| !ids.contains(&r.id));
        if list.is_empty() {
            pending.remove(namespace);
        }
    }
}

#[async_trait::async_trait]
impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    async fn validate(&self, attrs: &Attributes) -> Result<(), StatusError> {
        if attrs.subresource.is_some()
            || attrs.namespace.is_empty()
            || !attrs.resource.namespaced
            || !matches!(attrs.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let Some(ev) = Evaluator::for_resource(attrs.resource.group, attrs.resource.plural) else {
            return Ok(());
        };
        let Some(obj) = attrs.object.as_ref() else {
            return Ok(());
        };
        let inner = &self.inner;
        if attrs.is("", "resourcequotas") && !attrs.dry_run {
            inner.sync_when_stored(&attrs.namespace, obj);
        }
        if !ev.handles(attrs) {
            return Ok(());
        }
        // Most writes are tracked by no quota; they need not wait for the others.
        let tracked = |quotas: &[Quota]| {
            quotas.iter().any(|q| {
                let hard = resources::parse_list(q.spec.as_ref().and_then(|s| s.hard.as_ref()));
                ev.matches(q, &hard, obj)
            })
        };
        if !tracked(&inner.list_quotas(&attrs.namespace).await?) {
            return Ok(());
        }
        let lock = inner.namespace_lock(&attrs.namespace);
        let _serialized = lock.lock().await;
        let quotas = inner.list_quotas(&attrs.namespace).await?;
        if !tracked(&quotas) {
            return Ok(());
        }
        inner.check(attrs, &ev, obj, quotas).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests;
