//! Mailgun through a real gateway: its signature is in the body and covers
//! only `timestamp` and `token`, so the default dedup key is the token: a
//! captured request replayed with other event data (which Mailgun does not
//! sign) is a duplicate, never a new event.

mod support;

use hmac::Mac;
use http::StatusCode;
use support::*;

const KEY: &str = "key-mailgun-gateway-0123456789abcdef";

fn event(token: &str, event: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{ts}{token}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    format!(
        r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","signature":"{sig}"}},"event-data":{{"event":"{event}"}}}}"#
    )
}

#[tokio::test]
async fn replays_with_changed_unsigned_data_are_duplicates() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: mailgun, path: /mailgun, ack: sync, verify: {{ scheme: mailgun, secrets: [\"{KEY}\"] }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    let url = gateway.url("/mailgun");

    let r = post(&url, &[], event("tok_1", "delivered")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.headers.get("hookgate-duplicate").is_none());

    // The same token and signature with other event data: verified (Mailgun
    // does not sign it) but keyed by the signed token, so a duplicate.
    let r = post(&url, &[], event("tok_1", "failed")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.headers.get("hookgate-duplicate").is_some());

    // A new token is a new event.
    let r = post(&url, &[], event("tok_2", "delivered")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("hookgate-duplicate").is_none());

    // A forged signature, and no signature object at all.
    let forged = event("tok_3", "delivered").replace("tok_3", "tok_4");
    let r = post(&url, &[], forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "bad_signature");
    let r = post(&url, &[], r#"{"event-data":{"event":"delivered"}}"#).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "missing_credentials");

    assert_eq!(upstream.received().len(), 2);
}
