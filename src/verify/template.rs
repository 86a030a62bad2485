//! The signed payload as a template: which bytes a sender feeds to its MAC.
//!
//! `{body}` is the raw body, `{timestamp}` the timestamp exactly as sent,
//! `{header:NAME}` a request header's value, `{method}` the HTTP method,
//! `{url}` the route's `public_url` with the request's query string,
//! `{form_sorted}` the form-encoded body's parameters as Twilio's SDK signs
//! them (names sorted, each name's values sorted and de-duplicated, written
//! as `namevalue…`), and `{json:/pointer}` a string or number of the JSON
//! body (Mailgun signs the body's `/signature/timestamp` and
//! `/signature/token`, not the body). `{{` and `}}` are literal braces.
//!
//! Templates are parsed once, at start-up; rendering borrows the body
//! instead of copying it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use http::{HeaderMap, HeaderName};

use super::pointer::{Found, Pointer};
use super::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Body,
    Timestamp,
    Header(HeaderName),
    Method,
    Url,
    FormSorted,
    /// A scalar of the JSON body, found by the streaming pointer scanner
    /// (the body is not yet authenticated, so no document tree is built).
    Json(Pointer),
}

/// A parsed payload template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Default for Template {
    /// The raw body, nothing else.
    fn default() -> Self {
        Template {
            parts: vec![Part::Body],
        }
    }
}

/// The values a template is rendered from.
pub struct Values<'a> {
    pub body: &'a [u8],
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    /// The timestamp text as sent, when the description has one.
    pub timestamp: Option<&'a str>,
    /// The public URL with the query string, when the template uses it.
    pub url: Option<&'a str>,
    /// Whether `{form_sorted}` reads the body's form parameters; `false`
    /// for Twilio's JSON requests, whose body is signed by its hash in the
    /// URL instead (`{form_sorted}` is then empty, as in Twilio's SDK).
    pub form: bool,
}

impl Template {
    /// Parses `text`; the error says what is wrong, for the config error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                literal.push(c);
                rest = &rest[2..];
                continue;
            }
            if c == '}' {
                return Err("unmatched `}` (write `}}` for a literal brace)".into());
            }
            if c != '{' {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest
                .find('}')
                .ok_or("unclosed `{` (write `{{` for a literal brace)")?;
            let name = &rest[1..end];
            let part = match name {
                "body" => Part::Body,
                "timestamp" => Part::Timestamp,
                "method" => Part::Method,
                "url" => Part::Url,
                "form_sorted" => Part::FormSorted,
                other => match (other.strip_prefix("header:"), other.strip_prefix("json:")) {
                    (Some(h), _) => Part::Header(
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("{h:?} is not a valid header name"))?,
                    ),
                    (_, Some(p)) if p.starts_with('/') => Part::Json(Pointer::parse(p)),
                    (_, Some(p)) => {
                        return Err(format!("{{json:{p}}}: a JSON pointer starts with `/`"))
                    }
                    (None, None) => {
                        return Err(format!(
                        "unknown placeholder {{{other}}}: expected {{body}}, {{timestamp}}, {{header:NAME}}, {{json:/pointer}}, {{method}}, {{url}} or {{form_sorted}}"
                    ))
                    }
                },
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err("the payload template is empty".into());
        }
        Ok(Template { parts })
    }

    /// The template's parts, in order (what a signature covers is derived
    /// from them).
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn uses(&self, part: &Part) -> bool {
        self.parts.contains(part)
    }

    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.parts.iter().filter_map(|p| match p {
            Part::Header(h) => Some(h),
            _ => None,
        })
    }

    /// The template as written, for summaries.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.replace('{', "{{").replace('}', "}}"),
                Part::Body => "{body}".into(),
                Part::Timestamp => "{timestamp}".into(),
                Part::Header(h) => format!("{{header:{h}}}"),
                Part::Method => "{method}".into(),
                Part::Url => "{url}".into(),
                Part::FormSorted => "{form_sorted}".into(),
                Part::Json(p) => format!("{{json:{}}}", p.as_str()),
            })
            .collect()
    }

    /// The payload's pieces, in order; a missing header is missing
    /// credentials, since the sender did not send what it signs.
    pub fn render<'a>(&'a self, v: &Values<'a>) -> Result<Vec<Cow<'a, [u8]>>, VerifyError> {
        let mut out = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            out.push(match part {
                Part::Literal(s) => Cow::Borrowed(s.as_bytes()),
                Part::Body => Cow::Borrowed(v.body),
                Part::Timestamp => Cow::Borrowed(
                    v.timestamp
                        .ok_or(VerifyError::MissingCredentials)?
                        .as_bytes(),
                ),
                Part::Header(h) => Cow::Borrowed(
                    v.headers
                        .get(h)
                        .ok_or(VerifyError::MissingCredentials)?
                        .as_bytes(),
                ),
                Part::Method => Cow::Borrowed(v.method.as_bytes()),
                Part::Url => Cow::Borrowed(v.url.unwrap_or_default().as_bytes()),
                Part::FormSorted if v.form => Cow::Owned(form_sorted(v.body)),
                Part::FormSorted => Cow::Borrowed(&[][..]),
                // A signed field the body lacks is missing credentials; one
                // that is not a string or number (or a body that is not
                // JSON) is malformed.
                Part::Json(p) => match p.lookup(v.body) {
                    Some(Found::Scalar(bytes)) => Cow::Owned(bytes),
                    Some(Found::Missing) => return Err(VerifyError::MissingCredentials),
                    Some(Found::NotScalar) | None => return Err(VerifyError::MalformedSignature),
                },
            });
        }
        Ok(out)
    }
}

/// `application/x-www-form-urlencoded` parameters as Twilio's SDK signs
/// them (`RequestValidator.compute_signature`): decoded, each distinct name
/// in sorted order followed by each of its distinct values in sorted order,
/// concatenated as `namevalue`. Bytes that do not decode are kept as sent.
///
/// A request's dedup key `{form_sha256}` is the digest of exactly these
/// bytes, so any two bodies the signature cannot tell apart share a key.
pub(crate) fn form_sorted(body: &[u8]) -> Vec<u8> {
    let mut params: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for p in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut kv = p.splitn(2, |b| *b == b'=');
        let k = kv.next().unwrap_or_default();
        let v = kv.next().unwrap_or_default();
        params
            .entry(form_decode(k))
            .or_default()
            .insert(form_decode(v));
    }
    let mut out = Vec::with_capacity(body.len());
    for (name, values) in params {
        for value in values {
            out.extend_from_slice(&name);
            out.extend_from_slice(&value);
        }
    }
    out
}

fn form_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match hex::decode(&s[i + 1..i + 3]) {
                Ok(b) => {
                    out.push(b[0]);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(t: &Template, v: &Values) -> Result<Vec<u8>, VerifyError> {
        t.render(v).map(|parts| parts.concat())
    }

    #[test]
    fn parses_and_renders_every_placeholder() {
        let t =
            Template::parse("{method} {url}|{header:Webhook-Id}.{timestamp}.{body}{{x}}").unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        let v = Values {
            body: b"{\"a\":1}",
            headers: &h,
            method: "POST",
            timestamp: Some("1700000000"),
            url: Some("https://x.test/h?q=1"),
            form: true,
        };
        assert_eq!(
            flat(&t, &v).unwrap(),
            b"POST https://x.test/h?q=1|msg_1.1700000000.{\"a\":1}{x}"
        );
        assert_eq!(
            t.describe(),
            "{method} {url}|{header:webhook-id}.{timestamp}.{body}{{x}}"
        );
        let missing = Values {
            headers: &HeaderMap::new(),
            ..v
        };
        assert_eq!(flat(&t, &missing), Err(VerifyError::MissingCredentials));
    }

    #[test]
    fn json_fields_of_the_body() {
        let t = Template::parse("{json:/signature/timestamp}{json:/signature/token}").unwrap();
        assert_eq!(
            t.describe(),
            "{json:/signature/timestamp}{json:/signature/token}"
        );
        let render = |body: &[u8]| {
            flat(
                &t,
                &Values {
                    body,
                    headers: &HeaderMap::new(),
                    method: "POST",
                    timestamp: None,
                    url: None,
                    form: true,
                },
            )
        };
        assert_eq!(
            render(br#"{"signature":{"token":"abc","timestamp":"17"},"x":1}"#).unwrap(),
            b"17abc"
        );
        assert_eq!(
            render(br#"{"signature":{"token":"abc","timestamp":17}}"#).unwrap(),
            b"17abc"
        );
        assert_eq!(
            render(br#"{"signature":{"token":"abc"}}"#),
            Err(VerifyError::MissingCredentials)
        );
        for malformed in [
            &br#"{"signature":{"token":[1],"timestamp":"1"}}"#[..],
            b"not json",
            b"",
        ] {
            assert_eq!(render(malformed), Err(VerifyError::MalformedSignature));
        }
    }

    #[test]
    fn bad_templates_are_errors() {
        for bad in [
            "{json:signature}",
            "",
            "{body",
            "body}",
            "{nope}",
            "{header:bad name}",
            "{header:}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Template::parse("{body}").unwrap(), Template::default());
    }

    #[test]
    fn form_parameters_are_decoded_and_sorted() {
        assert_eq!(
            form_sorted(b"To=%2B1800&From=a+b&Digits=12&Bad=%zz&Tail=%4"),
            b"Bad%zzDigits12Froma bTail%4To+1800"
        );
        assert_eq!(form_sorted(b""), b"");
    }

    /// Twilio's `compute_signature` walks `sorted(set(params))` and, for
    /// each name, `sorted(set(values))`: repeated names keep every distinct
    /// value, in sorted order, and exact repeats count once.
    #[test]
    fn repeated_form_parameters_are_sorted_and_deduplicated_as_twilio_signs_them() {
        assert_eq!(form_sorted(b"b=2&a=z&b=1&a=y&b=2"), b"ayazb1b2");
        assert_eq!(form_sorted(b"x=1&x=1"), form_sorted(b"x=1"));
        assert_eq!(form_sorted(b"x=%41&x=A"), b"xA");
    }
}
