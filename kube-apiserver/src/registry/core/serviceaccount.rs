//! serviceaccounts: identities for pods; `kubectl get sa` counts their (legacy) secrets.

use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, Subresource};

pub struct ServiceAccountStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE,
];

impl TypedStrategy for ServiceAccountStrategy {
    type Object = ServiceAccount;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ServiceAccount>()
            .short_names(&["sa"])
            .subresource(Subresource::Token)
            .returns_deleted_object()
    }

    fn prepare_for_create(&self, sa: &mut ServiceAccount) {
        clean_secret_references(sa);
    }

    fn prepare_for_update(&self, new: &mut ServiceAccount, _old: &ServiceAccount) {
        clean_secret_references(new);
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, sa: &ServiceAccount, raw: &Value) -> Vec<Value> {
        vec![
            sa.metadata.name.clone().unwrap_or_default().into(),
            Value::from(sa.secrets.as_ref().map_or(0, Vec::len)),
            table::age(raw),
        ]
    }
}

/// Secret references only name a secret in the account's own namespace, so everything
/// but the name is dropped, as upstream's `cleanSecretReferences` does.
fn clean_secret_references(sa: &mut ServiceAccount) {
    for r in sa.secrets.iter_mut().flatten() {
        *r = k8s_openapi::api::core::v1::ObjectReference {
            name: r.name.clone(),
            ..Default::default()
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    #[test]
    fn secrets_are_counted_and_cleaned() {
        let s = Typed::new(ServiceAccountStrategy);
        assert_eq!(s.info().short_names, vec!["sa"]);
        let mut obj = s
            .decode(json!({"metadata": {"name": "default", "namespace": "ns"},
                "secrets": [{"name": "a", "namespace": "other", "kind": "Secret"}, {"name": "b"}]}))
            .unwrap();
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["secrets"], json!([{"name": "a"}, {"name": "b"}]));
        let row = s.row(&obj);
        assert_eq!(row[0], "default");
        assert_eq!(row[1], 2);
        assert!(s.validate(&obj).is_empty());
    }
}
