//! The assembled server: registry, admission, discovery and OpenAPI documents, the
//! authenticator and authorizer, metrics, and the shutdown state every handler consults.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::StatusError;
use http::StatusCode;
use serde_json::Value;
use storage::Storage;
use tokio::sync::watch;

use crate::admission::Admission;
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::handlers::discovery::Discovery;
use crate::handlers::Reply;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::request::{RequestInfo, UserInfo};

/// Settings handlers need at request time.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Watches without `timeoutSeconds` end after a random time in
    /// `[min_request_timeout, 2 * min_request_timeout)`, as upstream spreads them.
    pub min_request_timeout: Duration,
    /// How to reach kubelets (logs, exec, attach, port-forward, node proxy).
    pub kubelet: crate::kubelet::KubeletClient,
}

impl RuntimeConfig {
    pub fn watch_timeout(&self) -> Duration {
        let base = self.min_request_timeout.as_secs_f64();
        Duration::from_secs_f64(base * (1.0 + rand::random::<f64>()))
    }
}

pub struct ApiServer {
    pub registry: Registry,
    pub admission: Admission,
    pub storage: Arc<dyn Storage>,
    pub discovery: Discovery,
    pub openapi: crate::openapi::Documents,
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    pub metrics: Metrics,
    pub config: RuntimeConfig,
    shutting_down: AtomicBool,
    bootstrapped: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
}

impl ApiServer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Registry,
        admission: Admission,
        storage: Arc<dyn Storage>,
        discovery: Discovery,
        openapi: crate::openapi::Documents,
        authenticator: Authenticator,
        authorizer: Authorizer,
        metrics: Metrics,
        config: RuntimeConfig,
    ) -> Self {
        let (shutdown_tx, _) = watch::channel(false);
        ApiServer {
            registry,
            admission,
            storage,
            discovery,
            openapi,
            authenticator,
            authorizer,
            metrics,
            config,
            shutting_down: AtomicBool::new(false),
            bootstrapped: AtomicBool::new(false),
            shutdown_tx,
        }
    }

    pub fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Result<(), StatusError> {
        self.authorizer.authorize(user, info)
    }

    /// Start refusing readiness and end open watches.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.shutdown_tx.send(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn mark_bootstrapped(&self) {
        self.bootstrapped.store(true, Ordering::SeqCst);
    }

    pub fn bootstrap_done(&self) -> bool {
        self.bootstrapped.load(Ordering::SeqCst)
    }

    /// Resolves when shutdown begins.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown_tx.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// Apply `fieldValidation` (Strict / Warn / Ignore; upstream's default is Warn) to a
    /// decoded body. `raw_json` is the body when it was JSON, for duplicate-field checks.
    pub fn field_validation(
        &self,
        query: &HashMap<String, String>,
        definition: &str,
        obj: &Value,
        raw_json: Option<&[u8]>,
    ) -> Result<Vec<String>, StatusError> {
        let mode = query
            .get("fieldValidation")
            .map(String::as_str)
            .unwrap_or("Warn");
        if !matches!(mode, "Strict" | "Warn" | "Ignore" | "") {
            return Err(StatusError::bad_request(format!(
                "fieldValidation: Unsupported value: {mode:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
        if mode == "Ignore" {
            return Ok(Vec::new());
        }
        let problems = self.openapi.field_problems(definition, obj, raw_json);
        if problems.is_empty() {
            return Ok(Vec::new());
        }
        if mode == "Strict" {
            return Err(StatusError::bad_request(format!(
                "strict decoding error: {}",
                problems.join(", ")
            )));
        }
        Ok(problems)
    }

    /// A strategic merge patch of `current` of the given definition.
    pub fn strategic_merge(
        &self,
        definition: &str,
        current: &Value,
        patch: &Value,
    ) -> Result<Value, StatusError> {
        self.openapi.strategic_merge(definition, current, patch)
    }

    pub fn openapi_reply(
        &self,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Result<Reply, StatusError> {
        self.openapi.reply(path, query)?.ok_or_else(|| {
            StatusError::new(
                404,
                apimachinery::StatusReason::NotFound,
                "the server could not find the requested resource",
            )
        })
    }
}

pub fn ok_text(text: &'static str) -> Reply {
    Reply::full(StatusCode::OK, "text/plain; charset=utf-8", text)
}
