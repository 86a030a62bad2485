//! Every way a webhook request can fail, and the one place that maps each
//! to an HTTP status, an error code for the sender and a metric outcome.
//!
//! Error bodies are small JSON objects with a stable code. Internal detail
//! (upstream addresses, I/O errors, expected signatures) is logged, never
//! sent to the sender.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::telemetry::Outcome;
use crate::verify::VerifyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    TooLarge,
    #[error("the request body was not received in time")]
    BodyTimeout,
    #[error("the request body could not be read")]
    BadBody,
    /// A handshake's challenge is missing, repeated or too long.
    #[error("the handshake's challenge is missing or too long")]
    BadChallenge,
    #[error("verification failed: {0}")]
    Unauthorized(VerifyError),
    #[error("the upstream could not be reached")]
    UpstreamUnavailable,
    #[error("the upstream response was too large")]
    UpstreamResponseTooLarge,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// Another copy of this event is being processed; retry after the
    /// given number of seconds.
    #[error("a copy of this event is in flight")]
    InFlight(u64),
    #[error("the store is unavailable")]
    StoreUnavailable,
    #[error("the route's spool is full")]
    SpoolFull,
    #[error("the sender's address is not allowed on this route")]
    Forbidden,
    /// Over the route's rate limit; retry after this many seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// `max_concurrent_requests` are already being processed.
    #[error("overloaded")]
    Overloaded,
}

/// Retry-After when a route's spool is full, in seconds.
const SPOOL_FULL_RETRY_AFTER_SECS: u64 = 30;

/// Retry-After for a store outage, in seconds.
const STORE_RETRY_AFTER_SECS: u64 = 5;

impl RequestError {
    pub fn status(self) -> StatusCode {
        match self {
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RequestError::BadBody | RequestError::BadChallenge => StatusCode::BAD_REQUEST,
            // The sender's keys could not be fetched: nothing says the
            // request is forged, so the sender is asked to retry.
            RequestError::Unauthorized(VerifyError::KeysUnavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RequestError::UpstreamUnavailable | RequestError::UpstreamResponseTooLarge => {
                StatusCode::BAD_GATEWAY
            }
            RequestError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            RequestError::InFlight(_) => StatusCode::CONFLICT,
            RequestError::StoreUnavailable | RequestError::SpoolFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::Forbidden => StatusCode::FORBIDDEN,
            RequestError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            RequestError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable code in the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            RequestError::NotFound => "not_found",
            RequestError::MethodNotAllowed => "method_not_allowed",
            RequestError::TooLarge => "payload_too_large",
            RequestError::BodyTimeout => "request_timeout",
            RequestError::BadBody => "bad_request",
            RequestError::BadChallenge => "bad_challenge",
            RequestError::Unauthorized(e) => e.code(),
            RequestError::UpstreamUnavailable => "upstream_unavailable",
            RequestError::UpstreamResponseTooLarge => "upstream_response_too_large",
            RequestError::UpstreamTimeout => "upstream_timeout",
            RequestError::InFlight(_) => "in_flight",
            RequestError::StoreUnavailable => "store_unavailable",
            RequestError::SpoolFull => "spool_full",
            RequestError::Forbidden => "forbidden",
            RequestError::RateLimited(_) => "rate_limited",
            RequestError::Overloaded => "overloaded",
        }
    }

    pub fn outcome(self) -> Outcome {
        match self {
            RequestError::NotFound => Outcome::NotFound,
            RequestError::MethodNotAllowed => Outcome::MethodNotAllowed,
            RequestError::TooLarge => Outcome::TooLarge,
            RequestError::BodyTimeout => Outcome::Timeout,
            RequestError::BadBody | RequestError::BadChallenge => Outcome::BadRequest,
            RequestError::Unauthorized(_) => Outcome::Unauthorized,
            RequestError::UpstreamUnavailable | RequestError::UpstreamResponseTooLarge => {
                Outcome::UpstreamError
            }
            RequestError::UpstreamTimeout => Outcome::UpstreamTimeout,
            RequestError::InFlight(_) => Outcome::InFlight,
            RequestError::StoreUnavailable => Outcome::StoreUnavailable,
            RequestError::SpoolFull => Outcome::SpoolFull,
            RequestError::Forbidden => Outcome::Forbidden,
            RequestError::RateLimited(_) => Outcome::RateLimited,
            RequestError::Overloaded => Outcome::Overloaded,
        }
    }

    /// Errors after which the rest of the request body may still be on the
    /// wire: the connection is closed rather than drained.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            RequestError::TooLarge | RequestError::BodyTimeout | RequestError::BadBody
        )
    }

    pub fn into_response(self, http1: bool) -> Response<Full<Bytes>> {
        let mut response = json_error(self.status(), self.code());
        let headers = response.headers_mut();
        if self == RequestError::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        let retry_after = match self {
            RequestError::InFlight(secs) => Some(secs),
            RequestError::StoreUnavailable => Some(STORE_RETRY_AFTER_SECS),
            RequestError::SpoolFull => Some(SPOOL_FULL_RETRY_AFTER_SECS),
            RequestError::RateLimited(secs) => Some(secs),
            RequestError::Overloaded => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if http1 && self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `{"error": "<code>"}` with the given status. Codes are fixed ASCII words,
/// so no escaping is needed.
pub fn json_error(status: StatusCode, code: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{{\"error\":\"{code}\"}}"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_json_codes() {
        let all = [
            RequestError::NotFound,
            RequestError::MethodNotAllowed,
            RequestError::TooLarge,
            RequestError::BodyTimeout,
            RequestError::BadBody,
            RequestError::BadChallenge,
            RequestError::Unauthorized(VerifyError::BadSignature),
            RequestError::UpstreamUnavailable,
            RequestError::UpstreamResponseTooLarge,
            RequestError::UpstreamTimeout,
            RequestError::InFlight(3),
            RequestError::StoreUnavailable,
            RequestError::SpoolFull,
            RequestError::Forbidden,
            RequestError::RateLimited(1),
            RequestError::Overloaded,
        ];
        for e in all {
            let r = e.into_response(true);
            assert_eq!(r.status(), e.status());
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            assert!(
                !e.status().is_server_error() || e.status().as_u16() >= 502,
                "{e:?}"
            );
        }
        let r = RequestError::MethodNotAllowed.into_response(true);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        let r = RequestError::TooLarge.into_response(true);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = RequestError::InFlight(3).into_response(true);
        assert_eq!(
            (r.status(), &r.headers()[header::RETRY_AFTER]),
            (StatusCode::CONFLICT, &HeaderValue::from(3))
        );
        let r = RequestError::StoreUnavailable.into_response(true);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        let r = RequestError::TooLarge.into_response(false);
        assert!(r.headers().get(header::CONNECTION).is_none());
    }
}
