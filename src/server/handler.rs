//! The webhook request pipeline: route -> method -> bounded body -> verify
//! -> dedup claim -> forward -> commit or release the claim -> relay. Each
//! step returns a typed error; `error.rs` turns it into the response.
//!
//! Invariants:
//! - nothing reaches `UpstreamClient::send` unless its route's verifier
//!   returned `Ok` for these exact headers and body bytes;
//! - unverified requests never touch the dedup store;
//! - (sync mode) a claim is committed only after the upstream answered 2xx;
//!   on any other outcome, including the request being dropped, it is
//!   released so the sender's retry is forwarded again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::error::RequestError;
use crate::config::BODY_RATE_GRACE;
use crate::config::{
    AckMode, Config, Dedup, DedupBackend, DedupMode, Limits, Route, StoreErrorPolicy,
    UNMATCHED_ROUTE,
};
use crate::dedup::{Claim, ClaimToken, EventKey, SharedDedupStore, StoreError};
use crate::events::{Decision, Events};
use crate::forward::{self, ForwardError, Outgoing, UpstreamClient};
use crate::spool::{Appended, LocalClaim, NewEvent, Spool};
use crate::telemetry::{DedupResult, Metrics, Outcome, RouteMetrics, UpstreamClass};
use crate::verify::{SignedRequest, Verified, Verifier};

/// One route, ready to serve.
struct RouteState {
    route: Route,
    verifier: Verifier,
    events: Events,
    metrics: RouteMetrics,
    /// `Hookgate-Route` value, built once.
    label: HeaderValue,
    dedup: Option<RouteDedup>,
    limiter: Option<governor::DefaultDirectRateLimiter>,
}

impl RouteState {
    /// Verifies one request and counts the result: a failure by reason, a
    /// success by the index of the secret that matched.
    fn verify(
        &self,
        request: &SignedRequest<'_>,
        peer: SocketAddr,
    ) -> Result<Verified, RequestError> {
        let verified = self.verifier.verify_request(request).map_err(|e| {
            self.metrics.verify_failure(e);
            tracing::info!(route = %self.route.name, reason = e.code(), %peer, "verification failed");
            RequestError::Unauthorized(e)
        })?;
        if let Some(index) = verified.secret_index {
            self.metrics.secret_matched(index);
        }
        Ok(verified)
    }

    /// Takes one request from the route's rate limit, if it has one.
    fn charge_rate_limit(&self) -> Result<(), RequestError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RequestError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
    }

    /// The rules for the headers this route's requests carry upstream.
    fn forward_rules<'a>(
        &'a self,
        credential: Option<&'a http::HeaderName>,
        extra: &'a HeaderMap,
        peer: IpAddr,
        peer_trusted: bool,
    ) -> forward::ForwardRules<'a> {
        forward::ForwardRules {
            credential,
            forward_only: self.route.upstream.forward_headers.as_deref(),
            route: &self.label,
            extra,
            peer,
            peer_trusted,
        }
    }
}

struct RouteDedup {
    config: Dedup,
    store: SharedDedupStore,
    /// How long an uncommitted claim may live: the upstream exchange is
    /// bounded by its timeout, plus a margin for the store round trips.
    lease: Duration,
    /// Retry-After for copies that arrive while the first is in flight.
    retry_after_secs: u64,
}

const DUPLICATE_HEADER: http::HeaderName = http::HeaderName::from_static("hookgate-duplicate");
const DELIVERY_ID: http::HeaderName = http::HeaderName::from_static("hookgate-delivery-id");

/// Everything the ingress needs to answer a request; shared by all
/// connections.
pub struct Gateway {
    /// Routes by exact path.
    routes: HashMap<String, RouteState>,
    unmatched: RouteMetrics,
    client: UpstreamClient,
    limits: Limits,
    spool: Option<Spool>,
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests being processed; past `max_concurrent_requests`, 503.
    in_flight: tokio::sync::Semaphore,
}

impl Gateway {
    /// Builds the routes. `stores` must hold every backend a route uses
    /// (see [`crate::stores::Stores`]); a missing one is a bug in start-up. Requests go
    /// upstream through `client`, the process's one pool (built at start-up
    /// and kept across reloads), with this config's response-size limit.
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        stores: &crate::stores::Stores,
        client: &UpstreamClient,
    ) -> Gateway {
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let dedup = match &route.dedup {
                    DedupMode::Off => None,
                    DedupMode::On(d) => Some(RouteDedup {
                        store: stores
                            .dedup(d.backend)
                            .expect("every backend a route uses is opened at start-up")
                            .clone(),
                        lease: route.upstream.timeout + Duration::from_secs(10),
                        retry_after_secs: route.upstream.timeout.as_secs().clamp(1, 60),
                        config: d.clone(),
                    }),
                };
                let limiter = route.rate_limit.map(|r| {
                    let nonzero = |n: u32| std::num::NonZeroU32::new(n).expect("validated > 0");
                    governor::RateLimiter::direct(
                        governor::Quota::per_second(nonzero(r.per_second))
                            .allow_burst(nonzero(r.burst)),
                    )
                });
                let state = RouteState {
                    limiter,
                    dedup,
                    verifier: Verifier::new(&route.verify),
                    events: Events::new(&route.events, &route.verify),
                    metrics: metrics.route(&route.name, route.verify.secret_count()),
                    label: HeaderValue::from_str(&route.name).expect("route names are validated"),
                    route: route.clone(),
                };
                (route.path.clone(), state)
            })
            .collect();
        Gateway {
            routes,
            unmatched: metrics.route(UNMATCHED_ROUTE, 0),
            client: client.with_max_response_bytes(config.limits.max_upstream_response_bytes),
            limits: config.limits.clone(),
            spool: stores.spool().cloned(),
            trusted_proxies: config.trusted_proxies.clone(),
            in_flight: tokio::sync::Semaphore::new(config.limits.max_concurrent_requests),
        }
    }

    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let http1 = request.version() <= Version::HTTP_11;
        let Some(route) = self.routes.get(request.uri().path()) else {
            let error = RequestError::NotFound;
            self.unmatched
                .request(error.outcome(), started.elapsed().as_secs_f64());
            return error.into_response(http1);
        };
        let client = client_address(peer.ip(), request.headers(), &self.trusted_proxies);
        let remote = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        // Shed load rather than queue without bound: a sender told 503 with
        // Retry-After retries later, a queued one times out and retries anyway.
        let result = match self.in_flight.try_acquire() {
            Ok(_permit) => self.process(route, request, peer, client).await,
            Err(_) => Err(RequestError::Overloaded),
        };
        let (outcome, response) = match result {
            Ok(done) => done,
            Err(error) => (error.outcome(), error.into_response(http1)),
        };
        let elapsed = started.elapsed();
        route.metrics.request(outcome, elapsed.as_secs_f64());
        // The access log: one line per request, never a header value or body.
        tracing::info!(
            target: "hookgate::access",
            route = %route.route.name,
            outcome = outcome.as_str(),
            status = response.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            delivery_id = response.headers().get(DELIVERY_ID).and_then(|v| v.to_str().ok()).unwrap_or(""),
            remote = %remote,
        );
        response
    }

    async fn process(
        &self,
        route: &RouteState,
        request: Request<Incoming>,
        peer: SocketAddr,
        client: Option<IpAddr>,
    ) -> Result<(Outcome, Response<Full<Bytes>>), RequestError> {
        if request.method() == Method::GET && route.events.answers_get() {
            return self.get_challenge(route, &request, peer);
        }
        if request.method() != Method::POST {
            return Err(RequestError::MethodNotAllowed);
        }
        // Cheap refusals first, before reading a body.
        // An unknown client (see `client_address`) is in no allowlist.
        let allowed = &route.route.allow_ips;
        let listed = |ip: &IpAddr| allowed.iter().any(|net| net.contains(ip));
        if !allowed.is_empty() && !client.as_ref().is_some_and(listed) {
            let client = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            tracing::info!(route = %route.route.name, %client, "sender address not allowed");
            return Err(RequestError::Forbidden);
        }
        let (parts, body) = request.into_parts();
        let body = read_body(body, &parts.headers, &self.limits).await?;

        let request = SignedRequest {
            method: parts.method.as_str(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
            now: std::time::SystemTime::now(),
        };
        let verified = route.verify(&request, peer)?;
        // Only verified requests spend the route's budget: unsigned ones
        // must not be able to crowd out the genuine sender.
        route.charge_rate_limit()?;
        // Handshakes, filtered and ack-only events are answered here.
        if let Decision::Answer { outcome, response } =
            route.events.decide(&parts.headers, &body, &verified)
        {
            return Ok((outcome, response));
        }

        if route.route.ack == AckMode::Async {
            return self
                .accept_async(route, parts, body, verified.strip_header, peer)
                .await;
        }

        let claim = match &route.dedup {
            None => None,
            Some(dedup) => {
                match claim(route, dedup, &parts.headers, parts.uri.query(), &body).await? {
                    Claimed::Held(guard) => Some(guard),
                    Claimed::Unheld => None,
                    Claimed::Duplicate => {
                        return Ok((
                            Outcome::Duplicate,
                            duplicate_response(route.route.ack_status),
                        ))
                    }
                }
            }
        };

        let upstream = &route.route.upstream;
        let rules = route.forward_rules(
            verified.strip_header.as_ref(),
            &upstream.headers,
            peer.ip(),
            self.is_trusted(peer.ip()),
        );
        let headers = forward::upstream_request_headers(parts.headers, &rules);
        let sent = Instant::now();
        let result = self
            .client
            .send(Outgoing {
                upstream,
                query: parts.uri.query(),
                headers,
                body,
            })
            .await;
        let seconds = sent.elapsed().as_secs_f64();
        if let Some(guard) = claim {
            let accepted = matches!(&result, Ok(answer) if answer.status.is_success());
            if accepted {
                guard.commit(&route.metrics).await;
            } else {
                guard.release(&route.metrics).await;
            }
        }
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
                tracing::warn!(route = %route.route.name, ?after, "upstream timed out");
                Err(RequestError::UpstreamTimeout)
            }
            Err(error) => {
                route.metrics.upstream(UpstreamClass::Error, seconds);
                tracing::warn!(route = %route.route.name, %error, "upstream failed");
                Err(match error {
                    ForwardError::ResponseTooLarge(_) => RequestError::UpstreamResponseTooLarge,
                    _ => RequestError::UpstreamUnavailable,
                })
            }
        }
    }
}

enum Claimed {
    /// First copy: forward it, then commit or release.
    Held(ClaimGuard),
    /// The store failed and the policy is `accept`: forward without dedup.
    Unheld,
    Duplicate,
}

/// Claims the request's event key. In-flight copies and (with the `reject`
/// policy) store failures are errors for the sender.
async fn claim(
    route: &RouteState,
    dedup: &RouteDedup,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Claimed, RequestError> {
    let name = &route.route.name;
    let (key, fell_back) = dedup.config.key.extract(name, headers, query, body);
    if fell_back {
        route.metrics.dedup_key_fallback();
    }
    match dedup.store.claim(name, &key, dedup.lease).await {
        Ok(claim) => {
            route.metrics.dedup(claim.result());
            match claim {
                Claim::New(token) => Ok(Claimed::Held(ClaimGuard {
                    store: dedup.store.clone(),
                    route: name.as_str().into(),
                    key,
                    token,
                    ttl: dedup.config.ttl,
                    armed: true,
                })),
                Claim::Duplicate => Ok(Claimed::Duplicate),
                Claim::InFlight => Err(RequestError::InFlight(dedup.retry_after_secs)),
            }
        }
        Err(error) => {
            route.metrics.dedup_error();
            match dedup.config.on_store_error {
                StoreErrorPolicy::Accept => {
                    tracing::warn!(route = %name, %error, "dedup store failed; forwarding without dedup");
                    Ok(Claimed::Unheld)
                }
                StoreErrorPolicy::Reject => {
                    tracing::warn!(route = %name, %error, "dedup store failed; rejecting with 503");
                    Err(RequestError::StoreUnavailable)
                }
            }
        }
    }
}

/// A held claim. It must end in `commit` or `release`; if the request is
/// dropped first (the sender went away), it is released in the background
/// so the event is not blocked until the lease runs out.
struct ClaimGuard {
    store: SharedDedupStore,
    route: Arc<str>,
    key: EventKey,
    token: ClaimToken,
    ttl: Duration,
    armed: bool,
}

impl ClaimGuard {
    /// Commits the claim. The answer to the sender does not wait for the
    /// local store's row (copies are answered from memory until it is
    /// written): a failure to record the claim is counted when it happens.
    async fn commit(mut self, metrics: &RouteMetrics) {
        self.armed = false;
        let on_failure = {
            let (errors, route) = (metrics.dedup_errors(), self.route.clone());
            Box::new(move |error: StoreError| {
                // The event was delivered; a later copy may be forwarded again.
                errors.increment(1);
                tracing::warn!(%route, %error, "dedup commit failed");
            })
        };
        self.store
            .commit_early(&self.route, &self.key, self.token, self.ttl, on_failure)
            .await;
    }

    async fn release(mut self, metrics: &RouteMetrics) {
        self.armed = false;
        if let Err(error) = self.store.release(&self.route, &self.key, self.token).await {
            // The claim expires with its lease; until then copies get 409.
            metrics.dedup_error();
            tracing::warn!(route = %self.route, %error, "dedup release failed");
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, route, key, token) =
            (self.store.clone(), self.route.clone(), self.key, self.token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release(&route, &key, token).await {
                    tracing::warn!(%route, %error, "dedup release after a dropped request failed");
                }
            });
        }
    }
}

/// The answer to a copy of an event already accepted: the route's success
/// status, marked so the sender's logs show why nothing happened.
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

impl Gateway {
    /// A sender's `GET` challenge (Okta), verified like any request (with an
    /// empty body) before it is answered.
    fn get_challenge(
        &self,
        route: &RouteState,
        request: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(Outcome, Response<Full<Bytes>>), RequestError> {
        let signed = SignedRequest {
            method: "GET",
            query: request.uri().query(),
            headers: request.headers(),
            body: &[],
            now: std::time::SystemTime::now(),
        };
        route.verify(&signed, peer)?;
        match route.events.get_challenge(request.headers()) {
            Some(response) => Ok((Outcome::AckOnly, response)),
            None => Err(RequestError::MethodNotAllowed),
        }
    }

    /// Async acknowledgement: spool the event (with its dedup claim), answer
    /// once it is committed; the delivery worker forwards it later.
    async fn accept_async(
        &self,
        route: &RouteState,
        parts: http::request::Parts,
        body: Bytes,
        strip: Option<http::HeaderName>,
        peer: SocketAddr,
    ) -> Result<(Outcome, Response<Full<Bytes>>), RequestError> {
        let spool = self.spool.as_ref().expect("spool opened for async routes");
        let name = &route.route.name;
        // Bounded: past max_pending the sender is asked to come back rather
        // than the spool growing without limit (and nothing is dropped).
        if spool.pending(name) >= route.route.max_pending as i64 {
            return Err(RequestError::SpoolFull);
        }
        let query = parts.uri.query().map(str::to_string);
        let mut local_claim = None;
        let mut guard = None;
        if let Some(dedup) = &route.dedup {
            match dedup.config.backend {
                // Claimed in the spool's own transaction, below.
                DedupBackend::Local => {
                    let (key, fell_back) =
                        dedup
                            .config
                            .key
                            .extract(name, &parts.headers, query.as_deref(), &body);
                    if fell_back {
                        route.metrics.dedup_key_fallback();
                    }
                    local_claim = Some(LocalClaim {
                        key,
                        ttl: dedup.config.ttl,
                    });
                }
                DedupBackend::Redis => {
                    match claim(route, dedup, &parts.headers, query.as_deref(), &body).await? {
                        Claimed::Held(held) => guard = Some(held),
                        Claimed::Unheld => {}
                        Claimed::Duplicate => {
                            return Ok((
                                Outcome::Duplicate,
                                duplicate_response(route.route.ack_status),
                            ))
                        }
                    }
                }
            }
        }
        // The route's own upstream headers may carry the upstream's
        // credentials: they are added at delivery time, never stored.
        let no_extra = HeaderMap::new();
        let rules = route.forward_rules(
            strip.as_ref(),
            &no_extra,
            peer.ip(),
            self.is_trusted(peer.ip()),
        );
        let headers = forward::upstream_request_headers(parts.headers, &rules);
        let has_local_claim = local_claim.is_some();
        let appended = spool
            .append(
                NewEvent {
                    route: name.clone(),
                    headers,
                    query,
                    body,
                },
                local_claim,
            )
            .await;
        match appended {
            Ok(Appended::Spooled(id)) => {
                if has_local_claim {
                    route.metrics.dedup(DedupResult::New);
                }
                if let Some(guard) = guard {
                    guard.commit(&route.metrics).await;
                }
                Ok((Outcome::Accepted, ack_response(route.route.ack_status, &id)))
            }
            Ok(Appended::Duplicate) => {
                route.metrics.dedup(DedupResult::Duplicate);
                Ok((
                    Outcome::Duplicate,
                    duplicate_response(route.route.ack_status),
                ))
            }
            Ok(Appended::InFlight) => {
                route.metrics.dedup(DedupResult::InFlight);
                Err(RequestError::InFlight(1))
            }
            Err(error) => {
                if let Some(guard) = guard {
                    guard.release(&route.metrics).await;
                }
                tracing::error!(route = %name, %error, "spooling failed; the event is not acknowledged");
                Err(RequestError::StoreUnavailable)
            }
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

impl Gateway {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// The sender's address: the peer, unless the peer is a trusted proxy.
/// Then the chain `X-Forwarded-For` + peer is walked from the right, past
/// trusted proxies, to the first address that is not one: entries further
/// left were written by whoever the proxy talked to and may be forged.
/// `None` (an unknown client, in no `allow_ips`) when that walk meets an
/// entry that is not an address, or finds only trusted proxies: the
/// left-most entry is never believed just because nothing else is left.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let values: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").iter().collect();
    for value in values.into_iter().rev() {
        let text = value.to_str().ok()?;
        for entry in text.rsplit(',') {
            let ip = forwarded_for_entry(entry.trim())?;
            if !is_trusted(&ip) {
                return Some(ip);
            }
        }
    }
    None
}

/// One `X-Forwarded-For` entry: `ip`, `ipv4:port`, `[ipv6]` or `[ipv6]:port`.
fn forwarded_for_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// Reads the whole body, refusing more than `max_body_bytes` (from
/// Content-Length before reading anything, and while streaming for chunked
/// bodies) and giving up after `body_read_timeout`.
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Bytes, RequestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(RequestError::TooLarge);
    }
    let limit = usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX);
    let started = tokio::time::Instant::now();
    let deadline = started + limits.body_read_timeout;
    let mut received = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        // Wait for the next frame until the overall deadline, or until the
        // moment the sender falls below the minimum rate, if sooner.
        let rate_deadline = (limits.body_min_rate > 0).then(|| {
            let needed = received.len() as f64 / limits.body_min_rate as f64;
            started + BODY_RATE_GRACE.max(std::time::Duration::from_secs_f64(needed))
        });
        let wait_until = rate_deadline.map_or(deadline, |r| r.min(deadline));
        let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
            Err(_) => return Err(RequestError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(RequestError::BadBody),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if received.len() + data.len() > limit {
                return Err(RequestError::TooLarge);
            }
            received.extend_from_slice(&data);
        }
    }
    Ok(received.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(chain: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for value in chain {
            h.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_address_trusts_forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = forwarded(&["6.6.6.6, 192.30.252.1, 10.1.1.1"]);
        // From a trusted proxy: the right-most untrusted entry (6.6.6.6 may be forged).
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            Some(ip("192.30.252.1"))
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &[]),
            Some(ip("10.0.0.2"))
        );
        // Several header lines form one chain, the last line right-most.
        let lines = forwarded(&["192.30.252.1", "6.6.6.6, 10.1.1.1"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &lines, &trusted),
            Some(ip("6.6.6.6"))
        );
    }

    #[test]
    fn client_address_parses_ports_and_brackets() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        for (entry, client) in [
            ("192.30.252.1:4711", "192.30.252.1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            // A port on the client, and a trusted proxy (with a port) after it.
            let h = forwarded(&[&format!("6.6.6.6, {entry}, 10.1.1.1:80")]);
            assert_eq!(
                client_address(peer, &h, &trusted),
                Some(ip(client)),
                "{entry}"
            );
        }
    }

    #[test]
    fn client_address_is_unknown_rather_than_a_guess() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        for chain in [
            // An entry that does not parse, right of the forged left-most one.
            "192.30.252.1, unknown, 10.1.1.1",
            "192.30.252.1, garbage:port",
            "192.30.252.1, ",
            "192.30.252.1, [2001:db8::1",
            // Only trusted proxies: the left-most entry is not believed.
            "10.1.1.1, 10.2.2.2",
        ] {
            let h = forwarded(&[chain]);
            assert_eq!(client_address(peer, &h, &trusted), None, "{chain:?}");
        }
        // A trusted proxy that sends no chain: only trusted addresses.
        assert_eq!(client_address(peer, &HeaderMap::new(), &trusted), None);
    }
}
