//! Phase 5, deliver: what happens to a verified request that the event
//! decision let through. Each route has one of two deliver steps, each
//! owning its dedup protocol:
//!
//! - `sync.rs`, [`Forwarding`] (`ack: sync`): claim the event key, forward
//!   now, commit the claim (2xx) or release it (anything else), then relay
//!   the upstream's answer; the claim and its guard are in `claim.rs`;
//! - `spool.rs`, [`Spooling`] (`ack: async`): spool the event with its
//!   claim (in the spool's own transaction for the local store) and
//!   acknowledge once it is committed; a delivery worker forwards it later.
//!
//! Both answer a copy of an accepted event the same way
//! ([`duplicate_response`]), and neither answers 2xx for an event that is
//! not delivered (sync) or durably spooled (async).

mod claim;
mod spool;
mod sync;

use std::net::IpAddr;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Uri};
use http_body_util::Full;
use opentelemetry::trace::SpanContext;

use super::route::RouteState;
use super::Answer;
use crate::config::AckMode;
use crate::forward;
use crate::server::error::RequestError;
use crate::telemetry::Outcome;

pub(super) use claim::RouteDedup;
pub(super) use spool::{SpoolDedup, Spooling};
pub(super) use sync::Forwarding;

/// `Hookgate-Duplicate: true` on the answer to a copy of an accepted event.
const DUPLICATE_HEADER: HeaderName = HeaderName::from_static("hookgate-duplicate");
/// The spooled event's id, on async acknowledgements.
pub(super) const DELIVERY_ID: HeaderName = HeaderName::from_static("hookgate-delivery-id");

/// A route's deliver step (each boxed: they differ in size by hundreds of
/// bytes, and a route has one or the other).
pub(super) enum Deliver {
    Sync(Box<Forwarding>),
    Async(Box<Spooling>),
}

impl Deliver {
    pub(super) async fn deliver(
        &self,
        route: &RouteState,
        request: Accepted,
    ) -> Result<Answer, RequestError> {
        match self {
            Deliver::Sync(forwarding) => forwarding.deliver(route, request).await,
            Deliver::Async(spooling) => spooling.deliver(route, request).await,
        }
    }
}

/// A request that passed verification and the event decision: the only
/// input of the deliver step.
#[derive(Clone)]
pub(super) struct Accepted {
    pub(super) parts: Parts,
    /// The body exactly as verified.
    pub(super) body: Bytes,
    /// The credential header the verifier consumed; never sent upstream.
    pub(super) strip: Option<HeaderName>,
    /// The TCP peer, and whether it is one of `trusted_proxies`.
    pub(super) peer: IpAddr,
    pub(super) peer_trusted: bool,
    /// The request's span context when tracing is on: the parent of the
    /// upstream's spans (sync) or stored with the event (async).
    pub(super) trace: Option<SpanContext>,
}

/// What goes upstream, now or from the spool.
struct Outbound {
    headers: HeaderMap,
    /// The sender's request target, for its query string.
    uri: Uri,
    body: Bytes,
}

impl Accepted {
    /// The request as it goes upstream: the sender's headers filtered by
    /// the forwarding rules, plus `extra` (the route's `upstream.headers`,
    /// or none when they are added at delivery time).
    fn outbound(self, route: &RouteState, extra: &HeaderMap) -> Outbound {
        let rules = forward::ForwardRules {
            credential: self.strip.as_ref(),
            // Sync: the upstream's own rule. Async: every destination's
            // rule applies when it is delivered to.
            forward_only: match route.route.ack {
                AckMode::Sync => route
                    .route
                    .sync_upstream()
                    .and_then(|u| u.forward_headers.as_deref()),
                AckMode::Async => None,
            },
            route: &route.label,
            extra,
            peer: self.peer,
            peer_trusted: self.peer_trusted,
        };
        Outbound {
            headers: forward::upstream_request_headers(self.parts.headers, &rules),
            uri: self.parts.uri,
            body: self.body,
        }
    }
}

/// The answer to a copy of an event already accepted: the route's success
/// status, marked so the sender's logs show why nothing happened.
fn duplicate(route: &RouteState) -> Answer {
    (
        Outcome::Duplicate,
        duplicate_response(route.route.ack_status),
    )
}

fn duplicate_response(status: StatusCode) -> Response<Full<Bytes>> {
    let body = if status == StatusCode::NO_CONTENT {
        Bytes::new()
    } else {
        Bytes::from_static(br#"{"status":"duplicate"}"#)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    response
}
