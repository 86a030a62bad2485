//! Delivery workers: one per destination of each route with spooled
//! deliveries, delivering with at most the destination's `concurrency`
//! attempts in flight and at most its `rate_limit`.
//!
//! The worker leases due deliveries from the spool (woken at once when one
//! is appended or replayed, otherwise at the next due time), sends each
//! through its [`Destination`], and records every attempt and its decision
//! (delivered, retry at, dead letter) through the retry policy. A `429` or
//! `503` with `Retry-After` pauses the whole destination: no new attempt
//! starts until then (capped by `retry.max_backoff`). An attempt whose
//! outcome the store cannot take (disk full) is not repeated: recording it
//! is retried, the lease renewed meanwhile, until the store recovers. On
//! shutdown it starts no new attempt, lets running ones finish up to a
//! bound, and leaves the rest pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use super::{AttemptOutcome, Due, Lease, NextState, Recorded, Spool};
use crate::config::Destination as DestinationConfig;
use crate::destination::{Answer, Message, SharedDestination};
use crate::forward::retry::{Decision, RetryPolicy};
use crate::store::now_ms;
use crate::telemetry::metrics::DestinationMetrics;
use crate::telemetry::{traces, DeliveryResult};

/// Longest sleep between polls of a store other processes share when
/// nothing is due (this process's own appends wake its workers at once).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pauses between tries to record an attempt while the store fails.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);
/// How long an idle worker sleeps when nothing wakes it, given `due`: the
/// store's answer to `next_due_at` (`None` when the store failed; inside,
/// the next delivery's due time or lease expiry, if any), `now`, and
/// whether other processes share the store. `None`: until woken.
///
/// On this process's own store, until the next due time, and with nothing
/// due, until an append, a record or a replay wakes the worker: no timer,
/// so an idle gateway does not wake up. On a shared store, at most
/// [`IDLE_POLL`], since other replicas' appends wake nobody here. After a
/// failed read, [`IDLE_POLL`] before trying again.
fn idle_wait(due: Option<Option<i64>>, now: i64, polled: bool) -> Option<Duration> {
    let poll = IDLE_POLL.as_millis() as i64;
    let ms = match due {
        None => Some(poll),
        Some(Some(at)) if polled => Some((at - now).clamp(1, poll)),
        Some(Some(at)) => Some((at - now).max(1)),
        Some(None) if polled => Some(poll),
        Some(None) => None,
    };
    ms.map(|ms| Duration::from_millis(ms as u64))
}

/// A lease outlasts the destination's timeout by this much: time to record
/// the outcome. Its holder renews it while the store refuses the record.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

type Limiter = governor::DefaultDirectRateLimiter;

pub struct DeliveryWorker {
    pub route: String,
    pub config: DestinationConfig,
    pub destination: SharedDestination,
    pub spool: Spool,
    pub metrics: DestinationMetrics,
}

/// What the worker shares with its attempts.
struct Shared {
    worker: DeliveryWorker,
    policy: RetryPolicy,
    lease: Duration,
    limiter: Option<Limiter>,
    /// Unix ms before which no attempt starts (a `Retry-After`).
    paused_until: std::sync::atomic::AtomicI64,
}

impl DeliveryWorker {
    /// Delivers until `stop` turns true, then waits up to `drain` for the
    /// attempts in flight.
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let concurrency = self.config.concurrency as usize;
        let permits = Arc::new(Semaphore::new(concurrency));
        let shared = Arc::new(Shared {
            policy: RetryPolicy::new(self.config.retry),
            lease: self.config.timeout + LEASE_MARGIN,
            limiter: self.config.rate_limit.map(|r| {
                let n = |v: u32| std::num::NonZeroU32::new(v.max(1)).expect("at least 1");
                governor::RateLimiter::direct(
                    governor::Quota::per_second(n(r.per_second)).allow_burst(n(r.burst)),
                )
            }),
            paused_until: std::sync::atomic::AtomicI64::new(0),
            worker: self,
        });
        loop {
            if shared.wait_out_pause(&mut stop).await.is_err() {
                break;
            }
            // Wait for a free slot (not a poll: a finished delivery hands
            // its permit back and wakes this at once).
            let first = tokio::select! {
                biased;
                _ = stop.changed() => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            // With a rate limit, no more than a burst's worth is leased at
            // once: the rest would sit leased, waiting for tokens.
            let burst = shared
                .worker
                .config
                .rate_limit
                .map_or(usize::MAX, |r| r.burst as usize);
            let free = (1 + permits.available_permits()).min(burst.max(1));
            let due = shared.claim(free).await;
            if due.is_empty() {
                drop(first);
                if shared.idle(&mut stop).await.is_err() {
                    break;
                }
                continue;
            }
            let mut first = Some(first);
            for event in due {
                // Only this loop takes permits, so `free` of them are
                // there; the event is leased, so it must not be left behind.
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => match permits.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                if let Some(limiter) = &shared.limiter {
                    limiter.until_ready().await;
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    shared.deliver(event).await;
                    drop(permit);
                });
            }
        }

        // Shutdown: no new attempts; wait for running ones to finish.
        let all = concurrency as u32;
        if tokio::time::timeout(drain, permits.acquire_many(all))
            .await
            .is_err()
        {
            let w = &shared.worker;
            tracing::warn!(route = %w.route, destination = %w.config.name, "deliveries still running at shutdown; they stay pending and are retried after restart");
        }
    }
}

/// The worker was told to stop.
struct Stopped;

impl Shared {
    fn names(&self) -> (&str, &str) {
        (&self.worker.route, &self.worker.config.name)
    }

    /// Sleeps while a `Retry-After` pause lasts.
    async fn wait_out_pause(&self, stop: &mut watch::Receiver<bool>) -> Result<(), Stopped> {
        let until = self.paused_until.load(std::sync::atomic::Ordering::Relaxed);
        let left = until - now_ms();
        if left <= 0 {
            return Ok(());
        }
        self.worker.metrics.paused(true);
        let resumed = tokio::select! {
            _ = stop.changed() => Err(Stopped),
            _ = tokio::time::sleep(Duration::from_millis(left as u64)) => Ok(()),
        };
        self.worker.metrics.paused(false);
        resumed
    }

    async fn claim(&self, free: usize) -> Vec<Due> {
        let (route, destination) = self.names();
        match self
            .worker
            .spool
            .claim_due(route, destination, free, self.lease)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%route, %destination, %error, "reading the spool failed");
                Vec::new()
            }
        }
    }

    /// Waits for new work or for [`idle_wait`]'s time.
    async fn idle(&self, stop: &mut watch::Receiver<bool>) -> Result<(), Stopped> {
        let (route, destination) = self.names();
        let spool = &self.worker.spool;
        let due = spool.next_due_at(route, destination).await;
        let wait = idle_wait(due.ok(), now_ms(), spool.polled());
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => Err(Stopped),
            _ = spool.wait_for_work(route, destination) => Ok(()),
            _ = sleep => Ok(()),
        }
    }

    async fn deliver(&self, event: Due) {
        let (route, destination) = self.names();
        let attempt = event.lease.attempt;
        // The attempt's span is a child of the request's, whose context was
        // stored with the event; the consumer gets its `traceparent`.
        let parent = traces::stored_context(&event.headers);
        let metrics = &self.worker.metrics;
        let span = metrics
            .route()
            .traces()
            .deliver(parent, route, destination, attempt);
        let mut headers = event.headers;
        headers.remove(traces::TRACE_CONTEXT);
        span.inject(&mut headers);
        let message = Message {
            delivery_id: event.event_id,
            attempt,
            route: route.to_string(),
            event_type: headers
                // As the ingress stored it with the event.
                .remove(crate::destination::EVENT_TYPE)
                .and_then(|v| v.to_str().ok().map(str::to_string)),
            headers,
            query: event.query,
            body: event.body,
        };
        let started_at = now_ms();
        let started = Instant::now();
        let result = self.worker.destination.deliver(&message).await;
        let duration = started.elapsed();
        let (status, error) = match &result {
            Ok(Answer::Status { status, .. }) => (Some(status.as_u16()), None),
            Ok(Answer::Accepted) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        span.finish(status, error.as_deref(), duration);
        let now = now_ms();
        let next = self.decide(&result, attempt, event.received_at, now);
        let delivered = matches!(next, NextState::Delivered);
        metrics.delivery(
            match next {
                NextState::Delivered => DeliveryResult::Delivered,
                NextState::RetryAt(_) => DeliveryResult::Retry,
                NextState::Dead(_) => DeliveryResult::DeadLetter,
            },
            duration.as_secs_f64(),
        );
        if delivered {
            metrics.delivery_lag(((now - event.received_at).max(0) as f64) / 1000.0);
        }
        let id = &event.lease.id;
        match &next {
            NextState::Dead(why) => {
                tracing::warn!(%route, %destination, %id, attempt, reason = why, ?status, ?error, "delivery dead-lettered")
            }
            NextState::RetryAt(_) => {
                tracing::debug!(%route, %destination, %id, attempt, ?status, ?error, "delivery failed; will retry")
            }
            NextState::Delivered => {
                tracing::debug!(%route, %destination, %id, attempt, "delivered")
            }
        }
        let outcome = AttemptOutcome {
            started_at,
            duration,
            status,
            error,
            next,
        };
        self.record(&event.lease, outcome).await;
    }

    /// The delivery's next state after an attempt: delivered; dead at once
    /// for a status `retry.on` does not list; else the retry policy's
    /// choice, no earlier than a `Retry-After` (which also pauses the
    /// whole destination until then).
    fn decide(
        &self,
        result: &Result<Answer, crate::destination::DeliverError>,
        attempt: u32,
        received_at: i64,
        now: i64,
    ) -> NextState {
        let mut not_before = None;
        if let Ok(Answer::Status {
            status,
            retry_after,
        }) = result
        {
            if !status.is_success() && !self.worker.config.retry_on.retries(status.as_u16()) {
                return NextState::Dead("permanent_status");
            }
            let pausing = matches!(status.as_u16(), 429 | 503);
            if let (true, Some(pause)) = (pausing, retry_after) {
                let pause = (*pause).min(self.worker.config.retry.max_backoff);
                let until = now + pause.as_millis() as i64;
                self.paused_until
                    .fetch_max(until, std::sync::atomic::Ordering::Relaxed);
                not_before = Some(until);
            }
        }
        let delivered = result.as_ref().is_ok_and(Answer::is_delivered);
        match self.policy.decide(attempt, received_at, now, delivered) {
            Decision::Delivered => NextState::Delivered,
            Decision::RetryAt(at) => NextState::RetryAt(not_before.map_or(at, |nb| at.max(nb))),
            Decision::DeadLetter(why) => NextState::Dead(why),
        }
    }

    /// Records an attempt, trying again (with growing pauses) until the
    /// store takes it. Until then the event stays pending and leased (the
    /// lease renewed before each try): were it released, its unchanged row
    /// would make it due at once and it would be sent again and again for
    /// as long as the store fails (a full disk). The caller holds a
    /// delivery slot meanwhile, so while the store is down no more than
    /// `concurrency` attempts wait like this. If the process stops first,
    /// the event is attempted again once its lease is gone: at-least-once,
    /// never lost.
    async fn record(&self, lease: &Lease, outcome: AttemptOutcome) {
        let (route, destination) = self.names();
        let id = &lease.id;
        let spool = &self.worker.spool;
        let mut pause = RECORD_RETRY_FIRST;
        let mut failures = 0u32;
        loop {
            match spool.record(lease, outcome.clone()).await {
                Ok(Recorded::Stale) => {
                    tracing::warn!(%route, %destination, %id, attempt = lease.attempt, "delivery attempt recorded already; this one is not");
                    return;
                }
                Ok(Recorded::Written) => {
                    if failures > 0 {
                        tracing::info!(%route, %destination, %id, failures, "delivery attempt recorded after the store recovered");
                    }
                    return;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::error!(%route, %destination, %id, %error, "recording a delivery attempt failed; retrying until the store takes it");
                    }
                    failures += 1;
                    tokio::time::sleep(pause).await;
                    if let Err(error) = spool.renew(lease, self.lease).await {
                        tracing::debug!(%route, %destination, %id, %error, "renewing a delivery lease failed");
                    }
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn ms(ms: u64) -> Option<Duration> {
        Some(Duration::from_millis(ms))
    }

    #[test]
    fn an_idle_worker_on_its_own_store_sleeps_until_due_or_woken() {
        // Nothing due: no timer at all.
        assert_eq!(idle_wait(Some(None), NOW, false), None);
        // Due later: until then, however far.
        assert_eq!(idle_wait(Some(Some(NOW + 5_000)), NOW, false), ms(5_000));
        assert_eq!(
            idle_wait(Some(Some(NOW + 3_600_000)), NOW, false),
            ms(3_600_000)
        );
        // Due now or past: at once (a millisecond, never a zero-time spin).
        assert_eq!(idle_wait(Some(Some(NOW)), NOW, false), ms(1));
        assert_eq!(idle_wait(Some(Some(NOW - 5_000)), NOW, false), ms(1));
    }

    #[test]
    fn an_idle_worker_on_a_shared_store_polls() {
        assert_eq!(idle_wait(Some(None), NOW, true), ms(1_000));
        assert_eq!(idle_wait(Some(Some(NOW + 5_000)), NOW, true), ms(1_000));
        assert_eq!(idle_wait(Some(Some(NOW + 300)), NOW, true), ms(300));
        assert_eq!(idle_wait(Some(Some(NOW - 5_000)), NOW, true), ms(1));
    }

    #[test]
    fn after_a_failed_read_an_idle_worker_tries_again_after_a_poll() {
        assert_eq!(idle_wait(None, NOW, false), ms(1_000));
        assert_eq!(idle_wait(None, NOW, true), ms(1_000));
    }
}
