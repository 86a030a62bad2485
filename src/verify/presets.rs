//! Providers as data: each preset is a named instance of the generic
//! descriptions (`hmac`, `header`, public-key signatures), plus what the route's event filter and
//! handshakes need to know about that sender.
//!
//! Adding a provider whose math the descriptions can express is one entry
//! here, its tests below, and its published vectors in `tests/vectors/`.
//! A preset without a published vector says so in its tests.

use std::time::Duration;

use http::HeaderName;

use super::template::Template;
use super::timestamp::{TimeUnit, TimestampSource, TimestampSpec};
use super::{
    Algorithm, Encoding, HmacSpec, KeyAlgorithm, KeyFormat, PublicKeySpec, SecretEncoding,
    SignatureSource,
};
use crate::events::Handshake;

/// A preset: its verification and what the event filter needs.
#[derive(Debug, Clone)]
pub struct Preset {
    pub kind: PresetKind,
    /// Where the event type is (`header:NAME` or `json:/pointer`).
    pub events_from: Option<&'static str>,
    /// Events answered 2xx and never forwarded unless the route says otherwise.
    pub ack_only: &'static [&'static str],
    /// A challenge the sender expects hookgate itself to answer.
    pub handshake: Option<Handshake>,
}

#[derive(Debug, Clone)]
pub enum PresetKind {
    Hmac(HmacSpec),
    /// A shared secret sent as a header value (GitLab's `X-Gitlab-Token`).
    Header(HeaderName),
    /// A signature checked with the sender's `public_keys` (verify only).
    PublicKey(PublicKeySpec),
}

/// Names of every preset, for error messages and docs.
pub const NAMES: &[&str] = &[
    "trutac",
    "timekit",
    "github",
    "gitlab",
    "okta",
    "bitbucket",
    "standard_webhooks",
    "svix",
    "clerk",
    "resend",
    "stripe",
    "shopify",
    "slack",
    "paddle",
    "pagerduty",
    "linear",
    "zoom",
    "typeform",
    "calendly",
    "zendesk",
    "intercom",
    "jira",
    "vercel",
    "xero",
    "quickbooks",
    "docusign",
    "hubspot",
    "twitch",
    "twilio",
    "square",
    "discord",
    "sendgrid",
];

/// The HMAC description of preset `name`, if it is an HMAC preset.
pub fn hmac_preset(name: &str) -> Option<HmacSpec> {
    match preset(name)?.kind {
        PresetKind::Hmac(spec) => Some(spec),
        PresetKind::Header(_) | PresetKind::PublicKey(_) => None,
    }
}

/// The public-key form of preset `name`: its only form for `discord` and
/// `sendgrid`; for `standard_webhooks` the asymmetric `v1a` signatures,
/// used when the route lists `public_keys` instead of `secrets`.
pub fn public_key_preset(name: &str) -> Option<PublicKeySpec> {
    match name {
        "standard_webhooks" => Some(standard_webhooks_v1a()),
        _ => match preset(name)?.kind {
            PresetKind::PublicKey(spec) => Some(spec),
            _ => None,
        },
    }
}

/// Standard Webhooks asymmetric signatures: `webhook-signature` list items
/// `v1a,<base64 Ed25519 signature>` over `{id}.{timestamp}.{body}`, keys
/// written `whpk_<base64>`; five minutes.
fn standard_webhooks_v1a() -> PublicKeySpec {
    PublicKeySpec {
        header: header("webhook-signature"),
        algorithm: KeyAlgorithm::Ed25519,
        key_format: KeyFormat::Whpk,
        encoding: Encoding::Base64,
        prefix: "v1a,".into(),
        separator: Some(" ".into()),
        payload: template("{header:webhook-id}.{timestamp}.{body}"),
        timestamp: timestamp("header:webhook-timestamp", TimeUnit::Seconds, 300),
    }
}

fn header(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// HMAC of the raw body in one header.
fn body(
    name: &'static str,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: &str,
) -> SignatureSource {
    SignatureSource::new(header(name), algorithm, encoding, prefix)
}

fn template(text: &str) -> Template {
    Template::parse(text).expect("preset templates are valid")
}

fn timestamp(source: &str, unit: TimeUnit, tolerance_secs: u64) -> Option<TimestampSpec> {
    Some(TimestampSpec {
        source: TimestampSource::parse(source).expect("preset timestamp sources are valid"),
        unit,
        tolerance: Duration::from_secs(tolerance_secs),
    })
}

/// Standard Webhooks with headers `{prefix}-id`, `-timestamp`, `-signature`.
fn standard_webhooks(prefix: &str) -> SignatureSource {
    let name = |suffix: &str| {
        HeaderName::from_bytes(format!("{prefix}-{suffix}").as_bytes()).expect("valid name")
    };
    SignatureSource {
        separator: Some(" ".into()),
        secret_encoding: SecretEncoding::Whsec,
        payload: template(&format!("{{header:{prefix}-id}}.{{timestamp}}.{{body}}")),
        timestamp: Some(TimestampSpec {
            source: TimestampSource::Header(name("timestamp")),
            unit: TimeUnit::Seconds,
            tolerance: Duration::from_secs(300),
        }),
        ..SignatureSource::new(
            name("signature"),
            Algorithm::Sha256,
            Encoding::Base64,
            "v1,",
        )
    }
}

/// The preset called `name`, if there is one.
pub fn preset(name: &str) -> Option<Preset> {
    use Algorithm::*;
    use Encoding::*;
    let hmac = |sources: Vec<SignatureSource>| PresetKind::Hmac(HmacSpec { sources });
    let mut p = Preset {
        kind: PresetKind::Header(header("x-unused")),
        events_from: None,
        ack_only: &[],
        handshake: None,
    };
    match name {
        // `TT-Hook-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
        "trutac" => {
            p.kind = hmac(vec![body("tt-hook-signature", Sha1, Hex, "sha1=")]);
            p.events_from = Some("header:TT-Hook-Event");
            p.ack_only = &["ping"];
        }
        // `X-Timekit-Signature: <hex HMAC-SHA256 of the body>`.
        "timekit" => p.kind = hmac(vec![body("x-timekit-signature", Sha256, Hex, "")]),
        // `X-Hub-Signature-256: sha256=<hex>`; the legacy SHA-1 header is
        // only consulted when the SHA-256 one is absent.
        "github" => {
            p.kind = hmac(vec![
                body("x-hub-signature-256", Sha256, Hex, "sha256="),
                body("x-hub-signature", Sha1, Hex, "sha1="),
            ]);
            p.events_from = Some("header:X-GitHub-Event");
            p.ack_only = &["ping"];
        }
        // `X-Gitlab-Token: <the secret token>`.
        "gitlab" => {
            p.kind = PresetKind::Header(header("x-gitlab-token"));
            p.events_from = Some("header:X-Gitlab-Event");
        }
        // Okta event hooks: the `Authorization` header carries the secret
        // configured in Okta, verbatim. Registering a hook sends a GET with
        // `X-Okta-Verification-Challenge`, answered by hookgate.
        // (No published vector: a shared secret has none.)
        "okta" => {
            p.kind = PresetKind::Header(header("authorization"));
            p.handshake = Some(Handshake::OktaVerification);
        }
        // Bitbucket Cloud and Data Center: `X-Hub-Signature: sha256=<hex>`.
        "bitbucket" => {
            p.kind = hmac(vec![body("x-hub-signature", Sha256, Hex, "sha256=")]);
            p.events_from = Some("header:X-Event-Key");
        }
        "standard_webhooks" => {
            p.kind = hmac(vec![standard_webhooks("webhook")]);
            p.events_from = Some("json:/type");
        }
        // Svix (and Clerk and Resend, which send through Svix) use Standard
        // Webhooks, with `svix-*` headers from older libraries.
        "svix" | "clerk" | "resend" => {
            p.kind = hmac(vec![
                standard_webhooks("webhook"),
                standard_webhooks("svix"),
            ]);
            p.events_from = Some("json:/type");
        }
        // `Stripe-Signature: t=<unix>,v1=<hex>,v1=<hex>` over `t.body`;
        // the `whsec_…` secret is used verbatim as UTF-8.
        "stripe" => {
            p.kind = hmac(vec![SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 300),
                ..body("stripe-signature", Sha256, Hex, "v1=")
            }]);
            p.events_from = Some("json:/type");
        }
        // Base64 HMAC-SHA256 of the body, in the classic or the newer header.
        "shopify" => {
            p.kind = hmac(vec![
                body("x-shopify-hmac-sha256", Sha256, Base64, ""),
                body("shopify-hmac-sha256", Sha256, Base64, ""),
            ]);
            p.events_from = Some("header:X-Shopify-Topic");
        }
        // `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`.
        "slack" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("v0:{timestamp}:{body}"),
                timestamp: timestamp("header:X-Slack-Request-Timestamp", TimeUnit::Seconds, 300),
                ..body("x-slack-signature", Sha256, Hex, "v0=")
            }]);
            p.events_from = Some("json:/type");
            p.handshake = Some(Handshake::SlackUrlVerification);
        }
        // Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>` over
        // `ts:body`; Paddle's SDKs allow 5 seconds.
        "paddle" => {
            p.kind = hmac(vec![SignatureSource {
                separator: Some(";".into()),
                payload: template("{timestamp}:{body}"),
                timestamp: timestamp("signature:ts", TimeUnit::Seconds, 5),
                ..body("paddle-signature", Sha256, Hex, "h1=")
            }]);
            p.events_from = Some("json:/event_type");
        }
        // `X-PagerDuty-Signature: v1=<hex>,v1=<hex>` (one per secret).
        "pagerduty" => {
            p.kind = hmac(vec![SignatureSource {
                separator: Some(",".into()),
                ..body("x-pagerduty-signature", Sha256, Hex, "v1=")
            }]);
            p.events_from = Some("json:/event/event_type");
        }
        // `Linear-Signature: <hex>` of the body; the body's
        // `webhookTimestamp` (milliseconds) must be within a minute.
        "linear" => {
            p.kind = hmac(vec![SignatureSource {
                timestamp: timestamp("json:/webhookTimestamp", TimeUnit::Milliseconds, 60),
                ..body("linear-signature", Sha256, Hex, "")
            }]);
            p.events_from = Some("json:/type");
        }
        // `x-zm-signature: v0=<hex>` over `v0:<timestamp>:<body>`.
        "zoom" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("v0:{timestamp}:{body}"),
                timestamp: timestamp("header:x-zm-request-timestamp", TimeUnit::Seconds, 300),
                ..body("x-zm-signature", Sha256, Hex, "v0=")
            }]);
            p.events_from = Some("json:/event");
            p.handshake = Some(Handshake::ZoomUrlValidation);
        }
        // `Typeform-Signature: sha256=<base64>` of the body.
        "typeform" => {
            p.kind = hmac(vec![body("typeform-signature", Sha256, Base64, "sha256=")]);
            p.events_from = Some("json:/event_type");
        }
        // `Calendly-Webhook-Signature: t=<unix>,v1=<hex>` over `t.body`;
        // Calendly's docs suggest a 3 minute window.
        "calendly" => {
            p.kind = hmac(vec![SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 180),
                ..body("calendly-webhook-signature", Sha256, Hex, "v1=")
            }]);
            p.events_from = Some("json:/event");
        }
        // Base64 HMAC-SHA256 of `timestamp + body`; the timestamp header
        // is RFC 3339.
        "zendesk" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("{timestamp}{body}"),
                timestamp: timestamp(
                    "header:X-Zendesk-Webhook-Signature-Timestamp",
                    TimeUnit::Rfc3339,
                    300,
                ),
                ..body("x-zendesk-webhook-signature", Sha256, Base64, "")
            }]);
            p.events_from = Some("json:/type");
        }
        // `X-Hub-Signature: sha1=<hex>` of the body.
        "intercom" => {
            p.kind = hmac(vec![body("x-hub-signature", Sha1, Hex, "sha1=")]);
            p.events_from = Some("json:/topic");
        }
        // Jira Cloud webhooks with a secret: `X-Hub-Signature: sha256=<hex>`.
        "jira" => {
            p.kind = hmac(vec![body("x-hub-signature", Sha256, Hex, "sha256=")]);
            p.events_from = Some("json:/webhookEvent");
        }
        // `x-vercel-signature: <hex HMAC-SHA1 of the body>`.
        "vercel" => {
            p.kind = hmac(vec![body("x-vercel-signature", Sha1, Hex, "")]);
            p.events_from = Some("json:/type");
        }
        // `x-xero-signature: <base64 HMAC-SHA256>`. Xero's intent-to-receive
        // check is answered by verification itself: 2xx or 401.
        "xero" => p.kind = hmac(vec![body("x-xero-signature", Sha256, Base64, "")]),
        // `intuit-signature: <base64 HMAC-SHA256>` with the verifier token.
        "quickbooks" => p.kind = hmac(vec![body("intuit-signature", Sha256, Base64, "")]),
        // DocuSign Connect sends one `X-DocuSign-Signature-N` per HMAC key
        // (up to 100); any of them may match any configured key.
        "docusign" => {
            let mut source = body("x-docusign-signature-1", Sha256, Base64, "");
            source.more_headers = (2..=100)
                .map(|n| {
                    HeaderName::from_bytes(format!("x-docusign-signature-{n}").as_bytes())
                        .expect("valid name")
                })
                .collect();
            p.kind = hmac(vec![source]);
            p.events_from = Some("json:/event");
        }
        // HubSpot v3: base64 HMAC-SHA256 of `method + URL + body +
        // timestamp(ms)`; five minutes.
        "hubspot" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("{method}{url}{body}{timestamp}"),
                timestamp: timestamp(
                    "header:X-HubSpot-Request-Timestamp",
                    TimeUnit::Milliseconds,
                    300,
                ),
                ..body("x-hubspot-signature-v3", Sha256, Base64, "")
            }]);
        }
        // Twitch EventSub: `sha256=<hex>` over `id + timestamp + body`,
        // the timestamp RFC 3339; Twitch says ten minutes.
        "twitch" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("{header:twitch-eventsub-message-id}{timestamp}{body}"),
                timestamp: timestamp(
                    "header:Twitch-Eventsub-Message-Timestamp",
                    TimeUnit::Rfc3339,
                    600,
                ),
                ..body("twitch-eventsub-message-signature", Sha256, Hex, "sha256=")
            }]);
            p.events_from = Some("header:Twitch-Eventsub-Subscription-Type");
            p.handshake = Some(Handshake::TwitchCallbackVerification);
        }
        // Twilio, as its SDK's `RequestValidator` (twilio 9.13): base64
        // HMAC-SHA1 of the full URL followed by the form parameters sorted
        // by name (each name's values sorted and de-duplicated); the URL is
        // tried with and without the default port. JSON requests carry
        // `bodySHA256=<hex SHA-256 of the body>` in the signed URL instead
        // of form parameters. Shared-key signatures say
        // `algorithm=HMAC_SHA256` in `X-Twilio-Webhooks-Signature-Settings`.
        "twilio" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("{url}{form_sorted}"),
                url_port_variants: true,
                algorithm_header: Some(header("x-twilio-webhooks-signature-settings")),
                body_sha256_param: Some("bodySHA256".into()),
                ..body("x-twilio-signature", Sha1, Base64, "")
            }]);
        }
        // Square: base64 HMAC-SHA256 of `notification URL + body`.
        "square" => {
            p.kind = hmac(vec![SignatureSource {
                payload: template("{url}{body}"),
                ..body("x-square-hmacsha256-signature", Sha256, Base64, "")
            }]);
            p.events_from = Some("json:/type");
        }
        // Discord interactions and webhook events: hex Ed25519 signature
        // of `timestamp + body`, the key from the developer portal in hex.
        // Discord documents no window; five minutes, like the others.
        "discord" => {
            p.kind = PresetKind::PublicKey(PublicKeySpec {
                header: header("x-signature-ed25519"),
                algorithm: KeyAlgorithm::Ed25519,
                key_format: KeyFormat::Hex,
                encoding: Hex,
                prefix: String::new(),
                separator: None,
                payload: template("{timestamp}{body}"),
                timestamp: timestamp("header:X-Signature-Timestamp", TimeUnit::Seconds, 300),
            });
        }
        // SendGrid (Twilio) signed event webhook: base64 DER ECDSA P-256
        // signature of `timestamp + body`, the key as base64 DER. SendGrid
        // documents no window; five minutes.
        "sendgrid" => {
            p.kind = PresetKind::PublicKey(PublicKeySpec {
                header: header("x-twilio-email-event-webhook-signature"),
                algorithm: KeyAlgorithm::EcdsaP256Sha256,
                key_format: KeyFormat::Base64Der,
                encoding: Base64,
                prefix: String::new(),
                separator: None,
                payload: template("{timestamp}{body}"),
                timestamp: timestamp(
                    "header:X-Twilio-Email-Event-Webhook-Timestamp",
                    TimeUnit::Seconds,
                    300,
                ),
            });
        }
        _ => return None,
    }
    Some(p)
}

#[cfg(test)]
mod public_key_tests;
#[cfg(test)]
mod tests;
