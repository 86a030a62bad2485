//! The webhook request pipeline: route -> method -> bounded body -> verify
//! -> forward -> relay. Each step returns a typed error; `error.rs` turns it
//! into the response.
//!
//! Invariant: nothing reaches `UpstreamClient::send` unless its route's
//! verifier returned `Ok` for these exact headers and body bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::error::RequestError;
use crate::config::{Config, Limits, Route, UNMATCHED_ROUTE};
use crate::events::{Decision, Events};
use crate::forward::{self, ForwardError, Outgoing, UpstreamClient};
use crate::telemetry::{Metrics, Outcome, RouteMetrics};
use crate::verify::{SignedRequest, Verifier};

/// One route, ready to serve.
struct RouteState {
    route: Route,
    verifier: Verifier,
    events: Events,
    metrics: RouteMetrics,
    /// `Hookgate-Route` value, built once.
    label: HeaderValue,
}

/// Everything the ingress needs to answer a request; shared by all
/// connections.
pub struct Gateway {
    /// Routes by exact path.
    routes: HashMap<String, RouteState>,
    unmatched: RouteMetrics,
    client: UpstreamClient,
    limits: Limits,
}

impl Gateway {
    pub fn new(config: &Config, metrics: &Metrics) -> Gateway {
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let state = RouteState {
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
            client: UpstreamClient::new(config.limits.max_upstream_response_bytes),
            limits: config.limits.clone(),
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
        let (outcome, response) = match self.process(route, request, peer).await {
            Ok(done) => done,
            Err(error) => (error.outcome(), error.into_response(http1)),
        };
        route
            .metrics
            .request(outcome, started.elapsed().as_secs_f64());
        tracing::debug!(
            route = %route.route.name,
            outcome = outcome.as_str(),
            status = response.status().as_u16(),
            "request"
        );
        response
    }

    async fn process(
        &self,
        route: &RouteState,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(Outcome, Response<Full<Bytes>>), RequestError> {
        if request.method() != Method::POST {
            return Err(RequestError::MethodNotAllowed);
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
        let verified = route.verifier.verify_request(&request).map_err(|e| {
            route.metrics.verify_failure(e);
            tracing::info!(route = %route.route.name, reason = e.code(), %peer, "verification failed");
            RequestError::Unauthorized(e)
        })?;
        if let Some(index) = verified.secret_index {
            route.metrics.secret_matched(index);
        }
        // Handshakes, filtered and ack-only events are answered here.
        if let Decision::Answer { outcome, response } =
            route.events.decide(&parts.headers, &body, &verified)
        {
            return Ok((outcome, response));
        }

        let upstream = &route.route.upstream;
        let headers = forward::upstream_request_headers(
            parts.headers,
            verified.strip_header.as_ref(),
            &route.label,
            &upstream.headers,
            peer.ip(),
        );
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
        match result {
            Ok(answer) => {
                route.metrics.upstream(status_class(answer.status), seconds);
                let outcome = if answer.status.is_success() {
                    Outcome::Accepted
                } else {
                    Outcome::UpstreamRejected
                };
                let mut response = Response::new(Full::new(answer.body));
                *response.status_mut() = answer.status;
                *response.headers_mut() = forward::relayed_response_headers(answer.headers);
                Ok((outcome, response))
            }
            Err(ForwardError::Timeout(after)) => {
                route.metrics.upstream("timeout", seconds);
                tracing::warn!(route = %route.route.name, ?after, "upstream timed out");
                Err(RequestError::UpstreamTimeout)
            }
            Err(error) => {
                route.metrics.upstream("error", seconds);
                tracing::warn!(route = %route.route.name, %error, "upstream failed");
                Err(match error {
                    ForwardError::ResponseTooLarge(_) => RequestError::UpstreamResponseTooLarge,
                    _ => RequestError::UpstreamUnavailable,
                })
            }
        }
    }
}

/// Reads the whole body, refusing more than `max_body_bytes` (from
/// Content-Length before reading anything, and while streaming for chunked
/// bodies) and giving up after `body_read_timeout`.
async fn read_body(
    body: Incoming,
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
    match tokio::time::timeout(
        limits.body_read_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    {
        Err(_) => Err(RequestError::BodyTimeout),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(RequestError::TooLarge),
        Ok(Err(_)) => Err(RequestError::BadBody),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
