//! Replays of captured, correctly signed requests with their unsigned parts
//! changed or removed: real gateways, a real upstream, the real binary's
//! `check`. Each copy must be answered as a duplicate, never forwarded a
//! second time, and a key that would let it through must be refused.

mod support;

use std::process::Command;

use base64::Engine;
use hmac::{Hmac, Mac};
use http::StatusCode;
use support::*;

const SECRET: &str = "replay-secret-0123456789";

fn hmac_sha256(body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

async fn gateway(route: &str, upstream: &Upstream) -> Gateway {
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, {route}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    Gateway::start(&yaml).await
}

/// Sends the captured request, then each replay; only the first is forwarded.
async fn replays_are_duplicates(
    gateway: &Gateway,
    upstream: &Upstream,
    path_and_query: &str,
    captured: &[(&str, &str)],
    replays: &[Vec<(&str, &str)>],
    body: &str,
) {
    let first = post(&gateway.url(path_and_query), captured, body.to_string()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert!(first.headers.get("hookgate-duplicate").is_none());
    for headers in replays {
        let copy = post(&gateway.url(path_and_query), headers, body.to_string()).await;
        assert_eq!(copy.status, StatusCode::OK, "{headers:?}: {:?}", copy.body);
        assert_eq!(
            copy.headers
                .get("hookgate-duplicate")
                .map(|v| v.to_str().unwrap()),
            Some("true"),
            "replay with {headers:?} was not a duplicate"
        );
    }
    assert_eq!(upstream.received().len(), 1, "a replay was forwarded again");
}

#[tokio::test]
async fn github_replay_with_another_delivery_id_is_not_forwarded_twice() {
    let upstream = Upstream::start().await;
    let gateway = gateway(
        &format!("verify: {{ scheme: github, secrets: [\"{SECRET}\"] }}"),
        &upstream,
    )
    .await;
    let body = r#"{"action":"opened","number":7}"#;
    let sig = format!("sha256={}", hex::encode(hmac_sha256(body.as_bytes())));
    let sig = sig.as_str();
    replays_are_duplicates(
        &gateway,
        &upstream,
        "/r",
        &[
            ("X-Hub-Signature-256", sig),
            ("X-GitHub-Delivery", "d-1"),
            ("X-GitHub-Event", "pull_request"),
        ],
        &[
            vec![
                ("X-Hub-Signature-256", sig),
                ("X-GitHub-Delivery", "d-2"),
                ("X-GitHub-Event", "pull_request"),
            ],
            vec![
                ("X-Hub-Signature-256", sig),
                ("X-GitHub-Event", "pull_request"),
            ],
        ],
        body,
    )
    .await;
}

#[tokio::test]
async fn shopify_replay_with_another_webhook_id_is_not_forwarded_twice() {
    let upstream = Upstream::start().await;
    let gateway = gateway(
        &format!("verify: {{ scheme: shopify, secrets: [\"{SECRET}\"] }}"),
        &upstream,
    )
    .await;
    let body = r#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(body.as_bytes()));
    let sig = sig.as_str();
    replays_are_duplicates(
        &gateway,
        &upstream,
        "/r",
        &[
            ("X-Shopify-Hmac-Sha256", sig),
            ("X-Shopify-Webhook-Id", "w-1"),
            ("X-Shopify-Topic", "orders/create"),
        ],
        &[
            vec![
                ("X-Shopify-Hmac-Sha256", sig),
                ("X-Shopify-Webhook-Id", "w-2"),
                ("X-Shopify-Topic", "orders/create"),
            ],
            vec![("X-Shopify-Hmac-Sha256", sig)],
        ],
        body,
    )
    .await;
}

/// The shipped example's TruTac route, as written, with a test upstream.
fn example_trutac_route(upstream: &Upstream) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut route = doc["routes"][0].clone();
    assert_eq!(route["name"].as_str(), Some("trutac"));
    route["upstream"] =
        serde_yaml::from_str(&format!("{{ url: \"{}\" }}", upstream.url("/"))).unwrap();
    let routes = serde_yaml::to_string(&vec![route]).unwrap();
    format!("routes:\n{routes}")
}

#[tokio::test]
async fn the_example_trutac_route_forwards_a_relabelled_replay_once() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start_with_env(
        &example_trutac_route(&upstream),
        &[("TRUTAC_SECRET", SECRET)],
    )
    .await;
    let body = r#"{"action":"created","clocking":{"id":42}}"#;
    let sig = trutac_signature(SECRET, body.as_bytes());
    let sig = sig.as_str();
    replays_are_duplicates(
        &gateway,
        &upstream,
        "/hooks/trutac",
        &[("TT-Hook-Signature", sig), ("TT-Hook-Event", "clocking")],
        &[
            vec![("TT-Hook-Signature", sig), ("TT-Hook-Event", "clocking.v2")],
            vec![("TT-Hook-Signature", sig)],
        ],
        body,
    )
    .await;
}

const TRUTAC_LIKE: &str = "verify: { scheme: hmac, header: TT-Hook-Signature, algorithm: sha1, prefix: \"sha1=\", secrets: [\"${S}\"] }";

#[tokio::test]
async fn a_generic_hmac_route_keyed_on_the_body_forwards_a_relabelled_replay_once() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, {TRUTAC_LIKE}, dedup: {{ key: \"{{json:/action}}:{{json:/clocking/id}}\" }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start_with_env(&yaml, &[("S", SECRET)]).await;
    let body = r#"{"action":"created","clocking":{"id":43}}"#;
    let sig = trutac_signature(SECRET, body.as_bytes());
    let sig = sig.as_str();
    replays_are_duplicates(
        &gateway,
        &upstream,
        "/r",
        &[("TT-Hook-Signature", sig), ("TT-Hook-Event", "clocking")],
        &[
            vec![("TT-Hook-Signature", sig), ("TT-Hook-Event", "other")],
            vec![("TT-Hook-Signature", sig)],
        ],
        body,
    )
    .await;
}

#[tokio::test]
async fn with_the_default_key_a_replay_with_another_query_is_not_forwarded_twice() {
    let upstream = Upstream::start().await;
    let gateway = gateway(
        &format!("verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}"),
        &upstream,
    )
    .await;
    let body = r#"{"action":"created","clocking":{"id":44}}"#;
    let sig = trutac_signature(SECRET, body.as_bytes());
    let headers = [("TT-Hook-Signature", sig.as_str())];
    let first = post(&gateway.url("/r?event_id=1"), &headers, body).await;
    assert!(first.headers.get("hookgate-duplicate").is_none());
    for query in ["/r?event_id=2", "/r"] {
        let copy = post(&gateway.url(query), &headers, body).await;
        assert_eq!(copy.headers["hookgate-duplicate"], "true", "{query}");
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn a_query_key_on_a_signed_url_is_accepted_and_its_replay_cannot_change_it() {
    let upstream = Upstream::start().await;
    let public_url = "https://hooks.example.com/square";
    let gateway = gateway(
        &format!("verify: {{ scheme: square, secrets: [\"{SECRET}\"], public_url: \"{public_url}\" }}, dedup: {{ key: \"{{query:event_id}}\" }}"),
        &upstream,
    )
    .await;
    let body = r#"{"type":"payment.created"}"#;
    let signed = format!("{public_url}?event_id=1{body}");
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(signed.as_bytes()));
    let headers = [("x-square-hmacsha256-signature", sig.as_str())];
    let first = post(&gateway.url("/r?event_id=1"), &headers, body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        post(&gateway.url("/r?event_id=1"), &headers, body)
            .await
            .headers["hookgate-duplicate"],
        "true"
    );
    // The URL is signed: another query is a bad signature, not a new event.
    let changed = post(&gateway.url("/r?event_id=2"), &headers, body).await;
    assert_eq!(changed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn unsigned_key_allow_is_what_lets_a_relabelled_replay_through() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, {TRUTAC_LIKE}, dedup: {{ key: \"{{header:TT-Hook-Event}}\", unsigned_key: allow }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start_with_env(&yaml, &[("S", SECRET)]).await;
    let body = r#"{"action":"created"}"#;
    let sig = trutac_signature(SECRET, body.as_bytes());
    for event in ["a", "b"] {
        let r = post(
            &gateway.url("/r"),
            &[("TT-Hook-Signature", &sig), ("TT-Hook-Event", event)],
            body,
        )
        .await;
        assert!(r.headers.get("hookgate-duplicate").is_none());
    }
    // Documented: the route gave up replay protection.
    assert_eq!(upstream.received().len(), 2);
}

fn check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&path)
        .env("S", SECRET)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn route_yaml(route: &str) -> String {
    format!("routes:\n  - {{ name: r, path: /r, {route}, upstream: {{ url: \"http://127.0.0.1:9/\" }} }}\n")
}

#[test]
fn check_refuses_unsigned_key_parts_naming_them() {
    for (key, part, why) in [
        (
            "{header:TT-Hook-Event}:{json:/action}",
            "{header:tt-hook-event}",
            "header tt-hook-event is not part of the signed payload",
        ),
        (
            "{query:event_id}",
            "{query:event_id}",
            "the URL and its query string are not signed",
        ),
    ] {
        let (ok, stderr) = check(&route_yaml(&format!(
            "{TRUTAC_LIKE}, dedup: {{ key: \"{key}\" }}"
        )));
        assert!(!ok, "{key} was accepted");
        assert!(stderr.contains("routes[0].dedup.key"), "{stderr}");
        assert!(stderr.contains(part) && stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
    // The same key is accepted, with a warning, once replay protection is
    // given up knowingly.
    let (ok, stderr) = check(&route_yaml(&format!(
        "{TRUTAC_LIKE}, dedup: {{ key: \"{{query:event_id}}\", unsigned_key: allow }}"
    )));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: route r: dedup.unsigned_key: allow"),
        "{stderr}"
    );
}

#[test]
fn check_warns_about_filters_on_an_unsigned_event_type() {
    let (ok, stderr) = check(&route_yaml(&format!(
        "verify: {{ scheme: github, secrets: [\"{SECRET}\"] }}, events: {{ allow: [\"push\"] }}"
    )));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: route r: events are filtered on header:x-github-event"),
        "{stderr}"
    );
    let (ok, stderr) = check(&route_yaml(&format!(
        "verify: {{ scheme: stripe, secrets: [\"{SECRET}\"] }}, events: {{ allow: [\"invoice.*\"] }}"
    )));
    assert!(ok && stderr.is_empty(), "{stderr}");
}

#[test]
fn serve_warns_at_start_up_and_refuses_an_unsigned_key() {
    let dir = tempfile::tempdir().unwrap();
    let route = |extra: &str| {
        format!("routes:\n  - {{ name: r, path: /r, verify: {{ scheme: github, secrets: [\"{SECRET}\"] }}{extra}, upstream: {{ url: \"http://127.0.0.1:9/\" }} }}\n")
    };
    let config = process_config(dir.path(), &route(", events: { allow: [\"push\"] }"));
    let process = GatewayProcess::spawn(&config.file);
    let log = process.log().join("\n");
    assert!(
        log.contains("route r: events are filtered on header:x-github-event"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    // A reload warns about the routes it brings in, as start-up does.
    let reloaded = route(", events: { allow: [\"issues\"], ack_only: [\"ping\", \"star\"] }");
    let text = std::fs::read_to_string(&config.file).unwrap();
    let text = text.replace(&route(", events: { allow: [\"push\"] }"), &reloaded);
    assert!(text.contains("star"));
    std::fs::write(&config.file, text).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &process.pid().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !process
        .log()
        .iter()
        .any(|l| l.contains("configuration reloaded"))
    {
        assert!(std::time::Instant::now() < deadline, "{:?}", process.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let warnings = process
        .log()
        .iter()
        .filter(|l| l.contains("events are filtered on header:x-github-event"))
        .count();
    assert_eq!(warnings, 2, "{:?}", process.log());
    process.terminate();

    let config = process_config(
        dir.path(),
        &route(", dedup: { key: \"{header:X-GitHub-Delivery}\" }"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve", "--config"])
        .arg(&config.file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("routes[0].dedup.key: {header:x-github-delivery} is not covered"),
        "{stderr}"
    );
}
