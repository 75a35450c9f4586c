//! `/metrics` in the Prometheus text format: request counts and latencies by verb and
//! resource (upstream's `apiserver_request_total` and
//! `apiserver_request_duration_seconds`), and storage latencies
//! (`etcd_request_duration_seconds`) measured by [`InstrumentedStorage`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use storage::{KeyValue, ListOptions, ListResult, Revision, Storage, WatchStream};

use crate::request::RequestInfo;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
    component: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    operation: String,
    r#type: String,
}

fn latency_histogram() -> Histogram {
    // Upstream's buckets, from 5 ms to 60 s.
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

fn storage_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    storage: Family<StorageLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let storage = Family::<StorageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            storage_histogram,
        );
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code.",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component.",
            latency.clone(),
        );
        registry.register(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type.",
            storage.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            storage,
        }
    }

    pub fn observe_request(&self, info: &RequestInfo, code: u16, elapsed: Duration) {
        let scope = if !info.is_resource_request {
            ""
        } else if !info.name.is_empty() {
            "resource"
        } else if !info.namespace.is_empty() {
            "namespace"
        } else {
            "cluster"
        };
        let verb = info.verb.to_uppercase();
        let verb = match verb.as_str() {
            "CREATE" => "POST".to_string(),
            "UPDATE" => "PUT".to_string(),
            _ => verb,
        };
        let latency = LatencyLabels {
            verb: verb.clone(),
            group: info.api_group.clone(),
            version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            scope: scope.to_string(),
            component: "apiserver".to_string(),
        };
        // Watches are long-lived by design; their duration says nothing about latency.
        if info.verb != "watch" {
            self.latency
                .get_or_create(&latency)
                .observe(elapsed.as_secs_f64());
        }
        let labels = RequestLabels {
            verb,
            group: latency.group,
            version: latency.version,
            resource: latency.resource,
            subresource: latency.subresource,
            scope: latency.scope,
            component: latency.component,
            code: code.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    fn observe_storage(&self, operation: &str, key: &str, elapsed: Duration) {
        let labels = StorageLabels {
            operation: operation.to_string(),
            r#type: resource_of_key(key),
        };
        self.storage
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// `/registry/pods/default/x` → `pods`.
fn resource_of_key(key: &str) -> String {
    key.trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// A storage that times every call into [`Metrics`].
pub struct InstrumentedStorage {
    inner: Arc<dyn Storage>,
    metrics: Metrics,
}

impl InstrumentedStorage {
    pub fn new(inner: Arc<dyn Storage>, metrics: Metrics) -> Self {
        InstrumentedStorage { inner, metrics }
    }
}

#[async_trait]
impl Storage for InstrumentedStorage {
    async fn get(&self, key: &str) -> storage::Result<Option<KeyValue>> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.observe_storage("get", key, t.elapsed());
        r
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> storage::Result<ListResult> {
        let t = Instant::now();
        let r = self.inner.list(prefix, opts).await;
        self.metrics.observe_storage("list", prefix, t.elapsed());
        r
    }

    async fn count(&self, prefix: &str) -> storage::Result<i64> {
        let t = Instant::now();
        let r = self.inner.count(prefix).await;
        self.metrics.observe_storage("count", prefix, t.elapsed());
        r
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> storage::Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.create(key, value, ttl).await;
        self.metrics.observe_storage("create", key, t.elapsed());
        r
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> storage::Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.update(key, value, expected, ttl).await;
        self.metrics.observe_storage("update", key, t.elapsed());
        r
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> storage::Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.metrics.observe_storage("delete", key, t.elapsed());
        r
    }

    async fn watch(&self, prefix: &str, after: Revision) -> storage::Result<WatchStream> {
        self.inner.watch(prefix, after).await
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: storage::ProgressRequester,
    ) -> storage::Result<WatchStream> {
        self.inner
            .watch_with_progress(prefix, after, progress)
            .await
    }

    async fn current_revision(&self) -> storage::Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> storage::Result<()> {
        self.inner.compact(revision).await
    }

    async fn check_health(&self) -> storage::Result<()> {
        self.inner.check_health().await
    }
}
