//! Events recorded without holding up a sync (upstream's EventRecorder hands events to a
//! broadcaster and returns): a bounded queue drained by one publishing task. When the
//! queue is full, events are dropped, as upstream's broadcaster drops them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use tokio::sync::mpsc;

use crate::context::Context;

/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 1000;

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventSink {
    /// A sink reporting as `component` (e.g. `deployment-controller`); its task ends at
    /// shutdown.
    pub fn new(ctx: &Context, component: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        let recorder = ctx.recorder(component);
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    () = shutdown.cancelled() => None,
                };
                let Some((event, reference)) = next else {
                    break;
                };
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, reason = event.reason, "could not record event");
                }
            }
        });
        EventSink { tx }
    }

    /// A sink whose events go nowhere (tests).
    pub fn discard() -> Self {
        let (tx, _) = mpsc::channel(1);
        EventSink { tx }
    }

    pub fn normal(&self, regarding: ObjectReference, reason: &str, action: &str, note: String) {
        self.send(EventType::Normal, regarding, reason, action, note);
    }

    pub fn warning(&self, regarding: ObjectReference, reason: &str, action: &str, note: String) {
        self.send(EventType::Warning, regarding, reason, action, note);
    }

    fn send(
        &self,
        type_: EventType,
        regarding: ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if self.tx.try_send((event, regarding)).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}
