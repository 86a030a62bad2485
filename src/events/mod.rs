//! What to do with a verified request, by its event type: forward it,
//! acknowledge it without forwarding (`filtered`, `ack_only`), or answer a
//! sender's handshake (Slack, Zoom, Twitch) on the consumer's behalf.
//!
//! Runs only after verification succeeded: nothing here may be reached by
//! an unauthenticated request. The event type comes from sender input, so
//! it is never used as a metric label or echoed back. The one exception is
//! `challenge.rs`: the handshakes in the query string (Meta, Dropbox,
//! Microsoft Graph), which their senders do not sign; see its rules there.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::telemetry::Outcome;
use crate::verify::{Coverage, SpecKind, Verified, VerifySpec};
pub use challenge::{QueryHandshake, Refusal};

/// Where a sender puts the event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `header:NAME`
    Header(HeaderName),
    /// `header:NAME,OTHER`: the first of these headers the request has
    /// (Shopify sends `X-Shopify-Topic` or, newer, `shopify-topic`).
    Headers(Vec<HeaderName>),
    /// `json:/pointer` (RFC 6901) into the JSON body; a string value.
    Json(String),
}

impl EventSource {
    /// Parses `header:NAME` (or `header:NAME,OTHER`) or `json:/pointer`.
    pub fn parse(text: &str) -> Result<EventSource, String> {
        if let Some(h) = text.strip_prefix("header:") {
            let names = h
                .split(',')
                .map(|n| {
                    HeaderName::from_bytes(n.trim().as_bytes())
                        .map_err(|_| format!("{n:?} is not a valid header name"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(match <[HeaderName; 1]>::try_from(names) {
                Ok([one]) => EventSource::Header(one),
                Err(names) => EventSource::Headers(names),
            });
        }
        if let Some(p) = text.strip_prefix("json:") {
            if p.starts_with('/') {
                return Ok(EventSource::Json(p.to_string()));
            }
            return Err(format!("{p:?} is not a JSON pointer: it starts with `/`"));
        }
        Err(format!(
            "{text:?}: expected `header:NAME` or `json:/pointer`"
        ))
    }

    /// Whether a signature with this coverage signs the event type, so a
    /// captured request cannot be relabelled past the route's filters.
    /// The header a sender sets the event type in (the first, when the
    /// sender has used several names); `None` when it is in the body.
    pub fn header(&self) -> Option<&HeaderName> {
        match self {
            EventSource::Header(h) => Some(h),
            EventSource::Headers(hs) => hs.first(),
            EventSource::Json(_) => None,
        }
    }

    pub fn signed_by(&self, coverage: &Coverage) -> bool {
        match self {
            EventSource::Header(h) => coverage.header(h),
            EventSource::Headers(hs) => hs.iter().all(|h| coverage.header(h)),
            EventSource::Json(p) => coverage.json_field(p),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            EventSource::Header(h) => format!("header:{h}"),
            EventSource::Headers(hs) => format!(
                "header:{}",
                hs.iter()
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            EventSource::Json(p) => format!("json:{p}"),
        }
    }

    /// The event type of a stored event (its headers and body), if it has one.
    pub fn event_type(&self, headers: &HeaderMap, body: &[u8]) -> Option<String> {
        self.event(headers, &Json::new(body))
    }

    /// The event type of a request, if it has one.
    fn event(&self, headers: &HeaderMap, json: &Json<'_>) -> Option<String> {
        match self {
            EventSource::Header(h) => headers.get(h)?.to_str().ok().map(str::to_string),
            EventSource::Headers(hs) => hs
                .iter()
                .find_map(|h| headers.get(h))?
                .to_str()
                .ok()
                .map(str::to_string),
            EventSource::Json(p) => json.get()?.pointer(p)?.as_str().map(str::to_string),
        }
    }
}

/// A challenge some senders send when a webhook URL is registered, which
/// hookgate answers itself once the request is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Slack Events API `{"type":"url_verification","challenge":…}`:
    /// answered `{"challenge":…}`.
    SlackUrlVerification,
    /// Zoom `{"event":"endpoint.url_validation","payload":{"plainToken":…}}`:
    /// answered with the token and its hex HMAC-SHA256 under the secret.
    ZoomUrlValidation,
    /// Twitch EventSub `Twitch-Eventsub-Message-Type:
    /// webhook_callback_verification`: the `challenge` echoed as text.
    TwitchCallbackVerification,
    /// Okta event hooks: a `GET` with `X-Okta-Verification-Challenge`,
    /// answered `{"verification": <the challenge>}`.
    OktaVerification,
    /// Meta (Facebook, WhatsApp, Instagram): a `GET` with
    /// `hub.mode=subscribe`, `hub.verify_token` and `hub.challenge`,
    /// answered with the challenge when the token is the route's
    /// `verify_token` (`challenge.rs`).
    MetaSubscription,
    /// Dropbox: a `GET` with `challenge`, echoed.
    DropboxChallenge,
    /// Microsoft Graph: a `POST` (or `GET`) with `validationToken`, echoed.
    GraphValidation,
}

impl Handshake {
    /// What hookgate answers, for `hookgate presets` and the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Handshake::SlackUrlVerification => "answers `url_verification` with its `challenge`",
            Handshake::ZoomUrlValidation => {
                "answers `endpoint.url_validation` with the token and its HMAC"
            }
            Handshake::TwitchCallbackVerification => {
                "echoes `webhook_callback_verification` challenges"
            }
            Handshake::OktaVerification => {
                "answers the verified `GET` with `X-Okta-Verification-Challenge`"
            }
            Handshake::MetaSubscription => {
                "answers the `hub.mode=subscribe` `GET` with `hub.challenge` when `hub.verify_token` is the route's `verify_token` (else 403)"
            }
            Handshake::DropboxChallenge => {
                "echoes the `challenge` of the verification `GET` (text/plain, nosniff)"
            }
            Handshake::GraphValidation => {
                "echoes `validationToken` from the query of a `POST` or `GET` (text/plain)"
            }
        }
    }
}

/// A route's event policy, as configured (presets fill in the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPolicy {
    pub from: Option<EventSource>,
    /// Patterns of events to forward; `*` matches any run of characters.
    pub allow: Vec<String>,
    /// Patterns of events acknowledged and never forwarded.
    pub ack_only: Vec<String>,
    pub handshake: Option<Handshake>,
}

impl Default for EventPolicy {
    fn default() -> Self {
        EventPolicy {
            from: None,
            allow: vec!["*".into()],
            ack_only: Vec::new(),
            handshake: None,
        }
    }
}

impl EventPolicy {
    /// Whether the event type decides anything (`allow` narrower than `*`,
    /// or some `ack_only` pattern).
    pub fn filters(&self) -> bool {
        self.allow != ["*"] || !self.ack_only.is_empty()
    }

    /// One line for `hookgate check`.
    pub fn summary(&self) -> String {
        let mut s = match &self.from {
            None => "all forwarded".to_string(),
            Some(from) => format!(
                "from {}, allow [{}], ack_only [{}]",
                from.describe(),
                self.allow.join(", "),
                self.ack_only.join(", ")
            ),
        };
        if let Some(h) = self.handshake {
            s.push_str(&format!(", answers {h:?}"));
        }
        s
    }
}

/// What the handler does with a verified request.
#[derive(Debug)]
pub enum Decision {
    Forward,
    /// Answer the sender now; nothing is forwarded.
    Answer {
        outcome: Outcome,
        response: Response<Full<Bytes>>,
    },
}

/// A route's event policy, ready to decide.
pub struct Events {
    policy: EventPolicy,
    /// Zoom's handshake key per secret, in secret order.
    zoom_keys: Vec<Hmac<Sha256>>,
    /// Meta's, Dropbox's or Graph's handshake, answered before the body.
    query: Option<QueryHandshake>,
}

impl Events {
    pub fn new(policy: &EventPolicy, verify: &VerifySpec) -> Events {
        let zoom_keys = match (&policy.handshake, &verify.kind) {
            (Some(Handshake::ZoomUrlValidation), SpecKind::Hmac { secrets, .. }) => secrets
                .iter()
                .map(|s| {
                    Hmac::new_from_slice(s.expose_secret().as_bytes())
                        .expect("HMAC takes keys of any length")
                })
                .collect(),
            _ => Vec::new(),
        };
        Events {
            policy: policy.clone(),
            zoom_keys,
            query: policy.handshake.and_then(|h| QueryHandshake::new(h, None)),
        }
    }

    /// With Meta's verify token (the route's `verify.verify_token`);
    /// without one, Meta's subscription `GET` is always refused.
    pub fn with_verify_token(mut self, verify_token: Option<&SecretString>) -> Events {
        self.query = self
            .policy
            .handshake
            .and_then(|h| QueryHandshake::new(h, verify_token));
        self
    }

    /// The handshake this route answers from the query string, if any.
    pub fn query_handshake(&self) -> Option<&QueryHandshake> {
        self.query.as_ref()
    }

    /// Decides for a request that `verified` accepted.
    pub fn decide(&self, headers: &HeaderMap, body: &[u8], verified: &Verified) -> Decision {
        let json = Json::new(body);
        if let Some(response) = self.handshake(headers, &json, verified) {
            return Decision::Answer {
                outcome: Outcome::AckOnly,
                response,
            };
        }
        let Some(from) = &self.policy.from else {
            return Decision::Forward;
        };
        // A request without an event type is the empty event: only `*`
        // patterns match it.
        let event = from.event(headers, &json).unwrap_or_default();
        if matches_any(&self.policy.ack_only, &event) {
            return Decision::Answer {
                outcome: Outcome::AckOnly,
                response: acknowledged(),
            };
        }
        if !matches_any(&self.policy.allow, &event) {
            return Decision::Answer {
                outcome: Outcome::Filtered,
                response: acknowledged(),
            };
        }
        Decision::Forward
    }

    /// Whether this route answers a verified `GET` (Okta's challenge).
    pub fn answers_get(&self) -> bool {
        self.policy.handshake == Some(Handshake::OktaVerification)
    }

    /// The answer to a verified `GET`, if it is Okta's one-time challenge.
    pub fn get_challenge(&self, headers: &HeaderMap) -> Option<Response<Full<Bytes>>> {
        if !self.answers_get() {
            return None;
        }
        let challenge = headers
            .get("x-okta-verification-challenge")?
            .to_str()
            .ok()?;
        Some(json_response(
            serde_json::json!({ "verification": challenge }),
        ))
    }

    fn handshake(
        &self,
        headers: &HeaderMap,
        json: &Json<'_>,
        verified: &Verified,
    ) -> Option<Response<Full<Bytes>>> {
        match self.policy.handshake? {
            Handshake::SlackUrlVerification => {
                let doc = json.get()?;
                if doc.get("type")?.as_str()? != "url_verification" {
                    return None;
                }
                let challenge = doc.get("challenge")?.as_str()?;
                Some(json_response(serde_json::json!({ "challenge": challenge })))
            }
            Handshake::ZoomUrlValidation => {
                let doc = json.get()?;
                if doc.get("event")?.as_str()? != "endpoint.url_validation" {
                    return None;
                }
                let plain = doc.pointer("/payload/plainToken")?.as_str()?;
                let mut mac = self.zoom_keys.get(verified.secret_index?)?.clone();
                mac.update(plain.as_bytes());
                let encrypted = hex::encode(mac.finalize().into_bytes());
                Some(json_response(serde_json::json!({
                    "plainToken": plain,
                    "encryptedToken": encrypted,
                })))
            }
            Handshake::TwitchCallbackVerification => {
                let kind = headers.get("twitch-eventsub-message-type")?;
                if kind.as_bytes() != b"webhook_callback_verification" {
                    return None;
                }
                let challenge = json.get()?.get("challenge")?.as_str()?.to_string();
                let mut r = Response::new(Full::new(Bytes::from(challenge)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Some(r)
            }
            // Answered before a body is read (`get_challenge`,
            // `challenge.rs`).
            Handshake::OktaVerification
            | Handshake::MetaSubscription
            | Handshake::DropboxChallenge
            | Handshake::GraphValidation => None,
        }
    }
}

/// The JSON body, parsed at most once and only when needed.
struct Json<'a> {
    body: &'a [u8],
    parsed: std::cell::OnceCell<Option<serde_json::Value>>,
}

impl<'a> Json<'a> {
    fn new(body: &'a [u8]) -> Self {
        Json {
            body,
            parsed: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> Option<&serde_json::Value> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }
}

fn json_response(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The answer to a verified event that is not forwarded.
fn acknowledged() -> Response<Full<Bytes>> {
    let mut r = json_response(serde_json::json!({ "ok": true, "forwarded": false }));
    *r.status_mut() = StatusCode::OK;
    r
}

fn matches_any(patterns: &[String], event: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p.as_bytes(), event.as_bytes()))
}

/// `*` matches any run of bytes (including none); everything else matches
/// itself. Iterative with one backtrack point, so linear-ish and no
/// recursion on hostile input.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

pub mod challenge;
#[cfg(test)]
mod tests;
