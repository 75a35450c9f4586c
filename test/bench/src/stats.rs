//! Latency samples and what a phase of the benchmark measured.

use std::time::Duration;

/// Latencies of one kind of request, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q`-quantile (0 < q <= 1) by nearest rank, or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = (q * sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, sorted.len()) - 1;
        sorted.get(index).copied()
    }

    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }
}

/// The outcome of running workers for a while: how many operations succeeded, how long it
/// took, their latencies, and the first error seen.
#[derive(Debug, Default, Clone)]
pub struct Phase {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latencies: Samples,
    /// CPU time each process of interest used during the phase.
    pub cpu: Vec<(&'static str, Duration)>,
}

impl Phase {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// CPU per operation by process, the cores they kept busy, and the cores other
    /// processes took meanwhile, e.g. `CPU ms/op: etcd 0.210, bench 0.100; 1.70 cores
    /// busy; other processes 0.05 cores`.
    pub fn cpu_summary(&self) -> String {
        if self.cpu.is_empty() || self.ok == 0 {
            return String::new();
        }
        let elapsed = self.elapsed.as_secs_f64().max(1e-9);
        let ours = self
            .cpu
            .iter()
            .filter(|(name, _)| *name != crate::cluster::OTHERS);
        let per_op: Vec<String> = ours
            .clone()
            .map(|(name, d)| format!("{name} {:.3}", d.as_secs_f64() * 1000.0 / self.ok as f64))
            .collect();
        let busy: f64 = ours.map(|(_, d)| d.as_secs_f64()).sum::<f64>() / elapsed;
        let others = self
            .cpu
            .iter()
            .find(|(name, _)| *name == crate::cluster::OTHERS)
            .map(|(_, d)| format!("; other processes {:.2} cores", d.as_secs_f64() / elapsed))
            .unwrap_or_default();
        format!(
            "CPU ms/op: {}; {busy:.2} cores busy{others}",
            per_op.join(", ")
        )
    }

    pub fn merge(&mut self, other: Phase) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.latencies.extend(other.latencies);
    }
}

/// Milliseconds with two decimals, or a dash.
pub fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2}", d.as_secs_f64() * 1000.0),
        None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.p50(), Some(Duration::from_millis(50)));
        assert_eq!(s.p99(), Some(Duration::from_millis(99)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(Samples::default().p99(), None);
    }
}
