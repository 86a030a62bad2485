//! The gateway end to end on real sockets: a real upstream on port 0, the
//! real gateway on port 0, real HTTP between them.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "trutac-test-secret";
const CLOCKING: &str = r#"{"action":"clocking.created","clocking":{"id":4711,"employee":"Jane"}}"#;

fn config(upstream: &Upstream, extra_routes: &str) -> String {
    format!(
        r#"
limits:
  max_body_bytes: 4096
  header_read_timeout: 1s
  body_read_timeout: 1s
routes:
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["old-secret", "{SECRET}"] }}
    ack: sync
    dedup: off
    upstream:
      url: "{}"
      timeout: 2s
      headers: {{ X-Source: trutac }}
  - name: timify
    path: /hooks/timify
    verify: {{ scheme: header, header: X-Timify-Secret, secrets: ["timify-secret"] }}
    ack: sync
    upstream: {{ url: "{}", relay_headers: [x-booking-decision] }}
  - name: partner
    path: /hooks/partner
    verify: {{ scheme: api_key, header: Authorization, secrets: ["partner-key"] }}
    ack: sync
    upstream: {{ url: "{}" }}
{extra_routes}"#,
        upstream.url("/trutac"),
        upstream.url("/timify"),
        upstream.url("/partner"),
    )
}

async fn setup() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    (upstream, gateway)
}

fn signed(body: &str) -> [(&'static str, String); 3] {
    [
        (
            "TT-Hook-Signature",
            trutac_signature(SECRET, body.as_bytes()),
        ),
        ("TT-Hook-Event", "clocking".to_string()),
        ("Content-Type", "application/json".to_string()),
    ]
}

async fn post_signed(gateway: &Gateway, path: &str, body: &str) -> Answer {
    let headers = signed(body);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post(&gateway.url(path), &headers, body.to_string()).await
}

#[tokio::test]
async fn trutac_signed_request_is_forwarded_exactly() {
    let (upstream, gateway) = setup().await;
    let answer = post_signed(&gateway, "/hooks/trutac?attempt=1", CLOCKING).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["ok"], true);

    let got = upstream.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.body, CLOCKING.as_bytes());
    assert_eq!(r.uri.path(), "/trutac");
    assert_eq!(r.uri.query(), Some("attempt=1"));
    // Signatures and event headers are forwarded; the gateway adds its own.
    assert_eq!(
        r.headers["tt-hook-signature"],
        trutac_signature(SECRET, CLOCKING.as_bytes())
    );
    assert_eq!(r.headers["tt-hook-event"], "clocking");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["hookgate-route"], "trutac");
    assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.headers["x-source"], "trutac");
    assert_eq!(r.headers["host"], upstream.addr.to_string());
}

/// Sends five signed requests with hop-by-hop headers, each on a new
/// connection to the gateway (`runtime` is the config's `runtime:` block),
/// checks what the upstream got, and answers how many connections the
/// upstream saw.
async fn five_requests_with_hop_by_hop_headers(runtime: &str) -> usize {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&format!("runtime: {runtime}\n{}", config(&upstream, ""))).await;
    for _ in 0..5 {
        let sig = trutac_signature(SECRET, CLOCKING.as_bytes());
        let answer = post(
            &gateway.url("/hooks/trutac"),
            &[
                ("TT-Hook-Signature", sig.as_str()),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "per-connection"),
                ("Keep-Alive", "timeout=5"),
                ("Hookgate-Route", "spoofed"),
            ],
            CLOCKING,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(upstream.received().len(), 5);
    for r in upstream.received() {
        assert!(r.headers.get("x-hop").is_none());
        assert!(r.headers.get("keep-alive").is_none());
        assert_eq!(r.headers["hookgate-route"], "trutac");
    }
    upstream.connections()
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_hop_by_hop_headers_dropped() {
    // One keep-alive connection to the upstream, not one per request.
    assert_eq!(
        five_requests_with_hop_by_hop_headers("{ ingress: shared }").await,
        1
    );
}

#[tokio::test]
async fn each_serving_thread_keeps_its_own_upstream_pool() {
    // Thread per core: each serving thread has its pool, so the upstream
    // sees at most one connection per thread, never one per request.
    let connections =
        five_requests_with_hop_by_hop_headers("{ ingress: per_core, threads: 2 }").await;
    assert!(
        (1..=2).contains(&connections),
        "{connections} upstream connections for 5 requests on 2 serving threads"
    );
}

#[tokio::test]
async fn trutac_ping_event_with_whitespace_and_unicode_body_verifies() {
    let (upstream, gateway) = setup().await;
    // The MAC is over the raw bytes: re-serialising would break this body.
    let body = "{ \"event\" : \"ping\",\n  \"name\": \"Zoë ✓\" }\n";
    let answer = post_signed(&gateway, "/hooks/trutac", body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(upstream.received()[0].body, body.as_bytes());
}

#[tokio::test]
async fn unverified_requests_get_401_and_never_reach_the_upstream() {
    let (upstream, gateway) = setup().await;
    let url = gateway.url("/hooks/trutac");
    let wrong = trutac_signature("wrong-secret", CLOCKING.as_bytes());
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "missing_credentials"),
        (vec![("TT-Hook-Signature", &wrong)], "bad_signature"),
        (
            vec![("TT-Hook-Signature", "sha1=not-hex")],
            "malformed_signature",
        ),
        (
            vec![("TT-Hook-Signature", "md5=abcdef")],
            "malformed_signature",
        ),
    ];
    for (headers, code) in cases {
        let answer = post(&url, &headers, CLOCKING).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{code}");
        assert_eq!(answer.error_code(), code);
        // The body never echoes the expected or the received signature.
        let text = String::from_utf8_lossy(&answer.body).to_string();
        let expected = trutac_signature(SECRET, CLOCKING.as_bytes());
        assert!(
            !text.contains(&expected[5..]) && !text.contains(&wrong[5..]),
            "{text}"
        );
    }
    // A valid signature over a different body is a bad signature.
    let sig = trutac_signature(SECRET, b"{}");
    let answer = post(&url, &[("TT-Hook-Signature", &sig)], CLOCKING).await;
    assert_eq!(answer.error_code(), "bad_signature");

    assert!(upstream.received().is_empty());
    let failures = |reason: &str| {
        format!("hookgate_verify_failures_total{{route=\"trutac\",reason=\"{reason}\"}}")
    };
    assert_eq!(gateway.metric(&failures("bad_signature")).await, 2.0);
    assert_eq!(gateway.metric(&failures("malformed_signature")).await, 2.0);
    assert_eq!(gateway.metric(&failures("missing_credentials")).await, 1.0);
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"trutac\",outcome=\"unauthorized\"}")
            .await,
        5.0
    );
}

#[tokio::test]
async fn custom_header_secret_is_checked_and_not_forwarded() {
    let (upstream, gateway) = setup().await;
    let url = gateway.url("/hooks/timify");
    let ok = post(
        &url,
        &[("X-Timify-Secret", "timify-secret")],
        "{\"appointment\":1}",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = post(&url, &[("X-Timify-Secret", "timify-secreT")], "{}").await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "bad_credentials")
    );
    let missing = post(&url, &[], "{}").await;
    assert_eq!(missing.error_code(), "missing_credentials");

    let got = upstream.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].headers.get("x-timify-secret").is_none(),
        "credential forwarded"
    );
    assert_eq!(got[0].headers["hookgate-route"], "timify");
}

#[tokio::test]
async fn api_key_in_authorization_bearer() {
    let (upstream, gateway) = setup().await;
    let url = gateway.url("/hooks/partner");
    assert_eq!(
        post(&url, &[("Authorization", "Bearer partner-key")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    let bad = post(&url, &[("Authorization", "partner-key")], "{}").await;
    assert_eq!(bad.error_code(), "bad_credentials");
    let got = upstream.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn rotated_secrets_both_verify_and_are_counted_by_index() {
    let (upstream, gateway) = setup().await;
    let url = gateway.url("/hooks/trutac");
    let old = trutac_signature("old-secret", b"{}");
    assert_eq!(
        post(&url, &[("TT-Hook-Signature", &old)], "{}")
            .await
            .status,
        StatusCode::OK
    );
    let new = trutac_signature(SECRET, b"{}");
    assert_eq!(
        post(&url, &[("TT-Hook-Signature", &new)], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&url, &[("TT-Hook-Signature", &new)], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(upstream.received().len(), 3);
    let text = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "hookgate_secret_matches_total{route=\"trutac\",secret_index=\"0\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "hookgate_secret_matches_total{route=\"trutac\",secret_index=\"1\"}"
        ),
        Some(2.0)
    );
    assert!(!text.contains(SECRET) && !text.contains("old-secret"));
}

#[tokio::test]
async fn synchronous_webhooks_get_the_upstreams_actual_answer() {
    // TIMIFY "Before Confirmations": the sender uses the answer.
    let upstream = Upstream::with(Duration::ZERO, |r| {
        let mut resp = json_response(
            StatusCode::ACCEPTED,
            r#"{"confirm":false,"reason":"slot taken"}"#,
        );
        resp.headers_mut()
            .insert("x-booking-decision", "reject".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "close".parse().unwrap());
        resp.headers_mut()
            .insert("keep-alive", "timeout=5".parse().unwrap());
        assert_eq!(r.headers["hookgate-route"], "timify");
        resp
    })
    .await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    let answer = post(
        &gateway.url("/hooks/timify"),
        &[("X-Timify-Secret", "timify-secret")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.headers["x-booking-decision"], "reject");
    assert_eq!(answer.headers["content-type"], "application/json");
    assert!(
        answer.headers.get("keep-alive").is_none(),
        "hop-by-hop header relayed"
    );
    assert_eq!(
        answer.body,
        Bytes::from_static(br#"{"confirm":false,"reason":"slot taken"}"#)
    );
}

#[tokio::test]
async fn upstream_errors_are_relayed_and_counted() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"boom":1}"#)
    })
    .await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    let answer = post_signed(&gateway, "/hooks/trutac", CLOCKING).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, Bytes::from_static(br#"{"boom":1}"#));
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"trutac\",outcome=\"upstream_rejected\"}")
            .await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("hookgate_upstream_responses_total{route=\"trutac\",class=\"5xx\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let closed = closed_port().await;
    let slow = Upstream::with(Duration::from_secs(5), |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let yaml = format!(
        r#"
routes:
  - name: down
    path: /down
    verify: {{ scheme: none }}
    ack: sync
    upstream: {{ url: "http://{closed}/x" }}
  - name: slow
    path: /slow
    verify: {{ scheme: none }}
    ack: sync
    upstream: {{ url: "{}", timeout: 300ms }}
"#,
        slow.url("/x")
    );
    let gateway = Gateway::start(&yaml).await;
    let down = post(&gateway.url("/down"), &[], "{}").await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (StatusCode::BAD_GATEWAY, "upstream_unavailable")
    );
    assert!(!String::from_utf8_lossy(&down.body).contains(&closed.port().to_string()));
    let timed_out = post(&gateway.url("/slow"), &[], "{}").await;
    assert_eq!(
        (timed_out.status, timed_out.error_code().as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
    );
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"down\",outcome=\"upstream_error\"}")
            .await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"slow\",outcome=\"upstream_timeout\"}")
            .await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("hookgate_upstream_responses_total{route=\"slow\",class=\"timeout\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn oversized_upstream_response_is_502() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        http::Response::new(http_body_util::Full::new(Bytes::from(vec![b'x'; 2048])))
    })
    .await;
    let yaml = format!(
        "limits: {{ max_upstream_response_bytes: 1024 }}\nroutes:\n  - {{ name: big, path: /big, ack: sync, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    let answer = post(&gateway.url("/big"), &[], "{}").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (StatusCode::BAD_GATEWAY, "upstream_response_too_large")
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let (upstream, gateway) = setup().await;
    let nf = post(&gateway.url("/hooks/unknown"), &[], "{}").await;
    assert_eq!(
        (nf.status, nf.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // Matching is exact: no prefix or trailing-slash matches.
    assert_eq!(
        post(&gateway.url("/hooks/trutac/"), &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&gateway.url("/hooks"), &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    let get = get(&gateway.url("/hooks/trutac")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST");
    assert_eq!(get.error_code(), "method_not_allowed");
    assert!(upstream.received().is_empty());
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"_unmatched\",outcome=\"not_found\"}")
            .await,
        3.0
    );
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"trutac\",outcome=\"method_not_allowed\"}")
            .await,
        1.0
    );
}

/// Sends raw bytes and reads until the server closes or `limit` passes.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn declared_oversized_body_is_refused_before_it_is_sent() {
    let (upstream, gateway) = setup().await;
    // Only the head is sent: the answer must come without the body.
    let head = "POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    let text = raw_exchange(gateway.addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let (upstream, gateway) = setup().await;
    let mut req =
        b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'a'; 1024]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let text = raw_exchange(gateway.addr, &req, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(upstream.received().is_empty());
    // Under the limit, chunked is fine.
    let body = "{\"n\":1}";
    let sig = trutac_signature(SECRET, body.as_bytes());
    let ok = format!(
        "POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTT-Hook-Signature: {sig}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let text = raw_exchange(gateway.addr, ok.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(upstream.received()[0].body, body.as_bytes());
}

#[tokio::test]
async fn slow_body_gets_408() {
    let (upstream, gateway) = setup().await;
    // Promises 100 bytes, sends 10, then stalls past body_read_timeout (1s).
    let head = "POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";
    let text = raw_exchange(gateway.addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"));
    assert!(upstream.received().is_empty());
    assert_eq!(
        gateway
            .metric("hookgate_requests_total{route=\"trutac\",outcome=\"timeout\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let (_upstream, gateway) = setup().await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // header_read_timeout is 1s: the server must answer 408 or close.
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "connection still open after the header timeout"
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn garbage_gets_400_or_close_and_the_gateway_keeps_serving() {
    let (_upstream, gateway) = setup().await;
    let garbage: [&[u8]; 5] = [
        b"\x00\x01\x02 nonsense\r\n\r\n",
        b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /hooks/trutac HTTP/1.1\r\nHost: x\r\nBad\xffHeader: 1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ];
    for bytes in garbage {
        let text = raw_exchange(gateway.addr, bytes, Duration::from_secs(3)).await;
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 505"),
            "{:?} -> {text}",
            String::from_utf8_lossy(bytes)
        );
    }
    let answer = post_signed(&gateway, "/hooks/trutac", CLOCKING).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let (upstream, gateway) = setup().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let sig = trutac_signature(SECRET, CLOCKING.as_bytes());
    let req = http::Request::post(gateway.url("/hooks/trutac"))
        .header("TT-Hook-Signature", sig)
        .body(http_body_util::Full::new(Bytes::from_static(
            CLOCKING.as_bytes(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let (_upstream, gateway) = setup().await;
    assert_eq!(
        get(&gateway.admin_url("/healthz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&gateway.admin_url("/readyz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&gateway.admin_url("/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    let m = get(&gateway.admin_url("/metrics")).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    for name in [
        "hookgate_requests_total",
        "hookgate_verify_failures_total",
        "hookgate_secret_matches_total",
        "hookgate_request_duration_seconds",
        "hookgate_upstream_duration_seconds",
        "hookgate_ready 1",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    // The admin port does not serve webhooks, and the ingress has no admin endpoints.
    assert_eq!(
        post(&gateway.admin_url("/hooks/trutac"), &[], "{}")
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get(&gateway.url("/metrics")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn durations_are_recorded_per_route() {
    let (_upstream, gateway) = setup().await;
    post_signed(&gateway, "/hooks/trutac", CLOCKING).await;
    // Histograms are folded into buckets by the upkeep task or on render.
    let text = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "hookgate_request_duration_seconds_count{route=\"trutac\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "hookgate_upstream_duration_seconds_count{route=\"trutac\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_reports_not_ready() {
    // The upstream holds its answer until the test has seen the drain, so
    // no timer decides whether the draining state is observed.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let upstream = Upstream::gated_with(gate.clone(), |_| {
        json_response(StatusCode::OK, r#"{"late":true}"#)
    })
    .await;
    let mut gateway = Gateway::start(&config(&upstream, "")).await;
    let url = gateway.url("/hooks/timify");
    let in_flight =
        tokio::spawn(
            async move { post(&url, &[("X-Timify-Secret", "timify-secret")], "{}").await },
        );
    eventually("the upstream holds the request", || {
        !upstream.received().is_empty()
    })
    .await;
    assert_eq!(upstream.received().len(), 1);
    let done = gateway.begin_shutdown();
    // While draining: not ready, and new connections are refused.
    let readyz = gateway.admin_url("/readyz");
    wait_until(
        "readyz reports 503 while draining",
        Duration::from_secs(20),
        || {
            let readyz = readyz.clone();
            async move { get(&readyz).await.status == StatusCode::SERVICE_UNAVAILABLE }
        },
    )
    .await;
    // Each serving thread closes its listener when it sees the stop: wait
    // for that, with the in-flight request still held.
    let addr = gateway.addr;
    wait_until(
        "the ingress refuses new connections while draining",
        Duration::from_secs(20),
        || async move { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    assert_eq!(
        upstream.received().len(),
        1,
        "the held request is still in flight"
    );
    gate.add_permits(1);
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["late"], true);
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_requests_only_up_to_its_bound() {
    let upstream = Upstream::with(Duration::from_secs(30), |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let yaml = format!(
        "shutdown_timeout: 300ms\nroutes:\n  - {{ name: hang, path: /hang, ack: sync, verify: {{ scheme: none }}, upstream: {{ url: \"{}\", timeout: 60s }} }}\n",
        upstream.url("/")
    );
    let mut gateway = Gateway::start(&yaml).await;
    let url = gateway.url("/hang");
    let stuck = tokio::spawn(async move { post(&url, &[], "{}").await });
    while upstream.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // serve() returns after the bound even though the upstream never answers.
    let done = gateway.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("shutdown was not bounded")
        .unwrap();
    stuck.abort();
}

#[tokio::test]
async fn the_readme_example_config_forwards_a_trutac_request() {
    let upstream = Upstream::start().await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap();
    let text = text
        .replace("127.0.0.1:3000", &upstream.addr.to_string())
        .replace("\"0.0.0.0:8080\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:9090\"", "\"127.0.0.1:0\"");
    let data = tempfile::tempdir().unwrap();
    let text = text.replace("\"./data\"", &format!("\"{}\"", data.path().display()));
    let gateway = Gateway::start(&text).await;
    // The development default secret, exactly as the README's curl example signs it.
    let body = r#"{"event":"ping"}"#;
    let sig = trutac_signature("dev-trutac-secret-change-me", body.as_bytes());
    let answer = post(
        &gateway.url("/hooks/trutac"),
        &[("TT-Hook-Signature", &sig), ("TT-Hook-Event", "ping")],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(upstream.received()[0].uri.path(), "/trutac");
    let unsigned = post(&gateway.url("/hooks/trutac"), &[], body).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.received().len(), 1);
}

/// The names of a process's threads that start with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// `runtime.ingress` in the built binary: `per_core` starts the configured
/// serving threads, which share the listening port and answer; `shared`
/// starts none. Both stop cleanly on SIGTERM.
#[tokio::test]
async fn per_core_starts_its_serving_threads_and_shared_none() {
    let upstream = Upstream::start().await;
    for (runtime, expected) in [
        ("{ ingress: per_core, threads: 3 }", 3),
        ("{ ingress: shared }", 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rest = format!("runtime: {runtime}\n{}", config(&upstream, ""));
        let ProcessConfig { file, ingress, .. } = process_config(dir.path(), &rest);
        let process = GatewayProcess::spawn(&file);
        let mut names = threads_named(process.pid(), "hookgate-srv-");
        names.sort();
        let wanted: Vec<String> = (0..expected).map(|i| format!("hookgate-srv-{i}")).collect();
        assert_eq!(names, wanted, "serving threads with runtime {runtime}");
        // Every request is answered, whichever thread's listener the kernel
        // gives its connection to.
        for _ in 0..8 {
            let answer = post(
                &format!("http://127.0.0.1:{ingress}/hooks/timify"),
                &[("X-Timify-Secret", "timify-secret")],
                "{}",
            )
            .await;
            assert_eq!(answer.status, StatusCode::OK, "runtime {runtime}");
        }
        process.terminate();
    }
}

/// A port another process listens on is refused at start-up, serving
/// threads or not: `SO_REUSEPORT` must not let a second gateway share it.
#[tokio::test]
async fn a_port_already_in_use_is_refused_whatever_the_runtime() {
    let upstream = Upstream::start().await;
    // Held as another gateway's serving thread holds it: with SO_REUSEPORT
    // (a plain listener would refuse a SO_REUSEPORT bind by itself).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let taken = socket.listen(16).unwrap();
    let port = taken.local_addr().unwrap().port();
    for runtime in ["{ ingress: per_core, threads: 2 }", "{ ingress: shared }"] {
        let yaml = format!(
            "listen: \"127.0.0.1:{port}\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\nruntime: {runtime}\n{}",
            config(&upstream, "")
        );
        let config = hookgate::Config::from_yaml(&yaml, &Default::default()).unwrap();
        let error = hookgate::Server::bind(config)
            .await
            .err()
            .unwrap_or_else(|| panic!("bound a port in use with runtime {runtime}"));
        assert!(error.to_string().contains("ingress"), "{error}");
    }
}
