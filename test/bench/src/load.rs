//! Closed-loop load: N workers, each issuing its next request as soon as the previous one
//! answered, until a time limit or an operation count is reached.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::stats::Phase;

/// Runs `op(worker, index)` from `workers` concurrent tasks until `duration` has passed or
/// `max_ops` operations were started, whichever comes first. `index` is unique across
/// workers. Only successful operations count towards the latencies and the rate.
pub async fn run_workers<F, Fut>(workers: usize, duration: Duration, max_ops: u64, op: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        handles.push(tokio::spawn(async move {
            let mut phase = Phase::default();
            while start.elapsed() < duration {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= max_ops {
                    break;
                }
                let began = Instant::now();
                match op(worker, index).await {
                    Ok(()) => {
                        phase.ok += 1;
                        phase.latencies.push(began.elapsed());
                    }
                    Err(e) => {
                        phase.errors += 1;
                        if phase.first_error.is_none() {
                            phase.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            phase
        }));
    }
    let mut total = Phase::default();
    for handle in handles {
        match handle.await {
            Ok(phase) => total.merge(phase),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// `n` printable pseudo-random bytes (so that nothing on the way compresses them away).
pub fn payload(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// A ConfigMap as a client sends it for a create.
pub fn configmap(name: &str, namespace: &str, data: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{namespace}"}},"data":{{"payload":"{data}"}}}}"#
    ))
}
