//! The disruption controller (upstream `disruption`): keeps each PodDisruptionBudget's
//! status current — `expectedPods`, `currentHealthy`, `desiredHealthy`,
//! `disruptionsAllowed`, `observedGeneration`, the `DisruptedPods` the API server
//! recorded for evictions still under way, and the `DisruptionAllowed` condition
//! (`SufficientPods` / `InsufficientPods`, `SyncFailed` when the expected count cannot
//! be worked out). With `minAvailable` as a number the selected pods are the expected
//! count; with a percentage or `maxUnavailable` the expected count is the sum of the
//! replicas of the pods' controllers, read from their scale subresource (a ReplicaSet
//! owned by a Deployment counts as the Deployment).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::labels::Selector;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::RwLock;

use crate::context::Context;
use crate::controllers::util::discovery::{self, Discovered};
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::refs::controller_of;
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;
use client::events::EventSink;

pub const NAME: &str = "disruption-controller";
pub const CONDITION: &str = "DisruptionAllowed";
/// How long an eviction recorded in `disruptedPods` is waited for (upstream's
/// `DeletionTimeout`).
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
const RESYNC: Duration = Duration::from_secs(30);

struct Controller {
    client: kube::Client,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    events: EventSink,
    discovered: RwLock<Discovered>,
}

#[derive(Debug, thiserror::Error)]
enum ScaleError {
    #[error("found no controller ref for pod {0:?}")]
    NoControllerRef(String),
    #[error("unable to get REST mapping for {0}")]
    NoMapping(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let pdb_inf = ctx.informers.get::<PodDisruptionBudget>();
    let pod_inf = ctx.informers.get::<Pod>();
    let key = |ns: Option<&str>, name: Option<&str>| Some(format!("{}/{}", ns?, name?));
    let pdb_changes = triggers::changes(&pdb_inf)?
        .filter_map(move |p| {
            futures::future::ready(
                key(p.metadata.namespace.as_deref(), p.metadata.name.as_deref()).map(Err),
            )
        })
        .boxed();
    let pod_changes = stream::select(triggers::changes(&pod_inf)?, pod_inf.subscribe_deletions()?)
        .filter_map(|p| futures::future::ready(p.metadata.namespace.clone().map(Ok)))
        .boxed();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        pdbs: pdb_inf.store().clone(),
        pods: pod_inf.store().clone(),
        events: ctx.events("controllermanager"),
        discovered: RwLock::new(Discovered::default()),
    });
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(ctx.shutdown.clone());
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        let feeder = {
            let queue = Arc::clone(&queue);
            let controller = Arc::clone(&controller);
            async move {
                // Ok(namespace) from pods, Err(key) from budgets.
                let mut all = stream::select(pdb_changes, pod_changes);
                let mut resync = tokio::time::interval(RESYNC);
                loop {
                    tokio::select! {
                        t = all.next() => match t {
                            Some(Err(key)) => queue.add(key),
                            Some(Ok(ns)) => for k in controller.keys(Some(&ns)) { queue.add(k) },
                            None => break,
                        },
                        _ = resync.tick() => for k in controller.keys(None) { queue.add(k) },
                    }
                }
            }
        };
        let work = {
            let queue = Arc::clone(&queue);
            let controller = Arc::clone(&controller);
            async move {
                if !client::informers::synced(&controller.pdbs).await
                    || !client::informers::synced(&controller.pods).await
                {
                    return;
                }
                tracing::info!(controller = NAME, "caches synced");
                run_workers(queue, 2, move |key| {
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

/// `value` of `total` (a number, or a percentage rounded up or down), as upstream's
/// `GetScaledValueFromIntOrPercent`.
pub fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let prod = pct * i64::from(total);
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            i32::try_from(v).ok()
        }
    }
}

/// Whether the budget needs its controllers' scale to count expected pods.
fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// (expectedPods, desiredHealthy) from the budget, the number of selected pods, and
/// (when [`needs_scale`]) the controllers' replicas.
pub fn expected_and_desired(pdb: &PodDisruptionBudget, pods: i32, scale: i32) -> (i32, i32) {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let unavailable = scaled(max, scale, true).unwrap_or(0);
        return (scale, (scale - unavailable).max(0));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(n)) => (pods, *n),
        Some(min @ IntOrString::String(_)) => (scale, scaled(min, scale, true).unwrap_or(0)),
        None => (0, 0),
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn condition(
    old: Option<&Condition>,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
) -> Condition {
    let keep_time = old
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: keep_time.unwrap_or_else(|| Time(jiff::Timestamp::now())),
    }
}

impl Controller {
    fn keys(&self, ns: Option<&str>) -> Vec<String> {
        self.pdbs
            .state()
            .iter()
            .filter(|p| ns.is_none() || p.metadata.namespace.as_deref() == ns)
            .filter_map(|p| {
                Some(format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref()?,
                    p.metadata.name.as_deref()?
                ))
            })
            .collect()
    }

    fn pdb_ref(pdb: &PodDisruptionBudget) -> ObjectReference {
        ObjectReference {
            api_version: Some("policy/v1".into()),
            kind: Some("PodDisruptionBudget".into()),
            namespace: pdb.metadata.namespace.clone(),
            name: pdb.metadata.name.clone(),
            uid: pdb.metadata.uid.clone(),
            ..Default::default()
        }
    }

    /// The replicas of the controllers of `pods`, each counted once.
    async fn controllers_scale(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, ScaleError> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in pods {
            let Some(cref) = controller_of(&pod.metadata) else {
                return Err(ScaleError::NoControllerRef(
                    pod.metadata.name.clone().unwrap_or_default(),
                ));
            };
            if !seen.insert(cref.uid.clone()) {
                continue;
            }
            // A ReplicaSet of a Deployment: the Deployment's replicas count.
            if cref.kind == "ReplicaSet" && cref.api_version.starts_with("apps/") {
                let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                if let Some(rs) = rs_api.get_opt(&cref.name).await? {
                    if let Some(d) = controller_of(&rs.metadata).filter(|d| d.kind == "Deployment")
                    {
                        if !seen.insert(d.uid.clone()) {
                            continue;
                        }
                        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                        let scale = d_api.get_scale(&d.name).await?;
                        total += scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                        continue;
                    }
                }
            }
            if self.discovered.read().resources.is_empty() {
                if let Ok(d) = discovery::preferred_resources(&self.client).await {
                    *self.discovered.write() = d;
                }
            }
            let resource = self
                .discovered
                .read()
                .for_kind(&cref.api_version, &cref.kind)
                .cloned()
                .ok_or_else(|| {
                    ScaleError::NoMapping(format!("{}/{}", cref.api_version, cref.kind))
                })?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &resource.api_resource());
            let scale = api.get_scale(&cref.name).await?;
            total += scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        }
        Ok(total)
    }

    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(pdb) = self.pdbs.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        let spec = pdb.spec.clone().unwrap_or_default();
        // policy/v1: an empty selector selects every pod, a missing one none.
        let selector = match spec.selector.as_ref().map(Selector::from_label_selector) {
            Some(Ok(s)) => Some(s),
            _ => None,
        };
        let pods: Vec<Arc<Pod>> = match &selector {
            Some(sel) => self.pods.state_filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && sel.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
            }),
            None => Vec::new(),
        };
        if pods.is_empty() {
            self.events.normal(
                Self::pdb_ref(&pdb),
                "NoPods",
                "Sync",
                "No matching pods found".into(),
            );
        }
        let generation = pdb.metadata.generation.unwrap_or(0);
        let old = pdb.status.clone().unwrap_or_default();
        let old_condition = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == CONDITION);
        let scale = if needs_scale(&pdb) {
            match self.controllers_scale(ns, &pods).await {
                Ok(s) => Some(s),
                Err(e) => {
                    self.events.warning(
                        Self::pdb_ref(&pdb),
                        "CalculateExpectedPodCountFailed",
                        "Sync",
                        format!("Failed to calculate the number of expected pods: {e}"),
                    );
                    // Fail safe: no disruptions while the budget cannot be judged.
                    let mut status = old.clone();
                    status.disruptions_allowed = 0;
                    status.observed_generation = Some(generation);
                    status.conditions = Some(vec![condition(
                        old_condition,
                        "False",
                        "SyncFailed",
                        &e.to_string(),
                        generation,
                    )]);
                    self.write(&pdb, status).await;
                    return Outcome::Retry;
                }
            }
        } else {
            None
        };
        let n = i32::try_from(pods.len()).unwrap_or(i32::MAX);
        let (expected, desired) = expected_and_desired(&pdb, n, scale.unwrap_or(0));
        // Evictions under way: the pod is not counted until it is gone, or until the
        // API server's record is older than the deletion timeout.
        let now = jiff::Timestamp::now();
        let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
        let mut disrupted = BTreeMap::new();
        let mut next_check: Option<jiff::Timestamp> = None;
        for (pod_name, at) in old.disrupted_pods.clone().unwrap_or_default() {
            let live = pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(pod_name.as_str())
                    && p.metadata.deletion_timestamp.is_none()
            });
            let expires = at.0 + timeout;
            if live && expires > now {
                next_check = Some(next_check.map_or(expires, |n: jiff::Timestamp| n.min(expires)));
                disrupted.insert(pod_name, at);
            }
        }
        let healthy = pods
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && is_ready(p)
                    && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default())
            })
            .count();
        let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 {
            allowed = 0;
        }
        let cond = if allowed > 0 {
            condition(old_condition, "True", "SufficientPods", "", generation)
        } else {
            condition(old_condition, "False", "InsufficientPods", "", generation)
        };
        let mut conditions: Vec<Condition> = old
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.type_ != CONDITION)
            .cloned()
            .collect();
        conditions.push(cond);
        let status = PodDisruptionBudgetStatus {
            current_healthy: healthy,
            desired_healthy: desired,
            disruptions_allowed: allowed,
            expected_pods: expected,
            observed_generation: Some(generation),
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            conditions: Some(conditions),
        };
        if status != old && !self.write(&pdb, status).await {
            return Outcome::Retry;
        }
        match next_check {
            Some(t) => {
                let wait = t.duration_since(now).unsigned_abs() + Duration::from_secs(1);
                Outcome::After(wait)
            }
            None => Outcome::Forget,
        }
    }

    async fn write(&self, pdb: &PodDisruptionBudget, status: PodDisruptionBudgetStatus) -> bool {
        let mut updated = pdb.clone();
        updated.status = Some(status);
        let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
        let name = pdb.metadata.name.as_deref().unwrap_or_default();
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 404 => true,
            Err(e) => {
                tracing::debug!(controller = NAME, name, error = %e, "updating budget status; retrying");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn percentages_round_up_as_upstream() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 5, true), Some(3));
        assert_eq!(
            scaled(&IntOrString::String("50%".into()), 5, false),
            Some(2)
        );
        assert_eq!(scaled(&IntOrString::Int(2), 5, true), Some(2));
        assert_eq!(scaled(&IntOrString::String("x".into()), 5, true), None);
    }

    #[test]
    fn expected_and_desired_follow_the_budget_kind() {
        // minAvailable number: the selected pods are expected.
        let p = pdb(Some(IntOrString::Int(2)), None);
        assert!(!needs_scale(&p));
        assert_eq!(expected_and_desired(&p, 3, 0), (3, 2));
        // minAvailable percent: the controllers' replicas, rounded up.
        let p = pdb(Some(IntOrString::String("50%".into())), None);
        assert!(needs_scale(&p));
        assert_eq!(expected_and_desired(&p, 3, 5), (5, 3));
        // maxUnavailable: replicas minus the unavailable allowance.
        let p = pdb(None, Some(IntOrString::Int(1)));
        assert_eq!(expected_and_desired(&p, 3, 4), (4, 3));
        let p = pdb(None, Some(IntOrString::String("10%".into())));
        assert_eq!(expected_and_desired(&p, 3, 4), (4, 3));
        let p = pdb(None, Some(IntOrString::Int(9)));
        assert_eq!(expected_and_desired(&p, 3, 4), (4, 0));
    }
}
