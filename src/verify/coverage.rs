//! What a route's signature covers: the request parts a sender signs, which
//! nobody holding a captured request can change without failing
//! verification.
//!
//! Derived from each scheme's description (its payload template and where
//! its timestamp is), never listed per preset, so a new preset or a generic
//! `scheme: hmac` route is judged by the same rule. Configuration uses it
//! to refuse dedup keys built from parts anyone could change on a replayed
//! copy, and to warn about event filters that read an unsigned event type.

use http::HeaderName;

use super::template::{Part, Template};
use super::timestamp::{TimestampSource, TimestampSpec};
use super::{HmacSpec, PublicKeySpec, SpecKind, VerifySpec};

/// How much of a request a route's verification vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// `scheme: none`: nothing is verified.
    Unverified,
    /// A shared secret travels in the request itself (`header`, `api_key`
    /// and the presets built on them): whoever captured one request holds
    /// the secret, so which parts are "signed" does not apply.
    SharedSecret,
    /// A signature (HMAC or public key) over these parts.
    Signed(Coverage),
}

/// The parts a signature covers. With several accepted signature forms
/// (GitHub's SHA-256 and SHA-1 headers, Svix's `webhook-*` and `svix-*`),
/// only what every form signs counts: the sender of a replay picks the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The raw body bytes.
    pub body: bool,
    /// The form parameters as `{form_sorted}` canonicalises them (Twilio);
    /// a function of the body, so covered whenever the body is.
    pub form: bool,
    /// The URL, query string included (`{url}` appends it).
    pub url: bool,
    /// Header values in the payload, and a timestamp header the payload
    /// signs through `{timestamp}`.
    pub headers: Vec<HeaderName>,
    /// Fields of the JSON body signed one by one (`{json:/pointer}`, and a
    /// `json:` timestamp signed through `{timestamp}`), as pointers: what a
    /// signature that does not cover the whole body does cover (Mailgun).
    pub json: Vec<String>,
}

impl Coverage {
    /// What one signature form covers.
    pub fn of(payload: &Template, timestamp: Option<&TimestampSpec>) -> Coverage {
        let mut c = Coverage {
            body: false,
            form: false,
            url: false,
            headers: Vec::new(),
            json: Vec::new(),
        };
        for part in payload.parts() {
            match part {
                Part::Body => {
                    c.body = true;
                    c.form = true;
                }
                Part::FormSorted => c.form = true,
                Part::Url => c.url = true,
                Part::Header(h) => c.headers.push(h.clone()),
                Part::Json(p) => c.json.push(p.as_str().to_string()),
                Part::Timestamp => match timestamp.map(|t| &t.source) {
                    Some(TimestampSource::Header(h)) => c.headers.push(h.clone()),
                    Some(TimestampSource::Json(p)) => c.json.push(p.as_str().to_string()),
                    _ => {}
                },
                Part::Literal(_) | Part::Method => {}
            }
        }
        c
    }

    /// What every form of an HMAC description covers.
    pub fn of_hmac(spec: &HmacSpec) -> Coverage {
        let mut forms = spec
            .sources
            .iter()
            .map(|s| Coverage::of(&s.payload, s.timestamp.as_ref()));
        let first = forms.next().expect("an HMAC description has a source");
        forms.fold(first, |acc, c| acc.intersect(&c))
    }

    /// What a public-key signature covers.
    pub fn of_public_key(spec: &PublicKeySpec) -> Coverage {
        Coverage::of(&spec.payload, spec.timestamp.as_ref())
    }

    /// What both forms cover.
    fn intersect(self, other: &Coverage) -> Coverage {
        Coverage {
            body: self.body && other.body,
            form: self.form && other.form,
            url: self.url && other.url,
            headers: self
                .headers
                .into_iter()
                .filter(|h| other.headers.contains(h))
                .collect(),
            json: self
                .json
                .into_iter()
                .filter(|p| other.json.contains(p))
                .collect(),
        }
    }

    /// Whether the JSON body's field at `pointer` is signed: the whole body
    /// is, or that field is on its own.
    pub fn json_field(&self, pointer: &str) -> bool {
        self.body || self.json.iter().any(|p| p == pointer)
    }

    pub fn header(&self, name: &HeaderName) -> bool {
        self.headers.contains(name)
    }

    /// `the body, header webhook-id`, for error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.url {
            parts.push("the URL with its query".to_string());
        }
        if self.body {
            parts.push("the body".to_string());
        } else if self.form {
            parts.push("the form parameters (sorted, not the raw body)".to_string());
        }
        for h in &self.headers {
            parts.push(format!("header {h}"));
        }
        if !self.body {
            for p in &self.json {
                parts.push(format!("body field {p}"));
            }
        }
        if parts.is_empty() {
            return "no request part".to_string();
        }
        parts.join(", ")
    }
}

impl VerifySpec {
    /// What this route's verification vouches for.
    pub fn trust(&self) -> Trust {
        match &self.kind {
            SpecKind::None => Trust::Unverified,
            SpecKind::Header { .. } | SpecKind::ApiKey { .. } | SpecKind::ClientState { .. } => {
                Trust::SharedSecret
            }
            SpecKind::Hmac { spec, .. } => Trust::Signed(Coverage::of_hmac(spec)),
            SpecKind::PublicKey { spec, .. } => Trust::Signed(Coverage::of_public_key(spec)),
            // A token that does not sign the body is a bearer credential:
            // whoever captured one request can send it with another body
            // until it expires.
            SpecKind::Jwt { spec, .. } => match spec.body_sha256_claim {
                None => Trust::SharedSecret,
                Some(_) => Trust::Signed(Coverage {
                    body: true,
                    form: true,
                    url: false,
                    headers: Vec::new(),
                    json: Vec::new(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::secrets;

    #[test]
    fn shared_secrets_and_none_are_not_signatures() {
        let header = VerifySpec {
            scheme: "gitlab".into(),
            kind: SpecKind::Header {
                header: HeaderName::from_static("x-gitlab-token"),
                presented: crate::verify::Presented::Verbatim,
                secrets: secrets(&["k"]),
            },
        };
        assert_eq!(header.trust(), Trust::SharedSecret);
        let none = VerifySpec {
            scheme: "none".into(),
            kind: SpecKind::None,
        };
        assert_eq!(none.trust(), Trust::Unverified);
    }
}
