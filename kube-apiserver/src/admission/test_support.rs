//! A registry over in-memory storage for the plugins' tests: every served resource, and
//! a plain stand-in for each resource the plugins need that is not served yet.

use std::sync::Arc;

use apimachinery::StatusError;
use k8s_openapi::api::core::v1::{
    LimitRange, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::Value;

use crate::admission::Admission;
use crate::registry::store::Store;
use crate::registry::typed::{Typed, TypedStrategy};
use crate::registry::{all_resources, BuildContext, Registry, Resource, ResourceInfo};

/// A strategy without defaults or validation.
struct Plain<K>(std::marker::PhantomData<K>);

impl<K> TypedStrategy for Plain<K>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + schemars::JsonSchema
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    type Object = K;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<K>().with_status()
    }
}

fn plain<K>() -> Resource
where
    Plain<K>: TypedStrategy,
{
    Resource::new(Arc::new(Typed::new(Plain::<K>(std::marker::PhantomData))))
}

/// In-memory storage whose creates of pods take a while, as a busy etcd's might, so
/// that tests can catch what happens between admission and the write.
pub struct SlowPodCreates {
    inner: storage::memory::MemoryStorage,
    delay: std::time::Duration,
}

#[async_trait::async_trait]
impl storage::Storage for SlowPodCreates {
    async fn get(&self, key: &str) -> storage::Result<Option<storage::KeyValue>> {
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        opts: &storage::ListOptions,
    ) -> storage::Result<storage::ListResult> {
        self.inner.list(prefix, opts).await
    }

    async fn count(&self, prefix: &str) -> storage::Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(
        &self,
        key: &str,
        value: bytes::Bytes,
        ttl: Option<std::time::Duration>,
    ) -> storage::Result<storage::KeyValue> {
        if key.contains("/pods/") {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.create(key, value, ttl).await
    }

    async fn update(
        &self,
        key: &str,
        value: bytes::Bytes,
        expected: storage::Revision,
        ttl: Option<std::time::Duration>,
    ) -> storage::Result<storage::KeyValue> {
        self.inner.update(key, value, expected, ttl).await
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<storage::Revision>,
    ) -> storage::Result<storage::KeyValue> {
        self.inner.delete(key, expected).await
    }

    async fn watch(
        &self,
        prefix: &str,
        after: storage::Revision,
    ) -> storage::Result<storage::WatchStream> {
        self.inner.watch(prefix, after).await
    }

    async fn current_revision(&self) -> storage::Result<storage::Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: storage::Revision) -> storage::Result<()> {
        self.inner.compact(revision).await
    }

    async fn check_health(&self) -> storage::Result<()> {
        self.inner.check_health().await
    }
}

pub struct Harness {
    pub registry: Registry,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_storage(Arc::new(storage::memory::MemoryStorage::new()))
    }

    /// Pod creates take `delay` to reach storage.
    pub fn with_slow_pod_creates(delay: std::time::Duration) -> Self {
        Self::with_storage(Arc::new(SlowPodCreates {
            inner: storage::memory::MemoryStorage::new(),
            delay,
        }))
    }

    pub fn with_storage(storage: Arc<dyn storage::Storage>) -> Self {
        let ctx = BuildContext {
            storage: Arc::clone(&storage),
            etcd_prefix: "/registry".into(),
            service_cluster_ip_range: "10.96.0.0/12".parse().expect("valid range"),
            service_node_port_range: (30000, 32767),
        };
        let mut resources = all_resources(&ctx);
        let served = |resources: &[Resource], group: &str, plural: &str| {
            resources.iter().any(|r| {
                let info = r.strategy.info();
                info.group == group && info.plural == plural
            })
        };
        for (group, plural, make) in [
            ("", "pods", plain::<Pod> as fn() -> Resource),
            ("", "limitranges", plain::<LimitRange>),
            ("", "resourcequotas", plain::<ResourceQuota>),
            ("", "persistentvolumeclaims", plain::<PersistentVolumeClaim>),
            ("", "replicationcontrollers", plain::<ReplicationController>),
            (
                "scheduling.k8s.io",
                "priorityclasses",
                plain::<PriorityClass>,
            ),
        ] {
            if !served(&resources, group, plural) {
                resources.push(make());
            }
        }
        Harness {
            registry: Registry::new(resources, storage, None, "/registry"),
        }
    }

    pub fn store(&self, group: &str, plural: &str) -> Arc<Store> {
        Arc::clone(self.registry.find(group, plural).expect("resource served"))
    }

    /// Create without admission.
    pub async fn create(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        obj: Value,
    ) -> Result<Value, StatusError> {
        self.store(group, plural)
            .create(namespace, obj, &Default::default(), &Admission::default())
            .await
    }
}
