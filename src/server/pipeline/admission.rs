//! Phase 1, admission: the refusals that cost nothing, before a body is
//! read. The gateway's half (who the client is, how many requests may be in
//! progress) and the route's half (its method and its allowlist).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, Method, Request};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::client_address::client_address;
use super::route::RouteState;
use super::Answer;
use crate::config::Config;
use crate::events::Refusal;
use crate::server::error::RequestError;
use crate::telemetry::Outcome;
use crate::verify::SignedRequest;

/// What admission needs beyond the route: shared by all routes.
pub(super) struct Admission {
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests being processed; past `max_concurrent_requests`, 503.
    in_flight: Semaphore,
}

impl Admission {
    pub(super) fn new(config: &Config) -> Admission {
        Admission {
            trusted_proxies: config.trusted_proxies.clone(),
            in_flight: Semaphore::new(config.limits.max_concurrent_requests),
        }
    }

    /// The sender's address (see [`client_address`]); `None` when it is
    /// unknown.
    pub(super) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        client_address(peer, headers, &self.trusted_proxies)
    }

    /// Whether `ip` is one of `trusted_proxies`.
    pub(super) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// A place among the requests in progress, held until the answer is
    /// built. Load is shed rather than queued without bound: a sender told
    /// 503 with Retry-After retries later, a queued one times out and
    /// retries anyway.
    pub(super) fn permit(&self) -> Result<SemaphorePermit<'_>, RequestError> {
        self.in_flight
            .try_acquire()
            .map_err(|_| RequestError::Overloaded)
    }
}

/// A handshake answered before the body is read: one in the query string
/// (Meta, Dropbox, Microsoft Graph; see [`crate::events::challenge`]) or
/// Okta's verified `GET` challenge; `None` for any other request.
pub(super) fn handshake<B>(
    route: &RouteState,
    request: &Request<B>,
    peer: SocketAddr,
) -> Option<Result<Answer, RequestError>> {
    if let Some(query) = route.events.query_handshake() {
        let answer = query.answer(request.method(), request.uri().query())?;
        return Some(match answer {
            Ok(response) => Ok((Outcome::AckOnly, response)),
            Err(Refusal::Forbidden) => {
                // Never the token itself.
                tracing::info!(route = %route.name(), %peer, "subscription refused: hub.mode is not subscribe, or the verify token is missing or wrong");
                Err(RequestError::Forbidden)
            }
            Err(Refusal::BadChallenge) => Err(RequestError::BadChallenge),
        });
    }
    get_challenge(route, request, peer)
}

/// A sender's `GET` challenge (Okta), verified like any request (with an
/// empty body) before it is answered; `None` for any other request.
fn get_challenge<B>(
    route: &RouteState,
    request: &Request<B>,
    peer: SocketAddr,
) -> Option<Result<Answer, RequestError>> {
    if request.method() != Method::GET || !route.events.answers_get() {
        return None;
    }
    let signed = SignedRequest {
        method: "GET",
        query: request.uri().query(),
        headers: request.headers(),
        body: &[],
        now: std::time::SystemTime::now(),
    };
    Some(route.verify(&signed, peer).and_then(|_| {
        match route.events.get_challenge(request.headers()) {
            Some(response) => Ok((Outcome::AckOnly, response)),
            None => Err(RequestError::MethodNotAllowed),
        }
    }))
}

/// The route's allowlist: an address in the route's `allow_ips` when it
/// has any. An unknown client (see [`client_address`]) is in no allowlist.
/// Checked before any handshake is answered, too.
pub(super) fn allowed(route: &RouteState, client: Option<IpAddr>) -> Result<(), RequestError> {
    let allowed = &route.route.allow_ips;
    let listed = |ip: &IpAddr| allowed.iter().any(|net| net.contains(ip));
    if !allowed.is_empty() && !client.as_ref().is_some_and(listed) {
        let client = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        tracing::info!(route = %route.name(), %client, "sender address not allowed");
        return Err(RequestError::Forbidden);
    }
    Ok(())
}

/// Webhooks are `POST`s.
pub(super) fn admit(method: &Method) -> Result<(), RequestError> {
    if method != Method::POST {
        return Err(RequestError::MethodNotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::super::testing::{post, Fixture, TestBody, Upstream};

    fn open_route(upstream: &Upstream, extra: &str) -> String {
        format!(
            "routes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }}{extra} }}\n",
            upstream.url()
        )
    }

    #[tokio::test]
    async fn an_unknown_path_is_404_and_counted_as_unmatched() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&open_route(&upstream, "")).await;
        let answer = fixture.send(post("/r/other", &[], "{}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(answer.error_code(), "not_found");
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="_unmatched",outcome="not_found"}"#),
            1.0
        );
        assert_eq!(upstream.received(), 0);
    }

    #[tokio::test]
    async fn only_posts_are_admitted() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&open_route(&upstream, "")).await;
        for method in ["GET", "PUT", "DELETE"] {
            let request = http::Request::builder()
                .method(method)
                .uri("/r")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let answer = fixture.send(request).await;
            assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(answer.headers["allow"], "POST");
        }
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="method_not_allowed"}"#),
            3.0
        );
        assert_eq!(upstream.received(), 0);
    }

    #[tokio::test]
    async fn the_allowlist_refuses_other_senders_before_their_body_is_read() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&open_route(&upstream, ", allow_ips: [192.0.2.0/24]")).await;
        // A body that never arrives: reading it would end in 408, not 403.
        let stalled = http::Request::post("/r").body(TestBody::stalled()).unwrap();
        let refused = fixture.send_from("203.0.113.9:4711", stalled).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_code(), "forbidden");
        let allowed = fixture
            .send_from("192.0.2.7:4711", post("/r", &[], "{}"))
            .await;
        assert_eq!(allowed.status, StatusCode::OK);
        assert_eq!(upstream.received(), 1);
    }

    #[tokio::test]
    async fn past_the_concurrency_limit_requests_are_shed_with_503() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let yaml = format!(
            "limits: {{ max_concurrent_requests: 1 }}\n{}",
            open_route(&upstream, "")
        );
        let fixture = Fixture::new(&yaml).await;
        let gateway = fixture.gateway();
        let peer = "192.0.2.10:4711".parse().unwrap();
        {
            // The first request holds the only place while its body is
            // awaited: polled (first, `biased`) until it waits for the body.
            let stalled = http::Request::post("/r").body(TestBody::stalled()).unwrap();
            let first = gateway.handle(stalled, peer);
            let mut first = std::pin::pin!(first);
            tokio::select! {
                biased;
                _ = &mut first => panic!("a stalled body was answered"),
                _ = std::future::ready(()) => {}
            }
            let shed = fixture.send(post("/r", &[], "{}")).await;
            assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(shed.error_code(), "overloaded");
            assert_eq!(shed.headers["retry-after"], "1");
            assert_eq!(upstream.received(), 0);
        }
        // The sender that went away gave its place back.
        let admitted = fixture.send(post("/r", &[], "{}")).await;
        assert_eq!(admitted.status, StatusCode::OK);
        assert_eq!(upstream.received(), 1);
    }
}
