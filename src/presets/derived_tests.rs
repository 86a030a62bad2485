//! What is derived from the rows: the scheme list, each preset's default
//! dedup key and event source, and which request parts each signature
//! covers.

use super::*;
use crate::dedup::key::signed_body_digest;
use crate::dedup::KeyTemplate;
use crate::verify::{secrets, SpecKind, Trust, VerifySpec};

fn hmac(name: &str) -> Coverage {
    let spec = VerifySpec {
        scheme: name.into(),
        kind: SpecKind::Hmac {
            spec: hmac_preset(name).unwrap(),
            secrets: secrets(&["k"]),
        },
    };
    match spec.trust() {
        Trust::Signed(c) => c,
        other => panic!("{other:?}"),
    }
}

fn names(c: &Coverage) -> Vec<&str> {
    c.headers.iter().map(|h| h.as_str()).collect()
}

#[test]
fn derived_from_each_description() {
    // Body-only MACs: no header is signed.
    for name in ["trutac", "github", "shopify", "bitbucket", "timekit"] {
        let c = hmac(name);
        assert!(c.body && c.form && !c.url, "{name}");
        assert!(c.headers.is_empty(), "{name}: {:?}", names(&c));
    }
    assert_eq!(
        names(&hmac("standard_webhooks")),
        ["webhook-id", "webhook-timestamp"]
    );
    assert_eq!(
        names(&hmac("twitch")),
        [
            "twitch-eventsub-message-id",
            "twitch-eventsub-message-timestamp"
        ]
    );
    assert_eq!(names(&hmac("slack")), ["x-slack-request-timestamp"]);
    // Stripe's timestamp is in the signature header, Linear's in the body.
    assert!(hmac("stripe").headers.is_empty());
    assert!(hmac("linear").headers.is_empty());
    // Svix accepts `webhook-*` or `svix-*`: neither id header is signed
    // in every form, so neither counts.
    let svix = hmac("svix");
    assert!(svix.body && svix.headers.is_empty());
    // Twilio signs the URL and the sorted form parameters, not the raw
    // body: a reordered body verifies too.
    let twilio = hmac("twilio");
    assert!(twilio.url && twilio.form && !twilio.body);
    // HubSpot's v3 signs the URL, its v1 only the body: a replay picks the
    // form, so only the body counts.
    let hubspot = hmac("hubspot");
    assert!(hubspot.body && !hubspot.url && hubspot.headers.is_empty());
    // Box signs the body and its delivery timestamp header.
    assert_eq!(names(&hmac("box")), ["box-delivery-timestamp"]);
    // Trello signs the body and the callback URL; Mandrill the URL and the
    // sorted form parameters.
    let trello = hmac("trello");
    assert!(trello.body && trello.url);
    let mandrill = hmac("mandrill");
    assert!(mandrill.url && mandrill.form && !mandrill.body);
    // Mailgun signs two fields of its body, not the body: its event type
    // is unsigned and its dedup key is the signed token.
    let mailgun = hmac("mailgun");
    assert!(!mailgun.body && !mailgun.form && mailgun.headers.is_empty());
    assert_eq!(mailgun.json, ["/signature/timestamp", "/signature/token"]);
    assert!(!preset("mailgun")
        .unwrap()
        .event_source()
        .unwrap()
        .signed_by(&mailgun));
    assert_eq!(natural_key("mailgun"), Some("{json:/signature/token}"));
    // Shared secrets and basic authentication sign nothing.
    for name in ["telegram", "postmark", "chargebee", "okta", "gitlab"] {
        assert!(preset(name).unwrap().coverage().is_none(), "{name}");
    }
    let discord = Coverage::of(
        &public_key_preset("discord").unwrap().payload,
        public_key_preset("discord").unwrap().timestamp.as_ref(),
    );
    assert_eq!(names(&discord), ["x-signature-timestamp"]);
    assert!(discord.body);
}

#[test]
fn names_are_the_rows_in_order_and_unique() {
    let rows: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
    assert_eq!(NAMES, rows.as_slice());
    let mut unique = rows.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), rows.len());
    assert_eq!(&NAMES[..3], ["trutac", "timekit", "github"]);
}

#[test]
fn natural_keys_parse() {
    for scheme in ["standard_webhooks", "stripe"] {
        KeyTemplate::parse(natural_key(scheme).unwrap()).unwrap();
    }
    for unsigned_id in ["trutac", "github", "shopify", "svix"] {
        assert_eq!(natural_key(unsigned_id), None, "{unsigned_id}");
    }
}

/// A natural key is used only where every signature form of the preset
/// covers it, so each one must be signed by its own preset; a preset
/// without one falls back to the digest of what its signature covers.
#[test]
fn default_keys_are_covered_by_their_own_signatures() {
    for row in TABLE {
        let preset = row.preset();
        let Some(coverage) = preset.coverage() else {
            assert_eq!(
                row.dedup_key, None,
                "{}: a shared secret signs nothing",
                row.name
            );
            continue;
        };
        let forms = std::iter::once(coverage)
            .chain(public_key_preset(row.name).map(|pk| Coverage::of_public_key(&pk)));
        for coverage in forms {
            let text = natural_key(row.name).unwrap_or(signed_body_digest(&coverage));
            let key = KeyTemplate::parse(text).unwrap();
            if !coverage.body && !coverage.json.is_empty() {
                // Signed fields of an unsigned body (Mailgun): each field of
                // the key is one the signature covers on its own.
                let fields: Vec<&str> = text
                    .split('}')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.strip_prefix("{json:").expect("only json fields"))
                    .collect();
                assert!(!fields.is_empty(), "{}", row.name);
                for field in fields {
                    assert!(coverage.json_field(field), "{}: {field}", row.name);
                }
                continue;
            }
            assert_eq!(
                key.check_signed(row.name, &coverage),
                Ok(()),
                "{}",
                row.name
            );
        }
    }
    assert_eq!(
        signed_body_digest(&preset("twilio").unwrap().coverage().unwrap()),
        "{form_sha256}"
    );
}

#[test]
fn event_sources_parse_and_handshakes_are_where_they_were() {
    for row in TABLE {
        let preset = row.preset();
        assert_eq!(
            preset.event_source().map(|s| s.describe()).is_some(),
            preset.events_from.is_some(),
            "{}",
            row.name
        );
    }
    let from = |name: &str| preset(name).unwrap().event_source().map(|s| s.describe());
    assert_eq!(from("trutac").as_deref(), Some("header:tt-hook-event"));
    assert_eq!(from("pagerduty").as_deref(), Some("json:/event/event_type"));
    assert_eq!(from("hubspot"), None);
    let handshakes: Vec<(&str, Handshake)> = TABLE
        .iter()
        .filter_map(|r| Some((r.name, r.handshake?)))
        .collect();
    assert_eq!(
        handshakes,
        [
            ("okta", Handshake::OktaVerification),
            ("slack", Handshake::SlackUrlVerification),
            ("zoom", Handshake::ZoomUrlValidation),
            ("twitch", Handshake::TwitchCallbackVerification),
            ("meta", Handshake::MetaSubscription),
            ("whatsapp", Handshake::MetaSubscription),
            ("instagram", Handshake::MetaSubscription),
            ("dropbox", Handshake::DropboxChallenge),
            ("microsoft_graph", Handshake::GraphValidation),
        ]
    );
}

#[test]
fn header_names_hold_every_signature_timestamp_and_id_header() {
    let names: Vec<String> = header_names().iter().map(|h| h.to_string()).collect();
    for name in [
        "x-hub-signature-256",
        "x-hub-signature",
        "shopify-hmac-sha256",
        "svix-signature",
        "svix-id",
        "svix-timestamp",
        "webhook-id",
        "x-docusign-signature-100",
        "x-twilio-webhooks-signature-settings",
        "x-gitlab-token",
        "authorization",
        "x-signature-ed25519",
        "x-twilio-email-event-webhook-timestamp",
        "twitch-eventsub-message-id",
        "x-hubspot-request-timestamp",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}
