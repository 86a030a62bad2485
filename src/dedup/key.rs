//! Dedup key templates: which parts of a verified request identify its event.
//!
//! A template is literal text with parts in braces:
//! `{header:NAME}`, `{json:/json/pointer}` (RFC 6901), `{query:NAME}`,
//! `{body_sha256}` and `{form_sha256}`. A request that lacks a part (header
//! absent, body not JSON, pointer missing or not a scalar) is not rejected:
//! its key falls back to the digest of the signed body (`{body_sha256}`, or
//! `{form_sha256}` where only the form parameters are signed) and the
//! caller counts the fallback.
//!
//! A key is the event's identity against replays, so on a signed route it
//! may use only what the signature covers ([`KeyTemplate::check_signed`]):
//! a part anyone can change on a captured request would give the copy a
//! new key, and it would be forwarded again.

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use crate::verify::pointer::Pointer;
use crate::verify::template::form_sorted;
use crate::verify::Coverage;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Header(HeaderName),
    Json(Pointer),
    Query(String),
    BodySha256,
    /// The SHA-256 of the form parameters exactly as Twilio signs them.
    FormSha256,
}

impl Part {
    fn describe(&self) -> String {
        match self {
            Part::Literal(text) => text.clone(),
            Part::Header(h) => format!("{{header:{h}}}"),
            Part::Json(p) => format!("{{json:{}}}", p.as_str()),
            Part::Query(q) => format!("{{query:{q}}}"),
            Part::BodySha256 => BODY_SHA256.to_string(),
            Part::FormSha256 => FORM_SHA256.to_string(),
        }
    }

    /// Why the signature does not cover this part; `None` when it does.
    fn unsigned(&self, c: &Coverage) -> Option<String> {
        let body = if c.form {
            "the raw body is not signed, only its form parameters as sorted for the signature (a reordered body verifies too): use {form_sha256}"
        } else {
            "the body is not signed"
        };
        match self {
            Part::Header(h) if !c.header(h) => {
                Some(format!("header {h} is not part of the signed payload"))
            }
            Part::Query(_) if !c.url => Some("the URL and its query string are not signed".into()),
            Part::Json(_) | Part::BodySha256 if !c.body => Some(body.into()),
            Part::FormSha256 if !c.form => Some("the body is not signed".into()),
            _ => None,
        }
    }

    /// A part a request may lack, so that its key falls back.
    fn may_be_absent(&self) -> bool {
        matches!(self, Part::Header(_) | Part::Json(_) | Part::Query(_))
    }
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
    /// The whole-body digest used when a part is missing.
    fallback: Part,
}

/// The event's identity: a fixed-size digest of the key parts, so store
/// keys are bounded whatever the sender puts in its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKey(pub [u8; 32]);

impl EventKey {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

pub const BODY_SHA256: &str = "{body_sha256}";
pub const FORM_SHA256: &str = "{form_sha256}";

/// The digest of what a signature covers of the body: the raw body, or
/// where only the sorted form parameters are signed (Twilio), those.
pub fn signed_body_digest(coverage: &Coverage) -> &'static str {
    if !coverage.body && coverage.form {
        FORM_SHA256
    } else {
        BODY_SHA256
    }
}

impl KeyTemplate {
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unterminated `{{` in key template {source:?}"))?;
                    parts.push(Self::parse_part(&rest[1..end])?);
                    rest = &rest[end + 1..];
                }
                Some(pos) => {
                    parts.push(Part::Literal(rest[..pos].to_string()));
                    rest = &rest[pos..];
                }
                None => {
                    if rest.contains('}') {
                        return Err(format!("unmatched `}}` in key template {source:?}"));
                    }
                    parts.push(Part::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        if !parts.iter().any(|p| !matches!(p, Part::Literal(_))) {
            return Err(format!(
                "key template {source:?} has no part: use {{header:NAME}}, {{json:/pointer}}, {{query:NAME}}, {{body_sha256}} or {{form_sha256}}"
            ));
        }
        Ok(KeyTemplate {
            source: source.to_string(),
            parts,
            fallback: Part::BodySha256,
        })
    }

    /// Falls back to the digest of what the route's signature covers of
    /// the body.
    pub fn set_fallback(&mut self, coverage: &Coverage) {
        self.fallback = if signed_body_digest(coverage) == FORM_SHA256 {
            Part::FormSha256
        } else {
            Part::BodySha256
        };
    }

    /// Refuses a part the route's signature does not cover, naming it and
    /// why; also the fallback digest when a part may be missing.
    pub fn check_signed(&self, scheme: &str, coverage: &Coverage) -> Result<(), String> {
        let fallback = self
            .parts
            .iter()
            .any(Part::may_be_absent)
            .then_some(&self.fallback);
        for part in self.parts.iter().chain(fallback) {
            if let Some(why) = part.unsigned(coverage) {
                let via = if Some(part) == fallback {
                    " (the key falls back to it when a part is missing)"
                } else {
                    ""
                };
                return Err(format!(
                    "{}{via} is not covered by the `{scheme}` signature: {why}. `{scheme}` signs {}; a captured request replayed with this part changed or removed would get a new key and be forwarded again. Build the key from signed parts, or set `unsigned_key: allow` to give up replay protection on this route",
                    part.describe(),
                    coverage.describe()
                ));
            }
        }
        Ok(())
    }

    fn parse_part(inner: &str) -> Result<Part, String> {
        if inner == "body_sha256" {
            return Ok(Part::BodySha256);
        }
        if inner == "form_sha256" {
            return Ok(Part::FormSha256);
        }
        let (kind, arg) = inner.split_once(':').ok_or_else(|| unknown_part(inner))?;
        match kind {
            "header" => HeaderName::from_bytes(arg.as_bytes())
                .map(Part::Header)
                .map_err(|_| format!("{{header:{arg}}}: {arg:?} is not a valid header name")),
            "json" if arg.starts_with('/') => Ok(Part::Json(Pointer::parse(arg))),
            "json" => Err(format!(
                "{{json:{arg}}}: a JSON pointer starts with `/`, e.g. {{json:/event/id}}"
            )),
            "query" if !arg.is_empty() => Ok(Part::Query(arg.to_string())),
            _ => Err(unknown_part(inner)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The key of one verified request, and whether it fell back to the
    /// body digest because a part was missing.
    pub fn extract(
        &self,
        route: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> (EventKey, bool) {
        match self.values(headers, query, body) {
            Some(values) => (digest(route, values.iter().map(|v| v.as_slice())), false),
            None => {
                let body_digest = match self.fallback {
                    Part::FormSha256 => Sha256::digest(form_sorted(body)),
                    _ => Sha256::digest(body),
                };
                let fell_back = self.parts != [self.fallback.clone()];
                (digest(route, [body_digest.as_slice()]), fell_back)
            }
        }
    }

    /// The key's values as text, for operators (the dedup key on the
    /// console): digests as hex, joined by `|`, at most 200 bytes; `None`
    /// when a part is missing (the claim fell back to the body digest).
    pub fn display(&self, headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Option<String> {
        let values = self.values(headers, query, body)?;
        let text: Vec<String> = self
            .parts
            .iter()
            .zip(values)
            .map(|(part, value)| match part {
                Part::BodySha256 | Part::FormSha256 => hex::encode(value),
                _ => String::from_utf8_lossy(&value).into_owned(),
            })
            .collect();
        let mut text = text.join("|");
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        Some(text)
    }

    /// An ordering key: the digest of the key's values under `scope` (hex),
    /// or `None` when a part is missing (such an event is unordered).
    pub fn ordering(
        &self,
        scope: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Option<String> {
        let values = self.values(headers, query, body)?;
        Some(digest(scope, values.iter().map(|v| v.as_slice())).hex())
    }

    fn values(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Option<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let value = match part {
                Part::Literal(text) => text.as_bytes().to_vec(),
                Part::BodySha256 => Sha256::digest(body).to_vec(),
                Part::FormSha256 => Sha256::digest(form_sorted(body)).to_vec(),
                Part::Header(name) => headers.get(name)?.as_bytes().to_vec(),
                Part::Query(name) => form_urlencoded::parse(query?.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned().into_bytes())?,
                // null, objects and arrays do not identify an event.
                Part::Json(pointer) => pointer.find(body)?,
            };
            out.push(value);
        }
        Some(out)
    }
}

fn unknown_part(inner: &str) -> String {
    format!(
        "unknown key part {{{inner}}}: use {{header:NAME}}, {{json:/pointer}}, {{query:NAME}}, {{body_sha256}} or {{form_sha256}}"
    )
}

/// Route-namespaced digest. Each value is length-prefixed, so `a:b`+`c`
/// and `a`+`b:c` never collide.
fn digest<'a>(route: &str, values: impl IntoIterator<Item = &'a [u8]>) -> EventKey {
    let mut h = Sha256::new();
    h.update((route.len() as u64).to_be_bytes());
    h.update(route.as_bytes());
    for v in values {
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    EventKey(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TRUTAC: &str = "{header:TT-Hook-Event}:{json:/action}:{json:/clocking/id}";

    #[test]
    fn parses_the_issue_template() {
        let t = KeyTemplate::parse(TRUTAC).unwrap();
        assert_eq!(t.parts.len(), 5);
        assert_eq!(t.as_str(), TRUTAC);
        for bad in [
            "",
            "literal only",
            "{header:}",
            "{json:action}",
            "{nope:x}",
            "{body_sha256",
            "x}",
            "{query:}",
            "{header:bad name}",
        ] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn same_event_same_key_whatever_else_differs() {
        let t = KeyTemplate::parse(TRUTAC).unwrap();
        let h = headers(&[("TT-Hook-Event", "clocking"), ("X-Other", "1")]);
        let a = br#"{"action":"created","clocking":{"id":42},"sent_at":"10:00"}"#;
        let b = br#"{ "clocking": {"id": 42}, "action": "created", "sent_at": "10:05" }"#;
        let (ka, fa) = t.extract("trutac", &h, None, a);
        let (kb, fb) = t.extract(
            "trutac",
            &headers(&[("TT-Hook-Event", "clocking")]),
            None,
            b,
        );
        assert_eq!(ka, kb);
        assert!(!fa && !fb);
        let c = br#"{"action":"created","clocking":{"id":43}}"#;
        assert_ne!(t.extract("trutac", &h, None, c).0, ka);
        // Keys are namespaced by route.
        assert_ne!(t.extract("other", &h, None, a).0, ka);
    }

    #[test]
    fn missing_parts_fall_back_to_the_body_digest() {
        let t = KeyTemplate::parse(TRUTAC).unwrap();
        let body = b"not json";
        let (k, fell_back) = t.extract("r", &headers(&[("TT-Hook-Event", "x")]), None, body);
        assert!(fell_back);
        let plain = KeyTemplate::parse(BODY_SHA256).unwrap();
        let (k2, f2) = plain.extract("r", &HeaderMap::new(), None, body);
        assert_eq!(k, k2);
        assert!(!f2, "an explicit body_sha256 template is not a fallback");
        // Header absent, pointer missing, or pointing at an object: fallback.
        let json = br#"{"action":"a","clocking":{"id":{"nested":1}}}"#;
        assert!(t.extract("r", &HeaderMap::new(), None, json).1);
        assert!(
            t.extract(
                "r",
                &headers(&[("TT-Hook-Event", "x")]),
                None,
                br#"{"action":"a"}"#
            )
            .1
        );
        assert!(
            t.extract("r", &headers(&[("TT-Hook-Event", "x")]), None, json)
                .1
        );
    }

    #[test]
    fn query_and_numeric_json_parts() {
        let t = KeyTemplate::parse("{query:event_id}/{json:/n}").unwrap();
        let (a, fa) = t.extract(
            "r",
            &HeaderMap::new(),
            Some("x=1&event_id=ab%20c"),
            br#"{"n":7}"#,
        );
        let (b, _) = t.extract(
            "r",
            &HeaderMap::new(),
            Some("event_id=ab+c"),
            br#"{"n":7,"m":1}"#,
        );
        assert!(!fa);
        assert_eq!(a, b, "query values are compared decoded");
        assert!(t.extract("r", &HeaderMap::new(), None, br#"{"n":7}"#).1);
    }

    #[test]
    fn length_prefixing_prevents_ambiguous_joins() {
        let t = KeyTemplate::parse("{header:a}{header:b}").unwrap();
        let k1 = t
            .extract("r", &headers(&[("a", "xy"), ("b", "z")]), None, b"")
            .0;
        let k2 = t
            .extract("r", &headers(&[("a", "x"), ("b", "yz")]), None, b"")
            .0;
        assert_ne!(k1, k2);
    }
}
