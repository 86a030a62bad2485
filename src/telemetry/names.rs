//! Every metric hookgate exports. Dashboards and alerts depend on these
//! names and labels: change them only as a breaking change.

/// Counter `{route, outcome}`: every request, by what became of it.
pub const REQUESTS_TOTAL: &str = "hookgate_requests_total";
/// Histogram `{route}`: time from request head to response, in seconds.
pub const REQUEST_DURATION_SECONDS: &str = "hookgate_request_duration_seconds";
/// Histogram `{route}`: time of the exchange with the upstream, in seconds.
pub const UPSTREAM_DURATION_SECONDS: &str = "hookgate_upstream_duration_seconds";
/// Counter `{route, reason}`: verification failures by reason code.
pub const VERIFY_FAILURES_TOTAL: &str = "hookgate_verify_failures_total";
/// Counter `{route, secret_index}`: which rotated secret verified a request.
pub const SECRET_MATCHES_TOTAL: &str = "hookgate_secret_matches_total";
/// Counter `{route, class}`: upstream answers by status class (`2xx`…`5xx`)
/// or failure (`error`, `timeout`).
pub const UPSTREAM_RESPONSES_TOTAL: &str = "hookgate_upstream_responses_total";
/// Counter `{route, result}`: dedup claims by result (`new`, `duplicate`, `in_flight`).
pub const DEDUP_TOTAL: &str = "hookgate_dedup_total";
/// Counter `{route}`: dedup store failures (claim, commit or release).
pub const DEDUP_ERRORS_TOTAL: &str = "hookgate_dedup_errors_total";
/// Counter `{route}`: verified requests whose dedup key fell back to the body digest.
pub const DEDUP_KEY_FALLBACKS_TOTAL: &str = "hookgate_dedup_key_fallbacks_total";
/// Gauge `{route}`: spooled events not yet delivered (async routes).
pub const SPOOL_PENDING: &str = "hookgate_spool_pending";
/// Gauge `{route}`: dead letters waiting to be replayed or dropped.
pub const DEAD_LETTERS: &str = "hookgate_dead_letters";
/// Gauge `{route}`: age of the oldest undelivered event, in seconds (0 when
/// none is pending); measured when `/metrics` is scraped. It grows while
/// the consumer is down, however few events arrive.
pub const SPOOL_OLDEST_PENDING_AGE_SECONDS: &str = "hookgate_spool_oldest_pending_age_seconds";
/// Counter `{route, result}`: delivery attempts by result (`delivered`, `retry`, `dead_letter`).
pub const DELIVERIES_TOTAL: &str = "hookgate_deliveries_total";
/// Histogram `{route}`: duration of one delivery attempt, in seconds.
pub const DELIVERY_ATTEMPT_DURATION_SECONDS: &str = "hookgate_delivery_attempt_duration_seconds";
/// Histogram `{route}`: time from receiving an event to delivering it, in seconds.
pub const DELIVERY_LAG_SECONDS: &str = "hookgate_delivery_lag_seconds";
/// 1 while a destination waits out the `Retry-After` it was given.
pub const DESTINATION_PAUSED: &str = "hookgate_destination_paused";
/// Histogram `{}`: duration of one group commit of the embedded store, in seconds.
pub const STORE_COMMIT_DURATION_SECONDS: &str = "hookgate_store_commit_duration_seconds";
/// Counter `{}`: group commits of the embedded store that failed (disk
/// full, I/O error); nothing in them was acknowledged.
pub const STORE_COMMIT_FAILURES_TOTAL: &str = "hookgate_store_commit_failures_total";
/// Counter `{result}`: configuration reloads, `success` or `failure`.
pub const CONFIG_RELOADS_TOTAL: &str = "hookgate_config_reloads_total";
/// Gauge `{}`: 1 when the last reload succeeded (or none was tried yet), 0
/// while the configuration on disk is one that was refused.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "hookgate_config_last_reload_successful";
/// Gauge `{}`: 1 while the gateway is ready to take traffic.
pub const READY: &str = "hookgate_ready";
/// Gauge `{version}`: always 1; carries the build version.
pub const BUILD_INFO: &str = "hookgate_build_info";

/// Every name above with its type and help text, described at start-up.
#[rustfmt::skip]
pub const ALL: &[(&str, Kind, &str)] = &[
    (REQUESTS_TOTAL, Kind::Counter, "Webhook requests by route and outcome."),
    (REQUEST_DURATION_SECONDS, Kind::Histogram, "Time from request head to response sent to the sender."),
    (UPSTREAM_DURATION_SECONDS, Kind::Histogram, "Duration of the exchange with the upstream."),
    (VERIFY_FAILURES_TOTAL, Kind::Counter, "Requests that failed verification, by reason."),
    (SECRET_MATCHES_TOTAL, Kind::Counter, "Verified requests by the index of the secret that matched."),
    (UPSTREAM_RESPONSES_TOTAL, Kind::Counter, "Upstream answers by status class, or error/timeout."),
    (DEDUP_TOTAL, Kind::Counter, "Dedup claims by result: new, duplicate, in_flight."),
    (DEDUP_ERRORS_TOTAL, Kind::Counter, "Dedup store failures; the route's on_store_error policy applied."),
    (DEDUP_KEY_FALLBACKS_TOTAL, Kind::Counter, "Dedup keys that fell back to the body digest because a key part was missing."),
    (SPOOL_PENDING, Kind::Gauge, "Spooled events not yet delivered."),
    (DEAD_LETTERS, Kind::Gauge, "Dead letters waiting to be replayed or dropped."),
    (SPOOL_OLDEST_PENDING_AGE_SECONDS, Kind::Gauge, "Age of the oldest undelivered event in seconds; 0 when none is pending."),
    (DELIVERIES_TOTAL, Kind::Counter, "Delivery attempts by result: delivered, retry, dead_letter."),
    (DELIVERY_ATTEMPT_DURATION_SECONDS, Kind::Histogram, "Duration of one delivery attempt."),
    (DELIVERY_LAG_SECONDS, Kind::Histogram, "Time from receiving an event to delivering it."),
    (DESTINATION_PAUSED, Kind::Gauge, "1 while a destination is paused by the Retry-After of a 429 or 503, else 0."),
    (STORE_COMMIT_DURATION_SECONDS, Kind::Histogram, "Duration of one group commit of the embedded store."),
    (STORE_COMMIT_FAILURES_TOTAL, Kind::Counter, "Group commits of the embedded store that failed; nothing in them was acknowledged."),
    (CONFIG_RELOADS_TOTAL, Kind::Counter, "Configuration reloads by result: success, failure."),
    (CONFIG_LAST_RELOAD_SUCCESSFUL, Kind::Gauge, "1 if the last configuration reload succeeded (or none was tried), 0 if it was refused."),
    (READY, Kind::Gauge, "1 while the gateway is ready to take traffic."),
    (BUILD_INFO, Kind::Gauge, "Build information; always 1."),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}
