//! Per-object retry delays after failed syncs (upstream's default controller rate
//! limiter: 5 ms doubling per consecutive failure, at most 1000 s), forgotten after a
//! successful sync.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

const BASE: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1000);

#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The delay before retrying `key` after one more failure.
    pub fn next(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock();
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = BASE
            .checked_mul(1u32.checked_shl(*n).unwrap_or(u32::MAX))
            .unwrap_or(MAX)
            .min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// `key` synced: start over next time.
    pub fn reset(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let b = Backoff::default();
        assert_eq!(b.next("a"), Duration::from_millis(5));
        assert_eq!(b.next("a"), Duration::from_millis(10));
        assert_eq!(b.next("a"), Duration::from_millis(20));
        assert_eq!(b.next("b"), Duration::from_millis(5));
        for _ in 0..40 {
            b.next("a");
        }
        assert_eq!(b.next("a"), MAX);
        b.reset("a");
        assert_eq!(b.next("a"), Duration::from_millis(5));
    }
}
