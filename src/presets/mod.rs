//! Providers as data: one row of [`TABLE`] per sender. A row names the
//! preset, describes its signatures with the generic descriptions
//! (`hmac`, `header`, public-key signatures), and says where its event type
//! is, which events are only acknowledged, which handshake hookgate answers
//! for it and which event ID identifies its events. Everything else is
//! derived from the rows: [`NAMES`] (the scheme list), [`preset`] (what a
//! route gets), [`natural_key`] (the default dedup key) and, through
//! [`crate::verify::Coverage`], which request parts each signature covers.
//!
//! Adding a provider whose math the descriptions can express is one row
//! here, its tests in `tests.rs`, and its published vectors in
//! `tests/vectors/`. A preset without a published vector says so in its
//! tests. Its test event, which the console pre-fills, is in
//! `samples.rs`.
//!
//! This module sits above `verify` and `events` and imports both; neither
//! imports it, so the catalogue of senders never ties them together.

use std::time::Duration;

use http::HeaderName;

use crate::events::{EventSource, Handshake};
use crate::verify::pointer::Pointer;
use crate::verify::template::Template;
use crate::verify::timestamp::{TimeUnit, TimestampSource, TimestampSpec};
use crate::verify::{
    Algorithm, Coverage, Encoding, HmacSpec, KeyAlgorithm, KeyFormat, PublicKeySpec,
    SecretEncoding, SignatureSource,
};

/// A preset as a route gets it: its verification and what the event
/// filter needs.
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
    /// HTTP basic authentication: `Authorization: Basic …` carries one of
    /// the secrets, each written `user:password` (Postmark, Chargebee).
    BasicAuth,
    /// Microsoft Graph: each notification's `clientState` in the body is
    /// one of the secrets.
    ClientState,
}

impl Preset {
    /// Where the event type is, parsed.
    pub fn event_source(&self) -> Option<EventSource> {
        self.events_from
            .map(|f| EventSource::parse(f).expect("preset event sources are valid"))
    }

    /// What every signature form of this preset covers; `None` for a shared
    /// secret, which travels in the request and signs nothing.
    pub fn coverage(&self) -> Option<Coverage> {
        match &self.kind {
            PresetKind::Hmac(spec) => Some(Coverage::of_hmac(spec)),
            PresetKind::PublicKey(spec) => Some(Coverage::of_public_key(spec)),
            PresetKind::Header(_) | PresetKind::BasicAuth | PresetKind::ClientState => None,
        }
    }
}

/// One row of the table: everything hookgate knows about one sender. The
/// signature descriptions own heap data, so a row holds the function that
/// builds them; everything else is constant.
#[derive(Clone, Copy)]
pub struct Row {
    /// The `scheme` a route names.
    pub name: &'static str,
    /// How its requests are verified.
    verify: fn() -> PresetKind,
    /// A public-key form besides an HMAC one (standard_webhooks' `v1a`),
    /// used when the route lists `public_keys` instead of `secrets`.
    public_key: Option<fn() -> PublicKeySpec>,
    /// Where the event type is (`header:NAME` or `json:/pointer`).
    events_from: Option<&'static str>,
    /// Events answered 2xx and never forwarded unless the route says otherwise.
    ack_only: &'static [&'static str],
    /// A challenge the sender expects hookgate itself to answer.
    handshake: Option<Handshake>,
    /// The sender's own event ID, the dedup key of a route that sets none,
    /// when its signature covers it (`None`: the digest of the signed body).
    /// IDs sent in headers outside the signature (GitHub's
    /// `X-GitHub-Delivery`, Shopify's `X-Shopify-Webhook-Id`, Svix's
    /// `svix-id` when `webhook-*` headers may be used instead) do not
    /// qualify: a replayed copy could carry any value.
    dedup_key: Option<&'static str>,
}

impl Row {
    const fn new(name: &'static str, verify: fn() -> PresetKind) -> Row {
        Row {
            name,
            verify,
            public_key: None,
            events_from: None,
            ack_only: &[],
            handshake: None,
            dedup_key: None,
        }
    }

    const fn events(mut self, from: &'static str) -> Row {
        self.events_from = Some(from);
        self
    }

    const fn ack_only(mut self, events: &'static [&'static str]) -> Row {
        self.ack_only = events;
        self
    }

    const fn handshake(mut self, handshake: Handshake) -> Row {
        self.handshake = Some(handshake);
        self
    }

    const fn dedup_key(mut self, key: &'static str) -> Row {
        self.dedup_key = Some(key);
        self
    }

    const fn public_key(mut self, spec: fn() -> PublicKeySpec) -> Row {
        self.public_key = Some(spec);
        self
    }

    /// The preset a route with this scheme gets.
    pub fn preset(&self) -> Preset {
        Preset {
            kind: (self.verify)(),
            events_from: self.events_from,
            ack_only: self.ack_only,
            handshake: self.handshake,
        }
    }
}

/// Every preset, in the order error messages and docs list them.
pub const TABLE: &[Row] = {
    use Algorithm::*;
    use Encoding::*;
    &[
        // `TT-Hook-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
        Row::new("trutac", || {
            hmac([body("tt-hook-signature", Sha1, Hex, "sha1=")])
        })
        .events("header:TT-Hook-Event")
        .ack_only(&["ping"]),
        // `X-Timekit-Signature: <hex HMAC-SHA256 of the body>`.
        Row::new("timekit", || {
            hmac([body("x-timekit-signature", Sha256, Hex, "")])
        }),
        // `X-Hub-Signature-256: sha256=<hex>`; the legacy SHA-1 header is
        // only consulted when the SHA-256 one is absent.
        Row::new("github", || {
            hmac([
                body("x-hub-signature-256", Sha256, Hex, "sha256="),
                body("x-hub-signature", Sha1, Hex, "sha1="),
            ])
        })
        .events("header:X-GitHub-Event")
        .ack_only(&["ping"]),
        // `X-Gitlab-Token: <the secret token>`.
        Row::new("gitlab", || PresetKind::Header(header("x-gitlab-token")))
            .events("header:X-Gitlab-Event"),
        // Okta event hooks: the `Authorization` header carries the secret
        // configured in Okta, verbatim. Registering a hook sends a GET with
        // `X-Okta-Verification-Challenge`, answered by hookgate.
        // (No published vector: a shared secret has none.)
        Row::new("okta", || PresetKind::Header(header("authorization")))
            .handshake(Handshake::OktaVerification),
        // Bitbucket Cloud and Data Center: `X-Hub-Signature: sha256=<hex>`.
        Row::new("bitbucket", || {
            hmac([body("x-hub-signature", Sha256, Hex, "sha256=")])
        })
        .events("header:X-Event-Key"),
        // The signed `webhook-id` is the event's ID.
        Row::new("standard_webhooks", || hmac([standard_webhooks("webhook")]))
            .public_key(standard_webhooks_v1a)
            .events("json:/type")
            .dedup_key("{header:webhook-id}"),
        // Svix (and Clerk and Resend, which send through Svix) use Standard
        // Webhooks, with `svix-*` headers from older libraries.
        Row::new("svix", svix).events("json:/type"),
        Row::new("clerk", svix).events("json:/type"),
        Row::new("resend", svix).events("json:/type"),
        // `Stripe-Signature: t=<unix>,v1=<hex>,v1=<hex>` over `t.body`;
        // the `whsec_…` secret is used verbatim as UTF-8. The body's `id` is
        // the event's ID.
        Row::new("stripe", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 300),
                ..body("stripe-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/type")
        .dedup_key("{json:/id}"),
        // Base64 HMAC-SHA256 of the body, in the classic or the newer header;
        // the topic likewise in `X-Shopify-Topic` or `shopify-topic`.
        Row::new("shopify", || {
            hmac([
                body("x-shopify-hmac-sha256", Sha256, Base64, ""),
                body("shopify-hmac-sha256", Sha256, Base64, ""),
            ])
        })
        .events("header:X-Shopify-Topic,shopify-topic"),
        // `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`.
        Row::new("slack", || {
            hmac([SignatureSource {
                payload: template("v0:{timestamp}:{body}"),
                timestamp: timestamp("header:X-Slack-Request-Timestamp", TimeUnit::Seconds, 300),
                ..body("x-slack-signature", Sha256, Hex, "v0=")
            }])
        })
        .events("json:/type")
        .handshake(Handshake::SlackUrlVerification),
        // Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>` over
        // `ts:body`; Paddle's SDKs allow 5 seconds.
        Row::new("paddle", || {
            hmac([SignatureSource {
                separator: Some(";".into()),
                payload: template("{timestamp}:{body}"),
                timestamp: timestamp("signature:ts", TimeUnit::Seconds, 5),
                ..body("paddle-signature", Sha256, Hex, "h1=")
            }])
        })
        .events("json:/event_type"),
        // `X-PagerDuty-Signature: v1=<hex>,v1=<hex>` (one per secret).
        Row::new("pagerduty", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                ..body("x-pagerduty-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/event/event_type"),
        // `Linear-Signature: <hex>` of the body; the body's
        // `webhookTimestamp` (milliseconds) must be within a minute.
        Row::new("linear", || {
            hmac([SignatureSource {
                timestamp: timestamp("json:/webhookTimestamp", TimeUnit::Milliseconds, 60),
                ..body("linear-signature", Sha256, Hex, "")
            }])
        })
        .events("json:/type"),
        // `x-zm-signature: v0=<hex>` over `v0:<timestamp>:<body>`.
        Row::new("zoom", || {
            hmac([SignatureSource {
                payload: template("v0:{timestamp}:{body}"),
                timestamp: timestamp("header:x-zm-request-timestamp", TimeUnit::Seconds, 300),
                ..body("x-zm-signature", Sha256, Hex, "v0=")
            }])
        })
        .events("json:/event")
        .handshake(Handshake::ZoomUrlValidation),
        // `Typeform-Signature: sha256=<base64>` of the body.
        Row::new("typeform", || {
            hmac([body("typeform-signature", Sha256, Base64, "sha256=")])
        })
        .events("json:/event_type"),
        // `Calendly-Webhook-Signature: t=<unix>,v1=<hex>` over `t.body`;
        // Calendly's docs suggest a 3 minute window.
        Row::new("calendly", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 180),
                ..body("calendly-webhook-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/event"),
        // Base64 HMAC-SHA256 of `timestamp + body`; the timestamp header
        // is RFC 3339.
        Row::new("zendesk", || {
            hmac([SignatureSource {
                payload: template("{timestamp}{body}"),
                timestamp: timestamp(
                    "header:X-Zendesk-Webhook-Signature-Timestamp",
                    TimeUnit::Rfc3339,
                    300,
                ),
                ..body("x-zendesk-webhook-signature", Sha256, Base64, "")
            }])
        })
        .events("json:/type"),
        // `X-Hub-Signature: sha1=<hex>` of the body.
        Row::new("intercom", || {
            hmac([body("x-hub-signature", Sha1, Hex, "sha1=")])
        })
        .events("json:/topic"),
        // Jira Cloud webhooks with a secret: `X-Hub-Signature: sha256=<hex>`.
        Row::new("jira", || {
            hmac([body("x-hub-signature", Sha256, Hex, "sha256=")])
        })
        .events("json:/webhookEvent"),
        // `x-vercel-signature: <hex HMAC-SHA1 of the body>`.
        Row::new("vercel", || {
            hmac([body("x-vercel-signature", Sha1, Hex, "")])
        })
        .events("json:/type"),
        // `x-xero-signature: <base64 HMAC-SHA256>`. Xero's intent-to-receive
        // check is answered by verification itself: 2xx or 401.
        Row::new("xero", || {
            hmac([body("x-xero-signature", Sha256, Base64, "")])
        }),
        // `intuit-signature: <base64 HMAC-SHA256>` with the verifier token.
        Row::new("quickbooks", || {
            hmac([body("intuit-signature", Sha256, Base64, "")])
        }),
        // DocuSign Connect sends one `X-DocuSign-Signature-N` per HMAC key
        // (up to 100); any of them may match any configured key.
        Row::new("docusign", || {
            let mut source = body("x-docusign-signature-1", Sha256, Base64, "");
            source.more_headers = (2..=100)
                .map(|n| {
                    HeaderName::from_bytes(format!("x-docusign-signature-{n}").as_bytes())
                        .expect("valid name")
                })
                .collect();
            hmac([source])
        })
        .events("json:/event"),
        // HubSpot, by the signature version it sends. v3: base64
        // HMAC-SHA256 of `method + URL + body + timestamp(ms)` in
        // `X-HubSpot-Signature-v3`, five minutes; HubSpot signs the URL
        // with `%3A`, `%2F`, … decoded, so that form is tried too. v1 and v2 (older apps and
        // workflow webhooks): `X-HubSpot-Signature` is the hex SHA-256 (not
        // an HMAC) of the client secret followed by the body (v1) or by
        // `method + URL + body` (v2), chosen by
        // `X-HubSpot-Signature-Version`; they carry no timestamp.
        Row::new("hubspot", || {
            let version = |v: &str| Some((header("x-hubspot-signature-version"), v.to_string()));
            hmac([
                SignatureSource {
                    payload: template("{method}{url}{body}{timestamp}"),
                    timestamp: timestamp(
                        "header:X-HubSpot-Request-Timestamp",
                        TimeUnit::Milliseconds,
                        300,
                    ),
                    url_decode_reserved: true,
                    ..body("x-hubspot-signature-v3", Sha256, Base64, "")
                },
                SignatureSource {
                    payload: template("{method}{url}{body}"),
                    only_when: version("v2"),
                    ..body("x-hubspot-signature", SecretPrefixedSha256, Hex, "")
                },
                SignatureSource {
                    only_when: version("v1"),
                    ..body("x-hubspot-signature", SecretPrefixedSha256, Hex, "")
                },
            ])
        }),
        // Twitch EventSub: `sha256=<hex>` over `id + timestamp + body`,
        // the timestamp RFC 3339; Twitch says ten minutes.
        Row::new("twitch", || {
            hmac([SignatureSource {
                payload: template("{header:twitch-eventsub-message-id}{timestamp}{body}"),
                timestamp: timestamp(
                    "header:Twitch-Eventsub-Message-Timestamp",
                    TimeUnit::Rfc3339,
                    600,
                ),
                ..body("twitch-eventsub-message-signature", Sha256, Hex, "sha256=")
            }])
        })
        .events("header:Twitch-Eventsub-Subscription-Type")
        .handshake(Handshake::TwitchCallbackVerification),
        // Twilio, as its SDK's `RequestValidator` (twilio 9.13): base64
        // HMAC-SHA1 of the full URL followed by the form parameters sorted
        // by name (each name's values sorted and de-duplicated); the URL is
        // tried with and without the default port. JSON requests carry
        // `bodySHA256=<hex SHA-256 of the body>` in the signed URL instead
        // of form parameters. Shared-key signatures say
        // `algorithm=HMAC_SHA256` in `X-Twilio-Webhooks-Signature-Settings`.
        Row::new("twilio", || {
            hmac([SignatureSource {
                payload: template("{url}{form_sorted}"),
                url_port_variants: true,
                algorithm_header: Some(header("x-twilio-webhooks-signature-settings")),
                body_sha256_param: Some("bodySHA256".into()),
                ..body("x-twilio-signature", Sha1, Base64, "")
            }])
        }),
        // Square: base64 HMAC-SHA256 of `notification URL + body`.
        Row::new("square", || {
            hmac([SignatureSource {
                payload: template("{url}{body}"),
                ..body("x-square-hmacsha256-signature", Sha256, Base64, "")
            }])
        })
        .events("json:/type"),
        // Discord interactions and webhook events: hex Ed25519 signature
        // of `timestamp + body`, the key from the developer portal in hex.
        // Discord documents no window; five minutes, like the others.
        Row::new("discord", || {
            PresetKind::PublicKey(PublicKeySpec {
                header: header("x-signature-ed25519"),
                algorithm: KeyAlgorithm::Ed25519,
                key_format: KeyFormat::Hex,
                encoding: Hex,
                prefix: String::new(),
                separator: None,
                payload: template("{timestamp}{body}"),
                timestamp: timestamp("header:X-Signature-Timestamp", TimeUnit::Seconds, 300),
            })
        }),
        // SendGrid (Twilio) signed event webhook: base64 DER ECDSA P-256
        // signature of `timestamp + body`, the key as base64 DER. SendGrid
        // documents no window; five minutes.
        Row::new("sendgrid", || {
            PresetKind::PublicKey(PublicKeySpec {
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
            })
        }),
        // Meta (Facebook, WhatsApp Business, Instagram) Graph API webhooks:
        // `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` under
        // the app secret. The `hub.mode=subscribe` GET is answered with
        // `hub.challenge` when `hub.verify_token` is the route's
        // `verify_token`.
        Row::new("meta", meta)
            .events("json:/object")
            .handshake(Handshake::MetaSubscription),
        Row::new("whatsapp", meta)
            .events("json:/object")
            .handshake(Handshake::MetaSubscription),
        Row::new("instagram", meta)
            .events("json:/object")
            .handshake(Handshake::MetaSubscription),
        // LINE Messaging API: `x-line-signature: <base64 HMAC-SHA256 of the
        // body>` under the channel secret.
        Row::new("line", || {
            hmac([body("x-line-signature", Sha256, Base64, "")])
        }),
        // Razorpay: `X-Razorpay-Signature: <hex HMAC-SHA256 of the body>`.
        Row::new("razorpay", || {
            hmac([body("x-razorpay-signature", Sha256, Hex, "")])
        })
        .events("json:/event"),
        // GoCardless: `Webhook-Signature: <hex HMAC-SHA256 of the body>`.
        Row::new("gocardless", || {
            hmac([body("webhook-signature", Sha256, Hex, "")])
        }),
        // Coinbase Commerce: `X-CC-Webhook-Signature: <hex HMAC-SHA256>`.
        Row::new("coinbase_commerce", || {
            hmac([body("x-cc-webhook-signature", Sha256, Hex, "")])
        })
        .events("json:/event/type"),
        // Pusher Channels: `X-Pusher-Signature: <hex HMAC-SHA256 of the
        // body>` under the app secret (`X-Pusher-Key` names the app key).
        Row::new("pusher", || {
            hmac([body("x-pusher-signature", Sha256, Hex, "")])
        }),
        // Onfido: `X-SHA2-Signature: <hex HMAC-SHA256 of the body>`.
        Row::new("onfido", || {
            hmac([body("x-sha2-signature", Sha256, Hex, "")])
        })
        .events("json:/payload/action"),
        // Lemon Squeezy: `X-Signature: <hex HMAC-SHA256 of the body>`.
        Row::new("lemonsqueezy", || {
            hmac([body("x-signature", Sha256, Hex, "")])
        })
        .events("json:/meta/event_name"),
        // Sentry integration platform: `Sentry-Hook-Signature: <hex
        // HMAC-SHA256 of the body>` under the client secret.
        Row::new("sentry", || {
            hmac([body("sentry-hook-signature", Sha256, Hex, "")])
        })
        .events("header:Sentry-Hook-Resource"),
        // Cal.com: `X-Cal-Signature-256: <hex HMAC-SHA256 of the body>`.
        Row::new("cal_com", || {
            hmac([body("x-cal-signature-256", Sha256, Hex, "")])
        })
        .events("json:/triggerEvent"),
        // Gitea, Forgejo and Gogs: `X-…-Signature: <hex HMAC-SHA256 of the
        // body>`.
        Row::new("gitea", || {
            hmac([body("x-gitea-signature", Sha256, Hex, "")])
        })
        .events("header:X-Gitea-Event"),
        Row::new("forgejo", || {
            hmac([body("x-forgejo-signature", Sha256, Hex, "")])
        })
        .events("header:X-Forgejo-Event"),
        Row::new("gogs", || hmac([body("x-gogs-signature", Sha256, Hex, "")]))
            .events("header:X-Gogs-Event"),
        // CircleCI: `circleci-signature: v1=<hex HMAC-SHA256 of the body>`,
        // a comma-separated list so that other versions can be added.
        Row::new("circleci", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                ..body("circleci-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/type"),
        // Dropbox: `X-Dropbox-Signature: <hex HMAC-SHA256 of the body>`
        // under the app secret. The verification GET's `challenge` is
        // echoed (Dropbox does not sign it).
        Row::new("dropbox", || {
            hmac([body("x-dropbox-signature", Sha256, Hex, "")])
        })
        .handshake(Handshake::DropboxChallenge),
        // Airtable: `X-Airtable-Content-MAC: hmac-sha256=<hex>` of the body,
        // the key being the webhook's `macSecretBase64`, base64-decoded.
        Row::new("airtable", || {
            hmac([SignatureSource {
                secret_encoding: SecretEncoding::Base64,
                ..body("x-airtable-content-mac", Sha256, Hex, "hmac-sha256=")
            }])
        }),
        // Heroku app webhooks: `Heroku-Webhook-Hmac-SHA256: <base64>`.
        Row::new("heroku", || {
            hmac([body("heroku-webhook-hmac-sha256", Sha256, Base64, "")])
        }),
        // WooCommerce: `X-WC-Webhook-Signature: <base64 HMAC-SHA256>`.
        Row::new("woocommerce", || {
            hmac([body("x-wc-webhook-signature", Sha256, Base64, "")])
        })
        .events("header:X-WC-Webhook-Topic"),
        // WorkOS: `WorkOS-Signature: t=<ms>, v1=<hex>` over `t.body`; the
        // SDKs allow three minutes.
        Row::new("workos", || {
            hmac([SignatureSource {
                // WorkOS's SDKs split on exactly `, `.
                separator: Some(", ".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Milliseconds, 180),
                ..body("workos-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/event"),
        // Box: base64 HMAC-SHA256 of `body + BOX-DELIVERY-TIMESTAMP` under
        // the primary key in `BOX-SIGNATURE-PRIMARY` and under the
        // secondary key in `BOX-SIGNATURE-SECONDARY` (either may match
        // either configured key, so keys rotate); the SDKs allow ten
        // minutes.
        Row::new("box", || {
            hmac([SignatureSource {
                more_headers: vec![header("box-signature-secondary")],
                payload: template("{body}{timestamp}"),
                timestamp: timestamp("header:BOX-DELIVERY-TIMESTAMP", TimeUnit::Rfc3339, 600),
                ..body("box-signature-primary", Sha256, Base64, "")
            }])
        })
        .events("json:/trigger"),
        // Mux: `Mux-Signature: t=<unix>,v1=<hex>` over `t.body`.
        Row::new("mux", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 300),
                ..body("mux-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/type"),
        // Persona: `Persona-Signature: t=<unix>,v1=<hex>` over `t.body`;
        // while a secret rotates, two such pairs separated by a space.
        Row::new("persona", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                items_split_on_whitespace: true,
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 300),
                ..body("persona-signature", Sha256, Hex, "v1=")
            }])
        })
        .events("json:/data/attributes/name"),
        // Sanity: `sanity-webhook-signature: t=<ms>,v1=<base64url>` over
        // `t.body`.
        Row::new("sanity", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Milliseconds, 300),
                ..body("sanity-webhook-signature", Sha256, Base64Url, "v1=")
            }])
        }),
        // Buildkite with signed webhooks: `X-Buildkite-Signature:
        // timestamp=<unix>,signature=<hex>` over `timestamp.body`.
        Row::new("buildkite", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:timestamp", TimeUnit::Seconds, 300),
                ..body("x-buildkite-signature", Sha256, Hex, "signature=")
            }])
        })
        .events("json:/event"),
        // Trello: `X-Trello-Webhook: <base64 HMAC-SHA1 of body +
        // callbackURL>` under the application secret.
        Row::new("trello", || {
            hmac([SignatureSource {
                payload: template("{body}{url}"),
                ..body("x-trello-webhook", Sha1, Base64, "")
            }])
        })
        .events("json:/action/type"),
        // Mandrill: `X-Mandrill-Signature: <base64 HMAC-SHA1 of the
        // webhook URL followed by each form parameter's name and value,
        // sorted by name>`.
        Row::new("mandrill", || {
            hmac([SignatureSource {
                payload: template("{url}{form_sorted}"),
                ..body("x-mandrill-signature", Sha1, Base64, "")
            }])
        }),
        // Recurly: `recurly-signature: <ms>,<hex>,<hex>…`, the timestamp
        // first, then one hex HMAC-SHA256 of `timestamp.body` per active
        // key; five minutes.
        Row::new("recurly", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:#0", TimeUnit::Milliseconds, 300),
                ..body("recurly-signature", Sha256, Hex, "")
            }])
        }),
        // OpenAI: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
        // `webhook-signature`, `whsec_` secrets).
        Row::new("openai", || hmac([standard_webhooks("webhook")]))
            .events("json:/type")
            .dedup_key("{header:webhook-id}"),
        // ElevenLabs: `ElevenLabs-Signature: t=<unix>,v0=<hex>` over
        // `t.body`; the SDKs allow thirty minutes.
        Row::new("elevenlabs", || {
            hmac([SignatureSource {
                separator: Some(",".into()),
                payload: template("{timestamp}.{body}"),
                timestamp: timestamp("signature:t", TimeUnit::Seconds, 1800),
                ..body("elevenlabs-signature", Sha256, Hex, "v0=")
            }])
        })
        .events("json:/type"),
        // Telnyx: base64 Ed25519 signature of `timestamp|body`, the key
        // from the portal in base64; five minutes.
        Row::new("telnyx", || {
            PresetKind::PublicKey(PublicKeySpec {
                header: header("telnyx-signature-ed25519"),
                algorithm: KeyAlgorithm::Ed25519,
                key_format: KeyFormat::Base64,
                encoding: Base64,
                prefix: String::new(),
                separator: None,
                payload: template("{timestamp}|{body}"),
                timestamp: timestamp("header:telnyx-timestamp", TimeUnit::Seconds, 300),
            })
        })
        .events("json:/data/event_type"),
        // Mailgun: the JSON body's `signature` object carries `timestamp`,
        // `token` and `signature`, the hex HMAC-SHA256 of `timestamp +
        // token` under the webhook signing key. Mailgun does not sign the
        // rest of the body; the signed, single-use `token` is the dedup
        // key. Fifteen minutes, as Mailgun's Python SDK (`mailgun` 1.10's
        // `SecurityGuard.verify_webhook`) allows.
        Row::new("mailgun", || {
            hmac([SignatureSource {
                body_signature: Some(Pointer::parse("/signature/signature")),
                payload: template("{timestamp}{json:/signature/token}"),
                timestamp: timestamp("json:/signature/timestamp", TimeUnit::Seconds, 900),
                ..body(BODY_SIGNATURE, Sha256, Hex, "")
            }])
        })
        .events("json:/event-data/event")
        .dedup_key("{json:/signature/token}"),
        // Telegram Bot API: `X-Telegram-Bot-Api-Secret-Token` carries the
        // `secret_token` given to `setWebhook`, verbatim.
        Row::new("telegram", || {
            PresetKind::Header(header("x-telegram-bot-api-secret-token"))
        }),
        // Postmark and Chargebee: HTTP basic authentication, the secret
        // written `user:password`.
        Row::new("postmark", || PresetKind::BasicAuth).events("json:/RecordType"),
        Row::new("chargebee", || PresetKind::BasicAuth).events("json:/event_type"),
        // Microsoft Graph change notifications: unsigned; every
        // notification's `clientState` is the secret given when the
        // subscription was created. Creating one sends `validationToken` in
        // the query (a POST), echoed as text/plain. (No published vector: a
        // shared secret has none.)
        Row::new("microsoft_graph", || PresetKind::ClientState)
            .events("json:/value/0/changeType")
            .handshake(Handshake::GraphValidation),
    ]
};

/// The `header` of a signature source whose signature is in the body
/// (`body_signature`): never read, never sent.
const BODY_SIGNATURE: &str = "x-hookgate-signature-in-body";

/// Names of every preset, for error messages and docs.
pub const NAMES: &[&str] = &names();

const fn names() -> [&'static str; TABLE.len()] {
    let mut out = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        out[i] = TABLE[i].name;
        i += 1;
    }
    out
}

/// Every request header any preset reads to verify a request, each once,
/// in table order: signature headers (every DocuSign
/// `X-DocuSign-Signature-N`), timestamp and ID headers, Twilio's algorithm
/// header, HubSpot's version header, shared-secret headers, and those of the public-key forms. The
/// fuzz target `signature_headers` sends these.
pub fn header_names() -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for row in TABLE {
        for name in row_headers(row) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The request headers one row reads to verify, each once.
pub fn row_headers(row: &Row) -> Vec<HeaderName> {
    fn timestamp_header(ts: &Option<TimestampSpec>) -> Option<HeaderName> {
        match ts.as_ref().map(|t| &t.source) {
            Some(TimestampSource::Header(h)) => Some(h.clone()),
            _ => None,
        }
    }
    fn public_key(spec: PublicKeySpec, names: &mut Vec<HeaderName>) {
        names.push(spec.header.clone());
        names.extend(timestamp_header(&spec.timestamp));
        names.extend(spec.payload.headers().cloned());
    }
    let mut names = Vec::new();
    match (row.verify)() {
        PresetKind::Hmac(spec) => {
            for s in spec.sources {
                if s.body_signature.is_none() {
                    names.push(s.header.clone());
                }
                names.extend(s.more_headers.iter().cloned());
                names.extend(timestamp_header(&s.timestamp));
                names.extend(s.payload.headers().cloned());
                names.extend(s.algorithm_header.clone());
                names.extend(s.only_when.as_ref().map(|(h, _)| h.clone()));
            }
        }
        PresetKind::Header(h) => names.push(h),
        PresetKind::BasicAuth => names.push(http::header::AUTHORIZATION),
        PresetKind::ClientState => {}
        PresetKind::PublicKey(spec) => public_key(spec, &mut names),
    }
    if let Some(spec) = row.public_key {
        public_key(spec(), &mut names);
    }
    let mut out: Vec<HeaderName> = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The row of preset `name`.
pub fn row(name: &str) -> Option<&'static Row> {
    TABLE.iter().find(|row| row.name == name)
}

/// The preset called `name`, if there is one.
pub fn preset(name: &str) -> Option<Preset> {
    row(name).map(Row::preset)
}

/// The HMAC description of preset `name`, if it is an HMAC preset.
pub fn hmac_preset(name: &str) -> Option<HmacSpec> {
    match preset(name)?.kind {
        PresetKind::Hmac(spec) => Some(spec),
        PresetKind::Header(_)
        | PresetKind::PublicKey(_)
        | PresetKind::BasicAuth
        | PresetKind::ClientState => None,
    }
}

/// The public-key form of preset `name`: its only form for `discord` and
/// `sendgrid`; for `standard_webhooks` the asymmetric `v1a` signatures,
/// used when the route lists `public_keys` instead of `secrets`.
pub fn public_key_preset(name: &str) -> Option<PublicKeySpec> {
    let row = row(name)?;
    if let Some(spec) = row.public_key {
        return Some(spec());
    }
    match (row.verify)() {
        PresetKind::PublicKey(spec) => Some(spec),
        PresetKind::Hmac(_)
        | PresetKind::Header(_)
        | PresetKind::BasicAuth
        | PresetKind::ClientState => None,
    }
}

/// The natural event ID of a scheme's sender, used when a route has no
/// `dedup.key` and its signature covers it; `None` means the digest of the
/// signed body.
pub fn natural_key(scheme: &str) -> Option<&'static str> {
    row(scheme)?.dedup_key
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

/// Meta's Graph API webhooks (Facebook, WhatsApp, Instagram).
fn meta() -> PresetKind {
    hmac([body(
        "x-hub-signature-256",
        Algorithm::Sha256,
        Encoding::Hex,
        "sha256=",
    )])
}

/// Svix's two header spellings.
fn svix() -> PresetKind {
    hmac([standard_webhooks("webhook"), standard_webhooks("svix")])
}

fn hmac<const N: usize>(sources: [SignatureSource; N]) -> PresetKind {
    PresetKind::Hmac(HmacSpec {
        sources: sources.into(),
    })
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

pub mod describe;
pub mod samples;

#[cfg(test)]
mod derived_tests;
#[cfg(test)]
mod docs_tests;
#[cfg(test)]
mod fuzz_seeds;
#[cfg(test)]
mod public_key_tests;
#[cfg(test)]
mod source_tests;
#[cfg(test)]
mod tests;
