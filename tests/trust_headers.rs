//! What a sender may put in front of the upstream, and what the upstream
//! may put in front of the internet: a real gateway forwarding signed
//! requests to a real upstream that records every header it receives, on a
//! sync route (forwarded at once) and an async route (what the delivery
//! worker sends).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use http::StatusCode;
use support::*;

const SECRET: &str = "trutac-test-secret";
const BODY: &str = r#"{"action":"clocking.created","clocking":{"id":4711}}"#;

/// A sync route `/sync` and an async route `/async`, both TruTac-signed,
/// forwarding to `upstream`, each with `extra` in its `upstream:` block.
fn routes(upstream: &Upstream, top: &str, extra: &str) -> String {
    format!(
        "{top}routes:\n{}{}",
        route(upstream, "sync", extra),
        route(upstream, "async", extra)
    )
}

/// One TruTac-signed route `/{name}` (`ack: {name}`).
fn route(upstream: &Upstream, name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    path: /{name}\n    verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}\n    ack: {name}\n    dedup: off\n    upstream:\n      url: \"{}\"\n      timeout: 2s\n      retry: {{ initial_backoff: 20ms, max_backoff: 100ms }}\n{extra}",
        upstream.url(&format!("/{name}"))
    )
}

/// POSTs the signed body to `path` with `headers` besides the signature.
async fn post_signed(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let signature = trutac_signature(SECRET, BODY.as_bytes());
    let mut all = vec![("TT-Hook-Signature", signature.as_str())];
    all.extend_from_slice(headers);
    post(&gateway.url(path), &all, BODY).await
}

/// Sends the same request to both routes and returns what the upstream
/// received for each, sync first.
async fn through_both(
    gateway: &Gateway,
    upstream: &Upstream,
    headers: &[(&str, &str)],
) -> (Received, Received, String) {
    let sync = post_signed(gateway, "/sync", headers).await;
    assert_eq!(sync.status, StatusCode::OK);
    let acked = post_signed(gateway, "/async", headers).await;
    assert_eq!(acked.status, StatusCode::OK);
    let id = acked.json()["id"].as_str().unwrap().to_string();
    eventually("the async event is delivered", || {
        upstream.received().len() == 2
    })
    .await;
    let received = upstream.received();
    let at = |path: &str| {
        received
            .iter()
            .find(|r| r.uri.path() == path)
            .unwrap_or_else(|| panic!("nothing received at {path}"))
            .clone()
    };
    (at("/sync"), at("/async"), id)
}

fn names(r: &Received) -> BTreeSet<String> {
    r.headers.keys().map(|n| n.as_str().to_string()).collect()
}

/// Header names a CGI/WSGI stack reads as `Hookgate-*`.
fn gateway_like(r: &Received) -> BTreeSet<String> {
    names(r)
        .into_iter()
        .filter(|n| n.replace('_', "-").starts_with("hookgate-"))
        .collect()
}

const SPOOFED: &[(&str, &str)] = &[
    ("Hookgate_Delivery_Id", "forged-id"),
    ("HOOKGATE-ATTEMPT", "99"),
    ("Hookgate_Attempt", "98"),
    ("hookgate_x", "forged"),
    ("Hookgate_Route", "other"),
    ("Forwarded", "for=192.30.252.1;proto=https"),
    ("X-Real-IP", "192.30.252.1"),
    ("X_Real_IP", "192.30.252.1"),
    ("X_Forwarded_For", "192.30.252.1"),
    ("X-Forwarded-For", "192.30.252.1"),
    ("X-Custom", "kept"),
];

#[tokio::test]
async fn sender_gateway_and_proxy_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&routes(&upstream, "", "")).await;
    let (sync, delivered, id) = through_both(&gateway, &upstream, SPOOFED).await;

    for (route, r) in [("sync", &sync), ("async", &delivered)] {
        for gone in ["forwarded", "x-real-ip", "x_real_ip", "x_forwarded_for"] {
            assert!(!r.headers.contains_key(gone), "{route}: {gone} forwarded");
        }
        // The peer (127.0.0.1) is no trusted proxy: it is the whole chain.
        assert_eq!(r.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1", "{route}");
        assert_eq!(r.headers["hookgate-route"], route);
        assert_eq!(r.headers["x-custom"], "kept", "{route}");
    }
    assert_eq!(
        gateway_like(&sync),
        BTreeSet::from(["hookgate-route".to_string()])
    );
    assert_eq!(
        gateway_like(&delivered),
        BTreeSet::from([
            "hookgate-attempt".to_string(),
            "hookgate-delivery-id".to_string(),
            "hookgate-route".to_string()
        ])
    );
    assert_eq!(delivered.headers["hookgate-delivery-id"], id.as_str());
    assert_eq!(delivered.headers["hookgate-attempt"], "1");
}

#[tokio::test]
async fn a_trusted_proxys_chain_is_extended_with_the_peer() {
    let upstream = Upstream::start().await;
    let top = "trusted_proxies: [\"127.0.0.1/32\"]\n";
    let gateway = Gateway::start(&routes(&upstream, top, "")).await;
    let (sync, delivered, _) = through_both(
        &gateway,
        &upstream,
        &[
            ("X-Forwarded-For", "192.30.252.1"),
            ("X-Real-IP", "192.30.252.1"),
        ],
    )
    .await;
    for r in [&sync, &delivered] {
        assert_eq!(r.headers["x-forwarded-for"], "192.30.252.1, 127.0.0.1");
        // Even a trusted proxy's X-Real-IP is not passed on: hookgate sets
        // X-Forwarded-For, nothing else.
        assert!(!r.headers.contains_key("x-real-ip"));
    }
}

#[tokio::test]
async fn forward_headers_keep_only_the_listed_sender_headers() {
    let upstream = Upstream::start().await;
    let extra = "      forward_headers: [Content-Type, tt-hook-event]\n      headers: { X-Source: hookgate }\n";
    let gateway = Gateway::start(&routes(&upstream, "", extra)).await;
    let mut headers = SPOOFED.to_vec();
    headers.extend([
        ("Content-Type", "application/json"),
        ("TT-Hook-Event", "clocking"),
        ("Cookie", "session=1"),
        ("X-Internal-Admin", "true"),
        ("TT_Hook_Event", "other"),
    ]);
    let (sync, delivered, _) = through_both(&gateway, &upstream, &headers).await;
    // The client adds host and content-length; the rest is the sender's
    // listed headers, the route's own and hookgate's.
    let base = [
        "content-length",
        "content-type",
        "host",
        "hookgate-route",
        "tt-hook-event",
        "x-forwarded-for",
        "x-source",
    ];
    let expected: BTreeSet<String> = base.iter().map(|s| s.to_string()).collect();
    assert_eq!(names(&sync), expected);
    let mut expected_async = expected.clone();
    // A delivery also says which attempt it is, its id, and the event type
    // the route read (TruTac's TT-Hook-Event).
    expected_async.extend([
        "hookgate-attempt".into(),
        "hookgate-delivery-id".into(),
        "hookgate-event-type".into(),
    ]);
    assert_eq!(names(&delivered), expected_async);
    assert_eq!(delivered.headers["hookgate-event-type"], "clocking");
    for r in [&sync, &delivered] {
        assert_eq!(r.headers["tt-hook-event"], "clocking");
        assert_eq!(r.headers["x-source"], "hookgate");
        assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1");
    }
}

#[tokio::test]
async fn sync_routes_relay_only_the_answer_describing_headers_and_the_listed_ones() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        let mut r = json_response(StatusCode::ACCEPTED, r#"{"queued":true}"#);
        let h = r.headers_mut();
        for (name, value) in [
            ("server", "internal-app/1.2.3"),
            ("set-cookie", "session=upstream; HttpOnly"),
            ("x-internal-trace", "span=abc"),
            ("x-booking-decision", "reject"),
            ("retry-after", "30"),
            ("location", "/bookings/1"),
            ("content-language", "de"),
            ("hookgate-internal", "1"),
        ] {
            h.insert(name, value.parse().unwrap());
        }
        r
    })
    .await;
    let extra = "      relay_headers: [X-Booking-Decision]\n";
    let yaml = format!("routes:\n{}", route(&upstream, "sync", extra));
    let gateway = Gateway::start(&yaml).await;
    let answer = post_signed(&gateway, "/sync", &[]).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    for gone in [
        "server",
        "set-cookie",
        "x-internal-trace",
        "hookgate-internal",
    ] {
        assert!(!answer.headers.contains_key(gone), "{gone} relayed");
    }
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["x-booking-decision"], "reject");
    assert_eq!(answer.headers["retry-after"], "30");
    assert_eq!(answer.headers["location"], "/bookings/1");
    assert_eq!(answer.headers["content-language"], "de");
    assert_eq!(answer.body, r#"{"queued":true}"#);
}

#[test]
fn header_lists_refuse_what_hookgate_manages_and_relay_needs_a_sync_route() {
    let route = |ack: &str, upstream: &str| {
        format!(
            "routes:\n  - name: r\n    path: /r\n    ack: {ack}\n    verify: {{ scheme: none }}\n    upstream:\n      url: \"http://127.0.0.1:1/\"\n{upstream}"
        )
    };
    let env = Default::default();
    for (ack, block, field) in [
        (
            "sync",
            "      forward_headers: [content-type, Hookgate_Route]\n",
            "routes[0].upstream.forward_headers[1]",
        ),
        (
            "sync",
            "      forward_headers: [X-Forwarded-For]\n",
            "routes[0].upstream.forward_headers[0]",
        ),
        (
            "sync",
            "      forward_headers: [connection]\n",
            "routes[0].upstream.forward_headers[0]",
        ),
        (
            "sync",
            "      relay_headers: [content-length]\n",
            "routes[0].upstream.relay_headers[0]",
        ),
        (
            "sync",
            "      relay_headers: [\"bad header\"]\n",
            "routes[0].upstream.relay_headers[0]",
        ),
        (
            "async",
            "      relay_headers: [x-booking]\n",
            "routes[0].upstream.relay_headers",
        ),
    ] {
        let error = hookgate::Config::from_yaml(&route(ack, block), &env).unwrap_err();
        assert_eq!(error.path, field, "{block}: {error}");
    }
    let ok = hookgate::Config::from_yaml(
        &route(
            "sync",
            "      forward_headers: [Content-Type, X-GitHub-Event]\n      relay_headers: [X-Booking]\n",
        ),
        &env,
    )
    .unwrap();
    let upstream = ok.routes[0].sync_upstream().expect("an http upstream");
    assert_eq!(
        upstream.forward_headers.as_deref().unwrap(),
        ["content-type", "x-github-event"]
    );
    assert_eq!(upstream.relay_headers, ["x-booking"]);
}
