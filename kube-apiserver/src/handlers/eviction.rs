//! `pods/eviction`: a delete that respects PodDisruptionBudgets (upstream's
//! `pkg/registry/core/pod/storage/eviction.go`), which `kubectl drain` uses.
//!
//! A pod that is not running (pending, finished, or already terminating) is deleted
//! without looking at budgets. Otherwise the single budget selecting the pod must allow a
//! disruption: it is decremented (and the pod recorded in `status.disruptedPods`, so the
//! disruption controller does not count it while it goes away) before the pod gets the
//! `DisruptionTarget` condition and is deleted. A budget that allows none, or that the
//! disruption controller has not yet observed, answers 429 TooManyRequests.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::errors::GroupResource;
use apimachinery::{labels, StatusError, StatusReason};
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Value};

use crate::admission::Admission;
use crate::apiserver::ApiServer;
use crate::handlers::resource::ResourceRequest;
use crate::handlers::{json_response, Reply};
use crate::negotiation::{self, BodyType, Output};
use crate::object;
use crate::registry::store::{DeleteParams, ListParams, RequestContext, Store, UpdateTarget};

/// How often a conflicting write is tried again (upstream's `EvictionsRetry` steps).
const RETRIES: usize = 20;
/// Pause between those tries; upstream waits 500ms, a conflict here clears faster.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Evictions the disruption controller has not confirmed yet, beyond which more are
/// refused (upstream's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

pub async fn handle(
    server: &Arc<ApiServer>,
    store: &Arc<Store>,
    namespace: &str,
    req: &ResourceRequest<'_>,
    ctx: &RequestContext,
) -> Result<Reply, StatusError> {
    if req.info.verb != "create" {
        return Err(StatusError::method_not_supported(
            &store.info().group_resource(),
            &req.info.verb,
        ));
    }
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let yaml = match negotiation::body_type(content_type)? {
        BodyType::Json => false,
        BodyType::Yaml => true,
        other => {
            return Err(StatusError::unsupported_media_type(&format!("{other:?}")));
        }
    };
    let eviction = negotiation::decode(&req.body, yaml)?;
    let pdbs = server.registry.get("policy", "v1", "poddisruptionbudgets");
    evict(
        store,
        pdbs.map(Arc::as_ref),
        namespace,
        &req.info.name,
        &eviction,
        ctx,
        &server.admission,
    )
    .await?;
    let output = if req.output == Output::Yaml {
        Output::Yaml
    } else {
        Output::Json
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    Ok(json_response(StatusCode::CREATED, &body, output))
}

/// The delete options an Eviction carries.
struct EvictionOptions {
    params: DeleteParams,
    dry_run: bool,
}

fn eviction_options(
    eviction: &Value,
    name: &str,
    ctx: &RequestContext,
) -> Result<EvictionOptions, StatusError> {
    if let Some(kind) = eviction.get("kind").and_then(Value::as_str) {
        if kind != "Eviction" {
            return Err(StatusError::bad_request(format!(
                "not a Eviction object: {kind}"
            )));
        }
    }
    if object::name(eviction) != name {
        return Err(StatusError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or(Value::Null);
    let body_dry_run: Vec<String> = opts
        .get("dryRun")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let query_dry_run: Vec<String> = if ctx.dry_run {
        vec!["All".into()]
    } else {
        Vec::new()
    };
    if !body_dry_run.is_empty() && !query_dry_run.is_empty() && body_dry_run != query_dry_run {
        return Err(StatusError::bad_request(format!(
            "Non-matching dry-run options in request and content: [{}] and [{}]",
            query_dry_run.join(" "),
            body_dry_run.join(" ")
        )));
    }
    let pre = opts.get("preconditions");
    let pre_str = |field: &str| {
        pre.and_then(|p| p.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(EvictionOptions {
        params: DeleteParams {
            grace_period_seconds: opts
                .get("gracePeriodSeconds")
                .and_then(Value::as_i64)
                .map(|g| g.max(0)),
            precondition_uid: pre_str("uid"),
            precondition_resource_version: pre_str("resourceVersion"),
            propagation_policy: opts
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
            orphan_dependents: opts.get("orphanDependents").and_then(Value::as_bool),
            dry_run: body_dry_run.iter().any(|d| d == "All"),
        },
        dry_run: ctx.dry_run || body_dry_run.iter().any(|d| d == "All"),
    })
}

/// Evict pod `name`: delete it if its disruption budget allows.
pub async fn evict(
    pods: &Store,
    pdbs: Option<&Store>,
    namespace: &str,
    name: &str,
    eviction: &Value,
    ctx: &RequestContext,
    admission: &Admission,
) -> Result<(), StatusError> {
    let opts = eviction_options(eviction, name, ctx)?;
    let ctx = RequestContext {
        dry_run: opts.dry_run,
        ..ctx.clone()
    };
    let user_rv = opts.params.precondition_resource_version.is_some();

    // Pods that are not running can go without asking any budget.
    let mut attempt = 0;
    let pod = loop {
        let raw = pods.get(namespace, name).await?;
        let pod: Pod = typed(&raw)?;
        if !can_ignore_budgets(&pod) {
            break pod;
        }
        let mut params = opts.params.clone();
        if should_enforce_resource_version(&pod) && !user_rv {
            params.precondition_resource_version = Some(object::resource_version(&raw).into());
        }
        match delete_pod(pods, namespace, name, params, &ctx, admission).await {
            Err(e) if e.is_conflict() && !user_rv && attempt < RETRIES => {
                attempt += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => return other,
        }
    };

    let mut params = opts.params.clone();
    let mut pinned_to_pod_version = false;
    let mut budget_name = String::new();
    if let Some(pdb_store) = pdbs {
        let budgets = matching_budgets(pdb_store, &pod).await?;
        if budgets.len() > 1 {
            return Err(StatusError::new(
                500,
                StatusReason::Unknown,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = budgets.into_iter().next() {
            budget_name = pdb.metadata.name.clone().unwrap_or_default();
            let status = pdb.status.clone().unwrap_or_default();
            let spec = pdb.spec.clone().unwrap_or_default();
            // An unready pod does not count as healthy; deleting it disrupts nothing when
            // the budget is met anyway (or the budget says unhealthy pods may always go).
            let unhealthy_may_go = !is_pod_ready(&pod)
                && (spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow")
                    || (status.current_healthy >= status.desired_healthy
                        && status.desired_healthy > 0));
            if unhealthy_may_go {
                pinned_to_pod_version = true;
            } else {
                check_and_decrement(pdb_store, namespace, name, &budget_name, &ctx, admission)
                    .await?;
            }
        }
    }
    if pinned_to_pod_version {
        // The pod must not have become ready (and so covered by the budget) meanwhile.
        params.precondition_resource_version =
            Some(pod.metadata.resource_version.clone().unwrap_or_default());
    }
    match delete_pod(pods, namespace, name, params, &ctx, admission).await {
        Err(e) if e.is_conflict() && pinned_to_pod_version && !user_rv => {
            Err(still_processing(&budget_name))
        }
        other => other,
    }
}

fn typed<T: serde::de::DeserializeOwned>(raw: &Value) -> Result<T, StatusError> {
    serde_json::from_value(raw.clone()).map_err(StatusError::internal)
}

fn can_ignore_budgets(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
        || pod.metadata.deletion_timestamp.is_some()
}

fn should_enforce_resource_version(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The budgets in the pod's namespace whose selectors select it (a budget without a
/// selector, or with one that does not parse, selects nothing).
async fn matching_budgets(
    pdbs: &Store,
    pod: &Pod,
) -> Result<Vec<PodDisruptionBudget>, StatusError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let page = pdbs.list(Some(&namespace), &ListParams::default()).await?;
    let mut out = Vec::new();
    for raw in &page.items {
        let pdb: PodDisruptionBudget = typed(raw)?;
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        if let Ok(sel) = labels::label_selector_as_selector(selector) {
            if sel.matches(&labels) {
                out.push(pdb);
            }
        }
    }
    Ok(out)
}

fn too_many_requests(retry_after: i32, cause: String) -> StatusError {
    let mut e = StatusError::too_many_requests(VIOLATION, retry_after);
    let details = e.details.get_or_insert_with(StatusDetails::default);
    details
        .causes
        .get_or_insert_with(Vec::new)
        .push(StatusCause {
            reason: Some("DisruptionBudget".into()),
            message: Some(cause),
            field: None,
        });
    e
}

/// The budget changed and the disruption controller has not caught up yet.
fn still_processing(budget: &str) -> StatusError {
    too_many_requests(
        10,
        format!("The disruption budget {budget} is still being processed by the server."),
    )
}

/// Take one disruption from the budget, or refuse. Re-reads the budget on write
/// conflicts, so concurrent evictions cannot both take the last disruption.
async fn check_and_decrement(
    pdbs: &Store,
    namespace: &str,
    pod_name: &str,
    budget: &str,
    ctx: &RequestContext,
    admission: &Admission,
) -> Result<(), StatusError> {
    let forbidden = |why: &str| {
        StatusError::forbidden(
            &GroupResource::new("policy", "poddisruptionbudget"),
            budget,
            why,
        )
    };
    let check = |raw: &Value| -> Result<PodDisruptionBudget, StatusError> {
        let pdb: PodDisruptionBudget = typed(raw)?;
        let status = pdb.status.clone().unwrap_or_default();
        if status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0) {
            return Err(still_processing(budget));
        }
        if status.disruptions_allowed < 0 {
            return Err(forbidden("pdb disruptions allowed is negative"));
        }
        if status.disrupted_pods.as_ref().map_or(0, |d| d.len()) > MAX_DISRUPTED_PODS {
            return Err(forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if status.disruptions_allowed == 0 {
            return Err(too_many_requests(
                0,
                format!(
                    "The disruption budget {budget} needs {} healthy pods and has {} currently",
                    status.desired_healthy, status.current_healthy
                ),
            ));
        }
        Ok(pdb)
    };
    if ctx.dry_run {
        return check(&pdbs.get(namespace, budget).await?).map(|_| ());
    }
    let write_ctx = RequestContext {
        dry_run: false,
        ..ctx.clone()
    };
    pdbs.update_with(
        namespace,
        budget,
        UpdateTarget::Status,
        false,
        &write_ctx,
        admission,
        |current| {
            let current = current.ok_or_else(|| {
                StatusError::not_found(
                    &GroupResource::new("policy", "poddisruptionbudgets"),
                    budget,
                )
            })?;
            let pdb = check(current)?;
            let mut updated = current.clone();
            object::remove_meta(&mut updated, "resourceVersion");
            let status = updated
                .as_object_mut()
                .map(|m| m.entry("status").or_insert_with(|| json!({})))
                .ok_or_else(|| StatusError::internal("budget is not an object"))?;
            let allowed = pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed) - 1;
            status["disruptionsAllowed"] = json!(allowed);
            if allowed == 0 {
                set_condition(
                    status,
                    "DisruptionAllowed",
                    "False",
                    "InsufficientPods",
                    pdb.status.as_ref().and_then(|s| s.observed_generation),
                );
            }
            if !status.get("disruptedPods").is_some_and(Value::is_object) {
                status["disruptedPods"] = json!({});
            }
            status["disruptedPods"][pod_name] = json!(object::now_rfc3339());
            Ok(updated)
        },
    )
    .await
    .map(|_| ())
}

/// Upstream's `meta.SetStatusCondition`: the transition time moves only with the status.
fn set_condition(
    status: &mut Value,
    ty: &str,
    value: &str,
    reason: &str,
    observed_generation: Option<i64>,
) {
    let conditions = status
        .as_object_mut()
        .map(|m| m.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conditions)) = conditions else {
        return;
    };
    let now = object::now_rfc3339();
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some(value) {
                c["status"] = json!(value);
                c["lastTransitionTime"] = json!(now);
            }
            c["reason"] = json!(reason);
            c["message"] = json!("");
            if let Some(g) = observed_generation {
                c["observedGeneration"] = json!(g);
            }
        }
        None => {
            let mut c = json!({
                "type": ty, "status": value, "reason": reason, "message": "",
                "lastTransitionTime": now,
            });
            if let Some(g) = observed_generation {
                c["observedGeneration"] = json!(g);
            }
            conditions.push(c);
        }
    }
}

/// Mark the pod as a disruption target, then delete it (upstream's
/// `addConditionAndDeletePod`); a dry run only deletes, which does nothing.
async fn delete_pod(
    pods: &Store,
    namespace: &str,
    name: &str,
    mut params: DeleteParams,
    ctx: &RequestContext,
    admission: &Admission,
) -> Result<(), StatusError> {
    if !ctx.dry_run {
        let pod_resource = GroupResource::new("", "Pod");
        let (uid, rv) = (
            params.precondition_uid.clone(),
            params.precondition_resource_version.clone(),
        );
        let (updated, _) = pods
            .update_with(
                namespace,
                name,
                UpdateTarget::Status,
                false,
                ctx,
                admission,
                |current| {
                    let current = current
                        .ok_or_else(|| StatusError::not_found(&GroupResource::new("", "pods"), name))?;
                    let (cur_uid, cur_rv) =
                        (object::uid(current), object::resource_version(current));
                    if let Some(uid) = uid.as_deref().filter(|u| !u.is_empty() && *u != cur_uid) {
                        return Err(StatusError::conflict(
                            &pod_resource,
                            name,
                            format!("the UID in the precondition ({uid}) does not match the UID in record ({cur_uid}). The object might have been deleted and then recreated"),
                        ));
                    }
                    if let Some(rv) = rv.as_deref().filter(|r| !r.is_empty() && *r != cur_rv) {
                        return Err(StatusError::conflict(
                            &pod_resource,
                            name,
                            format!("the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({cur_rv}). The object might have been modified"),
                        ));
                    }
                    let mut pod = current.clone();
                    add_disruption_condition(&mut pod);
                    Ok(pod)
                },
            )
            .await?;
        if params.precondition_resource_version.is_some() {
            // This write moved the version the caller pinned; pin the new one instead.
            params.precondition_resource_version =
                Some(object::resource_version(&updated).to_string());
        }
    }
    pods.delete(namespace, name, &params, ctx, admission)
        .await
        .map(|_| ())
}

/// Upstream's `UpdatePodCondition` with the `DisruptionTarget` condition.
fn add_disruption_condition(pod: &mut Value) {
    let Some(map) = pod.as_object_mut() else {
        return;
    };
    let status = map.entry("status").or_insert_with(|| json!({}));
    let Some(status) = status.as_object_mut() else {
        return;
    };
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    let Value::Array(conditions) = conditions else {
        return;
    };
    let now = object::now_rfc3339();
    let mut condition = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": now,
    });
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget"))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some("True") {
                if let Some(t) = existing.get("lastTransitionTime") {
                    condition["lastTransitionTime"] = t.clone();
                }
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::{Typed, TypedStrategy};
    use crate::registry::ResourceInfo;

    /// Pods as far as eviction cares: a status subresource and nothing else.
    struct TestPods;

    impl TypedStrategy for TestPods {
        type Object = Pod;

        fn info(&self) -> ResourceInfo {
            ResourceInfo::of::<Pod>().with_status()
        }
    }

    struct Env {
        pods: Store,
        pdbs: Store,
        admission: Admission,
    }

    fn env() -> Env {
        let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
        Env {
            pods: Store::new(
                Arc::new(Typed::new(TestPods)),
                Arc::clone(&storage),
                "/registry",
            ),
            pdbs: Store::new(
                Arc::new(Typed::new(
                    crate::registry::policy::pdb::PodDisruptionBudgetStrategy,
                )),
                storage,
                "/registry",
            ),
            admission: Admission::default(),
        }
    }

    impl Env {
        async fn pod(&self, name: &str, phase: &str, ready: bool) {
            let ctx = RequestContext::default();
            self.pods
                .create(
                    "default",
                    json!({"metadata": {"name": name, "labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "image": "x"}]}}),
                    &ctx,
                    &self.admission,
                )
                .await
                .unwrap();
            let status = json!({"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]});
            self.pods
                .update_with(
                    "default",
                    name,
                    UpdateTarget::Status,
                    false,
                    &ctx,
                    &self.admission,
                    |cur| {
                        let mut p = cur.unwrap().clone();
                        p["status"] = status.clone();
                        Ok(p)
                    },
                )
                .await
                .unwrap();
        }

        async fn budget(&self, allowed: i32, observed: i64) {
            let ctx = RequestContext::default();
            self.pdbs
                .create(
                    "default",
                    json!({"metadata": {"name": "web-pdb"},
                           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
                    &ctx,
                    &self.admission,
                )
                .await
                .unwrap();
            self.pdbs
                .update_with(
                    "default",
                    "web-pdb",
                    UpdateTarget::Status,
                    false,
                    &ctx,
                    &self.admission,
                    |cur| {
                        let mut p = cur.unwrap().clone();
                        p["status"] = json!({"disruptionsAllowed": allowed, "currentHealthy": 2,
                                         "desiredHealthy": 1, "expectedPods": 2,
                                         "observedGeneration": observed});
                        Ok(p)
                    },
                )
                .await
                .unwrap();
        }

        async fn evict(&self, name: &str) -> Result<(), StatusError> {
            let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});
            evict(
                &self.pods,
                Some(&self.pdbs),
                "default",
                name,
                &eviction,
                &RequestContext::default(),
                &self.admission,
            )
            .await
        }
    }

    #[tokio::test]
    async fn no_budget_deletes() {
        let env = env();
        env.pod("a", "Running", true).await;
        env.evict("a").await.unwrap();
        assert!(env
            .pods
            .get("default", "a")
            .await
            .unwrap_err()
            .is_not_found());
    }

    #[tokio::test]
    async fn budget_allows_one() {
        let env = env();
        env.pod("a", "Running", true).await;
        env.pod("b", "Running", true).await;
        env.budget(1, 1).await;
        env.evict("a").await.unwrap();
        let pdb = env.pdbs.get("default", "web-pdb").await.unwrap();
        assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
        assert!(pdb["status"]["disruptedPods"].get("a").is_some());
        assert_eq!(pdb["status"]["conditions"][0]["reason"], "InsufficientPods");

        let err = env.evict("b").await.unwrap_err();
        assert_eq!(err.code, 429);
        assert_eq!(err.reason, StatusReason::TooManyRequests);
        assert_eq!(err.message, VIOLATION);
        let cause = &err.details.unwrap().causes.unwrap()[0];
        assert_eq!(cause.reason.as_deref(), Some("DisruptionBudget"));
        assert_eq!(
            cause.message.as_deref(),
            Some("The disruption budget web-pdb needs 1 healthy pods and has 2 currently")
        );
        assert!(env.pods.get("default", "b").await.is_ok());
    }

    #[tokio::test]
    async fn unobserved_budget_and_unready_or_pending_pods() {
        let env = env();
        env.pod("a", "Running", true).await;
        env.pod("b", "Running", false).await;
        env.pod("c", "Pending", false).await;
        env.budget(0, 0).await;
        // The budget's generation 1 is not observed yet.
        let err = env.evict("a").await.unwrap_err();
        assert_eq!(err.code, 429);
        // Unready pods go when the budget is met; pending pods always go.
        env.evict("b").await.unwrap();
        env.evict("c").await.unwrap();
        assert!(env.pods.get("default", "a").await.is_ok());
    }

    #[tokio::test]
    async fn name_must_match() {
        let env = env();
        env.pod("a", "Running", true).await;
        let err = evict(
            &env.pods,
            Some(&env.pdbs),
            "default",
            "a",
            &json!({"metadata": {"name": "b"}}),
            &RequestContext::default(),
            &env.admission,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn disruption_condition() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        add_disruption_condition(&mut pod);
        assert_eq!(pod["status"]["conditions"][1]["type"], "DisruptionTarget");
        assert_eq!(
            pod["status"]["conditions"][1]["reason"],
            "EvictionByEvictionAPI"
        );
    }
}
