//! When to try an async delivery again: a policy object, so the decision is
//! one tested function rather than arithmetic spread through the worker.

use std::time::Duration;

use crate::config::RetryConfig;

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// Try again at this time (unix ms).
    RetryAt(i64),
    /// Give up: the event becomes a dead letter, kept until replayed or dropped.
    DeadLetter(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig) -> RetryPolicy {
        RetryPolicy { config }
    }

    /// Decides after attempt number `attempt` (1-based) of an event received
    /// at `received_at`, finished at `now` (both unix ms). Only a 2xx answer
    /// counts as delivered; every other outcome is retried until the
    /// attempts or the age run out.
    pub fn decide(&self, attempt: u32, received_at: i64, now: i64, delivered: bool) -> Decision {
        if delivered {
            return Decision::Delivered;
        }
        if attempt >= self.config.max_attempts {
            return Decision::DeadLetter("max_attempts");
        }
        if now - received_at >= self.config.max_age.as_millis() as i64 {
            return Decision::DeadLetter("max_age");
        }
        Decision::RetryAt(now + self.backoff(attempt).as_millis() as i64)
    }

    /// Exponential backoff with jitter: the ceiling doubles with each
    /// attempt from `initial_backoff` up to `max_backoff`, and the delay is
    /// drawn uniformly between `initial_backoff` and that ceiling, so
    /// retries of many events spread out instead of arriving together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let initial = self.config.initial_backoff;
        let doublings = attempt.saturating_sub(1).min(32);
        let ceiling = initial
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.config.max_backoff);
        if ceiling <= initial {
            return ceiling;
        }
        let spread = (ceiling - initial).as_millis() as u64;
        initial + Duration::from_millis(fastrand::u64(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        })
    }

    #[test]
    fn success_is_delivered_and_failures_retry_until_attempts_run_out() {
        let p = policy();
        assert_eq!(p.decide(1, 0, 1000, true), Decision::Delivered);
        assert!(matches!(p.decide(1, 0, 1000, false), Decision::RetryAt(_)));
        assert!(matches!(p.decide(4, 0, 1000, false), Decision::RetryAt(_)));
        assert_eq!(
            p.decide(5, 0, 1000, false),
            Decision::DeadLetter("max_attempts")
        );
        // Even the last attempt counts when it succeeds.
        assert_eq!(p.decide(5, 0, 1000, true), Decision::Delivered);
    }

    #[test]
    fn old_events_are_dead_lettered_even_with_attempts_left() {
        let p = policy();
        assert_eq!(
            p.decide(1, 0, 3_600_000, false),
            Decision::DeadLetter("max_age")
        );
        assert!(matches!(
            p.decide(1, 0, 3_599_999, false),
            Decision::RetryAt(_)
        ));
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let p = policy();
        for _ in 0..200 {
            assert_eq!(p.backoff(1), Duration::from_secs(1));
            let b2 = p.backoff(2);
            assert!(
                b2 >= Duration::from_secs(1) && b2 <= Duration::from_secs(2),
                "{b2:?}"
            );
            let b4 = p.backoff(4);
            assert!(
                b4 >= Duration::from_secs(1) && b4 <= Duration::from_secs(8),
                "{b4:?}"
            );
            assert!(p.backoff(40) <= Duration::from_secs(10));
        }
        // Jitter: repeated draws are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(6)).collect();
        assert!(draws.len() > 1);
        let retry_at = match p.decide(3, 0, 10_000, false) {
            Decision::RetryAt(t) => t,
            other => panic!("{other:?}"),
        };
        assert!((11_000..=14_000).contains(&retry_at), "{retry_at}");
    }
}
