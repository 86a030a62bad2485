//! Delivery workers: one per async route, delivering spooled events to the
//! upstream with at most `upstream.concurrency` attempts in flight.
//!
//! The worker leases due events from the spool (woken at once when one is
//! appended or replayed, otherwise at the next due time), sends each with
//! `Hookgate-Delivery-Id` and `Hookgate-Attempt`, and records every attempt
//! and its decision (delivered, retry at, dead letter) through the retry
//! policy. An attempt whose outcome the store cannot take (disk full) is
//! not repeated: recording it is retried, the lease renewed meanwhile,
//! until the store recovers. On
//! shutdown it starts no new attempt, lets running ones finish up to a
//! bound, and leaves the rest pending on disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use tokio::sync::{watch, Semaphore};

use super::{AttemptOutcome, Due, Lease, NextState, Recorded, Spool};
use crate::config::Route;
use crate::forward::retry::{Decision, RetryPolicy};
use crate::forward::{delivery_headers, ForwardError, Outgoing, UpstreamClient};
use crate::store::now_ms;
use crate::telemetry::{traces, DeliveryResult, RouteMetrics};

const DELIVERY_ID: HeaderName = HeaderName::from_static("hookgate-delivery-id");
const ATTEMPT: HeaderName = HeaderName::from_static("hookgate-attempt");
/// Longest sleep between polls when nothing is due (new events wake the
/// worker at once; this only bounds a missed wake-up).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pauses between tries to record an attempt while the store fails.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);
/// A lease outlasts the upstream's timeout by this much: time to record the
/// outcome. Its holder renews it while the store refuses the record.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

pub struct DeliveryWorker {
    pub route: Route,
    pub spool: Spool,
    pub client: UpstreamClient,
    pub metrics: RouteMetrics,
}

impl DeliveryWorker {
    /// Delivers until `stop` turns true, then waits up to `drain` for the
    /// attempts in flight.
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let worker = Arc::new(self);
        let name = worker.route.name.clone();
        let concurrency = worker.route.upstream.concurrency as usize;
        let permits = Arc::new(Semaphore::new(concurrency));
        let lease = worker.route.upstream.timeout + LEASE_MARGIN;
        let policy = RetryPolicy::new(worker.route.upstream.retry);

        loop {
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
            let free = 1 + permits.available_permits();
            let due = match worker.spool.claim_due(&name, free, lease).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(route = %name, %error, "reading the spool failed");
                    Vec::new()
                }
            };
            if due.is_empty() {
                drop(first);
                let wait = match worker.spool.next_due_at(&name).await {
                    Ok(Some(at)) => Duration::from_millis(
                        (at - now_ms()).clamp(1, IDLE_POLL.as_millis() as i64) as u64,
                    ),
                    _ => IDLE_POLL,
                };
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = worker.spool.wait_for_work(&name) => {}
                    _ = tokio::time::sleep(wait) => {}
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
                let worker = worker.clone();
                tokio::spawn(async move {
                    worker.deliver(event, &policy, lease).await;
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
            tracing::warn!(route = %name, "deliveries still running at shutdown; they stay pending and are retried after restart");
        }
    }

    async fn deliver(&self, event: Due, policy: &RetryPolicy, lease_for: Duration) {
        let route = &self.route;
        let attempt = event.lease.attempt;
        // Configured upstream headers are applied now (not stored with the
        // event: they may be credentials, and the config may have changed),
        // and so are the sender-header rules (see `delivery_headers`).
        let label = HeaderValue::from_str(&route.name).expect("route names are validated");
        // The attempt's span is a child of the request's, whose context was
        // stored with the event (the header is dropped just below).
        let parent = traces::stored_context(&event.headers);
        let span = self
            .metrics
            .traces()
            .deliver(parent, &route.name, "upstream", attempt);
        let mut headers = delivery_headers(
            event.headers,
            route.upstream.forward_headers.as_deref(),
            &label,
            &route.upstream.headers,
        );
        if let Ok(id) = HeaderValue::from_str(&event.lease.id) {
            headers.insert(DELIVERY_ID, id);
        }
        headers.insert(ATTEMPT, HeaderValue::from(attempt));
        span.inject(&mut headers);
        let started_at = now_ms();
        let started = Instant::now();
        let result = self
            .client
            .deliver(Outgoing {
                upstream: &route.upstream,
                query: event.query.as_deref(),
                headers,
                body: event.body,
            })
            .await;
        let duration = started.elapsed();
        let (status, error) = match &result {
            Ok(status) => (Some(status.as_u16()), None),
            Err(ForwardError::Timeout(after)) => (None, Some(format!("timed out after {after:?}"))),
            Err(e) => (None, Some(e.to_string())),
        };
        span.finish(status, error.as_deref(), duration);
        let delivered = matches!(&result, Ok(status) if status.is_success());
        let now = now_ms();
        let decision = policy.decide(attempt, event.received_at, now, delivered);
        let (next, result_label) = match decision {
            Decision::Delivered => (NextState::Delivered, DeliveryResult::Delivered),
            Decision::RetryAt(at) => (NextState::RetryAt(at), DeliveryResult::Retry),
            Decision::DeadLetter(why) => (NextState::Dead(why), DeliveryResult::DeadLetter),
        };
        self.metrics.delivery(result_label, duration.as_secs_f64());
        if delivered {
            self.metrics
                .delivery_lag(((now - event.received_at).max(0) as f64) / 1000.0);
        }
        match &next {
            NextState::Dead(why) => {
                tracing::warn!(route = %route.name, id = %event.lease.id, attempt, reason = why, ?status, ?error, "delivery dead-lettered")
            }
            NextState::RetryAt(_) => {
                tracing::debug!(route = %route.name, id = %event.lease.id, attempt, ?status, ?error, "delivery failed; will retry")
            }
            NextState::Delivered => {
                tracing::debug!(route = %route.name, id = %event.lease.id, attempt, "delivered")
            }
        }
        let outcome = AttemptOutcome {
            started_at,
            duration,
            status,
            error,
            next,
        };
        self.record(&event.lease, outcome, lease_for).await;
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
    async fn record(&self, lease: &Lease, outcome: AttemptOutcome, lease_for: Duration) {
        let (route, id) = (&self.route.name, &lease.id);
        let mut pause = RECORD_RETRY_FIRST;
        let mut failures = 0u32;
        loop {
            match self.spool.record(lease, outcome.clone()).await {
                Ok(Recorded::Stale) => {
                    tracing::warn!(%route, %id, attempt = lease.attempt, "delivery attempt recorded already; this one is not");
                    return;
                }
                Ok(Recorded::Written) => {
                    if failures > 0 {
                        tracing::info!(%route, %id, failures, "delivery attempt recorded after the store recovered");
                    }
                    return;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::error!(%route, %id, %error, "recording a delivery attempt failed; retrying until the store takes it");
                    }
                    failures += 1;
                    tokio::time::sleep(pause).await;
                    if let Err(error) = self.spool.renew(lease, lease_for).await {
                        tracing::debug!(%route, %id, %error, "renewing a delivery lease failed");
                    }
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }
}
