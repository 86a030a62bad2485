//! Writes the seed corpus of the fuzz target `signature_headers`
//! (`fuzz/corpus/signature_headers/`): for every signature source of every
//! preset, a valid request, the same with its body changed, and one with a
//! well-formed forged signature, in the target's input layout, signed with
//! the credentials the target configures. The test fails when the committed
//! seeds differ from what the table gives now; rewrite them after changing
//! the table (the files are named `seed-*`; fuzz/.gitignore keeps the
//! fuzzer's own finds out):
//!
//!     HOOKGATE_WRITE_FUZZ_CORPUS=1 cargo test --lib fuzz_corpus

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use ed25519_dalek::Signer as _;
use http::{HeaderMap, HeaderName};

use super::*;
use crate::config::Config;
use crate::verify::template::Part;
use crate::verify::{HmacVerifier, SpecKind};

/// The target's time for a first byte of 0.
const NOW: u64 = 1_600_000_000;
/// RFC 8032 test 1: the target's Discord and `v1a` key.
const ED25519_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn whsec(scheme: &str) -> bool {
    matches!(
        scheme,
        "standard_webhooks" | "svix" | "clerk" | "resend" | "openai"
    )
}

/// One input: time byte 0, then `[name index] value` chunks, then the body.
fn input(headers: &[(HeaderName, String)], body: &[u8]) -> Vec<u8> {
    let names = header_names();
    let mut out = vec![0u8];
    for (name, value) in headers {
        let i = names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name} is not in header_names()"));
        out.push(u8::try_from(i).expect("fewer than 256 header names"));
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(body);
    out
}

fn hmac_seeds(row: &Row, out: &mut Vec<(String, Vec<u8>)>) {
    let scheme = row.name;
    let secret = if whsec(scheme) {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    } else if scheme == "airtable" {
        "aw==" // `k`, in base64
    } else {
        "k"
    };
    let PresetKind::Hmac(table_spec) = row.preset().kind else {
        return;
    };
    let url = if table_spec
        .sources
        .iter()
        .any(|s| s.payload.uses(&Part::Url))
    {
        ", public_url: \"https://h.test/x\""
    } else {
        ""
    };
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"{secret}\"]{url} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = Config::from_yaml(&yaml, &HashMap::new()).unwrap();
    let SpecKind::Hmac { spec, secrets } = config.routes[0].verify.kind.clone() else {
        unreachable!()
    };
    let body = format!(
        r#"{{"type":"t","webhookTimestamp":{},"n":"a"}}"#,
        NOW * 1000
    );
    for (i, source) in spec.sources.iter().enumerate() {
        if source.body_signature.is_some() {
            body_signature_seeds(scheme, secret, out);
            continue;
        }
        let signer = HmacVerifier::new(
            HmacSpec {
                sources: vec![source.clone()],
            },
            &secrets,
        );
        let signed = signer
            .sign(
                0,
                "POST",
                Some("a=1"),
                &HeaderMap::new(),
                body.as_bytes(),
                UNIX_EPOCH + Duration::from_secs(NOW),
            )
            .unwrap();
        out.push((
            format!("{scheme}-{i}-valid"),
            input(&signed, body.as_bytes()),
        ));
        out.push((
            format!("{scheme}-{i}-tampered"),
            input(&signed, body.replace("\"a\"", "\"b\"").as_bytes()),
        ));
        let mut forged = signed.clone();
        // A character inside the MAC (clear of base64 padding and its
        // spare bits), changed.
        let value = &mut forged.last_mut().unwrap().1;
        let at = value.trim_end_matches('=').len() - 3;
        let flip = if value.as_bytes()[at] == b'A' {
            "B"
        } else {
            "A"
        };
        value.replace_range(at..=at, flip);
        out.push((
            format!("{scheme}-{i}-forged"),
            input(&forged, body.as_bytes()),
        ));
    }
}

/// Mailgun: the signature object in the body, over `timestamp + token`.
fn body_signature_seeds(scheme: &str, secret: &str, out: &mut Vec<(String, Vec<u8>)>) {
    use hmac::Mac;
    let body = |token: &str, sig: &str| {
        format!(
            r#"{{"signature":{{"timestamp":"{NOW}","token":"{token}","signature":"{sig}"}},"event-data":{{"event":"delivered"}}}}"#
        )
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{NOW}tok_1").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    out.push((
        format!("{scheme}-valid"),
        input(&[], body("tok_1", &sig).as_bytes()),
    ));
    out.push((
        format!("{scheme}-tampered"),
        input(&[], body("tok_2", &sig).as_bytes()),
    ));
    let forged = format!(
        "{}{}",
        &sig[..60],
        if &sig[60..61] == "a" { "b" } else { "a" }
    ) + &sig[61..];
    out.push((
        format!("{scheme}-forged"),
        input(&[], body("tok_1", &forged).as_bytes()),
    ));
}

fn ed25519_seeds(out: &mut Vec<(String, Vec<u8>)>) {
    let key: [u8; 32] = hex::decode(ED25519_SECRET).unwrap().try_into().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&key);
    let body = br#"{"type":1,"id":"42"}"#;
    let ts = NOW.to_string();
    let discord = key.sign(&[ts.as_bytes(), body].concat());
    let h = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
    out.push((
        "discord-valid".into(),
        input(
            &[
                (h("x-signature-ed25519"), hex::encode(discord.to_bytes())),
                (h("x-signature-timestamp"), ts.clone()),
            ],
            body,
        ),
    ));
    let telnyx_body = br#"{"data":{"event_type":"call.initiated"}}"#;
    let telnyx = key.sign(&[ts.as_bytes(), b"|", &telnyx_body[..]].concat());
    out.push((
        "telnyx-valid".into(),
        input(
            &[
                (
                    h("telnyx-signature-ed25519"),
                    base64::engine::general_purpose::STANDARD.encode(telnyx.to_bytes()),
                ),
                (h("telnyx-timestamp"), ts.clone()),
            ],
            telnyx_body,
        ),
    ));
    let v1a = key.sign(&[b"msg_1.", ts.as_bytes(), b".", &body[..]].concat());
    let b64 = base64::engine::general_purpose::STANDARD.encode(v1a.to_bytes());
    out.push((
        "standard_webhooks_v1a-valid".into(),
        input(
            &[
                (h("webhook-id"), "msg_1".into()),
                (h("webhook-timestamp"), ts),
                (h("webhook-signature"), format!("v1a,{b64}")),
            ],
            body,
        ),
    ));
}

#[test]
fn fuzz_corpus_matches_the_preset_table() {
    let mut seeds = Vec::new();
    for row in TABLE {
        match row.preset().kind {
            PresetKind::Hmac(_) => hmac_seeds(row, &mut seeds),
            PresetKind::Header(name) => {
                seeds.push((
                    format!("{}-valid", row.name),
                    input(&[(name.clone(), "k".into())], b"{}"),
                ));
                seeds.push((
                    format!("{}-wrong", row.name),
                    input(&[(name, "j".into())], b"{}"),
                ));
            }
            PresetKind::BasicAuth => {
                let h = http::header::AUTHORIZATION;
                // `u:k` and `u:j`.
                seeds.push((
                    format!("{}-valid", row.name),
                    input(&[(h.clone(), "Basic dTpr".into())], b"{}"),
                ));
                seeds.push((
                    format!("{}-wrong", row.name),
                    input(&[(h, "Basic dTpq".into())], b"{}"),
                ));
            }
            PresetKind::PublicKey(_) | PresetKind::ClientState => {}
        }
    }
    ed25519_seeds(&mut seeds);
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/signature_headers");
    if std::env::var_os("HOOKGATE_WRITE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            // `seed-`: the committed files; the fuzzer's own finds are
            // ignored (fuzz/.gitignore).
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, bytes) in &seeds {
        if std::fs::read(dir.join(format!("seed-{name}")))
            .ok()
            .as_ref()
            != Some(bytes)
        {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz seeds missing or out of date (rewrite them: HOOKGATE_WRITE_FUZZ_CORPUS=1 cargo test --lib fuzz_corpus): {stale:?}"
    );
}
