//! The edge, tried as an attacker would: rate limits spent with unsigned
//! requests, and forged or unparseable `X-Forwarded-For` chains behind
//! trusted proxies. Real gateways, a real upstream.

mod support;

use http::StatusCode;
use support::*;

const SECRET: &str = "trutac-test-secret";
const BODY: &str = r#"{"action":"clocking.created"}"#;

async fn post_signed(url: &str, extra: &[(&str, &str)]) -> Answer {
    let signature = trutac_signature(SECRET, BODY.as_bytes());
    let mut headers = vec![("TT-Hook-Signature", signature.as_str())];
    headers.extend_from_slice(extra);
    post(url, &headers, BODY).await
}

#[tokio::test]
async fn unsigned_floods_do_not_spend_the_genuine_senders_rate_limit() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, rate_limit: {{ per_second: 1, burst: 1 }}, verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    for _ in 0..20 {
        let forged = post(
            &gateway.url("/r"),
            &[("TT-Hook-Signature", "sha1=00")],
            BODY,
        )
        .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    }
    let genuine = post_signed(&gateway.url("/r"), &[]).await;
    assert_eq!(genuine.status, StatusCode::OK, "{:?}", genuine.body);
    // Verified requests still spend it: a quick burst of genuine ones is
    // limited (one token per second, so within a few requests).
    let mut limited = false;
    for _ in 0..5 {
        let answer = post_signed(&gateway.url("/r"), &[]).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "verified requests were never rate limited");
    assert_eq!(
        gateway
            .metric(r#"hookgate_requests_total{route="r",outcome="rate_limited"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn allow_ips_behind_proxies_parses_ports_and_refuses_unknown_clients() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "trusted_proxies: [\"127.0.0.1/32\", \"10.0.0.0/8\"]\nroutes:\n  - {{ name: gh, path: /gh, ack: sync, dedup: off, allow_ips: [\"192.30.252.0/22\", \"2001:db8::/32\", \"10.9.9.9\"], verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    let cases = [
        ("192.30.252.10:4711", StatusCode::OK),
        ("[2001:db8::7]:443", StatusCode::OK),
        ("[2001:db8::7]", StatusCode::OK),
        ("192.30.252.10, 10.1.1.1:8080", StatusCode::OK),
        // Not an address: the client is unknown, not the entry left of it.
        ("192.30.252.10, unknown", StatusCode::FORBIDDEN),
        ("192.30.252.10, garbage", StatusCode::FORBIDDEN),
        ("192.30.252.10, 203.0.113.5:99999", StatusCode::FORBIDDEN),
        // Only trusted proxies: the left-most entry, which the sender
        // wrote, is not believed.
        ("10.9.9.9, 10.1.1.1", StatusCode::FORBIDDEN),
        ("10.9.9.9", StatusCode::FORBIDDEN),
    ];
    let mut allowed = 0;
    for (chain, status) in cases {
        let answer = post_signed(&gateway.url("/gh"), &[("X-Forwarded-For", chain)]).await;
        assert_eq!(answer.status, status, "X-Forwarded-For: {chain}");
        if status == StatusCode::OK {
            allowed += 1;
        } else {
            assert_eq!(answer.error_code(), "forbidden");
        }
    }
    // A trusted proxy that names no client: unknown.
    let bare = post_signed(&gateway.url("/gh"), &[]).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.received().len(), allowed);
}
