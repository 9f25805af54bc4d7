//! At most one log line per interval for each kind of refusal: a flood of refused
//! associations (an unknown AE title, an unenrolled certificate, a wrong password)
//! must not flood the log. The lines let through say how many like them were left
//! out since the previous one; the admission's [`RefusalLog`](crate::admission)
//! and the metrics still count every one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one event per kind through per interval and counts the others.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    kinds: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    logged: Instant,
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle letting one line per kind through every `interval`.
    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` when an event of `kind` may be logged now, `n` being the events of
    /// that kind left out since the last one logged; `None` when it is to be left out.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self
            .kinds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match kinds.get_mut(kind) {
            Some(window) if now.saturating_duration_since(window.logged) < self.interval => {
                window.suppressed += 1;
                None
            }
            Some(window) => {
                let suppressed = std::mem::take(&mut window.suppressed);
                window.logged = now;
                Some(suppressed)
            }
            None => {
                kinds.insert(
                    kind,
                    Window {
                        logged: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

impl Default for LogThrottle {
    /// One line per kind per second.
    fn default() -> Self {
        LogThrottle::new(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_the_count_left_out() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(throttle.admit_at("unknown-ae", at(0)), Some(0));
        assert_eq!(throttle.admit_at("unknown-ae", at(10)), None);
        assert_eq!(throttle.admit_at("unknown-ae", at(999)), None);
        // Another kind has its own window.
        assert_eq!(throttle.admit_at("bad-password", at(500)), Some(0));
        assert_eq!(throttle.admit_at("unknown-ae", at(1000)), Some(2));
        assert_eq!(throttle.admit_at("unknown-ae", at(1500)), None);
        assert_eq!(throttle.admit_at("bad-password", at(1500)), Some(0));
        // A flood of 10,000 events over 5 s lets 5 or 6 lines through.
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let logged = (0..10_000u64)
            .filter(|i| throttle.admit_at("flood", at(i / 2)).is_some())
            .count();
        assert_eq!(logged, 5);
    }
}
