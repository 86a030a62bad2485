//! The webhook request pipeline. Every request to a route passes the same
//! phases, in this order, each in its own file (see [`Gateway::handle`]):
//!
//! 1. admission (`admission.rs`, `client_address.rs`): the route for the
//!    path, the client's address, the concurrency limit, the allowlist,
//!    the handshakes answered before any body (Okta's verified `GET`,
//!    Meta's, Dropbox's and Graph's in the query string) and the method;
//! 2. bounded body (`body.rs`): size, timeout, minimum rate;
//! 3. verification (`verification.rs`): the route's verifier, then its
//!    rate limit;
//! 4. event decision (`crate::events`): handshakes, filtered and ack-only
//!    events are answered without delivering anything;
//! 5. deliver (`deliver/`): forward now and relay the answer (sync), or
//!    spool and acknowledge (async), each with its own dedup protocol;
//! 6. the access log and the request metric (`access_log.rs`).
//!
//! What the phases need of a route (its verifier, rate limiter, event
//! policy, deliver step) is built once per configuration (`route.rs`).
//! Each phase returns a typed error; `../error.rs` turns it into the
//! response.
//!
//! Invariants:
//! - nothing reaches the deliver step (an upstream, the spool or the dedup
//!   store) unless its route's verifier returned `Ok` for these exact
//!   headers and body bytes;
//! - only verified requests spend a route's rate limit, so unsigned ones
//!   cannot crowd out the genuine sender;
//! - (sync mode) a claim is committed only after the upstream answered 2xx;
//!   on any other outcome, including the request being dropped, it is
//!   released so the sender's retry is forwarded again.

mod access_log;
mod admission;
mod body;
mod client_address;
mod deliver;
mod route;
mod verification;

#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Full;
use hyper::body::Body;

use super::error::RequestError;
use crate::config::{AckMode, Config, DedupBackend, DedupMode, Limits, Route, UNMATCHED_ROUTE};
use crate::events::Decision;
use crate::forward::UpstreamClient;
use crate::stores::Stores;
use crate::telemetry::{Metrics, Outcome, RouteMetrics};
use admission::Admission;
use deliver::{Accepted, Deliver, Forwarding, RouteDedup, SpoolDedup, Spooling};
use route::RouteState;

/// What a phase that answers the sender hands back: the outcome for the
/// metric and the access log, and the response.
type Answer = (Outcome, Response<Full<Bytes>>);

/// Everything the ingress needs to answer a request; shared by all
/// connections.
pub struct Gateway {
    /// Routes by exact path.
    routes: HashMap<String, RouteState>,
    unmatched: RouteMetrics,
    limits: Limits,
    admission: Admission,
}

impl Gateway {
    /// Builds the routes. `stores` must hold every backend a route uses
    /// (see [`crate::stores::Stores`]); a missing one is a bug in start-up (a reload that
    /// would need one is refused before this). Requests go upstream through
    /// `client`, the process's one pool (built at start-up and kept across
    /// reloads), with this config's response-size limit.
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        stores: &Stores,
        client: &UpstreamClient,
    ) -> Gateway {
        let client = client.with_max_response_bytes(config.limits.max_upstream_response_bytes);
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let deliver = deliver_step(route, stores, &client);
                (route.path.clone(), RouteState::new(route, metrics, deliver))
            })
            .collect();
        Gateway {
            routes,
            unmatched: metrics.route(UNMATCHED_ROUTE, 0),
            limits: config.limits.clone(),
            admission: Admission::new(config),
        }
    }

    /// Answers one request. Never fails: every error becomes a response.
    /// Generic over the body so that the phases can be driven without a
    /// socket; the listeners pass hyper's `Incoming`.
    pub async fn handle<B>(&self, request: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
    {
        let started = Instant::now();
        let http1 = request.version() <= Version::HTTP_11;
        // 1. Admission: the route for this exact path.
        let Some(route) = self.routes.get(request.uri().path()) else {
            let error = RequestError::NotFound;
            access_log::unmatched(&self.unmatched, error.outcome(), started.elapsed());
            return error.into_response(http1);
        };
        // The client's address, for the allowlist and the access log.
        let client = self.admission.client(peer.ip(), request.headers());
        let span = route
            .metrics
            .traces()
            .receive(route.name(), request.headers());
        let trace = span.context();
        let (outcome, response) = match self.phases(route, request, peer, client, trace).await {
            Ok(answer) => answer,
            Err(error) => (error.outcome(), error.into_response(http1)),
        };
        // 6. The access log line, the request metric and the span.
        access_log::record(route, outcome, &response, started.elapsed(), client);
        let delivery_id = response.headers().get(deliver::DELIVERY_ID);
        span.finish(
            outcome.as_str(),
            response.status().as_u16(),
            delivery_id.and_then(|v| v.to_str().ok()),
        );
        response
    }

    /// Phases 1 (the rest of admission) to 5 for a request to `route`.
    async fn phases<B>(
        &self,
        route: &RouteState,
        request: Request<B>,
        peer: SocketAddr,
        client: Option<IpAddr>,
        trace: Option<opentelemetry::trace::SpanContext>,
    ) -> Result<Answer, RequestError>
    where
        B: Body<Data = Bytes>,
    {
        // 1. Admission, continued: shed load, then the cheap refusals,
        // before a body is read.
        let _permit = self.admission.permit()?;
        admission::allowed(route, client)?;
        if let Some(answer) = admission::handshake(route, &request, peer) {
            return answer;
        }
        admission::admit(request.method())?;

        // 2. The bounded body.
        let (parts, body) = request.into_parts();
        let body = body::read_body(body, &parts.headers, &self.limits).await?;

        // 3. Verification; only then the rate limit, so that unsigned
        // requests cannot spend the genuine sender's budget.
        route.verifier.prepare(&parts.headers).await;
        let verified = route.verify(&verification::signed_post(&parts, &body), peer)?;
        route.charge_rate_limit()?;

        // 4. The event decision: handshakes, filtered and ack-only events
        // are answered here.
        if let Decision::Answer { outcome, response } =
            route.events.decide(&parts.headers, &body, &verified)
        {
            return Ok((outcome, response));
        }

        // 5. Deliver: forward now (sync) or spool (async), each with its
        // own dedup protocol.
        let accepted = Accepted {
            parts,
            body,
            strip: verified.strip_header,
            peer: peer.ip(),
            peer_trusted: self.admission.is_trusted(peer.ip()),
            trace,
        };
        route.deliver.deliver(route, accepted).await
    }
}

/// The route's deliver step, on the client pool and the stores opened at
/// start-up.
fn deliver_step(route: &Route, stores: &Stores, client: &UpstreamClient) -> Deliver {
    let dedup = match &route.dedup {
        DedupMode::Off => None,
        DedupMode::On(dedup) => Some(dedup),
    };
    let timeout = route.first().timeout;
    match route.ack {
        AckMode::Sync => Deliver::Sync(Box::new(Forwarding::new(
            client.clone(),
            dedup.map(|d| RouteDedup::open(d, stores, timeout)),
            route.spools().then(|| {
                stores
                    .spool()
                    .cloned()
                    .expect("spool opened for spooling routes")
            }),
        ))),
        AckMode::Async => {
            let spool = stores
                .spool()
                .cloned()
                .expect("spool opened for async routes");
            let dedup = match dedup {
                None => SpoolDedup::Off,
                // The local store shares the spool's database: the claim is
                // made in the transaction that spools the event.
                Some(d) if d.backend == DedupBackend::Local => SpoolDedup::WithTheEvent(d.clone()),
                Some(d) => SpoolDedup::Claim(RouteDedup::open(d, stores, timeout)),
            };
            Deliver::Async(Box::new(Spooling::new(spool, dedup)))
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::testing::{trutac_post, Fixture, Upstream, SECRET};

    #[tokio::test]
    async fn answered_events_never_reach_the_deliver_step() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&format!(
            "routes:\n  - {{ name: r, path: /r, ack: sync, verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, events: {{ from: \"json:/type\", allow: [\"order.*\"], ack_only: [\"ping\"] }}, dedup: {{ key: \"{{json:/id}}\" }}, upstream: {{ url: \"{}\" }} }}\n",
            upstream.url()
        ))
        .await;
        for (body, outcome) in [
            (r#"{"id":"1","type":"ping"}"#, "ack_only"),
            (r#"{"id":"2","type":"user.deleted"}"#, "filtered"),
        ] {
            let answer = fixture.send(trutac_post("/r", SECRET, body)).await;
            assert_eq!(answer.status, StatusCode::OK, "{body}");
            let series = format!(r#"hookgate_requests_total{{route="r",outcome="{outcome}"}}"#);
            assert_eq!(fixture.metric(&series), 1.0, "{series}");
        }
        assert_eq!(upstream.received(), 0);
        let forwarded = fixture
            .send(trutac_post(
                "/r",
                SECRET,
                r#"{"id":"3","type":"order.paid"}"#,
            ))
            .await;
        assert_eq!(forwarded.status, StatusCode::OK);
        assert_eq!(upstream.received(), 1);
        // Only the forwarded event was claimed.
        assert_eq!(
            fixture.metric(r#"hookgate_dedup_total{route="r",result="new"}"#),
            1.0
        );
    }
}
