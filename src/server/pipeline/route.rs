//! One route, ready to serve: its configuration and what the phases built
//! from it when the configuration was loaded.

use http::HeaderValue;

use super::deliver::Deliver;
use super::verification::{self, RateLimiter};
use crate::config::Route;
use crate::events::Events;
use crate::telemetry::{Metrics, RouteMetrics};
use crate::verify::Verifier;

pub(super) struct RouteState {
    pub(super) route: Route,
    pub(super) metrics: RouteMetrics,
    /// `Hookgate-Route` value, built once.
    pub(super) label: HeaderValue,
    pub(super) verifier: Verifier,
    pub(super) limiter: Option<RateLimiter>,
    pub(super) events: Events,
    pub(super) deliver: Deliver,
}

impl RouteState {
    pub(super) fn new(route: &Route, metrics: &Metrics, deliver: Deliver) -> RouteState {
        RouteState {
            metrics: metrics.route(&route.name, route.verify.secret_count()),
            label: HeaderValue::from_str(&route.name).expect("route names are validated"),
            verifier: Verifier::new(&route.verify),
            limiter: verification::rate_limiter(route),
            events: Events::new(&route.events, &route.verify)
                .with_verify_token(route.verify_token.as_ref()),
            deliver,
            route: route.clone(),
        }
    }

    /// The route's name, as in the config, the logs and the metric labels.
    pub(super) fn name(&self) -> &str {
        &self.route.name
    }
}
