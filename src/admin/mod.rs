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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::dedup::{DedupStore, LocalStore, RedisStore};
use crate::server::{json_error, RequestError};
use crate::spool::{DeliveryState, Replay, Spool};
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
    pub spool: Option<Spool>,
    /// The live state: `admin.token` (swapped on reload) and reloading.
    pub live: Arc<crate::reload::Live>,
    /// `admin.listen` is a loopback address (it cannot change on reload).
    pub loopback: bool,
}

impl Admin {
    pub async fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
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

    /// `POST /admin/reload`, and the spool API:
    /// - `GET /admin/deliveries?route=R&state=pending|delivered|dead&limit=N`
    /// - `GET /admin/deliveries/{id}` (with attempt history and headers)
    /// - `GET /admin/dead-letters?route=R&limit=N`
    /// - `POST /admin/dead-letters/{id}/replay`
    /// - `POST /admin/dead-letters/replay?route=R`
    /// - `DELETE /admin/dead-letters/{id}`
    async fn api<B>(
        &self,
        request: &Request<B>,
    ) -> Result<Response<Full<Bytes>>, crate::store::StoreError> {
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let limit = match param("limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return Ok(json_error(StatusCode::BAD_REQUEST, "bad_limit")),
        };
        let path = request.uri().path().trim_end_matches('/');
        if path == "/admin/reload" {
            if request.method() != Method::POST {
                return Ok(json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                ));
            }
            return Ok(match self.live.reload().await {
                Ok(()) => json_value(StatusCode::OK, serde_json::json!({ "reloaded": true })),
                // The reason names fields and files, never secret values.
                Err(reason) => json_value(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({ "error": "reload_refused", "reason": reason.to_string() }),
                ),
            });
        }
        let Some(spool) = &self.spool else {
            return Ok(json_error(StatusCode::NOT_FOUND, "no_async_routes"));
        };
        let segments: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
        let method = request.method();
        let items = |items: Vec<crate::spool::DeliverySummary>| {
            json_value(StatusCode::OK, serde_json::json!({ "items": items }))
        };
        Ok(match (method, segments.as_slice()) {
            (&Method::GET, ["deliveries"]) => {
                let state = match param("state").map(|s| s.parse::<DeliveryState>()) {
                    None => None,
                    Some(Ok(state)) => Some(state),
                    Some(Err(_)) => return Ok(json_error(StatusCode::BAD_REQUEST, "bad_state")),
                };
                items(spool.list(param("route"), state, limit).await?)
            }
            (&Method::GET, ["deliveries", id]) => match spool.get(id).await? {
                Some(detail) => json_value(
                    StatusCode::OK,
                    serde_json::to_value(detail).unwrap_or_default(),
                ),
                None => json_error(StatusCode::NOT_FOUND, "not_found"),
            },
            (&Method::GET, ["dead-letters"]) => items(
                spool
                    .list(param("route"), Some(DeliveryState::Dead), limit)
                    .await?,
            ),
            (&Method::POST, ["dead-letters", "replay"]) => match param("route") {
                None => json_error(StatusCode::BAD_REQUEST, "route_required"),
                Some(route) => {
                    let moved = spool.replay(Replay::Route(route)).await?;
                    let n: i64 = moved.iter().map(|(_, n)| n).sum();
                    json_value(StatusCode::OK, serde_json::json!({ "replayed": n }))
                }
            },
            (&Method::POST, ["dead-letters", id, "replay"]) => {
                let moved = spool.replay(Replay::One(id.to_string())).await?;
                if moved.is_empty() {
                    json_error(StatusCode::NOT_FOUND, "not_found")
                } else {
                    json_value(StatusCode::OK, serde_json::json!({ "replayed": 1 }))
                }
            }
            (&Method::DELETE, ["dead-letters", id]) => {
                if spool.drop_dead(id).await? {
                    json_value(StatusCode::OK, serde_json::json!({ "dropped": 1 }))
                } else {
                    json_error(StatusCode::NOT_FOUND, "not_found")
                }
            }
            (
                _,
                ["deliveries"]
                | ["deliveries", _]
                | ["dead-letters"]
                | ["dead-letters", "replay"]
                | ["dead-letters", _, "replay"]
                | ["dead-letters", _],
            ) => json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            _ => json_error(StatusCode::NOT_FOUND, "not_found"),
        })
    }

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
        if let Some(spool) = &self.spool {
            if let Err(error) = spool.check().await {
                tracing::warn!(%error, "readiness: spool store failed");
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

fn json_value(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
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
