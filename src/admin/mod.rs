//! The admin listener: liveness, readiness and metrics, on their own port so
//! they are never exposed with the webhook ingress.
//!
//! - `GET /healthz`: 200 while the process is alive.
//! - `GET /readyz`: 200 while the ingress accepts traffic, 503 before that
//!   and while shutting down.
//! - `GET /metrics`: Prometheus text exposition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::server::{json_error, RequestError};
use crate::telemetry::Metrics;

/// State the admin endpoints report on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
}

impl Admin {
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match request.uri().path() {
            "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
            "/readyz" if self.ready.load(Ordering::Acquire) => {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            }
            "/readyz" => json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not_ready"}"#),
            "/metrics" => {
                let mut r = Response::new(Full::new(Bytes::from(self.metrics.render())));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            _ => RequestError::NotFound.into_response(false),
        }
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
