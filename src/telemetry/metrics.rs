//! The metrics registry of one gateway instance.
//!
//! Each gateway owns its own Prometheus recorder (not the process-global
//! one), so several instances in one test process report separately. Every
//! series a route can produce is registered when the route is built: the
//! request path only increments pre-resolved handles, and dashboards see
//! zeros instead of missing series.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::names::{self, Kind};
use crate::telemetry::activity::{Activity, RouteActivity, Seen};
use crate::verify::VerifyError;

/// A metric label as an enum: its values are the variants, so a value the
/// registry did not register cannot be written (it would not compile).
/// `ALL` lists them in declaration order, which is also each variant's
/// index into its route's pre-registered handles.
macro_rules! label {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: [$name; [$($name::$variant),+].len()] = [$($name::$variant),+];

            /// The label value, as rendered.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label! {
    /// What became of a request: the `outcome` label of `hookgate_requests_total`.
    pub enum Outcome {
        /// Verified, forwarded, and the upstream answered 2xx.
        Accepted => "accepted",
        /// Verified and forwarded; the upstream's non-2xx answer was relayed.
        UpstreamRejected => "upstream_rejected",
        Unauthorized => "unauthorized",
        TooLarge => "too_large",
        NotFound => "not_found",
        MethodNotAllowed => "method_not_allowed",
        /// The body was malformed or the sender went away mid-body.
        BadRequest => "bad_request",
        /// The sender did not finish sending the body in time.
        Timeout => "timeout",
        /// The upstream could not be reached or gave no usable answer (502).
        UpstreamError => "upstream_error",
        /// The upstream did not answer in time (504).
        UpstreamTimeout => "upstream_timeout",
        /// A copy of an event already accepted: answered 2xx, not forwarded.
        Duplicate => "duplicate",
        /// A copy of an event whose first copy is still being processed (409).
        InFlight => "in_flight",
        /// The dedup store failed and the route's policy is `reject`, or the
        /// spool could not commit (503).
        StoreUnavailable => "store_unavailable",
        /// The route's spool holds `max_pending` undelivered events (503).
        SpoolFull => "spool_full",
        /// The sender's address is not in the route's `allow_ips` (403).
        Forbidden => "forbidden",
        /// Over the route's `rate_limit` (429).
        RateLimited => "rate_limited",
        /// `limits.max_concurrent_requests` reached (503).
        Overloaded => "overloaded",
        /// The handler failed unexpectedly (500); a bug, never expected.
        InternalError => "internal_error",
        /// Verified, but its event type is not allowed: answered 2xx, not forwarded.
        Filtered => "filtered",
        /// Verified, and answered by hookgate itself (an `ack_only` event or a
        /// sender's handshake): answered 2xx, not forwarded.
        AckOnly => "ack_only",
    }
}

impl Outcome {
    /// Whether a request with this outcome passed its route's verification
    /// (everything refused before or by verification is not).
    pub fn passed_verification(self) -> bool {
        !matches!(
            self,
            Outcome::Unauthorized
                | Outcome::TooLarge
                | Outcome::NotFound
                | Outcome::MethodNotAllowed
                | Outcome::BadRequest
                | Outcome::Timeout
                | Outcome::Forbidden
                | Outcome::Overloaded
                | Outcome::InternalError
        )
    }
}

label! {
    /// Upstream answer classes: the `class` label of
    /// `hookgate_upstream_responses_total`.
    pub enum UpstreamClass {
        Status2xx => "2xx",
        Status3xx => "3xx",
        Status4xx => "4xx",
        /// A 5xx, or a status outside 200..=499 (1xx never ends an exchange).
        Status5xx => "5xx",
        /// No usable answer: unreachable, cut off, or a body over the limit.
        Error => "error",
        /// No answer within the route's `upstream.timeout`.
        Timeout => "timeout",
    }
}

impl From<http::StatusCode> for UpstreamClass {
    /// The class of an answer's status.
    fn from(status: http::StatusCode) -> UpstreamClass {
        match status.as_u16() {
            200..=299 => UpstreamClass::Status2xx,
            300..=399 => UpstreamClass::Status3xx,
            400..=499 => UpstreamClass::Status4xx,
            _ => UpstreamClass::Status5xx,
        }
    }
}

label! {
    /// Dedup claim results: the `result` label of `hookgate_dedup_total`.
    pub enum DedupResult {
        /// The first copy: it is processed.
        New => "new",
        /// A copy of an event accepted within the window.
        Duplicate => "duplicate",
        /// A copy of an event whose first copy is still being processed.
        InFlight => "in_flight",
    }
}

label! {
    /// Delivery results: the `result` label of `hookgate_deliveries_total`.
    pub enum DeliveryResult {
        Delivered => "delivered",
        Retry => "retry",
        DeadLetter => "dead_letter",
    }
}

/// Buckets for delivery lag, in seconds: 1 ms to 3 days.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 259200.0,
];

/// Histogram buckets for latencies, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    ready: Gauge,
    store_commit: Histogram,
    store_commit_failures: Counter,
    reloads: [Counter; 2],
    reload_ok: Gauge,
    /// The tracer (empty unless `telemetry.otlp` is set), handed to each
    /// route with its metrics.
    traces: super::traces::Traces,
    /// The console's last hour per route, fed by the same calls.
    activity: Arc<Activity>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(names::DELIVERY_LAG_SECONDS.into()),
                LAG_BUCKETS,
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        for (name, kind, help) in names::ALL {
            let (name, help) = (
                metrics::KeyName::from(*name),
                metrics::SharedString::from(*help),
            );
            match kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => {
                    recorder.describe_histogram(name, Some(metrics::Unit::Seconds), help)
                }
            }
        }
        let recorder = Arc::new(recorder);
        let build = gauge(
            &recorder,
            names::BUILD_INFO,
            vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
        );
        build.set(1.0);
        let ready = gauge(&recorder, names::READY, vec![]);
        let store_commit = histogram(&recorder, names::STORE_COMMIT_DURATION_SECONDS, vec![]);
        let store_commit_failures = counter(&recorder, names::STORE_COMMIT_FAILURES_TOTAL, vec![]);
        let reloads = ["success", "failure"].map(|r| {
            counter(
                &recorder,
                names::CONFIG_RELOADS_TOTAL,
                vec![Label::new("result", r)],
            )
        });
        // The configuration loaded at start-up is a good one.
        let reload_ok = gauge(&recorder, names::CONFIG_LAST_RELOAD_SUCCESSFUL, vec![]);
        reload_ok.set(1.0);
        Metrics {
            recorder,
            handle,
            ready,
            store_commit,
            store_commit_failures,
            reloads,
            reload_ok,
            traces: Default::default(),
            activity: Arc::default(),
        }
    }

    /// What the console shows of each route's last hour.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; call periodically.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Records one group commit of the embedded store, and counts it if it
    /// failed.
    pub fn store_commit(&self, seconds: f64, committed: bool) {
        self.store_commit.record(seconds);
        if !committed {
            self.store_commit_failures.increment(1);
        }
    }

    /// Counts one configuration reload and records whether the last one
    /// succeeded (so an alert stays on while a refused file is in place).
    pub fn config_reload(&self, success: bool) {
        self.reloads[usize::from(!success)].increment(1);
        self.reload_ok.set(if success { 1.0 } else { 0.0 });
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(if ready { 1.0 } else { 0.0 });
    }

    /// Registers every series of one route and returns their handles.
    pub fn route(&self, route: &str, secret_count: usize) -> RouteMetrics {
        let r = &self.recorder;
        let with = |extra: Option<(&'static str, String)>| {
            let mut labels = vec![Label::new("route", route.to_string())];
            if let Some((k, v)) = extra {
                labels.push(Label::new(k, v));
            }
            labels
        };
        RouteMetrics {
            requests: Outcome::ALL.map(|o| {
                counter(
                    r,
                    names::REQUESTS_TOTAL,
                    with(Some(("outcome", o.as_str().into()))),
                )
            }),
            verify_failures: VerifyError::ALL.map(|e| {
                counter(
                    r,
                    names::VERIFY_FAILURES_TOTAL,
                    with(Some(("reason", e.code().into()))),
                )
            }),
            secret_matches: (0..secret_count)
                .map(|i| {
                    counter(
                        r,
                        names::SECRET_MATCHES_TOTAL,
                        with(Some(("secret_index", i.to_string()))),
                    )
                })
                .collect(),
            upstream_responses: UpstreamClass::ALL.map(|c| {
                counter(
                    r,
                    names::UPSTREAM_RESPONSES_TOTAL,
                    with(Some(("class", c.as_str().into()))),
                )
            }),
            dedup: DedupResult::ALL.map(|res| {
                counter(
                    r,
                    names::DEDUP_TOTAL,
                    with(Some(("result", res.as_str().into()))),
                )
            }),
            dedup_errors: counter(r, names::DEDUP_ERRORS_TOTAL, with(None)),
            dedup_key_fallbacks: counter(r, names::DEDUP_KEY_FALLBACKS_TOTAL, with(None)),
            spool_pending: gauge(r, names::SPOOL_PENDING, with(None)),
            dead_letters: gauge(r, names::DEAD_LETTERS, with(None)),
            oldest_pending_age: gauge(r, names::SPOOL_OLDEST_PENDING_AGE_SECONDS, with(None)),
            request_duration: histogram(r, names::REQUEST_DURATION_SECONDS, with(None)),
            upstream_duration: histogram(r, names::UPSTREAM_DURATION_SECONDS, with(None)),
            traces: self.traces.clone(),
            activity: self.activity.route(route),
        }
    }

    /// Registers the delivery series of one destination of `route`.
    pub fn destination(
        &self,
        route: &RouteMetrics,
        name: &str,
        destination: &str,
    ) -> DestinationMetrics {
        let r = &self.recorder;
        let with = |extra: Option<(&'static str, String)>| {
            let mut labels = vec![
                Label::new("route", name.to_string()),
                Label::new("destination", destination.to_string()),
            ];
            if let Some((k, v)) = extra {
                labels.push(Label::new(k, v));
            }
            labels
        };
        DestinationMetrics {
            deliveries: DeliveryResult::ALL.map(|res| {
                counter(
                    r,
                    names::DELIVERIES_TOTAL,
                    with(Some(("result", res.as_str().into()))),
                )
            }),
            attempt_duration: histogram(r, names::DELIVERY_ATTEMPT_DURATION_SECONDS, with(None)),
            delivery_lag: histogram(r, names::DELIVERY_LAG_SECONDS, with(None)),
            paused: gauge(r, names::DESTINATION_PAUSED, with(None)),
            route: route.clone(),
        }
    }

    /// These metrics with `traces` as the process's tracer.
    pub fn with_traces(mut self, traces: super::traces::Traces) -> Metrics {
        self.traces = traces;
        self
    }

    pub fn traces(&self) -> &super::traces::Traces {
        &self.traces
    }
}

/// Pre-registered handles for one route (cheap to clone: handles share
/// their series).
#[derive(Clone)]
pub struct RouteMetrics {
    spool_pending: Gauge,
    dead_letters: Gauge,
    oldest_pending_age: Gauge,
    requests: [Counter; Outcome::ALL.len()],
    verify_failures: [Counter; VerifyError::ALL.len()],
    secret_matches: Vec<Counter>,
    upstream_responses: [Counter; UpstreamClass::ALL.len()],
    dedup: [Counter; DedupResult::ALL.len()],
    dedup_errors: Counter,
    dedup_key_fallbacks: Counter,
    request_duration: Histogram,
    upstream_duration: Histogram,
    traces: super::traces::Traces,
    activity: Arc<RouteActivity>,
}

impl RouteMetrics {
    /// The tracer for this route's requests and deliveries.
    pub fn traces(&self) -> &super::traces::Traces {
        &self.traces
    }

    pub fn request(&self, outcome: Outcome, seconds: f64) {
        self.requests[outcome.index()].increment(1);
        self.request_duration.record(seconds);
        self.activity.request();
        if outcome == Outcome::Duplicate {
            self.activity.count(Seen::Duplicate);
        }
        if outcome.passed_verification() {
            self.activity.count(Seen::Verified);
        }
    }

    pub fn verify_failure(&self, error: VerifyError) {
        let i = VerifyError::ALL
            .iter()
            .position(|e| *e == error)
            .unwrap_or(0);
        self.verify_failures[i].increment(1);
        self.activity.count(Seen::Rejected(error));
    }

    /// [`RouteMetrics::verify_failure`], and the console keeps the
    /// request's time, sender and header names (never their values).
    pub fn verify_failure_from(
        &self,
        error: VerifyError,
        peer: std::net::SocketAddr,
        headers: &http::HeaderMap,
    ) {
        self.verify_failure(error);
        self.activity.reject(error, peer, headers);
    }

    pub fn secret_matched(&self, index: usize) {
        if let Some(c) = self.secret_matches.get(index) {
            c.increment(1);
        }
    }

    /// Counts a dedup claim.
    pub fn dedup(&self, result: DedupResult) {
        self.dedup[result.index()].increment(1);
    }

    /// Sets the spool gauges.
    pub fn spool(&self, pending: i64, dead: i64) {
        self.spool_pending.set(pending as f64);
        self.dead_letters.set(dead as f64);
    }

    /// Sets the age of the route's oldest undelivered event (0: none).
    pub fn oldest_pending_age(&self, seconds: f64) {
        self.oldest_pending_age.set(seconds);
    }

    /// The dedup error counter, for failures reported after the request.
    pub fn dedup_errors(&self) -> Counter {
        self.dedup_errors.clone()
    }

    pub fn dedup_error(&self) {
        self.dedup_errors.increment(1);
    }

    pub fn dedup_key_fallback(&self) {
        self.dedup_key_fallbacks.increment(1);
    }

    /// Records one upstream exchange.
    pub fn upstream(&self, class: UpstreamClass, seconds: f64) {
        self.upstream_responses[class.index()].increment(1);
        self.upstream_duration.record(seconds);
        // Only the sync path exchanges with the upstream here (async
        // attempts are counted by `delivery`).
        self.activity.count(match class {
            UpstreamClass::Status2xx => Seen::Delivered,
            _ => Seen::DeliveryFailed,
        });
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// The delivery series of one destination of a route (cheap to clone).
#[derive(Clone)]
pub struct DestinationMetrics {
    deliveries: [Counter; DeliveryResult::ALL.len()],
    attempt_duration: Histogram,
    delivery_lag: Histogram,
    paused: Gauge,
    route: RouteMetrics,
}

impl DestinationMetrics {
    /// The route's series (and its tracer).
    pub fn route(&self) -> &RouteMetrics {
        &self.route
    }

    /// Counts one delivery attempt.
    pub fn delivery(&self, result: DeliveryResult, attempt_seconds: f64) {
        self.deliveries[result.index()].increment(1);
        self.attempt_duration.record(attempt_seconds);
        self.route.activity.count(match result {
            DeliveryResult::Delivered => Seen::Delivered,
            DeliveryResult::Retry | DeliveryResult::DeadLetter => Seen::DeliveryFailed,
        });
    }

    /// Records the time from receipt to delivery of one event.
    pub fn delivery_lag(&self, seconds: f64) {
        self.delivery_lag.record(seconds);
    }

    /// Whether the destination is paused by its `Retry-After`.
    pub fn paused(&self, paused: bool) {
        self.paused.set(if paused { 1.0 } else { 0.0 });
    }
}

fn counter(r: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Counter {
    r.register_counter(&Key::from_parts(name, labels), &metadata())
}

fn gauge(r: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Gauge {
    r.register_gauge(&Key::from_parts(name, labels), &metadata())
}

fn histogram(r: &PrometheusRecorder, name: &'static str, labels: Vec<Label>) -> Histogram {
    r.register_histogram(&Key::from_parts(name, labels), &metadata())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every series the gateway registers is described in `names::ALL`
    /// (so it has HELP text and dashboards can rely on the list), and every
    /// name there is registered.
    #[test]
    fn names_all_lists_exactly_the_registered_metrics() {
        let m = Metrics::new();
        let r = m.route("r", 1);
        let _ = m.destination(&r, "r", "upstream");
        m.store_commit(0.001, true);
        m.run_upkeep();
        let text = m.render();
        let rendered: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap())
            .map(|n| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s))
                    .unwrap_or(n)
            })
            .collect();
        let described: std::collections::BTreeSet<&str> =
            names::ALL.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(rendered, described);
        for name in described {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
    }

    /// Label values are a contract with dashboards and alerts: the enums
    /// render exactly these, in this order.
    #[test]
    fn label_values_are_unchanged() {
        let values = |all: &[&'static str]| all.to_vec();
        assert_eq!(
            values(&UpstreamClass::ALL.map(UpstreamClass::as_str)),
            ["2xx", "3xx", "4xx", "5xx", "error", "timeout"]
        );
        assert_eq!(
            values(&DedupResult::ALL.map(DedupResult::as_str)),
            ["new", "duplicate", "in_flight"]
        );
        assert_eq!(
            values(&DeliveryResult::ALL.map(DeliveryResult::as_str)),
            ["delivered", "retry", "dead_letter"]
        );
        assert_eq!(Outcome::ALL.len(), 20);
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        assert_eq!(Outcome::AckOnly.as_str(), "ack_only");
        assert_eq!(Outcome::UpstreamRejected.as_str(), "upstream_rejected");
        for (status, class) in [
            (200, "2xx"),
            (204, "2xx"),
            (302, "3xx"),
            (404, "4xx"),
            (500, "5xx"),
            (101, "5xx"),
        ] {
            let status = http::StatusCode::from_u16(status).unwrap();
            assert_eq!(UpstreamClass::from(status).as_str(), class, "{status}");
        }
    }

    #[test]
    fn every_label_value_is_registered_and_counts() {
        let m = Metrics::new();
        let r = m.route("r", 0);
        r.upstream(UpstreamClass::Timeout, 0.01);
        r.dedup(DedupResult::InFlight);
        m.destination(&r, "r", "upstream")
            .delivery(DeliveryResult::DeadLetter, 0.01);
        let text = m.render();
        for c in UpstreamClass::ALL {
            let n = u8::from(c == UpstreamClass::Timeout);
            let line = format!(
                "hookgate_upstream_responses_total{{route=\"r\",class=\"{}\"}} {n}",
                c.as_str()
            );
            assert!(text.contains(&line), "{line}\n{text}");
        }
        for d in DedupResult::ALL {
            let n = u8::from(d == DedupResult::InFlight);
            let line = format!(
                "hookgate_dedup_total{{route=\"r\",result=\"{}\"}} {n}",
                d.as_str()
            );
            assert!(text.contains(&line), "{line}\n{text}");
        }
        for d in DeliveryResult::ALL {
            let n = u8::from(d == DeliveryResult::DeadLetter);
            let line = format!(
                "hookgate_deliveries_total{{route=\"r\",destination=\"upstream\",result=\"{}\"}} {n}",
                d.as_str()
            );
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }

    #[test]
    fn route_series_exist_before_any_request_and_count() {
        let m = Metrics::new();
        let r = m.route("trutac", 2);
        r.request(Outcome::Accepted, 0.01);
        r.verify_failure(VerifyError::BadSignature);
        r.secret_matched(1);
        m.run_upkeep();
        let text = m.render();
        assert!(
            text.contains(r#"hookgate_requests_total{route="trutac",outcome="accepted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookgate_requests_total{route="trutac",outcome="unauthorized"} 0"#)
        );
        assert!(text.contains(
            r#"hookgate_verify_failures_total{route="trutac",reason="bad_signature"} 1"#
        ));
        assert!(
            text.contains(r#"hookgate_secret_matches_total{route="trutac",secret_index="1"} 1"#)
        );
        assert!(
            text.contains(r#"hookgate_secret_matches_total{route="trutac",secret_index="0"} 0"#)
        );
        assert!(text
            .contains("hookgate_request_duration_seconds_bucket{route=\"trutac\",le=\"0.025\"} 1"));
        assert!(text.contains("# HELP hookgate_requests_total"));
    }

    /// The console's last hour is fed by the same calls that count: one
    /// call per event kind, and a route's buffers are shared by every
    /// handle of that route (each reload makes new handles).
    #[test]
    fn counting_feeds_the_consoles_last_hour() {
        let m = Metrics::new();
        let (r, again) = (m.route("r", 1), m.route("r", 1));
        r.request(Outcome::Accepted, 0.01);
        again.request(Outcome::Duplicate, 0.01);
        r.request(Outcome::Unauthorized, 0.01);
        let peer = "192.0.2.1:1234".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-sig", "value-never-kept".parse().unwrap());
        r.verify_failure_from(VerifyError::StaleTimestamp, peer, &headers);
        r.upstream(UpstreamClass::Status2xx, 0.01);
        let d = m.destination(&r, "r", "upstream");
        d.delivery(DeliveryResult::Delivered, 0.01);
        d.delivery(DeliveryResult::Retry, 0.01);
        let hour = m.activity().route("r").last_hour();
        let sum =
            |f: fn(&crate::telemetry::activity::Minute) -> u32| hour.iter().map(f).sum::<u32>();
        assert_eq!(
            sum(|m| m.verified),
            2,
            "accepted and duplicate passed verification"
        );
        assert_eq!(sum(|m| m.duplicate), 1);
        assert_eq!(sum(|m| m.rejected_total()), 1);
        assert_eq!(sum(|m| m.delivered), 2);
        assert_eq!(sum(|m| m.delivery_failed), 1);
        let rejections = m.activity().route("r").rejections();
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].reason, VerifyError::StaleTimestamp);
        assert_eq!(rejections[0].header_names, ["x-sig"]);
        assert!(m.activity().route("r").last_request().is_some());
        assert!(
            m.render().contains(
                r#"hookgate_verify_failures_total{route="r",reason="stale_timestamp"} 1"#
            ),
            "the metric still counts"
        );
    }
}
