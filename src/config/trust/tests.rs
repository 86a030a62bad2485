//! Dedup keys and event filters against what each route's signature
//! covers, and the warnings `check` prints.

use std::collections::HashMap;

use super::super::{Config, ConfigError, DedupMode};
use crate::presets::{hmac_preset, preset, public_key_preset, PresetKind, NAMES};
use crate::verify::template::Part;
use crate::verify::SecretEncoding;

/// `, public_url: …` for the presets whose signature covers the URL.
fn public_url_of(name: &str) -> &'static str {
    let signs_url = hmac_preset(name)
        .is_some_and(|spec| spec.sources.iter().any(|s| s.payload.uses(&Part::Url)));
    if signs_url {
        ", public_url: \"https://x.test/in\""
    } else {
        ""
    }
}

/// A secret preset `name` accepts: `whsec_…` for Standard Webhooks,
/// `user:password` for basic authentication, else `plain` (valid base64 too).
fn secret_for(name: &str, plain: &'static str) -> &'static str {
    match preset(name).map(|p| p.kind) {
        Some(PresetKind::BasicAuth) => "u:0123456789abcdef",
        Some(PresetKind::Hmac(spec))
            if spec
                .sources
                .iter()
                .any(|s| s.secret_encoding == SecretEncoding::Whsec) =>
        {
            WHSEC
        }
        _ => plain,
    }
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ED25519_HEX: &str = "e73a4a1e8fc8de1e2b0a6d5d7c76a1bcbd1c0d2d1d9b6c8e1c3a2c0f1b2e3d4c";

/// A route with `verify` and `rest` (more route keys, YAML flow style).
fn route(verify: &str, rest: &str) -> Result<Config, ConfigError> {
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, verify: {{ {verify} }}, upstream: {{ url: \"http://127.0.0.1:9/\" }}{rest} }}\n"
    );
    Config::from_yaml(&yaml, &HashMap::new())
}

fn key_error(verify: &str, key: &str) -> String {
    let e = route(verify, &format!(", dedup: {{ key: \"{key}\" }}")).unwrap_err();
    assert_eq!(e.path, "routes[0].dedup.key", "{e}");
    e.message
}

const TRUTAC: &str = "scheme: trutac, secrets: [\"0123456789abcdef\"]";
const TWILIO: &str =
    "scheme: twilio, secrets: [\"0123456789abcdef\"], public_url: \"https://x.test/in\"";

#[test]
fn a_key_part_outside_the_signature_is_refused_naming_it_and_why() {
    let m = key_error(TRUTAC, "{header:TT-Hook-Event}:{json:/action}");
    assert!(
        m.starts_with("{header:tt-hook-event} is not covered by the `trutac` signature"),
        "{m}"
    );
    assert!(m.contains("not part of the signed payload"), "{m}");
    assert!(m.contains("signs the body"), "{m}");
    assert!(m.contains("forwarded again"), "{m}");
    assert!(m.contains("unsigned_key: allow"), "{m}");
    let m = key_error(TRUTAC, "{query:event_id}");
    assert!(m.contains("{query:event_id}") && m.contains("URL"), "{m}");
    for (scheme, header) in [
        ("github", "X-GitHub-Delivery"),
        ("shopify", "X-Shopify-Webhook-Id"),
    ] {
        let verify = format!("scheme: {scheme}, secrets: [\"0123456789abcdef\"]");
        let m = key_error(&verify, &format!("{{header:{header}}}"));
        assert!(m.contains(&header.to_ascii_lowercase()), "{m}");
    }
    // Svix accepts either header family: neither id is signed in both.
    let svix = format!("scheme: svix, secrets: [\"{WHSEC}\"]");
    assert!(key_error(&svix, "{header:svix-id}").contains("svix-id"));
    assert!(key_error(&svix, "{header:webhook-id}").contains("webhook-id"));
    // Twilio signs sorted form parameters, not the raw body.
    let m = key_error(TWILIO, "{body_sha256}");
    assert!(m.contains("{form_sha256}"), "{m}");
    assert!(key_error(TWILIO, "{json:/id}").contains("raw body"));
    // A generic description signing only a header: the fallback digest of
    // a `{query:}` key would not be signed.
    let generic = "scheme: hmac, header: X-Sig, algorithm: sha256, payload: \"{url}\", public_url: \"https://x.test/in\", secrets: [\"0123456789abcdef\"]";
    let m = key_error(generic, "{query:id}");
    assert!(m.contains("{body_sha256} (the key falls back to it"), "{m}");
}

#[test]
fn signed_parts_are_accepted() {
    for (verify, key) in [
        (TRUTAC, "{json:/action}:{json:/clocking/id}"),
        (TRUTAC, "trutac-{body_sha256}"),
        (TWILIO, "{query:id}:{form_sha256}"),
        (
            "scheme: square, secrets: [\"0123456789abcdef\"], public_url: \"https://x.test/in\"",
            "{query:id}{json:/event_id}",
        ),
        (&format!("scheme: standard_webhooks, secrets: [\"{WHSEC}\"]"), "{header:webhook-id}"),
        (
            "scheme: twitch, secrets: [\"0123456789abcdef\"]",
            "{header:Twitch-Eventsub-Message-Id}",
        ),
        (
            &format!("scheme: discord, public_keys: [\"{ED25519_HEX}\"]"),
            "{header:X-Signature-Timestamp}{json:/id}",
        ),
        (
            "scheme: hmac, header: X-Sig, algorithm: sha256, payload: \"{timestamp}.{body}\", timestamp: { from: \"header:X-Ts\" }, secrets: [\"0123456789abcdef\"]",
            "{header:X-Ts}:{json:/id}",
        ),
    ] {
        let c = route(verify, &format!(", dedup: {{ key: \"{key}\" }}"))
            .unwrap_or_else(|e| panic!("{verify} / {key}: {e}"));
        let DedupMode::On(d) = &c.routes[0].dedup else { panic!() };
        assert!(!d.unsigned_key_allowed);
    }
}

#[test]
fn shared_secret_and_unverified_routes_are_exempt() {
    for verify in [
        "scheme: header, header: X-Secret, secrets: [\"0123456789abcdef\"]",
        "scheme: api_key, secrets: [\"0123456789abcdef\"]",
        "scheme: gitlab, secrets: [\"0123456789abcdef\"]",
        "scheme: none",
    ] {
        route(verify, ", dedup: { key: \"{header:X-Event-Id}{query:n}\" }")
            .unwrap_or_else(|e| panic!("{verify}: {e}"));
    }
}

#[test]
fn unsigned_key_allow_gives_up_replay_protection_knowingly() {
    let c = route(
        TRUTAC,
        ", dedup: { key: \"{header:TT-Hook-Event}\", unsigned_key: allow }, events: { ack_only: [] }",
    )
    .unwrap();
    let DedupMode::On(d) = &c.routes[0].dedup else {
        panic!()
    };
    assert!(d.unsigned_key_allowed);
    let warnings = c.trust_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("route r: dedup.unsigned_key: allow"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("forwarded again"), "{warnings:?}");
    let e = route(
        TRUTAC,
        ", dedup: { key: \"{body_sha256}\", unsigned_key: yes }",
    )
    .unwrap_err();
    assert_eq!(e.path, "routes[0].dedup.unsigned_key", "{e}");
}

/// Every preset's default key uses only what its signature covers.
#[test]
fn every_preset_default_key_is_signed() {
    for name in NAMES {
        let verify = match *name {
            "discord" => format!("scheme: discord, public_keys: [\"{ED25519_HEX}\"]"),
            // Public-key presets like discord; same path.
            "sendgrid" | "telnyx" => continue,
            _ => format!(
                "scheme: {name}, secrets: [\"{}\"]{}",
                secret_for(name, "0123456789abcdef"),
                public_url_of(name)
            ),
        };
        let c = route(&verify, "").unwrap_or_else(|e| panic!("{name}: {e}"));
        let DedupMode::On(d) = &c.routes[0].dedup else {
            panic!("{name}")
        };
        let expected = match *name {
            "standard_webhooks" | "openai" => "{header:webhook-id}",
            "mailgun" => "{json:/signature/token}",
            "stripe" => "{json:/id}",
            "twilio" | "mandrill" => "{form_sha256}",
            _ => "{body_sha256}",
        };
        assert_eq!(d.key.as_str(), expected, "{name}");
    }
    assert!(public_key_preset("sendgrid").is_some());
}

#[test]
fn filtering_on_an_unsigned_event_type_warns() {
    // The trutac default answers `ping` itself: a filter on TT-Hook-Event.
    let c = route(TRUTAC, "").unwrap();
    let w = c.trust_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("header:tt-hook-event"), "{w:?}");
    assert!(w[0].contains("relabelled"), "{w:?}");
    // Forwarding every event filters nothing.
    let c = route(TRUTAC, ", events: { allow: [\"*\"], ack_only: [] }").unwrap();
    assert_eq!(c.trust_warnings(), Vec::<String>::new());
    // Signed types do not warn: Stripe's is in the body, and a
    // Twitch route may read the type from the body instead of its header.
    let stripe = "scheme: stripe, secrets: [\"0123456789abcdef\"]";
    assert!(route(stripe, ", events: { allow: [\"invoice.*\"] }")
        .unwrap()
        .trust_warnings()
        .is_empty());
    let twitch = "scheme: twitch, secrets: [\"0123456789abcdef\"]";
    assert_eq!(
        route(twitch, ", events: { allow: [\"channel.*\"] }")
            .unwrap()
            .trust_warnings()
            .len(),
        1
    );
    assert!(route(
        twitch,
        ", events: { from: \"json:/subscription/type\", allow: [\"channel.*\"] }"
    )
    .unwrap()
    .trust_warnings()
    .is_empty());
    // A shared secret signs nothing and is not judged.
    let gitlab = "scheme: gitlab, secrets: [\"0123456789abcdef\"]";
    assert!(route(gitlab, ", events: { allow: [\"Push Hook\"] }")
        .unwrap()
        .trust_warnings()
        .is_empty());
}

#[test]
fn empty_keys_are_refused_and_short_ones_warned() {
    for (verify, field) in [
        ("scheme: svix, secrets: [\"whsec_\"]", "routes[0].verify.secrets[0]"),
        (
            "scheme: hmac, header: X-Sig, algorithm: sha256, secret_encoding: base64, secrets: [\"ok\", \"====\"]",
            "routes[0].verify.secrets[0]",
        ),
    ] {
        let e = route(verify, "").unwrap_err();
        assert_eq!(e.path, field, "{e}");
    }
    let e = route("scheme: standard_webhooks, secrets: [\"whsec_\"]", "").unwrap_err();
    assert!(e.message.contains("empty key"), "{e}");
    assert!(!e.message.contains("whsec_"), "{e}");
    // Standard Webhooks secrets without `whsec_`, and unpadded, are keys.
    let unpadded = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".trim_end_matches('=');
    route(
        &format!("scheme: standard_webhooks, secrets: [\"{unpadded}\", \"{WHSEC}\"]"),
        "",
    )
    .unwrap();
    // 15 bytes warns, 16 does not; the warning names the index, not the value.
    let c = route(
        "scheme: trutac, secrets: [\"short-secret-15\", \"sixteen-bytes-ok\"]",
        ", events: { allow: [\"*\"], ack_only: [] }",
    )
    .unwrap();
    let w = c.trust_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("verify.secrets[0] is 15 bytes"), "{w:?}");
    assert!(!w[0].contains("short-secret-15"), "{w:?}");
    // `whsec_` + base64 of 8 bytes: the decoded length counts.
    let c = route(
        "scheme: standard_webhooks, secrets: [\"whsec_AAAAAAAAAAA=\"]",
        "",
    )
    .unwrap();
    assert!(c.trust_warnings()[0].contains("is 8 bytes"));
}

#[test]
fn a_timestamp_outside_the_payload_warns() {
    let generic = |payload: &str, from: &str| {
        route(
            &format!("scheme: hmac, header: X-Sig, algorithm: sha256, payload: \"{payload}\", timestamp: {{ from: \"{from}\" }}, secrets: [\"0123456789abcdef\"]"),
            "",
        )
        .unwrap()
        .trust_warnings()
    };
    let w = generic("{body}", "header:X-Ts");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("verify.timestamp header:x-ts is not in the signed payload"),
        "{w:?}"
    );
    assert!(generic("{timestamp}.{body}", "header:X-Ts").is_empty());
    // In the signed body (Linear's way) it is signed.
    assert!(generic("{body}", "json:/sent_at").is_empty());
    // Every preset signs its timestamp.
    let mut checked = 0;
    for name in NAMES {
        let url = public_url_of(name);
        // Standard Webhooks' secret is also valid base64 and plain text.
        let secret = secret_for(name, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let yaml = format!("scheme: {name}, secrets: [\"{secret}\"]{url}");
        // Public-key presets take no secrets: not HMAC, nothing to check.
        if let Ok(c) = route(&yaml, ", events: { allow: [\"*\"], ack_only: [] }") {
            let w = c.trust_warnings();
            assert!(!w.iter().any(|w| w.contains("timestamp")), "{name}: {w:?}");
            checked += 1;
        }
    }
    let public_key_only = NAMES
        .iter()
        .filter(|n| matches!(preset(n).unwrap().kind, PresetKind::PublicKey(_)))
        .count();
    assert_eq!(
        checked,
        NAMES.len() - public_key_only,
        "every HMAC and shared-secret preset"
    );
}
