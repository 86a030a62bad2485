use std::collections::HashMap;

use http_body_util::BodyExt;

use super::*;
use crate::config::Config;

fn route_events(verify: &str, events: &str) -> (Events, EventPolicy) {
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {verify}\n{events}    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = Config::from_yaml(&yaml, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let route = &config.routes[0];
    (
        Events::new(&route.events, &route.verify),
        route.events.clone(),
    )
}

fn verified(index: usize) -> Verified {
    Verified {
        secret_index: Some(index),
        strip_header: None,
    }
}

fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn outcome(d: &Decision) -> Option<Outcome> {
    match d {
        Decision::Forward => None,
        Decision::Answer { outcome, .. } => Some(*outcome),
    }
}

async fn body_of(d: Decision) -> (StatusCode, String, String) {
    let Decision::Answer { response, .. } = d else {
        panic!("forwarded")
    };
    let status = response.status();
    let ct = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn globs() {
    for (p, t, m) in [
        ("*", "", true),
        ("*", "anything", true),
        ("invoice.*", "invoice.paid", true),
        ("invoice.*", "invoice.", true),
        ("invoice.*", "invoices.paid", false),
        ("*.paid", "invoice.paid", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("ping", "ping", true),
        ("ping", "Ping", false),
        ("ping", "pingx", false),
        ("", "", true),
        ("**", "x", true),
    ] {
        assert_eq!(glob(p.as_bytes(), t.as_bytes()), m, "{p} {t}");
    }
}

#[test]
fn trutac_defaults_ack_ping_and_forward_the_rest() {
    let (e, policy) = route_events("{ scheme: trutac, secrets: [s] }", "");
    assert_eq!(policy.allow, ["*"]);
    assert_eq!(policy.ack_only, ["ping"]);
    let d = |ev: &str| outcome(&e.decide(&hdrs(&[("TT-Hook-Event", ev)]), b"{}", &verified(0)));
    assert_eq!(d("ping"), Some(Outcome::AckOnly));
    assert_eq!(d("clocking"), None);
    // No event header: forwarded (allow defaults to `*`).
    assert!(matches!(
        e.decide(&HeaderMap::new(), b"{}", &verified(0)),
        Decision::Forward
    ));
}

#[test]
fn allow_and_ack_only_from_config() {
    let (e, _) = route_events(
        "{ scheme: stripe, secrets: [s] }",
        "    events: { allow: [\"invoice.*\", \"customer.created\"], ack_only: [\"invoice.upcoming\"] }\n",
    );
    let d = |body: &str| outcome(&e.decide(&HeaderMap::new(), body.as_bytes(), &verified(0)));
    assert_eq!(d(r#"{"type":"invoice.paid"}"#), None);
    assert_eq!(d(r#"{"type":"customer.created"}"#), None);
    assert_eq!(d(r#"{"type":"invoice.upcoming"}"#), Some(Outcome::AckOnly));
    assert_eq!(d(r#"{"type":"charge.failed"}"#), Some(Outcome::Filtered));
    assert_eq!(d(r#"{"type":7}"#), Some(Outcome::Filtered));
    assert_eq!(d("not json"), Some(Outcome::Filtered));
}

#[test]
fn event_config_errors_name_the_field() {
    let err = |verify: &str, events: &str| {
        let yaml = format!(
            "routes:\n  - name: t\n    path: /t\n    verify: {verify}\n    events: {events}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
        );
        Config::from_yaml(&yaml, &HashMap::new()).unwrap_err()
    };
    let e = err(
        "{ scheme: header, header: X-K, secrets: [s] }",
        "{ allow: [a] }",
    );
    assert_eq!(e.path, "routes[0].events.from", "{e}");
    let e = err("{ scheme: trutac, secrets: [s] }", "{ from: \"body:/x\" }");
    assert_eq!(e.path, "routes[0].events.from", "{e}");
    let e = err("{ scheme: trutac, secrets: [s] }", "{ allow: [] }");
    assert_eq!(e.path, "routes[0].events.allow", "{e}");
    let e = err("{ scheme: trutac, secrets: [s] }", "{ allow: [\"\"] }");
    assert_eq!(e.path, "routes[0].events.allow[0]", "{e}");
    let e = err("{ scheme: trutac, secrets: [s] }", "{ deny: [x] }");
    assert_eq!(e.path, "routes[0].events.deny", "{e}");
    // A generic scheme with its own source works.
    let (e, _) = route_events(
        "{ scheme: header, header: X-K, secrets: [s] }",
        "    events: { from: \"header:X-Kind\", allow: [a] }\n",
    );
    assert_eq!(
        outcome(&e.decide(&hdrs(&[("X-Kind", "b")]), b"", &verified(0))),
        Some(Outcome::Filtered)
    );
}

#[tokio::test]
async fn slack_url_verification_is_answered() {
    let (e, _) = route_events("{ scheme: slack, secrets: [s] }", "");
    let body = br#"{"token":"x","challenge":"3eZbrw1aB","type":"url_verification"}"#;
    let d = e.decide(&HeaderMap::new(), body, &verified(0));
    assert_eq!(outcome(&d), Some(Outcome::AckOnly));
    let (status, ct, text) = body_of(d).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"challenge": "3eZbrw1aB"})
    );
    let other = br#"{"type":"event_callback","event":{"type":"message"}}"#;
    assert!(matches!(
        e.decide(&HeaderMap::new(), other, &verified(0)),
        Decision::Forward
    ));
}

#[tokio::test]
async fn zoom_url_validation_uses_the_matched_secret() {
    let (e, _) = route_events("{ scheme: zoom, secrets: [old, new-secret] }", "");
    let body =
        br#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#;
    let (_, _, text) = body_of(e.decide(&HeaderMap::new(), body, &verified(1))).await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"new-secret").unwrap();
    mac.update(b"qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(v["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        v["encryptedToken"],
        hex::encode(mac.finalize().into_bytes())
    );
}

#[tokio::test]
async fn twitch_challenge_is_echoed_as_text() {
    let (e, _) = route_events("{ scheme: twitch, secrets: [s] }", "");
    let h = hdrs(&[(
        "Twitch-Eventsub-Message-Type",
        "webhook_callback_verification",
    )]);
    let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{}}"#;
    let (status, ct, text) = body_of(e.decide(&h, body, &verified(0))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(text, "pogchamp-kappa-360noscope-vohiyo");
    let n = hdrs(&[("Twitch-Eventsub-Message-Type", "notification")]);
    assert!(matches!(
        e.decide(&n, body, &verified(0)),
        Decision::Forward
    ));
}

/// Shopify's topic is in `X-Shopify-Topic` or, from newer deliveries,
/// `shopify-topic`: either is read, the classic one first.
#[test]
fn shopify_topic_from_either_header() {
    let (e, policy) = route_events(
        "{ scheme: shopify, secrets: [s] }",
        "    events: { allow: [\"orders/*\"] }\n",
    );
    assert_eq!(
        policy.from.as_ref().map(EventSource::describe).as_deref(),
        Some("header:x-shopify-topic,shopify-topic")
    );
    let d = |h: &[(&str, &str)]| outcome(&e.decide(&hdrs(h), b"{}", &verified(0)));
    assert_eq!(d(&[("X-Shopify-Topic", "orders/create")]), None);
    assert_eq!(d(&[("shopify-topic", "orders/create")]), None);
    assert_eq!(
        d(&[("shopify-topic", "carts/update")]),
        Some(Outcome::Filtered)
    );
    assert_eq!(
        d(&[
            ("X-Shopify-Topic", "carts/update"),
            ("shopify-topic", "orders/create")
        ]),
        Some(Outcome::Filtered)
    );
    assert_eq!(d(&[]), Some(Outcome::Filtered));
    for bad in ["header:", "header:a,", "header:a b,c"] {
        assert!(EventSource::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        EventSource::parse("header:A, b").unwrap(),
        EventSource::Headers(vec![
            HeaderName::from_static("a"),
            HeaderName::from_static("b")
        ])
    );
}
