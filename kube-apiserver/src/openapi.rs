//! `/openapi/v2` and `/openapi/v3`, built once from the registry by the `openapi` crate,
//! served with upstream's caching rules, and the schema-driven operations handlers need
//! (strict field validation, strategic merge patch).

use std::collections::HashMap;
use std::sync::OnceLock;

use apimachinery::strategicpatch;
use apimachinery::StatusError;
use http::{HeaderValue, StatusCode};
use openapi::{
    Definitions, DocumentOptions, GroupVersionKind, OpenApiDocuments, ServedResource,
    ServedSubresource,
};
use serde_json::Value;

use crate::handlers::Reply;
use crate::registry::{Registry, ResourceInfo, Subresource};

/// The documents are built on the first request for one (about 80 ms), as upstream
/// builds its OpenAPI v3 lazily: a server nobody asks for OpenAPI does not hold them.
pub struct Documents {
    resources: Vec<ServedResource>,
    documents: OnceLock<Result<OpenApiDocuments, String>>,
}

fn subresource(info: &ResourceInfo, sub: &Subresource) -> Option<ServedSubresource> {
    let verbs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let own = || {
        (
            GroupVersionKind::new(info.group, info.version, info.kind),
            info.definition.clone(),
        )
    };
    let (gvk, definition, verbs) = match sub {
        Subresource::Status | Subresource::Approval => {
            let (g, d) = own();
            (g, d, verbs(&["get", "patch", "update"]))
        }
        Subresource::Finalize => {
            let (g, d) = own();
            (g, d, verbs(&["update"]))
        }
        Subresource::Scale(_) => (
            GroupVersionKind::new("autoscaling", "v1", "Scale"),
            "io.k8s.api.autoscaling.v1.Scale".to_string(),
            verbs(&["get", "patch", "update"]),
        ),
        Subresource::Binding => (
            GroupVersionKind::new("", "v1", "Binding"),
            "io.k8s.api.core.v1.Binding".to_string(),
            verbs(&["create"]),
        ),
        Subresource::Eviction => (
            GroupVersionKind::new("policy", "v1", "Eviction"),
            "io.k8s.api.policy.v1.Eviction".to_string(),
            verbs(&["create"]),
        ),
        Subresource::Token => (
            GroupVersionKind::new("authentication.k8s.io", "v1", "TokenRequest"),
            "io.k8s.api.authentication.v1.TokenRequest".to_string(),
            verbs(&["create"]),
        ),
        // Streaming subresources are not described by upstream's schemas either.
        Subresource::Connect(_) => return None,
    };
    Some(ServedSubresource {
        name: sub.name().to_string(),
        gvk,
        definition,
        verbs,
    })
}

fn served(info: &ResourceInfo) -> ServedResource {
    ServedResource {
        group: info.group.to_string(),
        version: info.version.to_string(),
        kind: info.kind.to_string(),
        plural: info.plural.to_string(),
        namespaced: info.namespaced,
        verbs: info.verbs.iter().map(|v| v.to_string()).collect(),
        subresources: info
            .subresources
            .iter()
            .filter_map(|s| subresource(info, s))
            .collect(),
        definition: info.definition.clone(),
    }
}

impl Documents {
    pub fn new(registry: &Registry) -> Self {
        let resources = registry.stores().iter().map(|s| served(s.info())).collect();
        Documents {
            resources,
            documents: OnceLock::new(),
        }
    }

    fn documents(&self) -> Result<&OpenApiDocuments, StatusError> {
        let built = self.documents.get_or_init(|| {
            let options = DocumentOptions {
                version: crate::version::GIT_VERSION.into(),
                ..DocumentOptions::default()
            };
            OpenApiDocuments::build(Definitions::global(), &self.resources, &options)
                .map_err(|e| e.to_string())
        });
        built
            .as_ref()
            .map_err(|e| StatusError::internal(format!("building the OpenAPI documents: {e}")))
    }

    pub fn definitions(&self) -> &'static Definitions {
        Definitions::global()
    }

    /// Serve `/openapi/v2`, `/openapi/v3` or `/openapi/v3/<group-version>`.
    pub fn reply(
        &self,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Result<Option<Reply>, StatusError> {
        let documents = self.documents()?;
        Ok(self.reply_from(documents, path, query))
    }

    fn reply_from(
        &self,
        documents: &OpenApiDocuments,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Option<Reply> {
        if path == "/openapi/v2" {
            return Some(Reply::full(
                StatusCode::OK,
                "application/json",
                documents.v2.bytes.clone(),
            ));
        }
        let rest = path.strip_prefix("/openapi/v3")?.trim_matches('/');
        if rest.is_empty() {
            let doc = &documents.v3_index;
            return Some(
                Reply::full(StatusCode::OK, "application/json", doc.bytes.clone())
                    .with_header(http::header::ETAG, &doc.etag())
                    .with_header(http::header::CACHE_CONTROL, "no-cache, private"),
            );
        }
        let doc = documents.v3_group_version(rest)?;
        let reply = match query.get("hash") {
            Some(hash) if *hash == doc.hash => {
                Reply::full(StatusCode::OK, "application/json", doc.bytes.clone())
                    .with_header(http::header::CACHE_CONTROL, "public, immutable")
                    .with_header(http::header::EXPIRES, "Thu, 31 Dec 2099 23:59:59 GMT")
            }
            // A stale hash points at the current document.
            Some(_) => Reply::full(
                StatusCode::MOVED_PERMANENTLY,
                "text/plain; charset=utf-8",
                Vec::new(),
            )
            .with_header(
                http::header::LOCATION,
                &format!("/openapi/v3/{rest}?hash={}", doc.hash),
            ),
            None => Reply::full(StatusCode::OK, "application/json", doc.bytes.clone())
                .with_header(http::header::CACHE_CONTROL, "no-cache, private"),
        };
        Some(reply.with_header(http::header::ETAG, &doc.etag()))
    }

    /// Strict field validation findings (unknown and duplicate fields) of a body: from the
    /// raw JSON when there is one, so that duplicates are seen and the order is the
    /// document's, else from the decoded value.
    pub fn field_problems(
        &self,
        definition: &str,
        obj: &Value,
        raw_json: Option<&[u8]>,
    ) -> Vec<String> {
        if let Some(raw) = raw_json {
            if let Ok(found) = Definitions::global().strict_field_errors(definition, raw) {
                return found.iter().map(ToString::to_string).collect();
            }
        }
        Definitions::global()
            .unknown_fields(definition, obj)
            .into_iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect()
    }

    pub fn strategic_merge(
        &self,
        definition: &str,
        current: &Value,
        patch: &Value,
    ) -> Result<Value, StatusError> {
        let result = match Definitions::global().patch_meta(definition) {
            Some(meta) => {
                strategicpatch::strategic_merge_patch(current.clone(), patch.clone(), &meta)
            }
            None => strategicpatch::strategic_merge_patch(
                current.clone(),
                patch.clone(),
                &strategicpatch::NoPatchMeta,
            ),
        };
        result
            .map_err(|e| StatusError::new(422, apimachinery::StatusReason::Invalid, e.to_string()))
    }
}

impl Reply {
    pub fn with_header(self, name: http::header::HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => self.header(name, v),
            Err(_) => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::{all_resources, BuildContext};

    #[test]
    fn every_served_resource_has_its_documents() {
        let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let ctx = BuildContext {
            storage: Arc::clone(&storage),
            etcd_prefix: "/registry".into(),
            service_cluster_ip_range: "10.96.0.0/12".parse().unwrap(),
            service_node_port_range: (30000, 32767),
        };
        let registry = Registry::new(all_resources(&ctx), storage, None, "/registry");
        let docs = Documents::new(&registry);
        let index = docs.reply("/openapi/v3", &HashMap::new()).unwrap().unwrap();
        assert_eq!(index.status(), StatusCode::OK);
        for store in registry.stores() {
            let info = store.info();
            let path = if info.group.is_empty() {
                format!("/openapi/v3/api/{}", info.version)
            } else {
                format!("/openapi/v3/apis/{}/{}", info.group, info.version)
            };
            let reply = docs.reply(&path, &HashMap::new()).unwrap();
            assert!(
                reply.is_some_and(|r| r.status() == StatusCode::OK),
                "{path}"
            );
        }
        assert!(docs
            .reply("/openapi/v3/apis/nothing/v1", &HashMap::new())
            .unwrap()
            .is_none());
        assert!(docs
            .reply("/openapi/v2", &HashMap::new())
            .unwrap()
            .is_some());
    }
}
