//! Sync forwarding (`ack: sync`): the event is forwarded while the sender
//! waits, and the upstream's answer is relayed to it.
//!
//! Dedup: the event key is claimed first ([`RouteDedup::claim`]); the claim
//! is committed only once the upstream answered 2xx and released on any
//! other outcome (a refusal, a timeout, the request being dropped), so the
//! sender's retry is forwarded again.

use std::time::Instant;

use http::Response;
use http_body_util::Full;

use super::claim::{Claimed, RouteDedup};
use super::spool::spooled_event;
use super::{duplicate, Accepted};
use crate::forward::{self, ForwardError, Outgoing, UpstreamClient, UpstreamResponse};
use crate::server::error::RequestError;
use crate::server::pipeline::route::RouteState;
use crate::server::pipeline::Answer;
use crate::spool::Spool;
use crate::telemetry::traces;
use crate::telemetry::{Outcome, UpstreamClass};

/// The deliver step of a sync route.
pub(in crate::server::pipeline) struct Forwarding {
    /// The process's upstream pool, with this configuration's response limit.
    client: UpstreamClient,
    dedup: Option<RouteDedup>,
    /// Where the route's other destinations' deliveries wait, when it has any.
    spool: Option<Spool>,
}

impl Forwarding {
    pub(in crate::server::pipeline) fn new(
        client: UpstreamClient,
        dedup: Option<RouteDedup>,
        spool: Option<Spool>,
    ) -> Forwarding {
        Forwarding {
            client,
            dedup,
            spool,
        }
    }

    /// Claims the event (if the route deduplicates), forwards it, settles
    /// the claim by the upstream's answer and relays that answer.
    pub(super) async fn deliver(
        &self,
        route: &RouteState,
        request: Accepted,
    ) -> Result<Answer, RequestError> {
        let claim = match &self.dedup {
            None => None,
            Some(dedup) => {
                let (parts, body) = (&request.parts, &request.body);
                match dedup
                    .claim(route, &parts.headers, parts.uri.query(), body)
                    .await?
                {
                    Claimed::Held(guard) => Some(guard),
                    Claimed::Unheld => None,
                    Claimed::Duplicate => return Ok(duplicate(route)),
                }
            }
        };
        let upstream = route
            .route
            .sync_upstream()
            .expect("validated: a sync route's first destination is http");
        // The other destinations get the event once the first took it.
        let others = self.spool.as_ref().map(|spool| {
            // A copy: the request itself is forwarded below.
            let event = spooled_event(route, request.clone(), route.route.spooled_destinations());
            (spool, event)
        });
        let trace = request.trace.clone();
        let mut outbound = request.outbound(route, &upstream.headers);
        traces::inject(trace.as_ref(), &mut outbound.headers);
        let sent = Instant::now();
        let result = self
            .client
            .send(Outgoing {
                upstream,
                query: outbound.uri.query(),
                headers: outbound.headers,
                body: outbound.body,
            })
            .await;
        let seconds = sent.elapsed().as_secs_f64();
        let mut accepted = matches!(&result, Ok(answer) if answer.status.is_success());
        let mut spooled = Ok(());
        if let (true, Some((spool, event))) = (accepted, others) {
            // Not spooled: the sender is asked to retry (the first
            // destination may get the event twice: at-least-once).
            if let Err(error) = spool.append(event, None).await {
                tracing::error!(route = %route.name(), %error, "spooling for the other destinations failed; the sender is asked to retry");
                accepted = false;
                spooled = Err(RequestError::StoreUnavailable);
            }
        }
        if let Some(guard) = claim {
            if accepted {
                guard.commit(&route.metrics).await;
            } else {
                guard.release(&route.metrics).await;
            }
        }
        spooled?;
        relay(route, upstream, result, seconds)
    }
}

/// The sender's answer from the upstream's: its status, body and the
/// headers the route relays; a failure to get one is a gateway error.
fn relay(
    route: &RouteState,
    upstream: &crate::config::Upstream,
    result: Result<UpstreamResponse, ForwardError>,
    seconds: f64,
) -> Result<Answer, RequestError> {
    match result {
        Ok(answer) => {
            route.metrics.upstream(answer.status.into(), seconds);
            let outcome = if answer.status.is_success() {
                Outcome::Accepted
            } else {
                Outcome::UpstreamRejected
            };
            let mut response = Response::new(Full::new(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() =
                forward::relayed_response_headers(answer.headers, &upstream.relay_headers);
            Ok((outcome, response))
        }
        Err(ForwardError::Timeout(after)) => {
            route.metrics.upstream(UpstreamClass::Timeout, seconds);
            tracing::warn!(route = %route.name(), ?after, "upstream timed out");
            Err(RequestError::UpstreamTimeout)
        }
        Err(error) => {
            route.metrics.upstream(UpstreamClass::Error, seconds);
            tracing::warn!(route = %route.name(), %error, "upstream failed");
            Err(match error {
                ForwardError::ResponseTooLarge(_) => RequestError::UpstreamResponseTooLarge,
                _ => RequestError::UpstreamUnavailable,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use crate::server::pipeline::testing::{trutac_post, Fixture, Upstream, SECRET};

    fn deduplicated_route(upstream: &Upstream) -> String {
        format!(
            "routes:\n  - {{ name: r, path: /r, ack: sync, verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, dedup: {{ key: \"{{json:/id}}\" }}, upstream: {{ url: \"{}\" }} }}\n",
            upstream.url()
        )
    }

    #[tokio::test]
    async fn a_copy_of_a_forwarded_event_is_answered_200_as_a_duplicate() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&deduplicated_route(&upstream)).await;
        let first = fixture
            .send(trutac_post("/r", SECRET, r#"{"id":"e1","n":1}"#))
            .await;
        assert_eq!(first.status, StatusCode::OK);
        assert!(first.headers.get("hookgate-duplicate").is_none());
        // The sender's retry, with other bytes around the same event id.
        let copy = fixture
            .send(trutac_post("/r", SECRET, r#"{"id":"e1","n":2}"#))
            .await;
        assert_eq!(copy.status, StatusCode::OK);
        assert_eq!(copy.headers["hookgate-duplicate"], "true");
        assert_eq!(copy.body, r#"{"status":"duplicate"}"#);
        assert_eq!(upstream.received(), 1);
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="duplicate"}"#),
            1.0
        );
    }

    #[tokio::test]
    async fn an_upstream_refusal_is_relayed_and_releases_the_claim() {
        let upstream = Upstream::start(StatusCode::SERVICE_UNAVAILABLE).await;
        let fixture = Fixture::new(&deduplicated_route(&upstream)).await;
        for _ in 0..2 {
            let answer = fixture
                .send(trutac_post("/r", SECRET, r#"{"id":"e1"}"#))
                .await;
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(answer.headers.get("hookgate-duplicate").is_none());
        }
        // Not a duplicate: the retry was forwarded again.
        assert_eq!(upstream.received(), 2);
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="upstream_rejected"}"#),
            2.0
        );
    }
}
