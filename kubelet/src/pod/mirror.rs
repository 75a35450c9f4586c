//! Mirror pods: the API's view of a static pod (upstream's mirror client). Same name,
//! namespace, labels, annotations and spec, plus `kubernetes.io/config.mirror` = the
//! static pod's hash and an owner reference to the Node. Recreated when deleted, replaced
//! when the manifest changes.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::{PodManager, CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION};

fn hash(pod: &Pod) -> String {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .cloned()
        .unwrap_or_default()
}

fn mirror_hash(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_MIRROR_ANNOTATION))
        .cloned()
}

pub fn mirror_pod(static_pod: &Pod, node_name: &str, node_uid: &str) -> Pod {
    let mut annotations = static_pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR_ANNOTATION.into(), hash(static_pod));
    Pod {
        metadata: ObjectMeta {
            name: static_pod.metadata.name.clone(),
            namespace: static_pod.metadata.namespace.clone(),
            labels: static_pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node_name.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: static_pod.spec.clone(),
        status: None,
    }
}

async fn delete(api: &Api<Pod>, mirror: &Pod) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: mirror.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let name = mirror.metadata.name.clone().unwrap_or_default();
    if let Err(e) = api.delete(&name, &dp).await {
        tracing::debug!(pod = name, error = %e, "deleting mirror pod");
    }
}

/// Makes the API hold an up-to-date mirror of `static_pod`; returns it when it exists.
pub async fn ensure(mgr: &PodManager, static_pod: &Pod) -> Option<Pod> {
    let ns = static_pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(mgr.ctx.client.clone(), &ns);
    let existing = mgr.mirror_of(static_pod);
    if let Some(m) = &existing {
        let current = mirror_hash(m).as_deref() == Some(hash(static_pod).as_str());
        if current && m.metadata.deletion_timestamp.is_none() {
            return existing;
        }
        tracing::info!(pod = ?m.metadata.name, "replacing outdated or deleted mirror pod");
        delete(&api, m).await;
    }
    let node_uid = mgr.node_uid().await?;
    let mirror = mirror_pod(static_pod, &mgr.ctx.node_name, &node_uid);
    match api.create(&PostParams::default(), &mirror).await {
        Ok(created) => {
            mgr.set_mirror(created.clone());
            Some(created)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Still there (old one terminating, or the watch has not shown it yet).
            let found = api
                .get_opt(mirror.metadata.name.as_deref().unwrap_or_default())
                .await
                .ok()
                .flatten();
            match found {
                Some(f)
                    if mirror_hash(&f).as_deref() == Some(hash(static_pod).as_str())
                        && f.metadata.deletion_timestamp.is_none() =>
                {
                    Some(f)
                }
                Some(f) if super::is_mirror(&f) => {
                    delete(&api, &f).await;
                    None
                }
                _ => None,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, pod = ?mirror.metadata.name, "creating mirror pod");
            None
        }
    }
}

/// Deletes the mirror of a static pod that is gone.
pub async fn remove(mgr: &PodManager, static_pod: &Pod) {
    let Some(m) = mgr.mirror_of(static_pod) else {
        return;
    };
    // A changed manifest has a new static pod under the same name: leave its mirror.
    if mirror_hash(&m).as_deref() == Some(hash(static_pod).as_str()) {
        let ns = m.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(mgr.ctx.client.clone(), &ns);
        delete(&api, &m).await;
    }
}
