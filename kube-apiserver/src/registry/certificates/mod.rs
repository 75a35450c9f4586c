//! The `certificates.k8s.io` API group, version v1.

pub mod csr;

use std::sync::Arc;

use storage::Storage;

use crate::registry::store::Store;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![Resource::new(Arc::new(csr::Csr::new()))]
}

/// The store of `certificatesigningrequests/approval`: the CSRs' storage under the
/// approval strategy, as upstream's `ApprovalREST` is a second store over the same keys.
/// `csrs` is the main store, whose key prefix locates the objects.
pub fn approval_store(csrs: &Store, storage: Arc<dyn Storage>) -> Store {
    let strategy = Arc::new(csr::CsrApproval::new());
    let root = csrs.prefix(None);
    // The main store's root is `<etcd prefix>/<storage path>/`.
    let etcd_prefix = root
        .strip_suffix(&format!("{}/", csrs.info().storage_path))
        .unwrap_or(&root)
        .trim_end_matches('/')
        .to_string();
    Store::new(strategy, storage, &etcd_prefix)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn approval_store_shares_the_keys() {
        let storage: Arc<dyn Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let main = Store::new(Arc::new(csr::Csr::new()), Arc::clone(&storage), "/registry");
        let approval = approval_store(&main, storage);
        assert_eq!(approval.key("", "a"), main.key("", "a"));
        assert_eq!(
            approval.key("", "a"),
            "/registry/certificatesigningrequests/a"
        );
    }

    fn request() -> serde_json::Value {
        use base64::Engine;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:node-1");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        serde_json::json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "node-csr-1"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
                "username": "forged",
            },
        })
    }

    #[tokio::test]
    async fn create_records_the_user_and_approval_goes_through_its_store() {
        use crate::admission::Admission;
        use crate::registry::store::{RequestContext, UpdateTarget};
        use crate::request::UserInfo;

        let storage: Arc<dyn Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let main = Store::new(Arc::new(csr::Csr::new()), Arc::clone(&storage), "/registry");
        let ctx = RequestContext {
            user: UserInfo {
                name: "system:node:node-1".into(),
                groups: vec!["system:nodes".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let admission = Admission::default();
        let created = main.create("", request(), &ctx, &admission).await.unwrap();
        assert_eq!(created["spec"]["username"], "system:node:node-1");
        assert_eq!(
            created["spec"]["groups"],
            serde_json::json!(["system:nodes"])
        );

        // Approving through the main resource or /status changes nothing or fails.
        let mut approved = created.clone();
        approved["status"] =
            serde_json::json!({"conditions": [{"type": "Approved", "status": "True"}]});
        let (unchanged, _) = main
            .update_with(
                "",
                "node-csr-1",
                UpdateTarget::Main,
                false,
                &ctx,
                &admission,
                |_| Ok(approved.clone()),
            )
            .await
            .unwrap();
        assert_eq!(unchanged["status"], serde_json::json!({}));
        let err = main
            .update_with(
                "",
                "node-csr-1",
                UpdateTarget::Status,
                false,
                &ctx,
                &admission,
                |_| Ok(approved.clone()),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("updates may not add a condition of type"),
            "{err}"
        );

        let approval = approval_store(&main, storage);
        let (done, _) = approval
            .update_with(
                "",
                "node-csr-1",
                UpdateTarget::Main,
                false,
                &ctx,
                &admission,
                |_| Ok(approved.clone()),
            )
            .await
            .unwrap();
        assert_eq!(done["status"]["conditions"][0]["type"], "Approved");
        let stored = main.get("", "node-csr-1").await.unwrap();
        assert_eq!(stored["status"]["conditions"][0]["type"], "Approved");
        assert_eq!(stored["spec"]["username"], "system:node:node-1");
    }
}
