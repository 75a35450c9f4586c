//! What every controller gets at start.

use std::sync::Arc;

use client::events::EventSink;
use client::SharedInformers;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::options::Options;

#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    /// One watch per resource type, shared by all controllers. Subscribe to changes
    /// while starting (before the informers start).
    pub informers: Arc<SharedInformers>,
    pub options: Arc<Options>,
    pub metrics: Arc<Mutex<Registry>>,
    /// Cancelled when the process shuts down or loses leadership.
    pub shutdown: CancellationToken,
}

impl Context {
    /// An event sink reporting as `component` (e.g. `deployment-controller`), writing
    /// until shutdown. Call while starting a controller (inside the runtime).
    pub fn events(&self, component: &str) -> EventSink {
        EventSink::new(
            self.client.clone(),
            component,
            component,
            &tokio::runtime::Handle::current(),
            self.shutdown.clone(),
        )
    }
}
