//! The admin listener: liveness, readiness and metrics, on their own port so
//! they are never exposed with the webhook ingress.
//!
//! - `GET /healthz`: 200 while the process is alive.
//! - `GET /readyz`: 200 while the ingress accepts traffic and the stores it
//!   depends on answer; 503 before start-up completes, while shutting down,
//!   or when a required store fails (the body names which, never why in
//!   detail: that goes to the log).
//! - `GET /metrics`: Prometheus text exposition.
//! - `/admin/*`: the spool's deliveries and dead letters (see [`Admin::api`]);
//!   with `admin.token` set, each call needs `Authorization: Bearer <token>`.
//!   Without a token the API is open only on a loopback `admin.listen`;
//!   on any other address (`0.0.0.0` included) it answers
//!   `403 {"error":"admin_token_required"}`, while the probes and
//!   `/metrics` keep answering.
//! - `/ui/`: the operator console (see [`crate::console`]), only with
//!   `admin.token` set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::health::Healthcheck;
use crate::server::{json_error, RequestError};
use crate::spool::Spool;
use crate::telemetry::Metrics;

mod api;

/// State the admin endpoints report on.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
    /// What `/readyz` checks, in order, besides `ready`.
    pub healthchecks: Vec<Healthcheck>,
    pub spool: Option<Spool>,
    /// The live state: `admin.token` (swapped on reload) and reloading.
    pub live: Arc<crate::reload::Live>,
    /// `admin.listen` is a loopback address (it cannot change on reload).
    pub loopback: bool,
    pub console: crate::console::Console,
}

impl Admin {
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if crate::console::Console::owns(request.uri().path()) {
            return self.console.handle(request).await;
        }
        let request = &request;
        if request.uri().path().starts_with("/admin/") {
            if let Some(refused) = self.refusal(request) {
                return refused;
            }
            return match self.api(request).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "admin API: store failed");
                    json_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
                }
            };
        }
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
                if let Some(spool) = &self.spool {
                    if let Err(error) = spool.publish_oldest_pending().await {
                        // The gauge keeps its last value; the store alerts cover this.
                        tracing::warn!(%error, "reading the oldest pending event failed");
                    }
                }
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
    /// The answer to an `/admin/*` call that may not go through: 401
    /// without the right bearer token; 403 when there is no token to check
    /// and the listener is reachable from other machines.
    fn refusal<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let token = self.live.admin_token.load();
        let Some(token) = token.as_ref() else {
            if self.loopback {
                return None;
            }
            return Some(json_error(StatusCode::FORBIDDEN, "admin_token_required"));
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| v.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, t)| t)
            .unwrap_or_default();
        // Fixed-length digests: neither content nor length leaks.
        let expected = Sha256::digest(token.expose_secret().as_bytes());
        if bool::from(Sha256::digest(presented).ct_eq(&expected)) {
            return None;
        }
        let mut r = json_error(StatusCode::UNAUTHORIZED, "unauthorized");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Some(r)
    }

    /// `POST /admin/reload`, and the spool API (see [`api`]).
    async fn api<B>(
        &self,
        request: &Request<B>,
    ) -> Result<Response<Full<Bytes>>, crate::store::StoreError> {
        let Some(query) = api::Query::parse(request.uri().query()) else {
            return Ok(json_error(StatusCode::BAD_REQUEST, "bad_limit"));
        };
        let path = request.uri().path().trim_end_matches('/');
        if path == "/admin/reload" {
            return Ok(self.reload(request.method()).await);
        }
        let Some(spool) = &self.spool else {
            return Ok(json_error(StatusCode::NOT_FOUND, "no_async_routes"));
        };
        let segments: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
        api::spool(spool, request.method(), &segments, &query).await
    }

    /// `POST /admin/reload`: 200 `{"reloaded":true}`, or 422 with the
    /// reason (it names fields and files, never secret values).
    async fn reload(&self, method: &Method) -> Response<Full<Bytes>> {
        if method != Method::POST {
            return json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        match self.live.reload().await {
            Ok(()) => json_value(StatusCode::OK, serde_json::json!({ "reloaded": true })),
            Err(reason) => json_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({ "error": "reload_refused", "reason": reason.to_string() }),
            ),
        }
    }

    /// 503 `not_ready` before start-up completes and while shutting down;
    /// 503 naming the first failing component (the reason goes to the
    /// log only); 200 `ready` otherwise.
    async fn readiness(&self) -> Response<Full<Bytes>> {
        if !self.ready.load(Ordering::Acquire) {
            return json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not_ready"}"#);
        }
        for check in &self.healthchecks {
            if let Err(error) = check.run().await {
                let component = check.component();
                tracing::warn!(component, %error, "readiness: a store failed");
                // Component names are fixed identifiers: nothing to escape.
                let body = format!(r#"{{"status":"not_ready","failing":"{component}"}}"#);
                let mut r = json(StatusCode::SERVICE_UNAVAILABLE, "");
                *r.body_mut() = Full::new(Bytes::from(body));
                return r;
            }
        }
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

pub(crate) fn json_value(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
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
