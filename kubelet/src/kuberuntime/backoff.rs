//! Container restart back-off (upstream's flowcontrol.Backoff as the kubelet uses it):
//! 10 s after the first failure, doubling up to 300 s; a container that ran for 10 minutes
//! before exiting starts again from 10 s.

use std::collections::HashMap;
use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long had recovered: its back-off starts over.
pub const RESET_AFTER_RUNNING: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub struct Backoff {
    /// key -> (current delay, finish time of the exit the delay applies to, in Unix ns)
    entries: HashMap<String, (Duration, i64)>,
}

pub enum Decision {
    /// Restart now (the delay to apply after this restart is recorded).
    Restart,
    /// Still backing off: restart after `remaining`; `delay` is the whole back-off.
    Wait {
        remaining: Duration,
        delay: Duration,
    },
}

impl Backoff {
    /// May the container that exited at `finished_ns` (after starting at `started_ns`) be
    /// restarted at `now_ns`?
    pub fn check(&mut self, key: &str, started_ns: i64, finished_ns: i64, now_ns: i64) -> Decision {
        let ran = Duration::from_nanos(u64::try_from(finished_ns - started_ns).unwrap_or(0));
        if ran >= RESET_AFTER_RUNNING {
            self.entries.remove(key);
        }
        match self.entries.get(key).copied() {
            // First failure: restart at once; the next one waits INITIAL (upstream's
            // IsInBackOffSince is false until Next recorded an entry).
            None => {
                self.entries.insert(key.to_string(), (INITIAL, finished_ns));
                Decision::Restart
            }
            Some((_, exit)) if exit == finished_ns => Decision::Restart,
            Some((delay, _)) => {
                let elapsed =
                    Duration::from_nanos(u64::try_from(now_ns - finished_ns).unwrap_or(0));
                if elapsed < delay {
                    Decision::Wait {
                        remaining: delay - elapsed,
                        delay,
                    }
                } else {
                    self.entries
                        .insert(key.to_string(), ((delay * 2).min(MAX), finished_ns));
                    Decision::Restart
                }
            }
        }
    }

    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn doubles_and_caps_and_resets() {
        let mut b = Backoff::default();
        // First exit at t=10: restart at once.
        assert!(matches!(
            b.check("k", 9 * S, 10 * S, 10 * S),
            Decision::Restart
        ));
        // Second exit at t=20: wait 10 s.
        assert!(
            matches!(b.check("k", 11 * S, 20 * S, 21 * S), Decision::Wait { remaining, .. } if remaining == Duration::from_secs(9))
        );
        assert!(matches!(
            b.check("k", 11 * S, 20 * S, 30 * S),
            Decision::Restart
        ));
        // Third exit: 20 s.
        assert!(
            matches!(b.check("k", 31 * S, 32 * S, 33 * S), Decision::Wait { delay, .. } if delay == Duration::from_secs(20))
        );
        let mut finished = 32 * S;
        for _ in 0..10 {
            let _ = b.check("k", finished - S, finished, finished + 1000 * S);
            finished += 2000 * S;
        }
        assert!(
            matches!(b.check("k", finished - S, finished, finished + S), Decision::Wait { delay, .. } if delay == MAX)
        );
        // Ran for 11 minutes: starts over.
        let f2 = finished + 2000 * S;
        assert!(matches!(
            b.check("k", f2 - 660 * S, f2, f2),
            Decision::Restart
        ));
        assert!(
            matches!(b.check("k", f2 + S, f2 + 2 * S, f2 + 3 * S), Decision::Wait { delay, .. } if delay == INITIAL)
        );
    }
}
