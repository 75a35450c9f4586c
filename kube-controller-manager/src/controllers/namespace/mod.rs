//! The namespace controller (upstream `namespace`): a namespace being deleted keeps the
//! `kubernetes` finalizer in `spec.finalizers` until this controller has deleted every
//! namespaced object in it, resource by resource as discovery lists them
//! (deletecollection where supported, else one delete per object). Progress is reported
//! in the namespace's conditions with upstream's types, reasons and messages; while
//! objects remain (graceful pod termination, finalizers), the namespace is looked at
//! again after half the estimated time. Then the finalizer is removed through the
//! `namespaces/finalize` subresource and the API server deletes the namespace.

pub mod conditions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use serde_json::json;

use self::conditions::{ContentTotals, Updater};
use crate::context::Context;
use crate::controllers::util::discovery::{self, Resource};
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "namespace-controller";
/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// How often every namespace is looked at again (upstream's `--namespace-sync-period`).
const RESYNC: Duration = Duration::from_secs(300);
/// Assumed time for finalizers to complete (upstream's `finalizerEstimateSeconds`).
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let informer = ctx.informers.get::<Namespace>();
    let changes = triggers::changes(&informer)?;
    let store = informer.store().clone();
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(ctx.shutdown.clone());
    let client = ctx.client.clone();
    let workers = usize::from(ctx.options.concurrent_namespace_syncs);
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        let feeder = {
            let queue = Arc::clone(&queue);
            let store = store.clone();
            async move {
                let mut changes = std::pin::pin!(changes);
                let mut resync = tokio::time::interval(RESYNC);
                loop {
                    tokio::select! {
                        ns = changes.next() => match ns {
                            Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
                                if let Some(name) = ns.metadata.name.clone() {
                                    queue.add(name);
                                }
                            }
                            Some(_) => {}
                            None => break,
                        },
                        _ = resync.tick() => {
                            for ns in store.state() {
                                if ns.metadata.deletion_timestamp.is_some() {
                                    if let Some(name) = ns.metadata.name.clone() {
                                        queue.add(name);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        let work = {
            let queue = Arc::clone(&queue);
            async move {
                if !client::informers::synced(&store).await {
                    return;
                }
                tracing::info!(controller = NAME, "caches synced");
                run_workers(queue, workers, move |name| {
                    let client = client.clone();
                    async move { sync(client, &name).await }
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

async fn sync(client: kube::Client, name: &str) -> Outcome {
    match delete_namespace_content(&client, name).await {
        Ok(None) => Outcome::Forget,
        Ok(Some(estimate)) => {
            let secs = estimate / 2 + 1;
            tracing::debug!(
                controller = NAME,
                namespace = name,
                "content remains; looking again in {secs}s"
            );
            Outcome::After(Duration::from_secs(secs.unsigned_abs()))
        }
        Err(e) => {
            tracing::warn!(controller = NAME, namespace = name, error = %e, "deletion of namespace content failed");
            Outcome::Retry
        }
    }
}

/// Delete the content of namespace `name` if it is being deleted. `Some(seconds)` when
/// content remains for about that long; `None` when done (or nothing to do).
async fn delete_namespace_content(
    client: &kube::Client,
    name: &str,
) -> Result<Option<i64>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let mut updater = Updater::default();
    let mut errors: Vec<String> = Vec::new();
    let discovered = match discovery::preferred_resources(client).await {
        Ok(d) => d,
        Err(e) => {
            updater.discovery_failed(e.to_string());
            errors.push(e.to_string());
            Default::default()
        }
    };
    if let Some(msg) = discovered.error_message() {
        updater.discovery_failed(format!(
            "Discovery failed for some groups, {} failing: {msg}",
            discovered.failed.len()
        ));
        errors.push(msg);
    }
    let mut estimate = 0i64;
    let mut totals = ContentTotals::default();
    for r in discovered
        .resources
        .iter()
        .filter(|r| r.namespaced && r.supports("delete"))
    {
        match delete_all_of(client, r, name).await {
            Ok(meta) => {
                estimate = estimate.max(meta.estimate);
                if meta.remaining > 0 {
                    totals
                        .remaining
                        .insert((r.plural.clone(), r.group.clone()), meta.remaining);
                    for (f, n) in meta.finalizers {
                        *totals.finalizers.entry(f).or_default() += n;
                    }
                }
                if let Some(e) = meta.error {
                    updater.content_failed(e.clone());
                    errors.push(e);
                }
            }
            Err(e) => {
                updater.content_failed(e.to_string());
                errors.push(e.to_string());
            }
        }
    }
    updater.content_totals(&totals);
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let (conditions, changed) = updater.update(&old);
    if changed {
        let patch = json!({"status": {"conditions": conditions}});
        if let Err(e) = api
            .patch_status(name, &Default::default(), &kube::api::Patch::Merge(patch))
            .await
        {
            tracing::warn!(controller = NAME, namespace = name, error = %e, "couldn't update status conditions");
        }
    }
    if !errors.is_empty() {
        return Err(kube::Error::Service(errors.join("; ").into()));
    }
    if estimate > 0 {
        return Ok(Some(estimate));
    }
    // All content is gone: drop our finalizer.
    let mut finalized = ns.clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    match api
        .replace_subresource::<Namespace>("finalize", name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => {
            tracing::info!(
                controller = NAME,
                namespace = name,
                "namespace content deleted; finalized"
            );
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// What deleting one resource's objects left behind.
#[derive(Debug, Default)]
struct Leftover {
    estimate: i64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
    error: Option<String>,
}

async fn delete_all_of(
    client: &kube::Client,
    r: &Resource,
    namespace: &str,
) -> Result<Leftover, kube::Error> {
    let ar = r.api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let meta_api: Api<PartialObjectMeta<DynamicObject>> =
        Api::namespaced_with(client.clone(), namespace, &ar);
    let background = DeleteParams::background();
    let ignore =
        |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 405);
    if r.supports("deletecollection") {
        if let Err(e) = api
            .delete_collection(&background, &ListParams::default())
            .await
        {
            if !ignore(&e) {
                return Err(e);
            }
        }
    } else if r.supports("list") {
        let items = match meta_api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if ignore(&e) => Vec::new(),
            Err(e) => return Err(e),
        };
        for item in items {
            let Some(name) = item.metadata.name.as_deref() else {
                continue;
            };
            match api.delete(name, &background).await {
                Ok(_) => {}
                Err(e) if ignore(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if !r.supports("list") {
        return Ok(Leftover::default());
    }
    let items = match meta_api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) if ignore(&e) => return Ok(Leftover::default()),
        Err(e) => return Err(e),
    };
    Ok(leftover(r, namespace, &items))
}

/// What remains of one resource after deletion, and how long it should take to go.
fn leftover(r: &Resource, namespace: &str, items: &[PartialObjectMeta<DynamicObject>]) -> Leftover {
    let mut out = Leftover {
        remaining: items.len(),
        ..Default::default()
    };
    if items.is_empty() {
        return out;
    }
    // Pods terminate gracefully: wait about as long as their grace periods.
    if r.group.is_empty() && r.plural == "pods" {
        for p in items {
            let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(0);
            out.estimate = out.estimate.max(grace);
        }
    }
    for item in items {
        for f in item.metadata.finalizers.iter().flatten() {
            *out.finalizers.entry(f.clone()).or_default() += 1;
            out.estimate = out.estimate.max(FINALIZER_ESTIMATE_SECONDS);
        }
    }
    if out.estimate == 0 {
        out.error = Some(format!(
            "unexpected items still remain in namespace: {namespace} for gvr: {}/{}, Resource={}",
            r.group, r.version, r.plural
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pods() -> Resource {
        Resource {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespaced: true,
            verbs: vec!["list".into(), "delete".into(), "deletecollection".into()],
        }
    }

    fn item(grace: Option<i64>, finalizers: &[&str]) -> PartialObjectMeta<DynamicObject> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some("x".into()),
                deletion_grace_period_seconds: grace,
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    #[test]
    fn leftovers_estimate_grace_periods_and_finalizers() {
        assert_eq!(leftover(&pods(), "ns", &[]).remaining, 0);
        let l = leftover(&pods(), "ns", &[item(Some(30), &[]), item(Some(5), &[])]);
        assert_eq!((l.remaining, l.estimate, l.error.is_none()), (2, 30, true));
        let l = leftover(&pods(), "ns", &[item(None, &["a/b"]), item(None, &["a/b"])]);
        assert_eq!(l.estimate, FINALIZER_ESTIMATE_SECONDS);
        assert_eq!(l.finalizers.get("a/b"), Some(&2));
        let l = leftover(&pods(), "ns", &[item(None, &[])]);
        assert_eq!(
            l.error.as_deref(),
            Some("unexpected items still remain in namespace: ns for gvr: /v1, Resource=pods")
        );
    }
}
