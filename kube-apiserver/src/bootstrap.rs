//! What the server itself keeps in the API (upstream's system namespaces and
//! `kubernetes` service controllers): the namespaces default, kube-system, kube-public and
//! kube-node-lease exist from the start.

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

/// Keep trying until storage answers; readiness waits for this.
pub async fn run(server: Arc<ApiServer>, _opts: &Options) {
    let mut delay = Duration::from_millis(100);
    loop {
        match ensure_namespaces(&server).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "bootstrapping system namespaces; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    server.mark_bootstrapped();
}
