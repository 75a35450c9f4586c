//! Events (events.k8s.io/v1) recorded without holding up a sync or a scheduling cycle
//! (upstream's EventRecorder hands events to a broadcaster and returns): a bounded queue
//! drained by one publishing task. When the queue is full, events are dropped, as
//! upstream's broadcaster drops them.
//!
//! Events are written here rather than through kube-runtime's `Recorder`, whose
//! aggregation key leaves out the message: every later event with the same reason on the
//! same object would only bump the first one's series count, so "Scaled down replica
//! set ..." after "Scaled up replica set ..." would never show. Here, as upstream's
//! correlator does, only identical events (message included) within a few minutes are
//! folded into one series.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 1000;

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventSink {
    /// A sink reporting as `component` (e.g. `deployment-controller`) from `instance`;
    /// its task runs on `runtime` until `shutdown`.
    pub fn new(
        client: kube::Client,
        component: &str,
        instance: &str,
        runtime: &tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        let reporter = Reporter {
            component: component.to_string(),
            instance: instance.to_string(),
        };
        runtime.spawn(async move {
            let mut seen = Seen::default();
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    () = shutdown.cancelled() => None,
                };
                let Some((event, reference)) = next else {
                    break;
                };
                if let Err(e) = publish(&client, &reporter, &mut seen, &event, &reference).await {
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

struct Reporter {
    component: String,
    instance: String,
}

/// How long identical events are folded into one series (kube-runtime's and upstream's
/// cache lifetime).
const SERIES_TTL: Duration = Duration::from_secs(360);
/// How often expired series are dropped: sweeping on every event costs a pass over
/// every event of the last minutes (the scheduler records one per pod it binds).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Recent events by what makes them identical: the event's name, its count and when it
/// was last seen.
struct Seen {
    series: HashMap<String, (String, i32, Instant)>,
    last_sweep: Instant,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            series: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }
}

impl Seen {
    /// The live series for `key` (an expired one not yet swept counts as absent).
    fn get_mut(&mut self, key: &str) -> Option<&mut (String, i32, Instant)> {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.series
                .retain(|_, (_, _, at)| now.duration_since(*at) < SERIES_TTL);
            self.last_sweep = now;
        }
        self.series
            .get_mut(key)
            .filter(|(_, _, at)| now.duration_since(*at) < SERIES_TTL)
    }
}

async fn publish(
    client: &kube::Client,
    reporter: &Reporter,
    seen: &mut Seen,
    event: &Event,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    let now = jiff::Timestamp::now();
    let ns = reference
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), &ns);
    let key = format!(
        "{}/{}/{}/{:?}/{}/{}",
        reference.uid.as_deref().unwrap_or_default(),
        reference.name.as_deref().unwrap_or_default(),
        event.reason,
        event.type_,
        event.action,
        event.note.as_deref().unwrap_or_default()
    );
    if let Some((name, count, at)) = seen.get_mut(&key) {
        *count += 1;
        *at = Instant::now();
        let series = EventSeries {
            count: *count,
            last_observed_time: MicroTime(now),
        };
        let patch = serde_json::json!({"series": series});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            // Gone (expired): write it anew.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let name = format!(
        "{}.{:x}",
        reference.name.as_deref().unwrap_or(&reporter.component),
        now.as_nanosecond()
    );
    let k8s_event = K8sEvent {
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        note: event.note.clone(),
        metadata: ObjectMeta {
            namespace: Some(ns),
            name: Some(name.clone()),
            ..Default::default()
        },
        reporting_controller: Some(reporter.component.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        related: event.secondary.clone(),
        ..Default::default()
    };
    api.create(&PostParams::default(), &k8s_event).await?;
    seen.series.insert(key, (name, 1, Instant::now()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_series_are_not_continued_and_are_swept() {
        let now = Instant::now();
        let (Some(old), Some(long_ago)) = (
            now.checked_sub(SERIES_TTL + Duration::from_secs(1)),
            now.checked_sub(SWEEP_EVERY + Duration::from_secs(1)),
        ) else {
            // The monotonic clock started too recently to go back that far.
            return;
        };
        let mut seen = Seen {
            series: HashMap::new(),
            last_sweep: now,
        };
        seen.series.insert("old".into(), ("e1".into(), 3, old));
        seen.series.insert("new".into(), ("e2".into(), 1, now));
        // Not swept yet, but an expired series is not continued.
        assert!(seen.get_mut("old").is_none());
        assert_eq!(seen.series.len(), 2);
        assert_eq!(seen.get_mut("new").map(|s| s.1), Some(1));
        seen.last_sweep = long_ago;
        assert!(seen.get_mut("new").is_some());
        assert_eq!(seen.series.len(), 1);
    }
}
