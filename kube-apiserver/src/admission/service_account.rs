//! ServiceAccount: pods run as a service account (`default` unless they name one), which
//! must exist, and get its API credentials as upstream's
//! `plugin/pkg/admission/serviceaccount` mounts them: a projected `kube-api-access-<random>`
//! volume (a bound token of 3607 s, the `kube-root-ca.crt` ConfigMap's `ca.crt`, and the
//! namespace) at `/var/run/secrets/kubernetes.io/serviceaccount` in every container that
//! has nothing mounted there, unless `automountServiceAccountToken` says no. The service
//! account's imagePullSecrets are copied to pods without any. Mirror pods are left as they
//! are and may not reference service accounts, secrets or configMaps.

use std::sync::Arc;

use apimachinery::StatusError;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, Volume, VolumeMount};
use serde_json::{json, Value};

use crate::admission::{Attributes, Operation, Plugin};
use crate::registry::store::Store;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Upstream's `utilrand.String` alphabet (no vowels, no confusable characters).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub struct ServiceAccountAdmission {
    service_accounts: Arc<Store>,
}

impl ServiceAccountAdmission {
    pub fn new(service_accounts: Arc<Store>) -> Self {
        ServiceAccountAdmission { service_accounts }
    }
}

fn applies(attrs: &Attributes) -> bool {
    attrs.is("", "pods") && attrs.subresource.is_none() && attrs.operation == Operation::Create
}

fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

fn decode(attrs: &Attributes) -> Result<Option<Pod>, StatusError> {
    attrs
        .object
        .as_ref()
        .map(|o| {
            serde_json::from_value(o.clone())
                .map_err(|e| StatusError::bad_request(format!("expected a Pod: {e}")))
        })
        .transpose()
}

fn random_suffix() -> String {
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Upstream's `TokenVolumeSource`.
pub fn token_volume(name: &str) -> Volume {
    serde_json::from_value(json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    }))
    .unwrap_or_default()
}

/// Adds the token volume and its mounts (upstream's `mountServiceAccountToken`).
pub fn mount_token(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let existing = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name.starts_with(VOLUME_PREFIX))
        .map(|v| v.name.clone());
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", random_suffix()));
    let mut needed = false;
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for container in containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if mounts.iter().any(|m| m.mount_path == TOKEN_MOUNT_PATH) {
            continue;
        }
        mounts.push(VolumeMount {
            name: name.clone(),
            read_only: Some(true),
            mount_path: TOKEN_MOUNT_PATH.into(),
            ..Default::default()
        });
        needed = true;
    }
    if needed && existing.is_none() {
        spec.volumes
            .get_or_insert_with(Vec::new)
            .push(token_volume(&name));
    }
}

#[async_trait::async_trait]
impl Plugin for ServiceAccountAdmission {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        if !applies(attrs) {
            return Ok(());
        }
        let Some(mut pod) = decode(attrs)? else {
            return Ok(());
        };
        if is_mirror(&pod) {
            return Ok(());
        }
        let Some(spec) = pod.spec.as_mut() else {
            return Ok(());
        };
        let name = match spec.service_account_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                spec.service_account_name = Some(DEFAULT_SERVICE_ACCOUNT.into());
                DEFAULT_SERVICE_ACCOUNT.into()
            }
        };
        let sa: ServiceAccount = match self.service_accounts.get(&attrs.namespace, &name).await {
            Ok(v) => serde_json::from_value(v).map_err(StatusError::internal)?,
            Err(e) if e.is_not_found() => {
                return Err(attrs.forbidden(format!(
                    "error looking up service account {}/{name}: serviceaccount {name:?} not found",
                    attrs.namespace
                )))
            }
            Err(e) => {
                return Err(attrs.forbidden(format!(
                    "error looking up service account {}/{name}: {}",
                    attrs.namespace, e.message
                )))
            }
        };
        let automount = spec
            .automount_service_account_token
            .or(sa.automount_service_account_token)
            .unwrap_or(true);
        if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty) {
            if let Some(secrets) = sa.image_pull_secrets.filter(|s| !s.is_empty()) {
                spec.image_pull_secrets = Some(secrets);
            }
        }
        if automount {
            mount_token(&mut pod);
        }
        attrs.object = Some(serde_json::to_value(&pod).map_err(StatusError::internal)?);
        Ok(())
    }

    async fn validate(&self, attrs: &Attributes) -> Result<(), StatusError> {
        if !applies(attrs) {
            return Ok(());
        }
        let Some(pod) = decode(attrs)? else {
            return Ok(());
        };
        if !is_mirror(&pod) {
            return Ok(());
        }
        let spec = pod.spec.as_ref();
        if spec
            .and_then(|s| s.service_account_name.as_deref())
            .is_some_and(|n| !n.is_empty())
        {
            return Err(attrs.forbidden("a mirror pod may not reference service accounts"));
        }
        let raw = attrs.object.as_ref().cloned().unwrap_or(Value::Null);
        let volumes = raw
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for v in &volumes {
            if v.get("secret").is_some() {
                return Err(attrs.forbidden("a mirror pod may not reference secrets"));
            }
            if v.get("configMap").is_some() {
                return Err(attrs.forbidden("a mirror pod may not reference configmaps"));
            }
            for source in v
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if source.get("secret").is_some() {
                    return Err(attrs.forbidden("a mirror pod may not reference secrets"));
                }
                if source.get("configMap").is_some() {
                    return Err(attrs.forbidden("a mirror pod may not reference configmaps"));
                }
                if source.get("serviceAccountToken").is_some() {
                    return Err(attrs.forbidden(
                        "a mirror pod may not use ServiceAccountToken volume projections",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admission::test_support::Harness;
    use crate::registry::store::RequestContext;
    use crate::registry::ResourceInfo;

    async fn admit(h: &Harness, pod: Value) -> Result<Value, StatusError> {
        let plugin = ServiceAccountAdmission::new(h.store("", "serviceaccounts"));
        let info = ResourceInfo::of::<Pod>();
        let mut attrs = Attributes::new(
            Operation::Create,
            &info,
            "default",
            "p",
            &RequestContext::default(),
        );
        attrs.object = Some(pod);
        plugin.admit(&mut attrs).await?;
        plugin.validate(&attrs).await?;
        Ok(attrs.object.unwrap())
    }

    #[tokio::test]
    async fn mounts_the_api_access_volume() {
        let h = Harness::new();
        let err = admit(
            &h,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account default/default: serviceaccount \"default\" not found"
        );
        h.create(
            "",
            "serviceaccounts",
            "default",
            json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "reg"}]}),
        )
        .await
        .unwrap();
        let pod = admit(
            &h,
            json!({"metadata": {"name": "p"}, "spec": {
                "initContainers": [{"name": "i"}],
                "containers": [
                    {"name": "c"},
                    {"name": "own", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}
                ],
                "volumes": [{"name": "x", "emptyDir": {}}]
            }}),
        )
        .await
        .unwrap();
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let volume = &pod["spec"]["volumes"][1];
        let name = volume["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            volume["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        assert_eq!(volume["projected"]["defaultMode"], 420);
        let mount = json!([{"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}]);
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"], mount);
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], mount);
        // A container with its own mount there keeps it.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Opting out.
        let pod = admit(
            &h,
            json!({"metadata": {"name": "p"}, "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c"}]}}),
        )
        .await
        .unwrap();
        assert!(pod["spec"]["volumes"].is_null());
    }

    #[tokio::test]
    async fn mirror_pods_are_not_changed_and_may_not_reference_credentials() {
        let h = Harness::new();
        let mirror = |spec: Value| json!({"metadata": {"name": "p", "annotations": {MIRROR_ANNOTATION: "x"}}, "spec": spec});
        let pod = admit(&h, mirror(json!({"containers": [{"name": "c"}]})))
            .await
            .unwrap();
        assert!(pod["spec"]["serviceAccountName"].is_null());
        let err = admit(
            &h,
            mirror(json!({"containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "x"}}]})),
        )
        .await
        .unwrap_err();
        assert!(
            err.message
                .ends_with("a mirror pod may not reference secrets"),
            "{}",
            err.message
        );
        let err = admit(
            &h,
            mirror(json!({"serviceAccountName": "x", "containers": [{"name": "c"}]})),
        )
        .await
        .unwrap_err();
        assert!(err
            .message
            .ends_with("a mirror pod may not reference service accounts"));
    }
}
