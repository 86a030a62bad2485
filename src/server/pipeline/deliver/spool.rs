//! Async spooling (`ack: async`): the event is committed to the spool and
//! acknowledged; a delivery worker (`crate::spool`) forwards it later.
//!
//! Dedup: with the local store, the claim is made in the same transaction
//! as the insert ([`LocalClaim`]), so an event is never acknowledged
//! without its claim nor claimed without being spooled. Another store
//! claims first ([`RouteDedup::claim`]), commits once the event is spooled
//! and releases if spooling fails.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::claim::{self, ClaimGuard, Claimed, RouteDedup};
use super::{duplicate, Accepted, DELIVERY_ID};
use crate::config::{Dedup, DedupMode, Destination};
use crate::destination::EVENT_TYPE;
use crate::server::error::RequestError;
use crate::server::pipeline::route::RouteState;
use crate::server::pipeline::Answer;
use crate::spool::{Appended, LocalClaim, NewDelivery, NewEvent, Spool, StoreError};
use crate::telemetry::traces;
use crate::telemetry::{DedupResult, Outcome};

/// The deliver step of an async route.
pub(in crate::server::pipeline) struct Spooling {
    spool: Spool,
    dedup: SpoolDedup,
}

/// How an async route deduplicates.
pub(in crate::server::pipeline) enum SpoolDedup {
    Off,
    /// The local store: claimed in the transaction that spools the event.
    WithTheEvent(Dedup),
    /// Any other store: claimed before spooling, committed after.
    Claim(RouteDedup),
}

/// The claim that goes with one event.
enum EventClaim {
    Unclaimed,
    /// To be made with the insert.
    WithTheEvent(LocalClaim),
    /// Held in the dedup store.
    Held(ClaimGuard),
    /// A copy of an accepted event: answered, not spooled.
    Duplicate,
}

impl Spooling {
    pub(in crate::server::pipeline) fn new(spool: Spool, dedup: SpoolDedup) -> Spooling {
        Spooling { spool, dedup }
    }

    /// Spools the event with its dedup claim and acknowledges it once it
    /// is committed.
    pub(super) async fn deliver(
        &self,
        route: &RouteState,
        request: Accepted,
    ) -> Result<Answer, RequestError> {
        // Bounded: past max_pending the sender is asked to come back rather
        // than the spool growing without limit (and nothing is dropped).
        if self.spool.pending(route.name()) >= route.route.max_pending as i64 {
            return Err(RequestError::SpoolFull);
        }
        let (local_claim, guard) = match self.claim(route, &request).await? {
            EventClaim::Unclaimed => (None, None),
            EventClaim::WithTheEvent(claim) => (Some(claim), None),
            EventClaim::Held(guard) => (None, Some(guard)),
            EventClaim::Duplicate => return Ok(duplicate(route)),
        };
        let claimed_with_the_event = local_claim.is_some();
        let event = spooled_event(route, request, route.route.spooled_destinations());
        let appended = self.spool.append(event, local_claim).await;
        settle(route, appended, claimed_with_the_event, guard).await
    }

    async fn claim(
        &self,
        route: &RouteState,
        request: &Accepted,
    ) -> Result<EventClaim, RequestError> {
        let (headers, query, body) = (
            &request.parts.headers,
            request.parts.uri.query(),
            &request.body,
        );
        Ok(match &self.dedup {
            SpoolDedup::Off => EventClaim::Unclaimed,
            SpoolDedup::WithTheEvent(config) => EventClaim::WithTheEvent(LocalClaim {
                key: claim::event_key(config, route, headers, query, body),
                ttl: config.ttl,
            }),
            SpoolDedup::Claim(dedup) => match dedup.claim(route, headers, query, body).await? {
                Claimed::Held(guard) => EventClaim::Held(guard),
                Claimed::Unheld => EventClaim::Unclaimed,
                Claimed::Duplicate => EventClaim::Duplicate,
            },
        })
    }
}

/// The event as spooled for `destinations`: the forwarded headers (the
/// destinations' own headers may carry their credentials: they are added
/// at delivery time, never stored; each destination's `forward_headers`
/// applies then too), the request's trace context and event type, one
/// delivery per destination with its ordering key, and the dedup key's
/// values for operators.
pub(in crate::server::pipeline) fn spooled_event(
    route: &RouteState,
    request: Accepted,
    destinations: &[Destination],
) -> NewEvent {
    let config = &route.route;
    let query = request.parts.uri.query().map(str::to_string);
    let (headers, body) = (&request.parts.headers, &request.body);
    let deliveries = destinations
        .iter()
        .map(|d| NewDelivery {
            destination: d.name.clone(),
            order_key: d
                .ordering
                .as_ref()
                .and_then(|key| key.ordering(&d.name, headers, query.as_deref(), body)),
        })
        .collect();
    let dedup_key = match &config.dedup {
        DedupMode::On(dedup) => dedup.key.display(headers, query.as_deref(), body),
        DedupMode::Off => None,
    };
    let event_type = config
        .events
        .from
        .as_ref()
        .and_then(|from| from.event_type(headers, body))
        .and_then(|t| HeaderValue::from_str(&t).ok());
    let trace = request.trace.clone();
    let mut outbound = request.outbound(route, &HeaderMap::new());
    traces::store(trace.as_ref(), &mut outbound.headers);
    if let Some(event_type) = event_type {
        outbound.headers.insert(EVENT_TYPE, event_type);
    }
    NewEvent {
        route: route.name().to_string(),
        headers: outbound.headers,
        query,
        body: outbound.body,
        deliveries,
        dedup_key,
    }
}

/// The answer once the spool has answered, and the claim's end: committed
/// with the event, or released when it could not be spooled.
async fn settle(
    route: &RouteState,
    appended: Result<Appended, StoreError>,
    claimed_with_the_event: bool,
    guard: Option<ClaimGuard>,
) -> Result<Answer, RequestError> {
    match appended {
        Ok(Appended::Spooled(id)) => {
            if claimed_with_the_event {
                route.metrics.dedup(DedupResult::New);
            }
            if let Some(guard) = guard {
                guard.commit(&route.metrics).await;
            }
            Ok((Outcome::Accepted, ack_response(route.route.ack_status, &id)))
        }
        Ok(Appended::Duplicate) => {
            route.metrics.dedup(DedupResult::Duplicate);
            Ok(duplicate(route))
        }
        Ok(Appended::InFlight) => {
            route.metrics.dedup(DedupResult::InFlight);
            Err(RequestError::InFlight(1))
        }
        Err(error) => {
            if let Some(guard) = guard {
                guard.release(&route.metrics).await;
            }
            tracing::error!(route = %route.name(), %error, "spooling failed; the event is not acknowledged");
            Err(RequestError::StoreUnavailable)
        }
    }
}

/// `{"id": "<delivery id>"}` with the route's ack status (no body for 204).
fn ack_response(status: StatusCode, id: &str) -> Response<Full<Bytes>> {
    if status == StatusCode::NO_CONTENT {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        if let Ok(id) = HeaderValue::from_str(id) {
            response.headers_mut().insert(DELIVERY_ID, id);
        }
        return response;
    }
    let body = serde_json::json!({ "id": id }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(id) {
        headers.insert(DELIVERY_ID, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use crate::server::pipeline::testing::{trutac_post, Fixture, Upstream, SECRET};

    fn async_route(upstream: &Upstream, extra: &str) -> String {
        format!(
            "routes:\n  - {{ name: a, path: /a, ack: async, verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, dedup: {{ key: \"{{json:/id}}\" }}, upstream: {{ url: \"{}\" }}{extra} }}\n",
            upstream.url()
        )
    }

    #[tokio::test]
    async fn an_event_is_acknowledged_with_its_delivery_id_and_a_copy_is_a_duplicate() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&async_route(&upstream, "")).await;
        let ack = fixture
            .send(trutac_post("/a", SECRET, r#"{"id":"e1","n":1}"#))
            .await;
        assert_eq!(ack.status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&ack.body).unwrap();
        let id = json["id"].as_str().expect("the body names the delivery id");
        assert_eq!(ack.headers["hookgate-delivery-id"], id);
        // Claimed with the event, in the same transaction.
        let copy = fixture
            .send(trutac_post("/a", SECRET, r#"{"id":"e1","n":2}"#))
            .await;
        assert_eq!(copy.status, StatusCode::OK);
        assert_eq!(copy.headers["hookgate-duplicate"], "true");
        assert!(copy.headers.get("hookgate-delivery-id").is_none());
        assert_eq!(
            fixture.metric(r#"hookgate_dedup_total{route="a",result="new"}"#),
            1.0
        );
        assert_eq!(
            fixture.metric(r#"hookgate_dedup_total{route="a",result="duplicate"}"#),
            1.0
        );
        // Spooled, not forwarded: delivery is the worker's job.
        assert_eq!(upstream.received(), 0);
    }

    #[tokio::test]
    async fn a_full_spool_asks_the_sender_to_come_back() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&async_route(&upstream, ", max_pending: 1")).await;
        let first = fixture
            .send(trutac_post("/a", SECRET, r#"{"id":"e1"}"#))
            .await;
        assert_eq!(first.status, StatusCode::OK);
        let second = fixture
            .send(trutac_post("/a", SECRET, r#"{"id":"e2"}"#))
            .await;
        assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.error_code(), "spool_full");
        assert_eq!(second.headers["retry-after"], "30");
        // Refused before its event key was claimed.
        assert_eq!(
            fixture.metric(r#"hookgate_dedup_total{route="a",result="new"}"#),
            1.0
        );
    }
}
