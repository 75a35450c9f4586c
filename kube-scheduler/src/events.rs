//! Events (events.k8s.io/v1) recorded without holding up scheduling: a bounded queue
//! drained by one task per profile; when the queue is full, events are dropped, as
//! upstream's broadcaster drops them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::mpsc;

const QUEUE: usize = 1000;

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventSink {
    /// A sink reporting as `controller` (the profile's scheduler name), from `instance`.
    pub fn new(
        client: Client,
        controller: &str,
        instance: String,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: controller.to_string(),
                instance: Some(instance),
            },
        );
        rt.spawn(async move {
            while let Some((event, reference)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, reason = event.reason, "could not record event");
                }
            }
        });
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
            tracing::debug!(reason, "event queue full; event dropped");
        }
    }
}
