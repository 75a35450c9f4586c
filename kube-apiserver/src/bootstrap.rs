//! What the server itself keeps in the API (upstream's system namespaces and
//! `kubernetes` service controllers): the namespaces default, kube-system, kube-public and
//! kube-node-lease, and the system priority classes, exist from the start.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::StatusError;
use serde_json::json;

use crate::admission::Admission;
use crate::apiserver::ApiServer;
use crate::options::Options;
use crate::registry::store::RequestContext;
use crate::request::UserInfo;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn system_context() -> RequestContext {
    RequestContext {
        user: UserInfo {
            name: "system:apiserver".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
        dry_run: false,
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    }
}

async fn ensure_namespaces(server: &ApiServer) -> Result<(), StatusError> {
    let store = server
        .registry
        .get("", "v1", "namespaces")
        .ok_or_else(|| StatusError::internal("namespaces are not served"))?;
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match store
            .create("", obj, &system_context(), &Admission::default())
            .await
        {
            Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The built-in priority classes `system-node-critical` and `system-cluster-critical`
/// (upstream's `scheduling/bootstrap-system-priority-classes` post-start hook).
async fn ensure_priority_classes(server: &ApiServer) -> Result<(), StatusError> {
    use crate::registry::scheduling::priorityclass::{
        system_priority_class_object, SYSTEM_PRIORITY_CLASSES,
    };
    let Some(store) = server.registry.find("scheduling.k8s.io", "priorityclasses") else {
        return Ok(());
    };
    for class in SYSTEM_PRIORITY_CLASSES {
        let obj = system_priority_class_object(class);
        match store
            .create("", obj, &system_context(), &Admission::default())
            .await
        {
            Ok(_) => tracing::info!(name = class.name, "created system priority class"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn ensure_system_objects(server: &ApiServer) -> Result<(), StatusError> {
    ensure_namespaces(server).await?;
    ensure_priority_classes(server).await
}

/// Keep trying until storage answers; readiness waits for this. Then keep the
/// `kubernetes` service and its endpoints up to date until shutdown.
pub async fn run(server: Arc<ApiServer>, opts: &Options) {
    let mut delay = Duration::from_millis(100);
    loop {
        match ensure_system_objects(&server).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "bootstrapping system objects; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    let master = crate::registry::core::kubernetesservice::MasterService::new(opts);
    if let Some(m) = &master {
        m.reconcile_logged(&server).await;
    }
    server.mark_bootstrapped();
    if let Some(m) = master {
        m.run(server).await;
    }
}
