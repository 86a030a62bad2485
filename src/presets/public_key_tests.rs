//! The public-key presets (`discord`, `sendgrid`, `telnyx`, and `standard_webhooks`
//! with `public_keys`), built from YAML exactly as a user configures them
//! and checked with signatures made here with fixed private keys (the
//! crates' own signers, deterministic, so no random source): sign, verify,
//! tamper, wrong key, rotated keys, stale and future timestamps, malformed
//! signatures, and the config errors.
//!
//! The published SendGrid vector and the RFC 8032 key behind the derived
//! Standard Webhooks `v1a` vector are checked in `tests/vectors.rs`.
//! Discord publishes no vector: it is tested only with the ones made here.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use ed25519_dalek::Signer as _;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Config;
use crate::verify::{SignedRequest, SpecKind, Verified, Verifier, VerifyError};

const TS: u64 = 1_700_000_000;
const BODY: &[u8] = br#"{"type":1,"id":"42","data":{"n":"Zo\u00eb"}}"#;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fixed signer per seed, so keys differ between "right" and "wrong".
#[derive(Clone, Copy)]
enum Kind {
    Discord,
    SendGrid,
    StdWh,
    Telnyx,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Discord, Kind::SendGrid, Kind::StdWh, Kind::Telnyx];

    fn scheme(self) -> &'static str {
        match self {
            Kind::Discord => "discord",
            Kind::SendGrid => "sendgrid",
            Kind::StdWh => "standard_webhooks",
            Kind::Telnyx => "telnyx",
        }
    }

    /// The public key of signer `seed`, written as the user configures it.
    fn public_key(self, seed: u8) -> String {
        match self {
            Kind::Discord => hex::encode(ed(seed).verifying_key().as_bytes()),
            Kind::StdWh => format!("whpk_{}", b64(ed(seed).verifying_key().as_bytes())),
            Kind::Telnyx => b64(ed(seed).verifying_key().as_bytes()),
            Kind::SendGrid => {
                // SubjectPublicKeyInfo by hand: the fixed DER header for an
                // id-ecPublicKey/prime256v1 key, then the uncompressed point.
                let header =
                    hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
                let point = ec(seed).verifying_key().to_encoded_point(false);
                b64(&[header.as_slice(), point.as_bytes()].concat())
            }
        }
    }

    /// Headers as the provider sends them for `body`, signed by `seed` at `ts`.
    fn sign(self, seed: u8, ts: &str, body: &[u8]) -> Vec<(String, String)> {
        let h = |k: &str, v: String| (k.to_string(), v);
        match self {
            Kind::Discord => {
                let sig = ed(seed).sign(&[ts.as_bytes(), body].concat());
                vec![
                    h("X-Signature-Ed25519", hex::encode(sig.to_bytes())),
                    h("X-Signature-Timestamp", ts.to_string()),
                ]
            }
            Kind::SendGrid => {
                let sig: p256::ecdsa::Signature = ec(seed).sign(&[ts.as_bytes(), body].concat());
                vec![
                    h(
                        "X-Twilio-Email-Event-Webhook-Signature",
                        b64(sig.to_der().as_bytes()),
                    ),
                    h("X-Twilio-Email-Event-Webhook-Timestamp", ts.to_string()),
                ]
            }
            Kind::Telnyx => {
                let sig = ed(seed).sign(&[ts.as_bytes(), b"|", body].concat());
                vec![
                    h("telnyx-signature-ed25519", b64(&sig.to_bytes())),
                    h("telnyx-timestamp", ts.to_string()),
                ]
            }
            Kind::StdWh => {
                let payload = [b"msg_1.", ts.as_bytes(), b".", body].concat();
                let sig = ed(seed).sign(&payload);
                vec![
                    h("webhook-id", "msg_1".into()),
                    h("webhook-timestamp", ts.to_string()),
                    // A symmetric signature and a malformed v1a come first:
                    // only `v1a,` items are candidates, and all are tried.
                    h(
                        "webhook-signature",
                        format!("v1,{} v1a,AAAA v1a,{}", b64(&[0; 32]), b64(&sig.to_bytes())),
                    ),
                ]
            }
        }
    }

    /// The signature header's name.
    fn signature_header(self) -> &'static str {
        match self {
            Kind::Discord => "x-signature-ed25519",
            Kind::SendGrid => "x-twilio-email-event-webhook-signature",
            Kind::StdWh => "webhook-signature",
            Kind::Telnyx => "telnyx-signature-ed25519",
        }
    }

    fn timestamp_header(self) -> &'static str {
        match self {
            Kind::Discord => "x-signature-timestamp",
            Kind::SendGrid => "x-twilio-email-event-webhook-timestamp",
            Kind::StdWh => "webhook-timestamp",
            Kind::Telnyx => "telnyx-timestamp",
        }
    }
}

fn ed(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn ec(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

fn yaml(scheme: &str, keys: &[String], extra: &str) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, public_keys: [{}]{extra} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n",
        keys.join(", ")
    )
}

fn verifier(kind: Kind, seeds: &[u8], extra: &str) -> Verifier {
    let keys: Vec<String> = seeds.iter().map(|s| kind.public_key(*s)).collect();
    let config = Config::from_yaml(&yaml(kind.scheme(), &keys, extra), &HashMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    Verifier::new(&config.routes[0].verify)
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn check(v: &Verifier, h: &HeaderMap, body: &[u8], now: u64) -> Result<Verified, VerifyError> {
    v.verify_request(&SignedRequest {
        method: "POST",
        query: None,
        headers: h,
        body,
        now: UNIX_EPOCH + Duration::from_secs(now),
    })
}

fn replace(pairs: &[(String, String)], name: &str, value: &str) -> HeaderMap {
    let mut h = headers(pairs);
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

#[test]
fn sign_verify_tamper_wrong_key() {
    let ts = TS.to_string();
    for kind in Kind::ALL {
        let name = kind.scheme();
        let v = verifier(kind, &[1], "");
        let signed = kind.sign(1, &ts, BODY);
        let ok = check(&v, &headers(&signed), BODY, TS).unwrap();
        assert_eq!(ok.secret_index, Some(0), "{name}");
        assert_eq!(ok.strip_header, None, "{name}");

        let mut tampered = BODY.to_vec();
        tampered[3] ^= 1;
        assert_eq!(
            check(&v, &headers(&signed), &tampered, TS),
            Err(VerifyError::BadSignature),
            "{name} body"
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = replace(&signed, kind.timestamp_header(), &(TS + 1).to_string());
        assert_eq!(
            check(&v, &moved, BODY, TS),
            Err(VerifyError::BadSignature),
            "{name} timestamp"
        );
        // Signed by someone else.
        let other = kind.sign(2, &ts, BODY);
        assert_eq!(
            check(&v, &headers(&other), BODY, TS),
            Err(VerifyError::BadSignature),
            "{name} wrong key"
        );
        assert_eq!(
            check(&v, &HeaderMap::new(), BODY, TS),
            Err(VerifyError::MissingCredentials),
            "{name}"
        );
        // A signature without its timestamp header.
        let mut no_ts = headers(&signed);
        no_ts.remove(kind.timestamp_header());
        assert_eq!(
            check(&v, &no_ts, BODY, TS),
            Err(VerifyError::MissingCredentials),
            "{name}"
        );
    }
}

#[test]
fn every_key_is_tried_and_its_index_reported() {
    let ts = TS.to_string();
    for kind in Kind::ALL {
        let v = verifier(kind, &[3, 1, 2], "");
        for (seed, index) in [(3, 0), (1, 1), (2, 2)] {
            let signed = kind.sign(seed, &ts, BODY);
            let before = crate::verify::KEY_CHECKS.get();
            assert_eq!(
                check(&v, &headers(&signed), BODY, TS).unwrap().secret_index,
                Some(index),
                "{} seed {seed}",
                kind.scheme()
            );
            // All three keys checked the one signature, whichever matched:
            // the time taken does not tell which key it was.
            assert_eq!(
                crate::verify::KEY_CHECKS.get() - before,
                3,
                "{} seed {seed}",
                kind.scheme()
            );
        }
        let signed = kind.sign(4, &ts, BODY);
        assert_eq!(
            check(&v, &headers(&signed), BODY, TS),
            Err(VerifyError::BadSignature)
        );
    }
}

#[test]
fn stale_and_future_timestamps_and_the_tolerance_override() {
    let ts = TS.to_string();
    for kind in Kind::ALL {
        let name = kind.scheme();
        let signed = headers(&kind.sign(1, &ts, BODY));
        let v = verifier(kind, &[1], "");
        for (now, expected) in [
            (TS + 300, Ok(())),
            (TS - 300, Ok(())),
            (TS + 301, Err(VerifyError::StaleTimestamp)),
            (TS - 301, Err(VerifyError::StaleTimestamp)),
        ] {
            assert_eq!(
                check(&v, &signed, BODY, now).map(|_| ()),
                expected,
                "{name} at {now}"
            );
        }
        let wide = verifier(kind, &[1], ", tolerance: 1h");
        assert!(check(&wide, &signed, BODY, TS + 3600).is_ok(), "{name}");
        assert_eq!(
            check(&wide, &signed, BODY, TS + 3601),
            Err(VerifyError::StaleTimestamp),
            "{name}"
        );
        // A forgery with an old timestamp is a bad signature, not stale.
        let forged = headers(&kind.sign(2, &ts, BODY));
        assert_eq!(
            check(&v, &forged, BODY, TS + 10_000),
            Err(VerifyError::BadSignature),
            "{name}"
        );
        // A correctly signed timestamp that is not a number.
        let odd = headers(&kind.sign(1, "soon", BODY));
        assert_eq!(
            check(&v, &odd, BODY, TS),
            Err(VerifyError::MalformedSignature),
            "{name}"
        );
    }
}

#[test]
fn malformed_signatures() {
    let ts = TS.to_string();
    let ed_sig = hex::encode(ed(1).sign(b"x").to_bytes());
    let raw: p256::ecdsa::Signature = ec(1).sign(b"x");
    let cases: [(Kind, Vec<String>); 3] = [
        (
            Kind::Discord,
            vec![
                "zz".into(),
                String::new(),
                ed_sig[2..].to_string(), // 63 bytes
                format!("{ed_sig}00"),   // 65 bytes
                b64(&[0; 64]),           // base64, not hex
                format!("v1a,{ed_sig}"), // a prefix Discord does not send
            ],
        ),
        (
            Kind::SendGrid,
            vec![
                "not base64!".into(),
                b64(b"not DER"),
                b64(&[0x30, 0x02, 0x02, 0x00]),
                // Raw r||s instead of DER.
                b64(&raw.to_bytes()),
                hex::encode([0x30; 70]),
            ],
        ),
        (
            Kind::StdWh,
            vec![
                "v1a,".into(),
                "v1a,AAAA".into(),
                format!("v1,{}", b64(&[0; 32])),  // symmetric only
                format!("v1a {}", b64(&[0; 64])), // wrong separator
                format!("v1a,{ed_sig}"),          // hex, not base64
            ],
        ),
    ];
    for (kind, bad) in cases {
        let v = verifier(kind, &[1], "");
        let signed = kind.sign(1, &ts, BODY);
        for value in bad {
            let h = replace(&signed, kind.signature_header(), &value);
            assert_eq!(
                check(&v, &h, BODY, TS),
                Err(VerifyError::MalformedSignature),
                "{} {value:?}",
                kind.scheme()
            );
        }
    }
}

#[test]
fn high_s_ecdsa_signatures_verify_like_sendgrid_libraries_accept_them() {
    // ECDSA signatures (r, s) and (r, n - s) are both valid; SendGrid's
    // libraries (Node crypto, Java, Python) do not require low S, so
    // neither does hookgate.
    let ts = TS.to_string();
    let message = [ts.as_bytes(), BODY].concat();
    let sig: p256::ecdsa::Signature = ec(1).sign(&message);
    let (r, s) = sig.split_scalars();
    let flipped =
        p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s.as_ref()).to_bytes()).unwrap();
    assert_ne!(flipped, sig);
    let v = verifier(Kind::SendGrid, &[1], "");
    for sig in [sig, flipped] {
        let h = headers(&[
            (
                "X-Twilio-Email-Event-Webhook-Signature".into(),
                b64(sig.to_der().as_bytes()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp".into(), ts.clone()),
        ]);
        assert!(check(&v, &h, BODY, TS).is_ok());
    }
}

fn config_error(yaml: &str) -> crate::config::ConfigError {
    match Config::from_yaml(yaml, &HashMap::new()) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e,
    }
}

#[test]
fn config_errors_name_the_field_and_never_echo_a_key() {
    let discord_key = Kind::Discord.public_key(1);
    let route = |verify: &str| {
        format!(
            "routes:\n  - name: t\n    path: /t\n    verify: {{ {verify} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
        )
    };
    for (verify, path, needle) in [
        // Public-key presets take no secrets.
        (
            format!("scheme: discord, public_keys: [\"{discord_key}\"], secrets: [\"s\"]"),
            "routes[0].verify.secrets",
            "public_keys",
        ),
        ("scheme: discord, secrets: [\"s\"]".to_string(), "routes[0].verify.secrets", "no shared secrets"),
        ("scheme: discord".to_string(), "routes[0].verify.public_keys", "64 hex digits"),
        ("scheme: sendgrid, public_keys: []".to_string(), "routes[0].verify.public_keys", "DER"),
        // HMAC presets take no public keys.
        (
            format!("scheme: stripe, secrets: [\"s\"], public_keys: [\"{discord_key}\"]"),
            "routes[0].verify.public_keys",
            "`secrets`",
        ),
        (
            format!("scheme: hmac, header: X-S, algorithm: sha256, secrets: [\"s\"], public_keys: [\"{discord_key}\"]"),
            "routes[0].verify.public_keys",
            "takes no public keys",
        ),
        // Standard Webhooks: one or the other.
        (
            "scheme: standard_webhooks, secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], public_keys: [\"whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]".to_string(),
            "routes[0].verify.secrets",
            "one or the other",
        ),
        ("scheme: standard_webhooks".to_string(), "routes[0].verify.secrets", "public_keys"),
        // A key in another preset's format, or not a key at all.
        (
            format!("scheme: discord, public_keys: [\"{}\", \"{}\"]", discord_key, Kind::StdWh.public_key(1)),
            "routes[0].verify.public_keys[1]",
            "64 hex digits",
        ),
        (
            format!("scheme: standard_webhooks, public_keys: [\"{discord_key}\"]"),
            "routes[0].verify.public_keys[0]",
            "whpk_",
        ),
        (
            format!("scheme: sendgrid, public_keys: [\"{}\"]", Kind::StdWh.public_key(1).trim_start_matches("whpk_")),
            "routes[0].verify.public_keys[0]",
            "SubjectPublicKeyInfo",
        ),
        // The identity point: a small-order key that would accept forgeries.
        (
            format!("scheme: discord, public_keys: [\"01{}\"]", "00".repeat(31)),
            "routes[0].verify.public_keys[0]",
            "Ed25519",
        ),
        // Discord's other settings are fixed.
        (
            format!("scheme: discord, public_keys: [\"{discord_key}\"], header: X-Sig"),
            "routes[0].verify.header",
            "`public_keys`, `tolerance`",
        ),
    ] {
        let e = config_error(&route(&verify));
        assert_eq!(e.path, path, "{verify}: {e}");
        assert!(e.message.contains(needle), "{verify}: {e}");
        for key in [&discord_key, &Kind::StdWh.public_key(1)] {
            assert!(!e.to_string().contains(key.as_str()), "{e}");
        }
    }
}

#[test]
fn keys_are_not_in_debug_output_or_the_summary() {
    let key = Kind::Discord.public_key(1);
    let config = Config::from_yaml(
        &yaml("discord", std::slice::from_ref(&key), ""),
        &HashMap::new(),
    )
    .unwrap();
    let spec = &config.routes[0].verify;
    assert!(matches!(spec.kind, SpecKind::PublicKey { .. }));
    assert_eq!(spec.secret_count(), 1);
    let debug = format!("{spec:?}");
    assert!(debug.contains("REDACTED"), "{debug}");
    let bytes = format!("{:?}", ed(1).verifying_key().as_bytes());
    for text in [debug.clone(), spec.summary()] {
        assert!(!text.contains(&key) && !text.contains(&bytes), "{text}");
    }
    assert!(spec.summary().contains("Ed25519"), "{}", spec.summary());
}
