//! The dedup claim protocol of a deliver step that claims an event key in
//! a dedup store before acting on the event: sync forwarding, and async
//! spooling with a store other than the spool's own database.
//!
//! A claim is made only for a verified request (the deliver step is
//! reached after verification) and ends in `commit` once the event was
//! accepted, or `release` otherwise, so the sender's retry is processed
//! again; [`ClaimGuard`] releases it when a request is dropped halfway.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::super::route::RouteState;
use crate::config::{Dedup, StoreErrorPolicy};
use crate::dedup::{Claim, ClaimToken, EventKey, SharedDedupStore, StoreError};
use crate::server::error::RequestError;
use crate::stores::Stores;
use crate::telemetry::RouteMetrics;

/// A route's dedup settings with the store its claims go to.
pub(in crate::server::pipeline) struct RouteDedup {
    config: Dedup,
    store: SharedDedupStore,
    /// How long an uncommitted claim may live: the upstream exchange is
    /// bounded by its timeout, plus a margin for the store round trips.
    lease: Duration,
    /// Retry-After for copies that arrive while the first is in flight.
    retry_after_secs: u64,
}

impl RouteDedup {
    /// The route's claims, on its backend among the stores opened at
    /// start-up (which must hold it). `upstream_timeout` bounds how long a
    /// claim is held uncommitted.
    pub(in crate::server::pipeline) fn open(
        config: &Dedup,
        stores: &Stores,
        upstream_timeout: Duration,
    ) -> RouteDedup {
        let store = stores
            .dedup(config.backend)
            .expect("every backend a route uses is opened at start-up")
            .clone();
        RouteDedup {
            store,
            lease: upstream_timeout + Duration::from_secs(10),
            retry_after_secs: upstream_timeout.as_secs().clamp(1, 60),
            config: config.clone(),
        }
    }

    /// Claims the request's event key. In-flight copies and (with the
    /// `reject` policy) store failures are errors for the sender.
    pub(super) async fn claim(
        &self,
        route: &RouteState,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Claimed, RequestError> {
        let name = route.name();
        let key = event_key(&self.config, route, headers, query, body);
        match self.store.claim(name, &key, self.lease).await {
            Ok(claim) => {
                route.metrics.dedup(claim.result());
                match claim {
                    Claim::New(token) => Ok(Claimed::Held(ClaimGuard {
                        store: self.store.clone(),
                        route: name.into(),
                        key,
                        token,
                        ttl: self.config.ttl,
                        armed: true,
                    })),
                    Claim::Duplicate => Ok(Claimed::Duplicate),
                    Claim::InFlight => Err(RequestError::InFlight(self.retry_after_secs)),
                }
            }
            Err(error) => {
                route.metrics.dedup_error();
                match self.config.on_store_error {
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
}

/// The request's event key by the route's template; a key that fell back
/// to the body's digest is counted.
pub(super) fn event_key(
    config: &Dedup,
    route: &RouteState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> EventKey {
    let (key, fell_back) = config.key.extract(route.name(), headers, query, body);
    if fell_back {
        route.metrics.dedup_key_fallback();
    }
    key
}

pub(super) enum Claimed {
    /// First copy: deliver it, then commit or release.
    Held(ClaimGuard),
    /// The store failed and the policy is `accept`: deliver without dedup.
    Unheld,
    Duplicate,
}

/// A held claim. It must end in `commit` or `release`; if the request is
/// dropped first (the sender went away), it is released in the background
/// so the event is not blocked until the lease runs out.
pub(super) struct ClaimGuard {
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
    pub(super) async fn commit(mut self, metrics: &RouteMetrics) {
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

    pub(super) async fn release(mut self, metrics: &RouteMetrics) {
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
