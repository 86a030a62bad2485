//! Providers' published test vectors (copied from their docs and SDK test
//! files into `tests/vectors/`), run through the real verifiers.

use base64::Engine;
use bytes::Bytes;
use std::time::{Duration, UNIX_EPOCH};

use hookgate::presets;
use hookgate::verify::{
    Algorithm, Encoding, HmacSpec, SignatureSource, SignedRequest, SpecKind, Verifier, VerifyError,
    VerifySpec,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/webhook-signatures.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => base64::engine::general_purpose::STANDARD
            .decode(other["b64"].as_str().unwrap())
            .unwrap(),
    }
}

fn verifier(kind: SpecKind) -> Verifier {
    Verifier::new(&VerifySpec {
        scheme: "test".into(),
        kind,
    })
}

fn one_header(name: &str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

/// HMAC-of-the-body vectors, each with the header and description it uses.
#[test]
fn published_body_hmac_vectors_verify_and_tampered_ones_do_not() {
    let mut checked = 0;
    for v in vectors() {
        let scheme = v["scheme"].as_str().unwrap();
        let inputs = &v["inputs"];
        let (header, spec, secret) = match scheme {
            "github" => (
                "X-Hub-Signature-256",
                presets::hmac_preset("github").unwrap(),
                &inputs["secret"],
            ),
            // Shopify and QuickBooks sign the body with base64 HMAC-SHA256:
            // expressible with the generic description.
            "shopify" | "quickbooks" => {
                let header = if scheme == "shopify" {
                    "X-Shopify-Hmac-Sha256"
                } else {
                    "intuit-signature"
                };
                let spec = HmacSpec {
                    sources: vec![SignatureSource::new(
                        HeaderName::from_bytes(header.to_lowercase().as_bytes()).unwrap(),
                        Algorithm::Sha256,
                        Encoding::Base64,
                        "",
                    )],
                };
                let secret = if scheme == "shopify" {
                    &inputs["api_secret_key"]
                } else {
                    &inputs["verifier_token"]
                };
                (header, spec, secret)
            }
            _ => continue,
        };
        let secret = String::from_utf8(bytes_of(secret)).unwrap();
        let body = Bytes::from(bytes_of(&inputs["body"]));
        let expected = v["expected"].as_str().unwrap();
        let verifier = verifier(SpecKind::Hmac {
            spec,
            secrets: vec![SecretString::from(secret)],
        });
        let headers = one_header(header, expected);
        assert!(verifier.verify(&headers, &body).is_ok(), "{}", v["id"]);
        let mut tampered = body.to_vec();
        tampered.push(b' ');
        assert_eq!(
            verifier.verify(&headers, &Bytes::from(tampered)),
            Err(VerifyError::BadSignature),
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert_eq!(
        checked, 4,
        "expected the github, shopify and quickbooks vectors"
    );
}

/// A route's verifier built from YAML as a user writes it; the secret comes
/// through `${S}` so its exact bytes need no YAML escaping.
fn preset_verifier(scheme: &str, secret: &str, extra: &str) -> Verifier {
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"${{S}}\"]{extra} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let env = [("S".to_string(), secret.to_string())]
        .into_iter()
        .collect();
    let config = hookgate::Config::from_yaml(&yaml, &env).unwrap_or_else(|e| panic!("{e}"));
    Verifier::new(&config.routes[0].verify)
}

fn vector(id: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn text_of(v: &Value) -> String {
    String::from_utf8(bytes_of(v)).unwrap()
}

fn headers_of(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Verifies at the vector's own (old) time: the clock is pinned.
fn check_at(
    v: &Verifier,
    h: &HeaderMap,
    body: &[u8],
    query: Option<&str>,
    unix: u64,
) -> Result<(), VerifyError> {
    v.verify_request(&SignedRequest {
        method: "POST",
        query,
        headers: h,
        body,
        now: UNIX_EPOCH + Duration::from_secs(unix),
    })
    .map(|_| ())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn standard_webhooks_and_svix_published_vectors() {
    for (id, expect) in [
        ("stdwh-sign", Ok(())),
        ("stdwh-invalid-OA", Err(VerifyError::BadSignature)),
    ] {
        let v = vector(id);
        let i = &v["inputs"];
        let body = bytes_of(&i["body"]);
        let ts = i["webhook-timestamp"].as_str().unwrap();
        let sig = v["expected"].as_str().unwrap();
        for (scheme, prefix) in [
            ("standard_webhooks", "webhook"),
            ("svix", "webhook"),
            ("svix", "svix"),
        ] {
            let verifier = preset_verifier(scheme, i["secret"].as_str().unwrap(), "");
            let h = headers_of(&[
                (&format!("{prefix}-id"), i["webhook-id"].as_str().unwrap()),
                (&format!("{prefix}-timestamp"), ts),
                (&format!("{prefix}-signature"), sig),
            ]);
            let at: u64 = ts.parse().unwrap();
            assert_eq!(
                check_at(&verifier, &h, &body, None, at),
                expect,
                "{id} {scheme} {prefix}"
            );
            if expect.is_ok() {
                // The same vector is years old by the real clock.
                assert_eq!(
                    check_at(&verifier, &h, &body, None, now_unix()),
                    Err(VerifyError::StaleTimestamp)
                );
            }
        }
    }
}

#[test]
fn slack_published_vector() {
    let v = vector("slack-docs");
    let i = &v["inputs"];
    let verifier = preset_verifier("slack", &text_of(&i["signing_secret"]), "");
    let ts = i["X-Slack-Request-Timestamp"].as_str().unwrap();
    let h = headers_of(&[
        ("X-Slack-Request-Timestamp", ts),
        ("X-Slack-Signature", v["expected"].as_str().unwrap()),
    ]);
    let body = bytes_of(&i["body"]);
    let at: u64 = ts.parse().unwrap();
    assert_eq!(check_at(&verifier, &h, &body, None, at), Ok(()));
    assert_eq!(
        check_at(&verifier, &h, &body, None, at + 301),
        Err(VerifyError::StaleTimestamp)
    );
    let mut tampered = body.clone();
    tampered[0] ^= 1;
    assert_eq!(
        check_at(&verifier, &h, &tampered, None, at),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn twilio_published_vector() {
    let v = vector("twilio-docs");
    let i = &v["inputs"];
    let (base, query) = i["url"].as_str().unwrap().split_once('?').unwrap();
    let body: Vec<String> = i["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let enc = |s: &str| s.replace('+', "%2B");
            format!(
                "{}={}",
                enc(p[0].as_str().unwrap()),
                enc(p[1].as_str().unwrap())
            )
        })
        .collect();
    let body = body.join("&");
    let verifier = preset_verifier(
        "twilio",
        i["auth_token"].as_str().unwrap(),
        &format!(", public_url: \"{base}\""),
    );
    let h = headers_of(&[("X-Twilio-Signature", v["expected"].as_str().unwrap())]);
    assert_eq!(
        check_at(&verifier, &h, body.as_bytes(), Some(query), 0),
        Ok(())
    );
    assert_eq!(
        check_at(&verifier, &h, body.as_bytes(), Some("foo=1&bar=3"), 0),
        Err(VerifyError::BadSignature)
    );
    let tampered = body.replace("Digits=1234", "Digits=1235");
    assert_eq!(
        check_at(&verifier, &h, tampered.as_bytes(), Some(query), 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn square_published_vector() {
    let v = vector("square-2");
    let i = &v["inputs"];
    let verifier = preset_verifier(
        "square",
        i["signature_key"].as_str().unwrap(),
        &format!(
            ", public_url: \"{}\"",
            i["notification_url"].as_str().unwrap()
        ),
    );
    let h = headers_of(&[(
        "x-square-hmacsha256-signature",
        v["expected"].as_str().unwrap(),
    )]);
    let body = bytes_of(&i["body"]);
    assert_eq!(check_at(&verifier, &h, &body, None, 0), Ok(()));
    // The signed URL includes the query string the request arrived with.
    assert_eq!(
        check_at(&verifier, &h, &body, Some("a=1"), 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn paddle_published_vectors() {
    let good = vector("paddle-1");
    let i = &good["inputs"];
    let verifier = preset_verifier("paddle", i["secret"].as_str().unwrap(), "");
    let h = headers_of(&[("Paddle-Signature", i["Paddle-Signature"].as_str().unwrap())]);
    let at = 1698796800;
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&i["body"]), None, at),
        Ok(())
    );
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&i["body"]), None, at + 6),
        Err(VerifyError::StaleTimestamp)
    );
    let bad = vector("paddle-neg-extra-spaces");
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&bad["inputs"]["body"]), None, at),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn pagerduty_published_reject_vector() {
    let v = vector("pagerduty-v3-mismatch");
    assert_eq!(v["positive"], false);
    let i = &v["inputs"];
    let verifier = preset_verifier("pagerduty", &text_of(&i["secret"]), "");
    let body = bytes_of(&i["body"]);
    let h = headers_of(&[("X-PagerDuty-Signature", v["expected"].as_str().unwrap())]);
    assert_eq!(
        check_at(&verifier, &h, &body, None, 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn hubspot_v3_published_vector() {
    let v = vector("hubspot-v3-rb");
    let i = &v["inputs"];
    let verifier = preset_verifier(
        "hubspot",
        i["client_secret"].as_str().unwrap(),
        &format!(", public_url: \"{}\"", i["uri"].as_str().unwrap()),
    );
    let ts = i["X-HubSpot-Request-Timestamp"].as_str().unwrap();
    let h = headers_of(&[
        ("X-HubSpot-Request-Timestamp", ts),
        ("X-HubSpot-Signature-v3", v["expected"].as_str().unwrap()),
    ]);
    let body = bytes_of(&i["body"]);
    let at = ts.parse::<u64>().unwrap() / 1000;
    assert_eq!(check_at(&verifier, &h, &body, None, at), Ok(()));
    assert_eq!(
        check_at(&verifier, &h, &body, None, at + 301),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn quickbooks_and_shopify_vectors_through_their_presets() {
    for (id, scheme, header, secret) in [
        (
            "intuit-qbo",
            "quickbooks",
            "intuit-signature",
            "verifier_token",
        ),
        (
            "shopify-app-js-validate",
            "shopify",
            "X-Shopify-Hmac-Sha256",
            "api_secret_key",
        ),
    ] {
        let v = vector(id);
        let i = &v["inputs"];
        let verifier = preset_verifier(scheme, &text_of(&i[secret]), "");
        let h = headers_of(&[(header, v["expected"].as_str().unwrap())]);
        assert_eq!(
            check_at(&verifier, &h, &bytes_of(&i["body"]), None, 0),
            Ok(()),
            "{id}"
        );
    }
}

/// A route's verifier for a public-key preset, built from YAML.
fn public_key_verifier(scheme: &str, key: &str) -> Verifier {
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, public_keys: [\"${{K}}\"] }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let env = [("K".to_string(), key.to_string())].into_iter().collect();
    let config = hookgate::Config::from_yaml(&yaml, &env).unwrap_or_else(|e| panic!("{e}"));
    Verifier::new(&config.routes[0].verify)
}

/// RFC 8032 TEST 1 pins the Ed25519 implementation, and its key is the one
/// behind the derived Standard Webhooks `v1a` vector (Standard Webhooks
/// publishes no asymmetric vector), which must verify through the preset.
#[test]
fn ed25519_rfc8032_and_derived_standard_webhooks_v1a_vector() {
    use ed25519_dalek::Signer;
    let rfc = vector("rfc8032-test1");
    let secret: [u8; 32] = hex::decode(rfc["inputs"]["secret_key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let message = bytes_of(&rfc["inputs"]["message"]);
    assert_eq!(
        hex::encode(signing.sign(&message).to_bytes()),
        rfc["expected"].as_str().unwrap()
    );

    let v = vector("DERIVED-stdwh-v1a");
    let i = &v["inputs"];
    let whpk = i["whpk"].as_str().unwrap();
    assert_eq!(
        whpk,
        format!(
            "whpk_{}",
            base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().as_bytes())
        ),
        "the derived vector uses the RFC 8032 TEST 1 key"
    );
    let verifier = public_key_verifier("standard_webhooks", whpk);
    let ts = i["webhook-timestamp"].as_str().unwrap();
    let id = i["webhook-id"].as_str().unwrap();
    let sig = v["expected"].as_str().unwrap();
    let body = bytes_of(&i["body"]);
    let at: u64 = ts.parse().unwrap();
    let h = headers_of(&[
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]);
    assert_eq!(check_at(&verifier, &h, &body, None, at), Ok(()));
    assert_eq!(
        check_at(&verifier, &h, &body, None, now_unix()),
        Err(VerifyError::StaleTimestamp)
    );
    let mut tampered = body.clone();
    tampered[2] ^= 1;
    assert_eq!(
        check_at(&verifier, &h, &tampered, None, at),
        Err(VerifyError::BadSignature)
    );
    let other_id = headers_of(&[
        ("webhook-id", "msg_other"),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]);
    assert_eq!(
        check_at(&verifier, &other_id, &body, None, at),
        Err(VerifyError::BadSignature)
    );
    // The same signature as a symmetric `v1` entry is not a candidate.
    let v1 = sig.replacen("v1a,", "v1,", 1);
    let as_v1 = headers_of(&[
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", &v1),
    ]);
    assert_eq!(
        check_at(&verifier, &as_v1, &body, None, at),
        Err(VerifyError::MalformedSignature)
    );
}

#[test]
fn sendgrid_published_vectors() {
    let v = vector("sendgrid-valid");
    let i = &v["inputs"];
    let verifier = public_key_verifier("sendgrid", i["public_key_b64_der"].as_str().unwrap());
    let ts = i["timestamp"].as_str().unwrap();
    let h = headers_of(&[
        (
            "X-Twilio-Email-Event-Webhook-Signature",
            i["signature_b64_der"].as_str().unwrap(),
        ),
        ("X-Twilio-Email-Event-Webhook-Timestamp", ts),
    ]);
    let at: u64 = ts.parse().unwrap();
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&i["body"]), None, at),
        Ok(())
    );
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&i["body"]), None, now_unix()),
        Err(VerifyError::StaleTimestamp)
    );
    // SendGrid's reject case: the same signature over another payload.
    let bad = vector("sendgrid-bad-payload");
    assert_eq!(bad["expected"], "invalid");
    assert_eq!(
        check_at(&verifier, &h, &bytes_of(&bad["inputs"]["body"]), None, at),
        Err(VerifyError::BadSignature)
    );
}

/// Vectors that carry the request their sender sends (`request`: its
/// headers, and the time to verify at): each verifies through its preset,
/// built from YAML, and fails once what the sender signs (or, for a shared
/// secret, the credential header) is changed. Signed vectors come from the
/// senders' SDK test files; shared-secret ones (`kind` "documented request")
/// pin the header and form the sender documents.
#[test]
fn published_requests_verify_through_their_presets() {
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for v in vectors() {
        let Some(request) = v.get("request") else {
            continue;
        };
        let id = v["id"].as_str().unwrap();
        let scheme = v["scheme"].as_str().unwrap();
        let i = &v["inputs"];
        let extra = match request.get("public_url").and_then(Value::as_str) {
            Some(url) => format!(", public_url: \"{url}\""),
            None => String::new(),
        };
        let secret = text_of(&i["secret"]);
        let verifier = if secret.is_empty() {
            // A route refuses an empty secret; the preset's description
            // verifies with one all the same.
            verifier(SpecKind::Hmac {
                spec: presets::hmac_preset(scheme).unwrap(),
                secrets: vec![SecretString::from(secret)],
            })
        } else {
            preset_verifier(scheme, &secret, &extra)
        };
        let pairs: Vec<(String, String)> = request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let h = headers_of(&borrowed);
        let body = bytes_of(&i["body"]);
        let at = request["at"].as_u64().unwrap();
        checked.push(scheme.to_string());
        // Every vector is checked, and every failure reported at once.
        let genuine = check_at(&verifier, &h, &body, None, at);
        if genuine != Ok(()) {
            failures.push(format!("{id}: {genuine:?}"));
            continue;
        }
        match v["tamper"].as_str().unwrap() {
            "body" => {
                let mut tampered = body.clone();
                let last = tampered.len() - 2;
                tampered[last] ^= 1;
                assert_eq!(
                    check_at(&verifier, &h, &tampered, None, at),
                    Err(VerifyError::BadSignature),
                    "{id}: tampered body"
                );
            }
            "header" => {
                let changed: Vec<(&str, String)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), format!("{v}x")))
                    .collect();
                let changed: Vec<(&str, &str)> =
                    changed.iter().map(|(k, v)| (*k, v.as_str())).collect();
                assert!(
                    check_at(&verifier, &headers_of(&changed), &body, None, at).is_err(),
                    "{id}: another credential"
                );
            }
            other => panic!("{id}: tamper {other}"),
        }
    }
    assert!(failures.is_empty(), "refused: {failures:#?}");
    checked.sort();
    assert_eq!(
        checked,
        [
            "buildkite",
            "gitlab",
            "okta",
            "pagerduty",
            "postmark",
            "recurly",
            "telegram",
            "typeform",
            "woocommerce",
        ],
        "the vectors with a `request`"
    );
}
