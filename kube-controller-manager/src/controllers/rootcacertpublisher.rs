//! The root CA certificate publisher (upstream `root-ca-cert-publisher`): every active
//! namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster's root CA
//! (`--root-ca-file`, else the CA of the controller manager's kubeconfig), which the
//! ServiceAccount admission plugin's `kube-api-access-*` volumes project next to the token.
//! The ConfigMap is created when a namespace appears and put back whenever it is changed
//! or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};

use crate::context::Context;
use crate::controllers::util::queue::{run_workers, Outcome, WorkQueue};
use crate::controllers::util::triggers;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "root-ca-certificate-publisher-controller";
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Publisher {
    client: kube::Client,
    namespaces: Store<Namespace>,
    ca: String,
}

/// The CA to publish: `--root-ca-file`, else the kubeconfig's certificate authority.
fn root_ca(ctx: &Context) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if let Some(path) = &ctx.options.root_ca_file {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading --root-ca-file {}", path.display()));
    }
    let path = ctx
        .options
        .kubeconfig
        .as_ref()
        .context("neither --root-ca-file nor --kubeconfig is set")?;
    let config = kube::config::Kubeconfig::read_from(path)?;
    let current = config.current_context.clone().unwrap_or_default();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .or_else(|| config.clusters.first())
        .and_then(|c| c.cluster.as_ref())
        .context("the kubeconfig names no cluster")?;
    if let Some(data) = &cluster.certificate_authority_data {
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("decoding certificate-authority-data")?;
        return Ok(String::from_utf8_lossy(&pem).into_owned());
    }
    if let Some(file) = &cluster.certificate_authority {
        return std::fs::read_to_string(file)
            .with_context(|| format!("reading certificate-authority {file}"));
    }
    anyhow::bail!("the kubeconfig has no certificate authority; set --root-ca-file")
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let ca = root_ca(ctx)?;
    let ns_informer = ctx.informers.get::<Namespace>();
    let ns_changes = triggers::changes(&ns_informer)?;
    let publisher = Arc::new(Publisher {
        client: ctx.client.clone(),
        namespaces: ns_informer.store().clone(),
        ca,
    });
    // Only the published ConfigMaps, not every ConfigMap of the cluster.
    let config_maps: Api<ConfigMap> = Api::all(ctx.client.clone());
    let cm_events = watcher(
        config_maps,
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
    )
    .default_backoff();
    let queue: Arc<WorkQueue<String>> = WorkQueue::new(ctx.shutdown.clone());
    let shutdown = ctx.shutdown.clone();
    Ok(Box::pin(async move {
        let feeder = {
            let queue = Arc::clone(&queue);
            async move {
                let ns_keys = ns_changes.map(|ns| ns.metadata.name.clone());
                let cm_keys = cm_events.flat_map(|event| {
                    let namespaces: Vec<Option<String>> = match event {
                        Ok(watcher::Event::Apply(cm) | watcher::Event::Delete(cm)) => {
                            vec![cm.metadata.namespace]
                        }
                        _ => Vec::new(),
                    };
                    futures::stream::iter(namespaces)
                });
                let mut all = std::pin::pin!(futures::stream::select(ns_keys, cm_keys));
                while let Some(key) = all.next().await {
                    if let Some(ns) = key {
                        queue.add(ns);
                    }
                }
            }
        };
        let work = {
            let queue = Arc::clone(&queue);
            let publisher = Arc::clone(&publisher);
            async move {
                if !client::informers::synced(&publisher.namespaces).await {
                    return;
                }
                tracing::info!(controller = NAME, "caches synced");
                run_workers(queue, 1, move |ns| {
                    let publisher = Arc::clone(&publisher);
                    async move { publisher.sync(&ns).await }
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

/// The ConfigMap's wanted data, or `None` when `current` already has it.
pub fn wanted(current: Option<&ConfigMap>, ca: &str) -> Option<BTreeMap<String, String>> {
    let data = BTreeMap::from([(KEY.to_string(), ca.to_string())]);
    match current {
        Some(cm) if cm.data.as_ref() == Some(&data) => None,
        _ => Some(data),
    }
}

impl Publisher {
    async fn sync(&self, ns_name: &str) -> Outcome {
        let Some(ns) = self.namespaces.get(&ObjectRef::new(ns_name)) else {
            return Outcome::Forget;
        };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            return Outcome::Forget;
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns_name);
        let current = match api.get_opt(CONFIG_MAP).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(namespace = ns_name, error = %e, "reading {CONFIG_MAP}");
                return Outcome::Retry;
            }
        };
        let Some(data) = wanted(current.as_ref(), &self.ca) else {
            return Outcome::Forget;
        };
        let result = match current {
            None => {
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(CONFIG_MAP.into());
                cm.metadata.namespace = Some(ns_name.into());
                cm.metadata.annotations = Some(BTreeMap::from([(
                    DESCRIPTION_KEY.into(),
                    DESCRIPTION.into(),
                )]));
                cm.data = Some(data);
                api.create(&PostParams::default(), &cm).await.map(drop)
            }
            Some(mut cm) => {
                // Keep other keys away, as upstream: the data is exactly the CA.
                cm.data = Some(data);
                cm.binary_data = None;
                cm.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(DESCRIPTION_KEY.into(), DESCRIPTION.into());
                api.replace(CONFIG_MAP, &PostParams::default(), &cm)
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => {
                tracing::debug!(namespace = ns_name, "published {CONFIG_MAP}");
                Outcome::Forget
            }
            // Raced with another write, or the namespace is going away.
            Err(kube::Error::Api(e)) if e.code == 409 => Outcome::Retry,
            Err(kube::Error::Api(e)) if e.code == 404 || e.message.contains("being terminated") => {
                Outcome::Forget
            }
            Err(e) => {
                tracing::warn!(namespace = ns_name, error = %e, "publishing {CONFIG_MAP}");
                Outcome::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_exactly_the_ca() {
        let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        assert_eq!(
            wanted(None, ca),
            Some(BTreeMap::from([("ca.crt".to_string(), ca.to_string())]))
        );
        let mut cm = ConfigMap {
            data: wanted(None, ca),
            ..Default::default()
        };
        assert_eq!(wanted(Some(&cm), ca), None);
        cm.data
            .as_mut()
            .map(|d| d.insert("extra".into(), "x".into()));
        assert!(wanted(Some(&cm), ca).is_some());
        assert!(wanted(Some(&ConfigMap::default()), "other").is_some());
    }
}
