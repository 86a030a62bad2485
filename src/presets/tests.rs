//! Every preset, built from YAML exactly as a user configures it, checked
//! with signatures computed here from the provider's documented algorithm
//! (independently of the template machinery): sign, verify, tamper, wrong
//! secret, and for timestamped presets stale and future timestamps.
//!
//! These signatures are hookgate's own reading of each sender's docs: they
//! check the machinery, not that a preset matches its sender. Which test
//! proves each preset against its sender's own SDK or published vectors
//! (`tests/vectors.rs`, `tests/sdk_presets.rs`, `tests/sdk_presets_npm.rs`,
//! `tests/twilio.rs`), and why the others cannot be, is the table in
//! `docs/testing.md`, checked by `tests/preset_proofs.rs`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::config::Config;
use crate::verify::{SignedRequest, Verifier, VerifyError};

const SECRET: &str = "preset-secret";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const URL: &str = "https://hooks.example.com/in";
/// A fixed signing time; verification pins the clock to it.
const TS: u64 = 1_700_000_000;

fn mac(alg: Algorithm, key: &[u8], payload: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).unwrap();
        m.update(payload);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, payload),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, payload),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, payload),
        Algorithm::SecretPrefixedSha256 => {
            use sha2::Digest;
            sha2::Sha256::digest([key, payload].concat()).to_vec()
        }
    }
}

fn hx(alg: Algorithm, key: &str, payload: &[u8]) -> String {
    hex::encode(mac(alg, key.as_bytes(), payload))
}

fn b64(alg: Algorithm, key: &str, payload: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(alg, key.as_bytes(), payload))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn rfc3339(ts: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(ts)).to_string()
}

/// Builds the route's verifier from YAML, as `hookgate serve` would.
pub(super) fn verifier(scheme: &str, secret: &str, extra: &str) -> Verifier {
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"{secret}\"]{extra} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = Config::from_yaml(&yaml, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
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

fn check(v: &Verifier, h: &HeaderMap, body: &[u8], now: u64) -> Result<(), VerifyError> {
    v.verify_request(&SignedRequest {
        method: "POST",
        query: None,
        headers: h,
        body,
        now: UNIX_EPOCH + Duration::from_secs(now),
    })
    .map(|_| ())
}

type Signed = (Vec<(String, String)>, Vec<u8>);

struct Case {
    scheme: &'static str,
    /// The secret configured (and signed with).
    secret: &'static str,
    /// Extra YAML inside the verify map.
    extra: &'static str,
    /// The preset's default tolerance, for timestamped presets.
    tolerance: Option<u64>,
    /// Headers and body as the provider sends them, signed with `secret`
    /// at time `ts`.
    sign: fn(secret: &str, ts: u64) -> Signed,
}

fn h(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

const JSON: &[u8] = br#"{"type":"invoice.paid","id":"evt_1","n":"Zo\u00eb"}"#;

fn whsec_key(secret: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap()
}

fn stdwh(prefix: &str, secret: &str, ts: u64) -> Signed {
    let payload = cat(&[b"msg_1.", ts.to_string().as_bytes(), b".", JSON]);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac(
        Algorithm::Sha256,
        &whsec_key(secret),
        &payload,
    ));
    (
        vec![
            h(&format!("{prefix}-id"), "msg_1"),
            h(&format!("{prefix}-timestamp"), ts.to_string()),
            // An unknown version and a wrong v1 come first: every
            // candidate is tried.
            h(
                &format!("{prefix}-signature"),
                format!("v1a,AAAA v1,{} v1,{sig}", b64(Algorithm::Sha256, "x", b"y")),
            ),
        ],
        JSON.to_vec(),
    )
}

/// A Mailgun event: the signature object in the body signs `timestamp +
/// token`, not the body.
fn mailgun_body(secret: &str, ts: u64, token: &str) -> Vec<u8> {
    let sig = hx(Algorithm::Sha256, secret, format!("{ts}{token}").as_bytes());
    format!(
        r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","signature":"{sig}"}},"event-data":{{"event":"delivered","id":"ev_1"}}}}"#
    )
    .into_bytes()
}

/// A preset signing the raw body in one header: the header's value from
/// the secret `s`.
macro_rules! body_case {
    ($scheme:literal, $header:literal, |$s:ident| $value:expr) => {
        Case {
            scheme: $scheme,
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |$s, _| (vec![h($header, $value)], JSON.to_vec()),
        }
    };
}

/// A preset signing `timestamp.body` (unix seconds, hex HMAC-SHA256),
/// both in one header written by `format` from the timestamp and MAC.
macro_rules! t_dot_body_case {
    ($scheme:literal, $header:literal, $tolerance:literal, |$t:ident, $sig:ident| $format:expr) => {
        Case {
            scheme: $scheme,
            secret: SECRET,
            extra: "",
            tolerance: Some($tolerance),
            sign: |s, ts| {
                let $t = ts.to_string();
                let $sig = hx(Algorithm::Sha256, s, &cat(&[$t.as_bytes(), b".", JSON]));
                (vec![h($header, $format)], JSON.to_vec())
            },
        }
    };
}

/// HTTP basic authentication with the `user:password` secret.
macro_rules! basic_case {
    ($scheme:literal) => {
        Case {
            scheme: $scheme,
            secret: "hook:preset-secret",
            extra: "",
            tolerance: None,
            sign: |s, _| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(s);
                (
                    vec![h("Authorization", format!("Basic {encoded}"))],
                    JSON.to_vec(),
                )
            },
        }
    };
}

fn cases() -> Vec<Case> {
    use Algorithm::*;
    vec![
        Case {
            scheme: "trutac",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "TT-Hook-Signature",
                        format!("sha1={}", hx(Sha1, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "timekit",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("X-Timekit-Signature", hx(Sha256, s, JSON))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "github",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "X-Hub-Signature-256",
                        format!("sha256={}", hx(Sha256, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "gitlab",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| (vec![h("X-Gitlab-Token", s)], JSON.to_vec()),
        },
        // Okta: the Authorization header carries the secret verbatim. No
        // published vector exists for a shared secret.
        Case {
            scheme: "okta",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| (vec![h("Authorization", s)], JSON.to_vec()),
        },
        Case {
            scheme: "bitbucket",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "X-Hub-Signature",
                        format!("sha256={}", hx(Sha256, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "standard_webhooks",
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| stdwh("webhook", s, ts),
        },
        Case {
            scheme: "svix",
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| stdwh("svix", s, ts),
        },
        Case {
            scheme: "clerk",
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| stdwh("svix", s, ts),
        },
        Case {
            scheme: "resend",
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| stdwh("webhook", s, ts),
        },
        Case {
            scheme: "stripe",
            // Stripe's `whsec_` secret is used verbatim as UTF-8.
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = ts.to_string();
                let sig = hx(Sha256, s, &cat(&[t.as_bytes(), b".", JSON]));
                (
                    vec![h(
                        "Stripe-Signature",
                        format!("t={t},v1={},v1={sig},v0=00", "ab".repeat(32)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "shopify",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("shopify-hmac-sha256", b64(Sha256, s, JSON))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "slack",
            secret: SECRET,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = ts.to_string();
                let body = b"token=x&team_id=T1&text=hi+there".to_vec();
                let sig = hx(Sha256, s, &cat(&[b"v0:", t.as_bytes(), b":", &body]));
                (
                    vec![
                        h("X-Slack-Request-Timestamp", t),
                        h("X-Slack-Signature", format!("v0={sig}")),
                    ],
                    body,
                )
            },
        },
        Case {
            scheme: "paddle",
            secret: SECRET,
            extra: "",
            tolerance: Some(5),
            sign: |s, ts| {
                let t = ts.to_string();
                let sig = hx(Sha256, s, &cat(&[t.as_bytes(), b":", JSON]));
                (
                    vec![h("Paddle-Signature", format!("ts={t};h1={sig}"))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "pagerduty",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "X-PagerDuty-Signature",
                        format!("v1={},v1={}", "00".repeat(32), hx(Sha256, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "linear",
            secret: SECRET,
            extra: "",
            tolerance: Some(60),
            sign: |s, ts| {
                let body = format!(r#"{{"type":"Issue","webhookTimestamp":{}}}"#, ts * 1000);
                (
                    vec![h("Linear-Signature", hx(Sha256, s, body.as_bytes()))],
                    body.into_bytes(),
                )
            },
        },
        Case {
            scheme: "zoom",
            secret: SECRET,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = ts.to_string();
                let sig = hx(Sha256, s, &cat(&[b"v0:", t.as_bytes(), b":", JSON]));
                (
                    vec![
                        h("x-zm-request-timestamp", t),
                        h("x-zm-signature", format!("v0={sig}")),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "typeform",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "Typeform-Signature",
                        format!("sha256={}", b64(Sha256, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "calendly",
            secret: SECRET,
            extra: "",
            tolerance: Some(180),
            sign: |s, ts| {
                let t = ts.to_string();
                let sig = hx(Sha256, s, &cat(&[t.as_bytes(), b".", JSON]));
                (
                    vec![h("Calendly-Webhook-Signature", format!("t={t},v1={sig}"))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "zendesk",
            secret: SECRET,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = rfc3339(ts);
                let sig = b64(Sha256, s, &cat(&[t.as_bytes(), JSON]));
                (
                    vec![
                        h("X-Zendesk-Webhook-Signature-Timestamp", t),
                        h("X-Zendesk-Webhook-Signature", sig),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "intercom",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("X-Hub-Signature", format!("sha1={}", hx(Sha1, s, JSON)))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "jira",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h(
                        "X-Hub-Signature",
                        format!("sha256={}", hx(Sha256, s, JSON)),
                    )],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "vercel",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("x-vercel-signature", hx(Sha1, s, JSON))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "xero",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("x-xero-signature", b64(Sha256, s, JSON))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "quickbooks",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                (
                    vec![h("intuit-signature", b64(Sha256, s, JSON))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "docusign",
            secret: SECRET,
            extra: "",
            tolerance: None,
            // One header per key: ours is the third one.
            sign: |s, _| {
                (
                    vec![
                        h("X-DocuSign-Signature-1", b64(Sha256, "key-a", JSON)),
                        h("X-DocuSign-Signature-2", b64(Sha256, "key-b", JSON)),
                        h("X-DocuSign-Signature-3", b64(Sha256, s, JSON)),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "hubspot",
            secret: SECRET,
            extra: ", public_url: \"https://hooks.example.com/in\"",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = (ts * 1000).to_string();
                let sig = b64(
                    Sha256,
                    s,
                    &cat(&[b"POST", URL.as_bytes(), JSON, t.as_bytes()]),
                );
                (
                    vec![
                        h("X-HubSpot-Request-Timestamp", t),
                        h("X-HubSpot-Signature-v3", sig),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "twitch",
            secret: SECRET,
            extra: "",
            tolerance: Some(600),
            sign: |s, ts| {
                let t = rfc3339(ts);
                let sig = hx(Sha256, s, &cat(&[b"m-1", t.as_bytes(), JSON]));
                (
                    vec![
                        h("Twitch-Eventsub-Message-Id", "m-1"),
                        h("Twitch-Eventsub-Message-Timestamp", t),
                        h("Twitch-Eventsub-Message-Signature", format!("sha256={sig}")),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "twilio",
            secret: SECRET,
            extra: ", public_url: \"https://hooks.example.com/in\"",
            tolerance: None,
            sign: |s, _| {
                let body = b"To=%2B18005551212&From=%2B12349013030&Body=Hi+there".to_vec();
                // Sorted by name, decoded, concatenated; default port added.
                let payload = cat(&[
                    b"https://hooks.example.com:443/in",
                    b"BodyHi there",
                    b"From+12349013030",
                    b"To+18005551212",
                ]);
                (vec![h("X-Twilio-Signature", b64(Sha1, s, &payload))], body)
            },
        },
        Case {
            scheme: "square",
            secret: SECRET,
            extra: ", public_url: \"https://hooks.example.com/in\"",
            tolerance: None,
            sign: |s, _| {
                let sig = b64(Sha256, s, &cat(&[URL.as_bytes(), JSON]));
                (vec![h("x-square-hmacsha256-signature", sig)], JSON.to_vec())
            },
        },
        // Meta's three products share one scheme (Graph API webhooks).
        body_case!("meta", "X-Hub-Signature-256", |s| format!(
            "sha256={}",
            hx(Sha256, s, JSON)
        )),
        body_case!("whatsapp", "X-Hub-Signature-256", |s| format!(
            "sha256={}",
            hx(Sha256, s, JSON)
        )),
        body_case!("instagram", "X-Hub-Signature-256", |s| format!(
            "sha256={}",
            hx(Sha256, s, JSON)
        )),
        body_case!("line", "x-line-signature", |s| b64(Sha256, s, JSON)),
        body_case!("razorpay", "X-Razorpay-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("gocardless", "Webhook-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("coinbase_commerce", "X-CC-Webhook-Signature", |s| hx(
            Sha256, s, JSON
        )),
        body_case!("pusher", "X-Pusher-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("onfido", "X-SHA2-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("lemonsqueezy", "X-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("sentry", "Sentry-Hook-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("cal_com", "X-Cal-Signature-256", |s| hx(Sha256, s, JSON)),
        body_case!("gitea", "X-Gitea-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("forgejo", "X-Forgejo-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("gogs", "X-Gogs-Signature", |s| hx(Sha256, s, JSON)),
        body_case!("circleci", "circleci-signature", |s| {
            format!("v1={},v1={}", "00".repeat(32), hx(Sha256, s, JSON))
        }),
        body_case!("dropbox", "X-Dropbox-Signature", |s| hx(Sha256, s, JSON)),
        Case {
            scheme: "airtable",
            // `macSecretBase64`: the key is the decoded bytes.
            secret: "cHJlc2V0LXNlY3JldA==",
            extra: "",
            tolerance: None,
            sign: |s, _| {
                let key = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
                let mac = hex::encode(mac(Algorithm::Sha256, &key, JSON));
                (
                    vec![h("X-Airtable-Content-MAC", format!("hmac-sha256={mac}"))],
                    JSON.to_vec(),
                )
            },
        },
        body_case!("heroku", "Heroku-Webhook-Hmac-SHA256", |s| b64(
            Sha256, s, JSON
        )),
        body_case!("woocommerce", "X-WC-Webhook-Signature", |s| b64(
            Sha256, s, JSON
        )),
        Case {
            scheme: "workos",
            secret: SECRET,
            extra: "",
            tolerance: Some(180),
            sign: |s, ts| {
                let t = (ts * 1000).to_string();
                let sig = hx(Sha256, s, &cat(&[t.as_bytes(), b".", JSON]));
                (
                    vec![h("WorkOS-Signature", format!("t={t}, v1={sig}"))],
                    JSON.to_vec(),
                )
            },
        },
        Case {
            scheme: "box",
            secret: SECRET,
            extra: "",
            tolerance: Some(600),
            // Signed under the secondary key only: the primary one is
            // another key.
            sign: |s, ts| {
                let t = rfc3339(ts);
                let payload = cat(&[JSON, t.as_bytes()]);
                (
                    vec![
                        h("BOX-DELIVERY-TIMESTAMP", t.clone()),
                        h(
                            "BOX-SIGNATURE-PRIMARY",
                            b64(Sha256, "primary-key", &payload),
                        ),
                        h("BOX-SIGNATURE-SECONDARY", b64(Sha256, s, &payload)),
                    ],
                    JSON.to_vec(),
                )
            },
        },
        t_dot_body_case!("mux", "Mux-Signature", 300, |t, sig| format!(
            "t={t},v1={sig}"
        )),
        t_dot_body_case!("persona", "Persona-Signature", 300, |t, sig| format!(
            "t={t},v1={sig}"
        )),
        Case {
            scheme: "sanity",
            secret: SECRET,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| {
                let t = (ts * 1000).to_string();
                let raw = mac(Sha256, s.as_bytes(), &cat(&[t.as_bytes(), b".", JSON]));
                let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                (
                    vec![h("sanity-webhook-signature", format!("t={t},v1={sig}"))],
                    JSON.to_vec(),
                )
            },
        },
        t_dot_body_case!("buildkite", "X-Buildkite-Signature", 300, |t, sig| {
            format!("timestamp={t},signature={sig}")
        }),
        Case {
            scheme: "trello",
            secret: SECRET,
            extra: ", public_url: \"https://hooks.example.com/in\"",
            tolerance: None,
            sign: |s, _| {
                let sig = b64(Sha1, s, &cat(&[JSON, URL.as_bytes()]));
                (vec![h("X-Trello-Webhook", sig)], JSON.to_vec())
            },
        },
        Case {
            scheme: "mandrill",
            secret: SECRET,
            extra: ", public_url: \"https://hooks.example.com/in\"",
            tolerance: None,
            sign: |s, _| {
                let body = b"mandrill_events=%5B%7B%22event%22%3A%22send%22%7D%5D".to_vec();
                let payload = cat(&[URL.as_bytes(), b"mandrill_events", br#"[{"event":"send"}]"#]);
                (
                    vec![h("X-Mandrill-Signature", b64(Sha1, s, &payload))],
                    body,
                )
            },
        },
        Case {
            scheme: "recurly",
            secret: SECRET,
            extra: "",
            tolerance: Some(300),
            // Two keys active: another key's signature comes first.
            sign: |s, ts| {
                let t = (ts * 1000).to_string();
                let payload = cat(&[t.as_bytes(), b".", JSON]);
                let value = format!(
                    "{t},{},{}",
                    hx(Sha256, "old-key", &payload),
                    hx(Sha256, s, &payload)
                );
                (vec![h("recurly-signature", value)], JSON.to_vec())
            },
        },
        Case {
            scheme: "openai",
            secret: WHSEC,
            extra: "",
            tolerance: Some(300),
            sign: |s, ts| stdwh("webhook", s, ts),
        },
        t_dot_body_case!("elevenlabs", "ElevenLabs-Signature", 1800, |t, sig| {
            format!("t={t},v0={sig}")
        }),
        Case {
            scheme: "telegram",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| (vec![h("X-Telegram-Bot-Api-Secret-Token", s)], JSON.to_vec()),
        },
        Case {
            scheme: "mailgun",
            secret: SECRET,
            extra: "",
            tolerance: Some(900),
            sign: |s, ts| (Vec::new(), mailgun_body(s, ts, "tok_1")),
        },
        basic_case!("postmark"),
        basic_case!("chargebee"),
        // Every notification carries the subscription's clientState.
        Case {
            scheme: "microsoft_graph",
            secret: SECRET,
            extra: "",
            tolerance: None,
            sign: |s, _| {
                let body = format!(
                    r#"{{"value":[{{"subscriptionId":"s1","changeType":"created","clientState":"{s}","resource":"Users/1/Messages/2"}}]}}"#
                );
                (Vec::new(), body.into_bytes())
            },
        },
    ]
}

#[test]
fn every_preset_has_a_case_and_every_name_resolves() {
    // The public-key presets are tested in `public_key_tests.rs`.
    let mut tested: Vec<&str> = cases().iter().map(|c| c.scheme).collect();
    tested.extend(["discord", "sendgrid", "telnyx"]);
    let mut names = NAMES.to_vec();
    tested.sort_unstable();
    names.sort_unstable();
    assert_eq!(tested, names);
    for name in NAMES {
        assert!(preset(name).is_some(), "{name}");
    }
    assert!(preset("nope").is_none());
}

#[test]
fn presets_sign_verify_tamper_wrong_secret() {
    for case in cases() {
        let v = verifier(case.scheme, case.secret, case.extra);
        let (hs, body) = (case.sign)(case.secret, TS);
        let hm = headers(&hs);
        assert_eq!(check(&v, &hm, &body, TS), Ok(()), "{}", case.scheme);

        let mut tampered = body.clone();
        tampered.push(b' ');
        // A token, not a signature, or a signature that does not cover the
        // body (Mailgun's covers two of its fields): the change passes.
        let coverage = preset(case.scheme).unwrap().coverage();
        let shared_secret = coverage.is_none();
        let body_covered = coverage.is_some_and(|c| c.body || c.form);
        let expected = if !body_covered {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        };
        assert_eq!(check(&v, &hm, &tampered, TS), expected, "{}", case.scheme);

        let other = if case.secret == WHSEC {
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        } else if case.scheme == "airtable" {
            "YW5vdGhlci1zZWNyZXQ="
        } else if case.secret.contains(':') {
            "hook:another-secret"
        } else {
            "another-secret"
        };
        let (hs_other, body_other) = (case.sign)(other, TS);
        let wrong = check(&v, &headers(&hs_other), &body_other, TS);
        let expected = if shared_secret {
            VerifyError::BadCredentials
        } else {
            VerifyError::BadSignature
        };
        assert_eq!(wrong, Err(expected), "{}", case.scheme);

        // (Mailgun's and Graph's credentials are in the body.)
        if case.scheme != "mailgun" && case.scheme != "microsoft_graph" {
            assert_eq!(
                check(&v, &HeaderMap::new(), &body, TS),
                Err(VerifyError::MissingCredentials),
                "{}",
                case.scheme
            );
        }
    }
}

/// While a Persona secret rotates, `Persona-Signature` carries two
/// `t=…,v1=…` pairs separated by a space, one per secret: a route with
/// either secret verifies.
#[test]
fn persona_rotation_header_with_two_pairs() {
    let t = TS.to_string();
    let sig = |secret: &str| hx(Algorithm::Sha256, secret, &cat(&[t.as_bytes(), b".", JSON]));
    let value = format!(
        "t={t},v1={} t={t},v1={}",
        sig("old-secret"),
        sig("new-secret")
    );
    let hm = headers(&[h("Persona-Signature", value)]);
    for secret in ["old-secret", "new-secret"] {
        let v = verifier("persona", secret, "");
        assert_eq!(check(&v, &hm, JSON, TS), Ok(()), "{secret}");
    }
    let v = verifier("persona", "third-secret", "");
    assert_eq!(check(&v, &hm, JSON, TS), Err(VerifyError::BadSignature));
}

/// HubSpot v3 signs the URL with `%3A`, `%2F`, … decoded: a request whose
/// query carries such escapes verifies whether HubSpot decoded them (its
/// documented rule) or not (the Python SDK's way); other escapes stay.
#[test]
fn hubspot_v3_decodes_reserved_characters_in_the_url() {
    let v = verifier(
        "hubspot",
        SECRET,
        ", public_url: \"https://hooks.example.com/in\"",
    );
    let t = (TS * 1000).to_string();
    let query = "portal=1&next=https%3A%2F%2Fx.test%2Fa%20b";
    let signed_with = |url: &str| {
        let sig = b64(
            Algorithm::Sha256,
            SECRET,
            &cat(&[b"POST", url.as_bytes(), JSON, t.as_bytes()]),
        );
        headers(&[
            h("X-HubSpot-Request-Timestamp", t.clone()),
            h("X-HubSpot-Signature-v3", sig),
        ])
    };
    let at = |hm: &HeaderMap| {
        v.verify_request(&SignedRequest {
            method: "POST",
            query: Some(query),
            headers: hm,
            body: JSON,
            now: UNIX_EPOCH + Duration::from_secs(TS),
        })
        .map(|_| ())
    };
    let decoded = "https://hooks.example.com/in?portal=1&next=https://x.test/a%20b";
    let raw = format!("https://hooks.example.com/in?{query}");
    assert_eq!(at(&signed_with(decoded)), Ok(()));
    assert_eq!(at(&signed_with(&raw)), Ok(()));
    // `%20` is not one of the decoded characters.
    let over_decoded = "https://hooks.example.com/in?portal=1&next=https://x.test/a b";
    assert_eq!(
        at(&signed_with(over_decoded)),
        Err(VerifyError::BadSignature)
    );
}

/// Mailgun's signature is in the body and covers its timestamp and token:
/// changing either fails, a body without the signature object is missing
/// credentials, and the event data is not signed (Mailgun's design; the
/// single-use token is the default dedup key).
#[test]
fn mailgun_body_carried_signature() {
    let v = verifier("mailgun", SECRET, "");
    let body = mailgun_body(SECRET, TS, "tok_1");
    let none = HeaderMap::new();
    assert_eq!(check(&v, &none, &body, TS), Ok(()));
    let text = String::from_utf8(body.clone()).unwrap();
    for (what, changed) in [
        ("token", text.replace("tok_1", "tok_2")),
        (
            "timestamp",
            text.replacen(&TS.to_string(), &(TS + 1).to_string(), 1),
        ),
        (
            "signature",
            text.replacen("\"signature\":\"", "\"signature\":\"00", 1),
        ),
    ] {
        let expected = if what == "signature" {
            Err(VerifyError::MalformedSignature) // 33 bytes: not a SHA-256 MAC
        } else {
            Err(VerifyError::BadSignature)
        };
        assert_eq!(check(&v, &none, changed.as_bytes(), TS), expected, "{what}");
    }
    let unsigned_change = text.replace("delivered", "failed");
    assert_eq!(check(&v, &none, unsigned_change.as_bytes(), TS), Ok(()));
    for missing in [
        &br#"{"event-data":{}}"#[..],
        br#"{"signature":{"timestamp":"1","token":"t"}}"#,
    ] {
        assert_eq!(
            check(&v, &none, missing, TS),
            Err(VerifyError::MissingCredentials),
            "{}",
            String::from_utf8_lossy(missing)
        );
    }
    for malformed in [
        &b"not json"[..],
        b"",
        br#"{"signature":{"signature":["x"]}}"#,
    ] {
        assert_eq!(
            check(&v, &none, malformed, TS),
            Err(VerifyError::MalformedSignature),
            "{}",
            String::from_utf8_lossy(malformed)
        );
    }
    // A signature header is not where Mailgun puts it.
    let sig_header = headers(&[h("x-hookgate-signature-in-body", "00".repeat(32))]);
    assert_eq!(
        check(&v, &sig_header, br#"{"event-data":{}}"#, TS),
        Err(VerifyError::MissingCredentials)
    );
    assert_eq!(
        check(&v, &none, &body, TS + 901),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn timestamped_presets_reject_stale_and_future_and_honour_tolerance() {
    for case in cases() {
        let Some(tolerance) = case.tolerance else {
            continue;
        };
        let v = verifier(case.scheme, case.secret, case.extra);
        let (hs, body) = (case.sign)(case.secret, TS);
        let hm = headers(&hs);
        let at = |now| check(&v, &hm, &body, now);
        assert_eq!(at(TS + tolerance), Ok(()), "{}", case.scheme);
        assert_eq!(at(TS - tolerance), Ok(()), "{}", case.scheme);
        assert_eq!(
            at(TS + tolerance + 1),
            Err(VerifyError::StaleTimestamp),
            "{} stale",
            case.scheme
        );
        assert_eq!(
            at(TS - tolerance - 1),
            Err(VerifyError::StaleTimestamp),
            "{} future",
            case.scheme
        );

        // `tolerance` on the route overrides the preset's default.
        let wide = format!("{}, tolerance: 2h", case.extra);
        let v = verifier(case.scheme, case.secret, Box::leak(wide.into_boxed_str()));
        assert_eq!(
            check(&v, &hm, &body, TS + 3600),
            Ok(()),
            "{} with 2h",
            case.scheme
        );
        assert_eq!(
            check(&v, &hm, &body, TS + 7201),
            Err(VerifyError::StaleTimestamp),
            "{} with 2h",
            case.scheme
        );
    }
}

#[test]
fn fresh_signatures_verify_with_the_real_clock_and_default_window() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for case in cases().iter().filter(|c| c.tolerance.is_some()) {
        let v = verifier(case.scheme, case.secret, case.extra);
        let (hs, body) = (case.sign)(case.secret, now);
        let body = bytes::Bytes::from(body);
        assert!(v.verify(&headers(&hs), &body).is_ok(), "{}", case.scheme);
        // An hour old is outside every preset's default window.
        let (hs, body) = (case.sign)(case.secret, now - 3600);
        let body = bytes::Bytes::from(body);
        assert_eq!(
            v.verify(&headers(&hs), &body),
            Err(VerifyError::StaleTimestamp),
            "{}",
            case.scheme
        );
    }
}

#[test]
fn shopify_accepts_both_header_names() {
    let v = verifier("shopify", SECRET, "");
    let sig = b64(Algorithm::Sha256, SECRET, JSON);
    for name in ["X-Shopify-Hmac-Sha256", "shopify-hmac-sha256"] {
        let hm = headers(&[h(name, sig.clone())]);
        assert_eq!(check(&v, &hm, JSON, TS), Ok(()), "{name}");
    }
}

#[test]
fn twilio_accepts_the_url_with_and_without_default_port_and_the_query() {
    let body = b"Digits=1234&CallSid=CA1".to_vec();
    let v = verifier(
        "twilio",
        SECRET,
        ", public_url: \"https://hooks.example.com/in\"",
    );
    for url in [
        "https://hooks.example.com/in?x=1",
        "https://hooks.example.com:443/in?x=1",
    ] {
        let payload = cat(&[url.as_bytes(), b"CallSidCA1Digits1234"]);
        let hm = headers(&[h(
            "X-Twilio-Signature",
            b64(Algorithm::Sha1, SECRET, &payload),
        )]);
        let r = v.verify_request(&SignedRequest {
            method: "POST",
            query: Some("x=1"),
            headers: &hm,
            body: &body,
            now: SystemTime::now(),
        });
        assert!(r.is_ok(), "{url}");
        // Without the query the URL differs.
        assert_eq!(
            check(&v, &hm, &body, TS),
            Err(VerifyError::BadSignature),
            "{url}"
        );
    }
}

/// Twilio's JSON requests and shared-key (HMAC-SHA256) signatures, signed
/// here as twilio 9.13's `RequestValidator` does (`tests/twilio.rs` checks
/// the same against the SDK itself when PyPI is reachable).
#[test]
fn twilio_json_body_hash_and_sha256_settings() {
    use sha2::Digest;
    let v = verifier(
        "twilio",
        SECRET,
        ", public_url: \"https://hooks.example.com/in\"",
    );
    let verify = |query: &str, headers: &HeaderMap, body: &[u8]| {
        v.verify_request(&SignedRequest {
            method: "POST",
            query: Some(query),
            headers,
            body,
            now: SystemTime::now(),
        })
        .map(|_| ())
    };
    let body = br#"{"CallSid":"CA1"}"#;
    let query = format!("bodySHA256={}", hex::encode(sha2::Sha256::digest(body)));
    // The signature covers the URL only (no form parameters).
    let url = format!("https://hooks.example.com/in?{query}");
    let sig = b64(Algorithm::Sha1, SECRET, url.as_bytes());
    let hm = headers(&[h("X-Twilio-Signature", sig.clone())]);
    assert_eq!(verify(&query, &hm, body), Ok(()));
    for other in [&b""[..], b"&", b"=", br#"{"CallSid":"CA2"}"#] {
        assert_eq!(
            verify(&query, &hm, other),
            Err(VerifyError::BadSignature),
            "{other:?}"
        );
    }
    // Upper-case hex is not what the SDK computes: refused, as it refuses.
    let upper = query
        .to_ascii_uppercase()
        .replace("BODYSHA256", "bodySHA256");
    let sig_upper = b64(
        Algorithm::Sha1,
        SECRET,
        format!("https://hooks.example.com/in?{upper}").as_bytes(),
    );
    let hm_upper = headers(&[h("X-Twilio-Signature", sig_upper)]);
    assert_eq!(
        verify(&upper, &hm_upper, body),
        Err(VerifyError::BadSignature)
    );

    // Shared-key signatures: HMAC-SHA256 of the same payload.
    let form = b"b=2&a=1&b=1&b=2";
    let payload = b"https://hooks.example.com/in?x=1a1b1b2";
    let sig256 = b64(Algorithm::Sha256, SECRET, payload);
    let settings = (
        "X-Twilio-Webhooks-Signature-Settings",
        "key=k,algorithm=HMAC_SHA256",
    );
    let hm = headers(&[
        h("X-Twilio-Signature", sig256.clone()),
        h(settings.0, settings.1),
    ]);
    assert_eq!(verify("x=1", &hm, form), Ok(()));
    // Without the settings header the same signature is not HMAC-SHA1.
    let hm = headers(&[h("X-Twilio-Signature", sig256)]);
    assert_eq!(
        verify("x=1", &hm, form),
        Err(VerifyError::MalformedSignature)
    );
    let sig1 = b64(Algorithm::Sha1, SECRET, payload);
    assert_eq!(
        verify("x=1", &headers(&[h("X-Twilio-Signature", sig1)]), form),
        Ok(())
    );
}

#[test]
fn preset_parameters_are_checked() {
    let err = |yaml_extra: &str, scheme: &str| {
        let yaml = format!(
            "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"{WHSEC}\"]{yaml_extra} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
        );
        Config::from_yaml(&yaml, &HashMap::new()).unwrap_err()
    };
    let e = err(", tolerance: 5m", "github");
    assert_eq!(e.path, "routes[0].verify.tolerance", "{e}");
    let e = err(", header: X-Foo", "stripe");
    assert_eq!(e.path, "routes[0].verify.header", "{e}");
    assert!(e.message.contains("`tolerance`"), "{e}");
    let e = err("", "square");
    assert_eq!(e.path, "routes[0].verify.public_url", "{e}");
    let e = err(", public_url: \"https://x.test/h\"", "stripe");
    assert_eq!(e.path, "routes[0].verify.public_url", "{e}");
    let e = err(", public_url: \"https://x.test/h?a=1\"", "square");
    assert_eq!(e.path, "routes[0].verify.public_url", "{e}");
    let e = err(", tolerance: soon", "stripe");
    assert_eq!(e.path, "routes[0].verify.tolerance", "{e}");
    // Standard Webhooks secrets must be `whsec_` + base64.
    let yaml = "routes:\n  - name: t\n    path: /t\n    verify: { scheme: svix, secrets: [\"plain-secret\"] }\n    upstream: { url: \"http://127.0.0.1:9/\" }\n";
    let e = Config::from_yaml(yaml, &HashMap::new()).unwrap_err();
    assert_eq!(e.path, "routes[0].verify.secrets[0]", "{e}");
    assert!(!e.to_string().contains("plain-secret"), "{e}");
}
