//! Sender adapters end to end: presets, event filters and handshakes on a
//! real gateway with a real upstream, and `hookgate sign` output verified
//! by a running gateway.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use http::StatusCode;
use support::*;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// RFC 8032 TEST 1's public key, in Discord's and Standard Webhooks' forms,
/// and SendGrid's published test key.
const ED25519_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const WHPK: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const SENDGRID_DER: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";

fn config(upstream: &Upstream) -> String {
    let u = upstream.url("/in");
    format!(
        r#"
routes:
  - name: stripe
    path: /hooks/stripe
    verify: {{ scheme: stripe, secrets: ["stripe-secret"] }}
    events: {{ allow: ["invoice.*"], ack_only: ["invoice.upcoming"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: stdwh
    path: /hooks/stdwh
    verify: {{ scheme: standard_webhooks, secrets: ["{WHSEC}"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: slack
    path: /hooks/slack
    verify: {{ scheme: slack, secrets: ["slack-secret"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["trutac-secret"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: twitch
    path: /hooks/twitch
    verify: {{ scheme: twitch, secrets: ["twitch-secret"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: hubspot
    path: /hooks/hubspot
    verify: {{ scheme: hubspot, secrets: ["hubspot-secret"], public_url: "https://hooks.example.com/hooks/hubspot" }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: generic
    path: /hooks/generic
    verify:
      scheme: hmac
      header: X-Sig
      algorithm: sha512
      encoding: base64url
      payload: "{{method}}:{{timestamp}}:{{body}}"
      timestamp: {{ from: "header:X-Sent-At", unit: milliseconds }}
      tolerance: 1m
      secrets: ["generic-secret"]
    events: {{ from: "header:X-Kind", ack_only: ["test"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: gitlab
    path: /hooks/gitlab
    verify: {{ scheme: gitlab, secrets: ["gitlab-token"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
"#
    )
}

/// Runs `hookgate sign` and returns its `Name: value` lines.
fn cli_sign(
    config: &std::path::Path,
    route: &str,
    body: &str,
    event: Option<&str>,
) -> Vec<(String, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.args(["sign", "--config"])
        .arg(config)
        .args(["--route", route, "--body", "-"])
        .env_remove("HOOKGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = event {
        cmd.args(["--event", e]);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("{l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

async fn post_with(
    gateway: &Gateway,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Answer {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(&gateway.url(path), &h, body.to_string()).await
}

async fn setup() -> (Upstream, Gateway, tempfile::TempDir, std::path::PathBuf) {
    let upstream = Upstream::start().await;
    let yaml = config(&upstream);
    let gateway = Gateway::start(&yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(&file, &yaml).unwrap();
    (upstream, gateway, dir, file)
}

fn outcome(route: &str, outcome: &str) -> String {
    format!("hookgate_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn cli_signatures_verify_against_the_running_gateway() {
    let (upstream, gateway, _dir, file) = setup().await;
    let body = r#"{"type":"invoice.paid","id":"evt_1"}"#;
    for (route, event) in [
        ("stripe", None),
        ("stdwh", None),
        ("slack", None),
        ("trutac", Some("clocking")),
        ("twitch", None),
        ("hubspot", None),
        ("generic", Some("real")),
    ] {
        let headers = cli_sign(&file, route, body, event);
        let answer = post_with(&gateway, &format!("/hooks/{route}"), &headers, body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{route}: {headers:?} {:?}",
            answer.body
        );
        let got = upstream.received();
        assert_eq!(got.last().unwrap().body, body.as_bytes(), "{route}");
        // Tampering with the body breaks what the CLI signed.
        let tampered = body.replace("evt_1", "evt_2");
        let answer = post_with(&gateway, &format!("/hooks/{route}"), &headers, &tampered).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(answer.error_code(), "bad_signature", "{route}");
    }
    assert_eq!(upstream.received().len(), 7);
    // The event header is printed for routes that read it from a header.
    let headers = cli_sign(&file, "trutac", body, Some("ping"));
    assert!(
        headers.contains(&("tt-hook-event".into(), "ping".into())),
        "{headers:?}"
    );
}

#[test]
fn cli_sign_explains_what_it_cannot_sign() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        format!(
            "routes:\n  - name: gitlab\n    path: /g\n    verify: {{ scheme: gitlab, secrets: [\"tok-Zq9\"] }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n{}",
            [
                ("discord", "discord", ED25519_HEX),
                ("sendgrid", "sendgrid", SENDGRID_DER),
                ("stdwh-v1a", "standard_webhooks", WHPK),
            ]
            .map(|(name, scheme, key)| format!(
                "  - name: {name}\n    path: /{name}\n    verify: {{ scheme: {scheme}, public_keys: [\"{key}\"] }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
            ))
            .concat()
        ),
    )
    .unwrap();
    for (route, needle) in [
        ("gitlab", "shared secret"),
        ("nope", "no route"),
        // Public-key schemes: hookgate has no private key to sign with.
        ("discord", "verify-only"),
        ("sendgrid", "verify-only"),
        ("stdwh-v1a", "verify-only"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["sign", "--config"])
            .arg(&file)
            .args(["--route", route, "--body", "/dev/null"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            !stderr.contains("tok-Zq9") && out.stdout.is_empty(),
            "{stderr}"
        );
        for key in [ED25519_HEX, SENDGRID_DER, WHPK] {
            assert!(!stderr.contains(key), "{stderr}");
        }
    }
}

#[tokio::test]
async fn filtered_and_ack_only_events_are_answered_and_never_forwarded() {
    let (upstream, gateway, _dir, file) = setup().await;
    for (body, forwarded) in [
        (r#"{"type":"charge.failed"}"#, false),    // not allowed
        (r#"{"type":"invoice.upcoming"}"#, false), // ack_only
        (r#"{"type":"invoice.paid"}"#, true),
    ] {
        let headers = cli_sign(&file, "stripe", body, None);
        let answer = post_with(&gateway, "/hooks/stripe", &headers, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}");
        assert_eq!(
            answer.json()["forwarded"].as_bool(),
            if forwarded { None } else { Some(false) }
        );
    }
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(gateway.metric(&outcome("stripe", "filtered")).await, 1.0);
    assert_eq!(gateway.metric(&outcome("stripe", "ack_only")).await, 1.0);
    assert_eq!(gateway.metric(&outcome("stripe", "accepted")).await, 1.0);

    // TruTac's ping is acknowledged by default; a forged ping is still 401.
    let ping = r#"{"event":"ping"}"#;
    let signed = vec![
        (
            "TT-Hook-Signature".to_string(),
            trutac_signature("trutac-secret", ping.as_bytes()),
        ),
        ("TT-Hook-Event".to_string(), "ping".to_string()),
    ];
    assert_eq!(
        post_with(&gateway, "/hooks/trutac", &signed, ping)
            .await
            .status,
        StatusCode::OK
    );
    let forged = vec![
        (
            "TT-Hook-Signature".to_string(),
            trutac_signature("guess", ping.as_bytes()),
        ),
        ("TT-Hook-Event".to_string(), "ping".to_string()),
    ];
    assert_eq!(
        post_with(&gateway, "/hooks/trutac", &forged, ping)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(gateway.metric(&outcome("trutac", "ack_only")).await, 1.0);
    assert_eq!(upstream.received().len(), 1);
    // The event type never becomes a label.
    assert!(!gateway.metrics().await.contains("charge.failed"));
}

#[tokio::test]
async fn stale_and_future_timestamps_are_401_stale_timestamp() {
    let (upstream, gateway, _dir, _file) = setup().await;
    let body = r#"{"type":"invoice.paid"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for t in [now - 3600, now + 3600] {
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"stripe-secret").unwrap();
        hmac::Mac::update(&mut mac, format!("{t}.{body}").as_bytes());
        let sig = hex::encode(hmac::Mac::finalize(mac).into_bytes());
        let headers = vec![("Stripe-Signature".to_string(), format!("t={t},v1={sig}"))];
        let answer = post_with(&gateway, "/hooks/stripe", &headers, body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error_code(), "stale_timestamp");
    }
    assert!(upstream.received().is_empty());
    assert_eq!(
        gateway
            .metric("hookgate_verify_failures_total{route=\"stripe\",reason=\"stale_timestamp\"}")
            .await,
        2.0
    );
    // The series exists for every route from start-up.
    assert_eq!(
        gateway
            .metric("hookgate_verify_failures_total{route=\"gitlab\",reason=\"stale_timestamp\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn slack_url_verification_handshake_is_answered_after_verification() {
    let (upstream, gateway, _dir, file) = setup().await;
    let body = r#"{"token":"t","challenge":"c-123","type":"url_verification"}"#;
    let headers = cli_sign(&file, "slack", body, None);
    let answer = post_with(&gateway, "/hooks/slack", &headers, body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!({"challenge": "c-123"}));
    // Unsigned, the same challenge is refused.
    let answer = post(&gateway.url("/hooks/slack"), &[], body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(upstream.received().is_empty());
    assert_eq!(gateway.metric(&outcome("slack", "ack_only")).await, 1.0);
}

#[tokio::test]
async fn malformed_adapter_headers_are_401_with_a_reason() {
    let (upstream, gateway, _dir, _file) = setup().await;
    let body = r#"{"type":"invoice.paid"}"#;
    for (path, headers, code) in [
        (
            "/hooks/stripe",
            vec![("Stripe-Signature", "t=1,v1=zz")],
            "malformed_signature",
        ),
        (
            "/hooks/stripe",
            vec![("Stripe-Signature", "v1=00")],
            "malformed_signature",
        ),
        (
            "/hooks/stdwh",
            vec![("webhook-signature", "v1,!!!")],
            "malformed_signature",
        ),
        (
            "/hooks/stdwh",
            vec![
                (
                    "webhook-signature",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                ),
                ("webhook-timestamp", "1614265330"),
            ],
            "missing_credentials",
        ),
        (
            "/hooks/gitlab",
            vec![("X-Gitlab-Token", "wrong")],
            "bad_credentials",
        ),
        (
            "/hooks/generic",
            vec![("X-Sig", "AAAA"), ("X-Sent-At", "soon")],
            "malformed_signature",
        ),
    ] {
        let answer = post(&gateway.url(path), &headers, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{path} {headers:?}"
        );
        assert_eq!(answer.error_code(), code, "{path} {headers:?}");
    }
    assert!(upstream.received().is_empty());
}

/// Public-key routes on a real gateway: a request signed with the second
/// of two rotated keys is forwarded and counted under `secret_index="1"`;
/// tampered, stale and unsigned requests get their 401 reason codes.
#[tokio::test]
async fn public_key_routes_verify_forward_and_count_the_key_index() {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let ed = |seed: u8| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let ec = |seed: u8| p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    // P-256 SubjectPublicKeyInfo: the fixed DER header, then the point.
    let spki = |seed: u8| {
        let header = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        let point = ec(seed).verifying_key().to_encoded_point(false);
        b64(&[header.as_slice(), point.as_bytes()].concat())
    };
    let upstream = Upstream::start().await;
    let u = upstream.url("/in");
    let yaml = format!(
        r#"
routes:
  - name: discord
    path: /hooks/discord
    verify: {{ scheme: discord, public_keys: ["{}", "{}"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
  - name: sendgrid
    path: /hooks/sendgrid
    verify: {{ scheme: sendgrid, public_keys: ["{}", "{}"] }}
    ack: sync
    upstream: {{ url: "{u}" }}
"#,
        hex::encode(ed(1).verifying_key().as_bytes()),
        hex::encode(ed(2).verifying_key().as_bytes()),
        spki(1),
        spki(2),
    );
    let gateway = Gateway::start(&yaml).await;
    let body = r#"[{"event":"delivered","email":"a@example.com"}]"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |route: &str, ts: u64, body: &str| -> Vec<(String, String)> {
        let ts = ts.to_string();
        let message = [ts.as_bytes(), body.as_bytes()].concat();
        match route {
            "discord" => vec![
                (
                    "X-Signature-Ed25519".into(),
                    hex::encode(ed(2).sign(&message).to_bytes()),
                ),
                ("X-Signature-Timestamp".into(), ts),
            ],
            _ => {
                let sig: p256::ecdsa::Signature = ec(2).sign(&message);
                vec![
                    (
                        "X-Twilio-Email-Event-Webhook-Signature".into(),
                        b64(sig.to_der().as_bytes()),
                    ),
                    ("X-Twilio-Email-Event-Webhook-Timestamp".into(), ts),
                ]
            }
        }
    };
    for route in ["discord", "sendgrid"] {
        let path = format!("/hooks/{route}");
        let headers = signed(route, now, body);
        let answer = post_with(&gateway, &path, &headers, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{route}: {:?}", answer.body);
        assert_eq!(upstream.received().last().unwrap().body, body.as_bytes());
        let series =
            format!("hookgate_secret_matches_total{{route=\"{route}\",secret_index=\"1\"}}");
        assert_eq!(gateway.metric(&series).await, 1.0, "{route}");

        let tampered = body.replace("delivered", "bounce");
        let answer = post_with(&gateway, &path, &headers, &tampered).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(answer.error_code(), "bad_signature", "{route}");

        let stale = signed(route, now - 3600, body);
        let answer = post_with(&gateway, &path, &stale, body).await;
        assert_eq!(answer.error_code(), "stale_timestamp", "{route}");

        let answer = post_with(&gateway, &path, &[], body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(answer.error_code(), "missing_credentials", "{route}");
    }
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn okta_verification_challenge_is_answered_after_verification() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: okta, path: /hooks/okta, ack: sync, dedup: off, verify: {{ scheme: okta, secrets: [\"okta-secret-1\"] }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/okta")
    );
    let gateway = Gateway::start(&yaml).await;
    let challenge = |auth: Option<&str>| {
        let mut req = http::Request::get(gateway.url("/hooks/okta"))
            .header("X-Okta-Verification-Challenge", "chal-\"quoted\"-123");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        send(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
    };
    let ok = challenge(Some("okta-secret-1")).await;
    assert_eq!(ok.status, http::StatusCode::OK);
    assert_eq!(ok.json()["verification"], "chal-\"quoted\"-123");
    let unsigned = challenge(None).await;
    assert_eq!(
        (unsigned.status, unsigned.error_code().as_str()),
        (http::StatusCode::UNAUTHORIZED, "missing_credentials")
    );
    let wrong = challenge(Some("okta-secret-2")).await;
    assert_eq!(wrong.status, http::StatusCode::UNAUTHORIZED);
    // A GET without the challenge header is not a webhook.
    let plain = send(
        http::Request::get(gateway.url("/hooks/okta"))
            .header("Authorization", "okta-secret-1")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(plain.status, http::StatusCode::METHOD_NOT_ALLOWED);
    // Events are POSTed with the same header; the secret is not forwarded.
    let event = post(
        &gateway.url("/hooks/okta"),
        &[("Authorization", "okta-secret-1")],
        r#"{"eventType":"com.okta.event_hook"}"#,
    )
    .await;
    assert_eq!(event.status, http::StatusCode::OK);
    let got = upstream.received();
    assert_eq!(got.len(), 1, "only the POSTed event reaches the upstream");
    assert!(got[0].headers.get("authorization").is_none());
}
