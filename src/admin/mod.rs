//! The admin listener: liveness, readiness and metrics, on their own port so
//! they are never exposed with the webhook ingress.
//!
//! - `GET /healthz`: 200 while the process is alive.
//! - `GET /readyz`: 200 while the ingress accepts traffic and the stores it
//!   depends on answer; 503 before start-up completes, while shutting down,
//!   or when a required store fails (the body names which, never why in
//!   detail: that goes to the log).
//! - `GET /metrics`: Prometheus text exposition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::dedup::{DedupStore, LocalStore, RedisStore};
use crate::server::{json_error, RequestError};
use crate::telemetry::Metrics;

/// State the admin endpoints report on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    /// Checked by `/readyz` when set.
    pub local: Option<LocalStore>,
    /// Checked by `/readyz` when set (only when a route requires Redis).
    pub redis: Option<RedisStore>,
}

impl Admin {
    pub async fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match request.uri().path() {
            "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
            "/readyz" => self.readiness().await,
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

impl Admin {
    async fn readiness(&self) -> Response<Full<Bytes>> {
        let unavailable = |body| json(StatusCode::SERVICE_UNAVAILABLE, body);
        if !self.ready.load(Ordering::Acquire) {
            return unavailable(r#"{"status":"not_ready"}"#);
        }
        if let Some(local) = &self.local {
            if let Err(error) = local.check().await {
                tracing::warn!(%error, "readiness: local store failed");
                return unavailable(r#"{"status":"not_ready","failing":"local_store"}"#);
            }
        }
        if let Some(redis) = &self.redis {
            if let Err(error) = redis.check().await {
                tracing::warn!(%error, "readiness: redis failed");
                return unavailable(r#"{"status":"not_ready","failing":"redis"}"#);
            }
        }
        json(StatusCode::OK, r#"{"status":"ready"}"#)
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
