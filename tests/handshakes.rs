//! The handshakes in the query string, on a real gateway with a real
//! upstream: Meta's subscription `GET` (answered only with the route's
//! `verify_token`), Dropbox's `challenge` `GET` and Microsoft Graph's
//! `validationToken`, and Graph's `clientState` check on notifications.
//! Echoed challenges are text/plain with nosniff and bounded; nothing of a
//! handshake reaches the upstream.

mod support;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use support::*;

const APP_SECRET: &str = "meta-app-secret-1";
const VERIFY_TOKEN: &str = "meta-verify-token-Xy7";
const DROPBOX_SECRET: &str = "dropbox-app-secret";
const CLIENT_STATE: &str = "graph-client-state-Q2w";

fn config(upstream: &Upstream, extra_dropbox: &str) -> String {
    format!(
        r#"routes:
  - name: meta
    path: /hooks/meta
    verify: {{ scheme: whatsapp, secrets: ["{APP_SECRET}"], verify_token: "{VERIFY_TOKEN}" }}
    ack: sync
    dedup: off
    upstream: {{ url: "{meta}" }}
  - name: meta-no-token
    path: /hooks/meta-no-token
    verify: {{ scheme: meta, secrets: ["{APP_SECRET}"] }}
    ack: sync
    upstream: {{ url: "{meta}" }}
  - name: dropbox
    path: /hooks/dropbox
    verify: {{ scheme: dropbox, secrets: ["{DROPBOX_SECRET}"] }}
    ack: sync
    dedup: off
    upstream: {{ url: "{dropbox}" }}{extra_dropbox}
  - name: graph
    path: /hooks/graph
    verify: {{ scheme: microsoft_graph, secrets: ["{CLIENT_STATE}"] }}
    ack: sync
    dedup: off
    upstream: {{ url: "{graph}" }}
"#,
        meta = upstream.url("/meta"),
        dropbox = upstream.url("/dropbox"),
        graph = upstream.url("/graph"),
    )
}

async fn request(method: Method, url: &str) -> Answer {
    send(
        Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

fn hex_hmac_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A 200 whose body is `expected`, as text that no browser renders.
fn assert_echo(answer: &Answer, expected: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body, expected.as_bytes());
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn meta_answers_the_subscription_only_with_its_verify_token() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    let subscribe = |path: &str, query: &str| {
        let url = gateway.url(&format!("{path}?{query}"));
        async move { request(Method::GET, &url).await }
    };
    let ok = subscribe(
        "/hooks/meta",
        &format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"),
    )
    .await;
    assert_echo(&ok, "1158201444");
    // Markup is echoed as text, never as HTML.
    let markup = subscribe(
        "/hooks/meta",
        &format!(
            "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=%3Cscript%3Ex%3C%2Fscript%3E"
        ),
    )
    .await;
    assert_echo(&markup, "<script>x</script>");

    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".to_string(),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}x&hub.challenge=1"),
        "hub.mode=subscribe&hub.challenge=1".to_string(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
    ] {
        let refused = subscribe("/hooks/meta", &query).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{query}");
        assert_eq!(refused.error_code(), "forbidden");
        assert!(!String::from_utf8_lossy(&refused.body).contains(VERIFY_TOKEN));
    }
    // A route without a verify token answers no subscription.
    let untokened = subscribe(
        "/hooks/meta-no-token",
        &format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
    )
    .await;
    assert_eq!(untokened.status, StatusCode::FORBIDDEN);
    // A challenge longer than any Meta sends is refused, not echoed.
    let long = subscribe(
        "/hooks/meta",
        &format!(
            "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge={}",
            "9".repeat(1025)
        ),
    )
    .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.error_code(), "bad_challenge");
    // A plain GET is no webhook.
    let plain = request(Method::GET, &gateway.url("/hooks/meta")).await;
    assert_eq!(plain.status, StatusCode::METHOD_NOT_ALLOWED);

    // Notifications are POSTs signed with X-Hub-Signature-256, as before.
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let signature = format!("sha256={}", hex_hmac_sha256(APP_SECRET, body.as_bytes()));
    let event = post(
        &gateway.url("/hooks/meta"),
        &[("x-hub-signature-256", &signature)],
        body,
    )
    .await;
    assert_eq!(event.status, StatusCode::OK);
    let forged = post(
        &gateway.url("/hooks/meta"),
        &[("x-hub-signature-256", "sha256=00")],
        body,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let received = upstream.received();
    assert_eq!(received.len(), 1, "only the signed event is forwarded");
    assert_eq!(received[0].body, body.as_bytes());
}

#[tokio::test]
async fn dropbox_challenges_are_echoed_and_notifications_verified() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    let ok = request(
        Method::GET,
        &gateway.url("/hooks/dropbox?challenge=dbx-Challenge_123"),
    )
    .await;
    assert_echo(&ok, "dbx-Challenge_123");
    for (query, status) in [
        ("", StatusCode::METHOD_NOT_ALLOWED),
        ("?challenge=", StatusCode::BAD_REQUEST),
        ("?challenge=a&challenge=b", StatusCode::BAD_REQUEST),
    ] {
        let answer = request(Method::GET, &gateway.url(&format!("/hooks/dropbox{query}"))).await;
        assert_eq!(answer.status, status, "{query}");
    }
    // A POST with a challenge in its query is a notification like any
    // other: verified, so an unsigned one is refused.
    let unsigned = request(Method::POST, &gateway.url("/hooks/dropbox?challenge=x")).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);

    let body = r#"{"list_folder":{"accounts":["dbid:AAH4f99"]},"delta":{"users":[12345]}}"#;
    let signature = hex_hmac_sha256(DROPBOX_SECRET, body.as_bytes());
    let event = post(
        &gateway.url("/hooks/dropbox"),
        &[("x-dropbox-signature", &signature)],
        body,
    )
    .await;
    assert_eq!(event.status, StatusCode::OK);
    let received = upstream.received();
    assert_eq!(received.len(), 1, "no handshake reaches the upstream");
    assert_eq!(received[0].uri.path(), "/dropbox");
}

#[tokio::test]
async fn a_routes_allowlist_applies_to_its_handshakes() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "\n    allow_ips: [192.0.2.0/24]")).await;
    let refused = request(Method::GET, &gateway.url("/hooks/dropbox?challenge=abc")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body, &br#"{"error":"forbidden"}"#[..]);
}

#[tokio::test]
async fn graph_validation_is_echoed_and_notifications_need_the_client_state() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    // Graph sends the token URL-encoded and expects it back decoded.
    let token = "Validation%3A%20Testing%20client%20application%20reachability%20for%20subscription%20Request-Id%3A%2025f4dde4";
    for method in [Method::POST, Method::GET] {
        let answer = request(
            method.clone(),
            &gateway.url(&format!("/hooks/graph?validationToken={token}")),
        )
        .await;
        assert_echo(
            &answer,
            "Validation: Testing client application reachability for subscription Request-Id: 25f4dde4",
        );
    }
    let long = request(
        Method::POST,
        &gateway.url(&format!(
            "/hooks/graph?validationToken={}",
            "a".repeat(2000)
        )),
    )
    .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);

    let notification = |state: &str| {
        format!(
            r#"{{"value":[{{"subscriptionId":"sub-1","changeType":"created","clientState":"{state}","resource":"Users/1/Messages/2"}}]}}"#
        )
    };
    let good = post(
        &gateway.url("/hooks/graph"),
        &[],
        notification(CLIENT_STATE),
    )
    .await;
    assert_eq!(good.status, StatusCode::OK);
    let wrong = post(&gateway.url("/hooks/graph"), &[], notification("guess")).await;
    assert_eq!(
        (wrong.status, wrong.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "bad_credentials")
    );
    // One wrong notification among right ones refuses the request.
    let mixed =
        format!(r#"{{"value":[{{"clientState":"{CLIENT_STATE}"}},{{"clientState":"guess"}}]}}"#);
    let mixed = post(&gateway.url("/hooks/graph"), &[], mixed).await;
    assert_eq!(mixed.status, StatusCode::UNAUTHORIZED);
    let missing = post(&gateway.url("/hooks/graph"), &[], r#"{"value":[{}]}"#).await;
    assert_eq!(missing.error_code(), "missing_credentials");
    let received = upstream.received();
    assert_eq!(
        received.len(),
        1,
        "only the notification with the client state"
    );
    assert_eq!(received[0].body, notification(CLIENT_STATE).as_bytes());
}

#[test]
fn a_meta_route_without_a_verify_token_is_warned_about() {
    let yaml = |token: &str| {
        format!(
            "routes:\n  - {{ name: m, path: /m, verify: {{ scheme: instagram, secrets: [\"s\"]{token} }}, upstream: {{ url: \"http://127.0.0.1:9/\" }} }}\n"
        )
    };
    let warned = hookgate::Config::from_yaml(&yaml(""), &Default::default()).unwrap();
    assert!(
        warned
            .warnings()
            .iter()
            .any(|w| w.contains("route m has no verify.verify_token")),
        "{:?}",
        warned.warnings()
    );
    let set = hookgate::Config::from_yaml(&yaml(", verify_token: \"t\""), &Default::default());
    assert!(set
        .unwrap()
        .warnings()
        .iter()
        .all(|w| !w.contains("verify_token")));
}

#[test]
fn verify_token_is_only_for_meta_schemes() {
    let yaml = r#"routes:
  - name: d
    path: /d
    verify: { scheme: dropbox, secrets: ["s"], verify_token: "t" }
    upstream: { url: "http://127.0.0.1:9/" }
"#;
    let error = hookgate::Config::from_yaml(yaml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("verify_token"), "{error}");
    assert!(error.contains("meta, whatsapp and instagram"), "{error}");
    assert!(!error.contains("\"t\""), "{error}");
}
