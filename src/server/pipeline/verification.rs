//! Phase 3, verification: the route's verifier decides whether the request
//! is the sender's, then the route's rate limit is charged.
//!
//! The order matters: a request is charged only once it is verified, so
//! unsigned requests cannot spend the genuine sender's budget. A refusal
//! here happens before anything reaches the deliver step.

use std::net::SocketAddr;

use http::request::Parts;

use super::route::RouteState;
use crate::config::Route;
use crate::server::error::RequestError;
use crate::verify::{SignedRequest, Verified};

/// A route's rate limit: tokens per second with a burst.
pub(super) type RateLimiter = governor::DefaultDirectRateLimiter;

/// The route's rate limiter, if it has a limit.
pub(super) fn rate_limiter(route: &Route) -> Option<RateLimiter> {
    route.rate_limit.map(|r| {
        let nonzero = |n: u32| std::num::NonZeroU32::new(n).expect("validated > 0");
        governor::RateLimiter::direct(
            governor::Quota::per_second(nonzero(r.per_second)).allow_burst(nonzero(r.burst)),
        )
    })
}

/// A `POST` as its verifier sees it: the body exactly as received.
pub(super) fn signed_post<'a>(parts: &'a Parts, body: &'a [u8]) -> SignedRequest<'a> {
    SignedRequest {
        method: parts.method.as_str(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
        now: std::time::SystemTime::now(),
    }
}

impl RouteState {
    /// Verifies one request and counts the result: a failure by reason, a
    /// success by the index of the secret that matched.
    pub(super) fn verify(
        &self,
        request: &SignedRequest<'_>,
        peer: SocketAddr,
    ) -> Result<Verified, RequestError> {
        let verified = self.verifier.verify_request(request).map_err(|e| {
            self.metrics.verify_failure_from(e, peer, request.headers);
            tracing::info!(route = %self.name(), reason = e.code(), %peer, "verification failed");
            RequestError::Unauthorized(e)
        })?;
        if let Some(index) = verified.secret_index {
            self.metrics.secret_matched(index);
        }
        Ok(verified)
    }

    /// Takes one request from the route's rate limit, if it has one. Call
    /// it only for verified requests.
    pub(super) fn charge_rate_limit(&self) -> Result<(), RequestError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RequestError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::super::testing::{trutac_post, Fixture, Upstream, SECRET};

    /// A TruTac route that deduplicates by the event's id.
    fn signed_route(upstream: &Upstream, extra: &str) -> String {
        format!(
            "routes:\n  - {{ name: r, path: /r, ack: sync, verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, dedup: {{ key: \"{{json:/id}}\" }}, upstream: {{ url: \"{}\" }}{extra} }}\n",
            upstream.url()
        )
    }

    #[tokio::test]
    async fn a_bad_signature_is_401_and_never_reaches_the_deliver_step() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&signed_route(&upstream, "")).await;
        let forged = fixture
            .send(trutac_post("/r", "not-the-secret", r#"{"id":"e1"}"#))
            .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
        assert_eq!(forged.error_code(), "bad_signature");
        // Neither the upstream nor the dedup store saw it: the genuine
        // event with the same id is new, and is forwarded.
        assert_eq!(upstream.received(), 0);
        let genuine = fixture
            .send(trutac_post("/r", SECRET, r#"{"id":"e1"}"#))
            .await;
        assert_eq!(genuine.status, StatusCode::OK);
        assert!(genuine.headers.get("hookgate-duplicate").is_none());
        assert_eq!(upstream.received(), 1);
        assert_eq!(
            fixture.metric(r#"hookgate_dedup_total{route="r",result="new"}"#),
            1.0
        );
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="unauthorized"}"#),
            1.0
        );
    }

    #[tokio::test]
    async fn only_verified_requests_spend_the_rate_limit() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let limited = ", rate_limit: { per_second: 1, burst: 1 }";
        let fixture = Fixture::new(&signed_route(&upstream, limited)).await;
        for i in 0..20 {
            let body = format!(r#"{{"id":"forged-{i}"}}"#);
            let forged = fixture.send(trutac_post("/r", "guess", &body)).await;
            assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
        }
        // The burst of one is still there for the genuine sender.
        let genuine = fixture
            .send(trutac_post("/r", SECRET, r#"{"id":"g0"}"#))
            .await;
        assert_eq!(genuine.status, StatusCode::OK);
        // And the limit is in force for it: one token a second, so a
        // refusal comes well before the loop ends.
        let mut refused = None;
        for i in 1..50 {
            let body = format!(r#"{{"id":"g{i}"}}"#);
            let answer = fixture.send(trutac_post("/r", SECRET, &body)).await;
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                refused = Some(answer);
                break;
            }
        }
        let refused = refused.expect("the rate limit never refused");
        assert_eq!(refused.error_code(), "rate_limited");
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="unauthorized"}"#),
            20.0
        );
    }
}
