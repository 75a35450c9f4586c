//! The scheduler's Prometheus metrics (upstream names).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub result: String,
    pub profile: String,
}

#[derive(Clone)]
pub struct Metrics {
    attempts: Family<AttemptLabels, Counter>,
    duration: Family<AttemptLabels, Histogram>,
    bound: Counter,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let attempts = Family::<AttemptLabels, Counter>::default();
        let duration = Family::<AttemptLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let bound = Counter::default();
        let scheduler = registry.sub_registry_with_prefix("scheduler");
        scheduler.register(
            "schedule_attempts",
            "Number of attempts to schedule pods, by the result.",
            attempts.clone(),
        );
        scheduler.register(
            "scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            duration.clone(),
        );
        scheduler.register("pods_bound", "Pods bound to a node.", bound.clone());
        Metrics {
            attempts,
            duration,
            bound,
        }
    }

    pub fn attempt(&self, result: &str, profile: &str, took: Duration) {
        let labels = AttemptLabels {
            result: result.to_string(),
            profile: profile.to_string(),
        };
        self.attempts.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn bound(&self) {
        self.bound.inc();
    }
}
