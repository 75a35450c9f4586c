//! The service account controller (upstream `serviceaccount`): every active namespace
//! has a ServiceAccount named `default`, created when the namespace appears and again
//! whenever it is deleted. Terminating namespaces are left alone (the API server would
//! refuse the create anyway).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::context::Context;
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "serviceaccount-controller";
/// The accounts every namespace gets (upstream's `--service-accounts` default).
pub const DEFAULT_ACCOUNTS: &[&str] = &["default"];

struct ServiceAccounts {
    client: kube::Client,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let ns_informer = ctx.informers.get::<Namespace>();
    let sa_informer = ctx.informers.get::<ServiceAccount>();
    let ns_changes = triggers::changes(&ns_informer)?;
    let sa_deletions = sa_informer.subscribe_deletions()?;
    let controller = Arc::new(ServiceAccounts {
        client: ctx.client.clone(),
        namespaces: ns_informer.store().clone(),
        accounts: sa_informer.store().clone(),
    });
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(ctx.shutdown.clone());
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        let feeder = {
            let queue = Arc::clone(&queue);
            async move {
                let ns_changes = ns_changes.map(|ns| ns.metadata.name.clone());
                let sa_deletions = sa_deletions.map(|sa| {
                    let name = sa.metadata.name.as_deref().unwrap_or_default();
                    DEFAULT_ACCOUNTS
                        .contains(&name)
                        .then(|| sa.metadata.namespace.clone())
                        .flatten()
                });
                let mut all = std::pin::pin!(futures::stream::select(ns_changes, sa_deletions));
                while let Some(key) = all.next().await {
                    if let Some(ns) = key {
                        queue.add(ns);
                    }
                }
            }
        };
        let work = {
            let queue = Arc::clone(&queue);
            let controller = Arc::clone(&controller);
            async move {
                if !client::informers::synced(&controller.namespaces).await
                    || !client::informers::synced(&controller.accounts).await
                {
                    return;
                }
                tracing::info!(controller = NAME, "caches synced");
                run_workers(queue, 1, move |ns| {
                    let controller = Arc::clone(&controller);
                    async move { controller.sync(&ns).await }
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

/// The accounts `ns` is missing, or none when it is not active.
pub fn missing_accounts(ns: &Namespace, has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Active")
            == "Active";
    if !active {
        return Vec::new();
    }
    DEFAULT_ACCOUNTS
        .iter()
        .copied()
        .filter(|name| !has(name))
        .collect()
}

impl ServiceAccounts {
    async fn sync(&self, ns_name: &str) -> Outcome {
        let Some(ns) = self.namespaces.get(&ObjectRef::new(ns_name)) else {
            return Outcome::Forget;
        };
        let missing = missing_accounts(&ns, |name| {
            self.accounts
                .get(&ObjectRef::new(name).within(ns_name))
                .is_some()
        });
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns_name);
        for name in missing {
            let mut sa = ServiceAccount::default();
            sa.metadata.name = Some(name.to_string());
            sa.metadata.namespace = Some(ns_name.to_string());
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => tracing::debug!(namespace = ns_name, name, "created service account"),
                // Created meanwhile, or the namespace is going away: nothing to do.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(kube::Error::Api(e)) if e.code == 403 && e.reason == "Forbidden" => {
                    // Forbidden because the namespace is terminating.
                    if e.message.contains("being terminated") {
                        continue;
                    }
                    tracing::warn!(namespace = ns_name, error = %e.message, "creating service account");
                    return Outcome::Retry;
                }
                Err(e) => {
                    tracing::warn!(namespace = ns_name, error = %e, "creating service account");
                    return Outcome::Retry;
                }
            }
        }
        Outcome::Forget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(phase: Option<&str>, deleting: bool) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some("team".into());
        ns.status = phase.map(|p| NamespaceStatus {
            phase: Some(p.into()),
            ..Default::default()
        });
        if deleting {
            ns.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        }
        ns
    }

    #[test]
    fn active_namespaces_get_a_default_account() {
        assert_eq!(
            missing_accounts(&ns(Some("Active"), false), |_| false),
            vec!["default"]
        );
        assert_eq!(
            missing_accounts(&ns(None, false), |_| false),
            vec!["default"]
        );
        assert!(missing_accounts(&ns(Some("Active"), false), |n| n == "default").is_empty());
    }

    #[test]
    fn terminating_namespaces_are_left_alone() {
        assert!(missing_accounts(&ns(Some("Terminating"), true), |_| false).is_empty());
        assert!(missing_accounts(&ns(Some("Active"), true), |_| false).is_empty());
    }
}
