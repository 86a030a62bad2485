//! Phase 6: one access-log line (target `hookgate::access`) and one
//! request metric per request to a route. The line names the route, the
//! outcome, the status, the duration, the delivery id of a spooled event
//! and the client's address; never a header value or the body.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use super::deliver::DELIVERY_ID;
use super::route::RouteState;
use crate::telemetry::{Outcome, RouteMetrics};

/// Records a request to `route`, answered with `response` after `elapsed`.
/// `client` is the sender's address, `None` when unknown.
pub(super) fn record(
    route: &RouteState,
    outcome: Outcome,
    response: &Response<Full<Bytes>>,
    elapsed: Duration,
    client: Option<IpAddr>,
) {
    route.metrics.request(outcome, elapsed.as_secs_f64());
    let remote = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    tracing::info!(
        target: "hookgate::access",
        route = %route.name(),
        outcome = outcome.as_str(),
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        delivery_id = response.headers().get(DELIVERY_ID).and_then(|v| v.to_str().ok()).unwrap_or(""),
        remote = %remote,
    );
}

/// Records a request to a path that is no route: counted under the
/// `_unmatched` route, without an access line.
pub(super) fn unmatched(metrics: &RouteMetrics, outcome: Outcome, elapsed: Duration) {
    metrics.request(outcome, elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::super::testing::{post, CapturedLog, Fixture, Upstream};

    #[tokio::test]
    async fn one_line_per_request_without_header_values_or_body() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&format!(
            "routes:\n  - {{ name: t, path: /t, ack: sync, dedup: off, verify: {{ scheme: header, header: X-Token, secrets: [\"very-secret-value\"] }}, upstream: {{ url: \"{}\" }} }}\n",
            upstream.url()
        ))
        .await;
        let log = CapturedLog::default();
        let guard = log.subscribe();
        let private = r#"{"body":"private"}"#;
        let accepted = post("/t", &[("X-Token", "very-secret-value")], private);
        assert_eq!(fixture.send(accepted).await.status, StatusCode::OK);
        let guessed = post("/t", &[("X-Token", "wrong-guess")], private);
        let refused = fixture.send_from("198.51.100.7:4711", guessed).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        drop(guard);

        let lines = log.lines();
        let access: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["target"] == "hookgate::access")
            .collect();
        assert_eq!(access.len(), 2, "{lines:?}");
        let fields = |i: usize| &access[i]["fields"];
        assert_eq!(fields(0)["route"], "t");
        assert_eq!(fields(0)["outcome"], "accepted");
        assert_eq!(fields(0)["status"], 200);
        assert_eq!(fields(0)["remote"], "192.0.2.10");
        assert!(fields(0)["duration_ms"].as_f64().is_some());
        assert_eq!(fields(1)["outcome"], "unauthorized");
        assert_eq!(fields(1)["status"], 401);
        assert_eq!(fields(1)["remote"], "198.51.100.7");
        for line in &lines {
            for secret in ["very-secret-value", "wrong-guess", "private"] {
                assert!(!line.contains(secret), "{secret} logged: {line}");
            }
        }
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="t",outcome="accepted"}"#),
            1.0
        );
    }
}
