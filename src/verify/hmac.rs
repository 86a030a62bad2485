//! HMAC signatures (`scheme: hmac` and its presets).
//!
//! A [`SignatureSource`] is the whole description of one sender's scheme,
//! as data: which header holds the signature (possibly as a list such as
//! `t=…,v1=…,v1=…`), its prefix and encoding, how the secret is decoded, the
//! signed payload as a [`Template`], and an optional signed timestamp with
//! its tolerance. Every candidate signature in the header is decoded and
//! compared, in constant time, with the MAC computed from each configured
//! secret. Signatures are never string-compared, so upper-case hex verifies,
//! and a candidate of the wrong length is malformed rather than "almost
//! right".

use std::borrow::Cow;
use std::time::SystemTime;

use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, Uri};
use secrecy::{ExposeSecret, SecretString};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::pointer::{Found, Pointer};
use super::template::{Part, Template, Values};
use super::timestamp::{TimestampSource, TimestampSpec};
use super::{SignedRequest, Verified, VerifyError};

/// At most this many candidate signatures are checked per request, so a
/// header stuffed with list items cannot multiply the MAC work.
const MAX_CANDIDATES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
    /// Not an HMAC: the SHA-256 digest of the secret followed by the
    /// payload (HubSpot's v1 and v2 signatures). Presets only; a route's
    /// `algorithm` cannot name it.
    SecretPrefixedSha256,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::SecretPrefixedSha256 => "sha256(secret + payload)",
        }
    }

    fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 | Algorithm::SecretPrefixedSha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

/// How the MAC is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
    /// URL-safe alphabet, padding optional.
    Base64Url,
}

const BASE64URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Standard alphabet, padding optional (Standard Webhooks secrets).
const BASE64_ANY_PADDING: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "hex" => Some(Encoding::Hex),
            "base64" => Some(Encoding::Base64),
            "base64url" => Some(Encoding::Base64Url),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
        }
    }

    pub(crate) fn decode(self, text: &[u8]) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
            Encoding::Base64Url => BASE64URL.decode(text).ok(),
        }
    }

    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64Url => BASE64URL.encode(bytes),
        }
    }
}

/// How a configured secret string becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretEncoding {
    /// The string's UTF-8 bytes (Stripe uses its `whsec_…` string this way).
    #[default]
    Utf8,
    /// Standard base64.
    Base64,
    /// Standard Webhooks: strip `whsec_` if present, then base64 with or
    /// without padding, as the Standard Webhooks libraries accept it.
    Whsec,
}

impl SecretEncoding {
    pub fn parse(s: &str) -> Option<SecretEncoding> {
        match s {
            "utf8" => Some(SecretEncoding::Utf8),
            "base64" => Some(SecretEncoding::Base64),
            "whsec" => Some(SecretEncoding::Whsec),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SecretEncoding::Utf8 => "utf8",
            SecretEncoding::Base64 => "base64",
            SecretEncoding::Whsec => "whsec",
        }
    }

    /// The key bytes; `None` when the secret is not in this encoding.
    pub fn key(self, secret: &str) -> Option<Vec<u8>> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
        match self {
            SecretEncoding::Utf8 => Some(secret.as_bytes().to_vec()),
            SecretEncoding::Base64 => b64(secret),
            SecretEncoding::Whsec => {
                let text = secret.strip_prefix("whsec_").unwrap_or(secret);
                BASE64_ANY_PADDING.decode(text).ok()
            }
        }
    }
}

/// One sender's signature scheme, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSource {
    /// The signature header.
    pub header: HeaderName,
    /// Further headers whose values are candidates too (DocuSign sends one
    /// `X-DocuSign-Signature-N` per key).
    pub more_headers: Vec<HeaderName>,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the encoded MAC, e.g. `sha1=`; matched case-insensitively.
    /// In a list, only items with this prefix are candidates.
    pub prefix: String,
    /// The header holds a list split on this (` ` Standard Webhooks, `,`
    /// Stripe and PagerDuty, `;` Paddle); every item is a candidate.
    pub separator: Option<String>,
    pub secret_encoding: SecretEncoding,
    /// What is signed.
    pub payload: Template,
    pub timestamp: Option<TimestampSpec>,
    /// The URL the sender posts to, for `{url}` (query string appended).
    pub public_url: Option<String>,
    /// Also try `{url}` with the default port added or removed (Twilio).
    pub url_port_variants: bool,
    /// A header naming the request's algorithm, Twilio style
    /// (`key=…,algorithm=HMAC_SHA256`); without it, or without
    /// `algorithm=`, `algorithm` applies.
    pub algorithm_header: Option<HeaderName>,
    /// Twilio's JSON requests: when the query string has this parameter,
    /// the body's SHA-256 (lower-case hex) must equal it and
    /// `{form_sorted}` signs nothing: the body is covered by its hash in
    /// the signed URL.
    pub body_sha256_param: Option<String>,
    /// The source applies only when this header has this value (ASCII
    /// case-insensitive): HubSpot's `X-HubSpot-Signature-Version: v1` or
    /// `v2` chooses how `X-HubSpot-Signature` was made.
    pub only_when: Option<(HeaderName, String)>,
    /// The signature is the string at this JSON pointer of the body
    /// (Mailgun's `/signature/signature`) rather than a header value;
    /// `header` is then not read. The body is scanned, never parsed into a
    /// tree, before it is authenticated.
    pub body_signature: Option<Pointer>,
    /// Also try `{url}` with the reserved characters HubSpot's v3 decodes
    /// before signing (`%3A` `%2F` `%3F` `%40` `%21` `%24` `%27` `%28`
    /// `%29` `%2A` `%2C` `%3B`, either case) decoded.
    pub url_decode_reserved: bool,
    /// Items of the list may hold several whitespace-separated parts
    /// (Persona sends `t=…,v1=… t=…,v1=…` while its secret rotates, so one
    /// comma-separated item reads `v1=… t=…`): the part that decodes is
    /// the candidate.
    pub items_split_on_whitespace: bool,
}

impl SignatureSource {
    /// HMAC of the raw body in one header: the original `scheme: hmac`.
    pub fn new(
        header: HeaderName,
        algorithm: Algorithm,
        encoding: Encoding,
        prefix: &str,
    ) -> SignatureSource {
        SignatureSource {
            header,
            more_headers: Vec::new(),
            algorithm,
            encoding,
            prefix: prefix.to_string(),
            separator: None,
            secret_encoding: SecretEncoding::Utf8,
            payload: Template::default(),
            timestamp: None,
            public_url: None,
            url_port_variants: false,
            algorithm_header: None,
            body_sha256_param: None,
            only_when: None,
            body_signature: None,
            url_decode_reserved: false,
            items_split_on_whitespace: false,
        }
    }

    /// The algorithms a request may use with this source.
    fn algorithms(&self) -> Vec<Algorithm> {
        match self.algorithm_header {
            None => vec![self.algorithm],
            Some(_) => {
                let mut all = vec![self.algorithm];
                all.extend(
                    [Algorithm::Sha1, Algorithm::Sha256]
                        .into_iter()
                        .filter(|a| *a != self.algorithm),
                );
                all
            }
        }
    }

    /// The algorithm this request is signed with, as Twilio's
    /// `get_signature_algorithm` reads its settings header; a name hookgate
    /// does not know is malformed.
    fn request_algorithm(&self, headers: &HeaderMap) -> Result<Algorithm, VerifyError> {
        let Some(value) = self.algorithm_header.as_ref().and_then(|h| headers.get(h)) else {
            return Ok(self.algorithm);
        };
        let value = value
            .to_str()
            .map_err(|_| VerifyError::MalformedSignature)?;
        for item in value.split(',') {
            let Some((name, algorithm)) = item.split_once('=') else {
                continue;
            };
            let algorithm = algorithm.trim();
            if name.trim() != "algorithm" || algorithm.is_empty() {
                continue;
            }
            return match algorithm.to_ascii_uppercase().as_str() {
                "HMAC_SHA1" => Ok(Algorithm::Sha1),
                "HMAC_SHA256" => Ok(Algorithm::Sha256),
                _ => Err(VerifyError::MalformedSignature),
            };
        }
        Ok(self.algorithm)
    }

    /// For Twilio's JSON requests (`bodySHA256` in the query), whether the
    /// body hashes to that value; `None` for every other request.
    fn body_hash_matches(&self, query: Option<&str>, body: &[u8]) -> Option<bool> {
        use sha2::Digest;
        let param = self.body_sha256_param.as_deref()?;
        // As Python's `parse_qs`: decoded, blank values ignored, the first kept.
        let expected = form_urlencoded::parse(query?.as_bytes())
            .find(|(k, v)| k == param && !v.is_empty())?
            .1;
        let actual = hex::encode(sha2::Sha256::digest(body));
        Some(bool::from(actual.as_bytes().ct_eq(expected.as_bytes())))
    }

    fn present(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        if let Some((name, value)) = &self.only_when {
            let chosen = headers.get(name).is_some_and(|v| {
                v.as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(value.as_bytes())
            });
            if !chosen {
                return false;
            }
        }
        if let Some(pointer) = &self.body_signature {
            // Present unless the body lacks the field: a body that is not
            // JSON, or holds something else there, is malformed.
            return !matches!(pointer.lookup(body), Some(Found::Missing));
        }
        headers.contains_key(&self.header)
            || self.more_headers.iter().any(|h| headers.contains_key(h))
    }

    /// Every decodable candidate signature in the request, for a MAC made
    /// with `algorithm`.
    fn candidates(&self, headers: &HeaderMap, body: &[u8], algorithm: Algorithm) -> Vec<Vec<u8>> {
        if let Some(pointer) = &self.body_signature {
            return match pointer.lookup(body) {
                Some(Found::Scalar(text)) => self
                    .decode_candidate(&text, algorithm)
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            };
        }
        let values = std::iter::once(&self.header)
            .chain(&self.more_headers)
            .flat_map(|name| headers.get_all(name));
        collect_candidates(values, self.separator.as_deref(), MAX_CANDIDATES, |item| {
            if self.items_split_on_whitespace {
                item.split(u8::is_ascii_whitespace)
                    .find_map(|part| self.decode_candidate(part, algorithm))
            } else {
                self.decode_candidate(item, algorithm)
            }
        })
    }

    /// Strips the prefix and decodes; `None` when the item is not a
    /// signature of this source's shape.
    fn decode_candidate(&self, item: &[u8], algorithm: Algorithm) -> Option<Vec<u8>> {
        let item = item.trim_ascii();
        let prefix = self.prefix.as_bytes();
        if item.len() < prefix.len() || !item[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return None;
        }
        let decoded = self.encoding.decode(&item[prefix.len()..])?;
        (decoded.len() == algorithm.output_len()).then_some(decoded)
    }

    /// The `{url}` bases: the public URL, and with `url_port_variants` the
    /// same URL with its default port added or removed.
    fn url_bases(&self) -> Vec<String> {
        let Some(url) = &self.public_url else {
            return Vec::new();
        };
        let mut bases = vec![url.clone()];
        if self.url_port_variants {
            if let Some(other) = port_variant(url) {
                bases.push(other);
            }
        }
        bases
    }
}

/// The decodable candidates among header values, each value split at
/// `separator` when the header holds a list; at most `max` of them.
pub(crate) fn collect_candidates<'h, T>(
    values: impl Iterator<Item = &'h http::HeaderValue>,
    separator: Option<&str>,
    max: usize,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    for value in values {
        let value = value.as_bytes();
        let items: Box<dyn Iterator<Item = &[u8]>> = match separator {
            Some(sep) => Box::new(split_bytes(value, sep.as_bytes())),
            None => Box::new(std::iter::once(value)),
        };
        for item in items {
            if out.len() == max {
                return out;
            }
            if let Some(c) = decode(item) {
                out.push(c);
            }
        }
    }
    out
}

pub(crate) fn split_bytes<'a>(
    value: &'a [u8],
    sep: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `https://h/p` <-> `https://h:443/p` (and `:80` for http).
fn port_variant(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let default = match uri.scheme_str()? {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = uri.authority()?;
    let host = authority.host();
    let new_authority = match authority.port_u16() {
        None => format!("{host}:{default}"),
        Some(p) if p == default => host.to_string(),
        Some(_) => return None,
    };
    let (scheme, rest) = url.split_once("://")?;
    let tail = &rest[authority.as_str().len()..];
    Some(format!("{scheme}://{new_authority}{tail}"))
}

/// The signature sources in order of preference: the first one whose header
/// is present is the one checked (GitHub sends SHA-256 and legacy SHA-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSpec {
    pub sources: Vec<SignatureSource>,
}

/// A keyed MAC state, computed once per secret at start-up and cloned per
/// request, so the key schedule is not redone on every request.
#[derive(Clone)]
pub(crate) enum KeyedMac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
    /// A SHA-256 state that has already absorbed the secret.
    SecretPrefixedSha256(sha2::Sha256),
}

impl KeyedMac {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> KeyedMac {
        // HMAC accepts keys of any length, so this cannot fail.
        const ANY_LENGTH: &str = "HMAC takes keys of any length";
        match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha256 => KeyedMac::Sha256(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha512 => KeyedMac::Sha512(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::SecretPrefixedSha256 => {
                use sha2::Digest;
                KeyedMac::SecretPrefixedSha256(sha2::Sha256::new_with_prefix(key))
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn compute(&self, body: &[u8]) -> Vec<u8> {
        self.compute_parts(&[Cow::Borrowed(body)])
    }

    fn compute_parts(&self, parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
        #[cfg(test)]
        MACS_COMPUTED.with(|n| n.set(n.get() + 1));
        fn run<M: Mac>(mut m: M, parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self.clone() {
            KeyedMac::Sha1(m) => run(m, parts),
            KeyedMac::Sha256(m) => run(m, parts),
            KeyedMac::Sha512(m) => run(m, parts),
            KeyedMac::SecretPrefixedSha256(mut d) => {
                use sha2::Digest;
                for p in parts {
                    d.update(p);
                }
                d.finalize().to_vec()
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// MACs computed on this thread, so tests can see that every secret is
    /// tried whichever one matches.
    pub(crate) static MACS_COMPUTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A secret that does not decode with the description's `secret_encoding`;
/// carries the secret's index only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSecret(pub usize);

pub struct HmacVerifier {
    sources: Vec<PreparedSource>,
}

/// A source with its keys prepared once: one keyed MAC per secret, in
/// secret order, for each algorithm the source may use; and its `{url}`
/// bases.
struct PreparedSource {
    source: SignatureSource,
    keys: Vec<(Algorithm, Vec<KeyedMac>)>,
    bases: Vec<String>,
}

impl PreparedSource {
    fn keys(&self, algorithm: Algorithm) -> &[KeyedMac] {
        self.keys
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, k)| k.as_slice())
            .unwrap_or_default()
    }

    /// The `{url}` values to try: none, or each base with the query.
    fn urls(&self, query: Option<&str>) -> Vec<Option<String>> {
        if self.bases.is_empty() {
            return vec![None];
        }
        let mut urls: Vec<Option<String>> = Vec::new();
        for base in &self.bases {
            let url = with_query(base, query);
            if self.source.url_decode_reserved {
                let decoded = decode_reserved(&url);
                if decoded != url {
                    urls.push(Some(decoded));
                }
            }
            urls.push(Some(url));
        }
        urls
    }
}

impl HmacVerifier {
    /// Prepares the keys. Validation has already checked that every secret
    /// decodes; [`HmacVerifier::try_new`] says which one does not.
    pub fn new(spec: HmacSpec, secrets: &[SecretString]) -> HmacVerifier {
        match HmacVerifier::try_new(spec, secrets) {
            Ok(v) => v,
            Err(BadSecret(i)) => panic!("secret {i} was validated but does not decode"),
        }
    }

    pub fn try_new(spec: HmacSpec, secrets: &[SecretString]) -> Result<HmacVerifier, BadSecret> {
        let mut sources = Vec::with_capacity(spec.sources.len());
        for source in spec.sources {
            let mut decoded = Vec::with_capacity(secrets.len());
            for (i, s) in secrets.iter().enumerate() {
                let key = source.secret_encoding.key(s.expose_secret());
                decoded.push(key.ok_or(BadSecret(i))?);
            }
            let keys = source
                .algorithms()
                .into_iter()
                .map(|a| (a, decoded.iter().map(|k| KeyedMac::new(a, k)).collect()))
                .collect();
            let bases = source.url_bases();
            sources.push(PreparedSource {
                source,
                keys,
                bases,
            });
        }
        Ok(HmacVerifier { sources })
    }

    pub fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        let prepared = self
            .sources
            .iter()
            .find(|p| p.source.present(req.headers, req.body))
            .ok_or(VerifyError::MissingCredentials)?;
        let source = &prepared.source;
        let algorithm = source.request_algorithm(req.headers)?;
        let candidates = source.candidates(req.headers, req.body, algorithm);
        if candidates.is_empty() {
            return Err(VerifyError::MalformedSignature);
        }
        let timestamp = match &source.timestamp {
            Some(ts) => Some(ts.extract(
                req.headers,
                req.body,
                (&source.header, source.separator.as_deref()),
            )?),
            None => None,
        };
        let body_hash = source.body_hash_matches(req.query, req.body);

        // Every URL form and every secret is computed, with no early exit,
        // so the time taken does not tell which secret matched.
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for url in prepared.urls(req.query) {
            let pieces = source.payload.render(&Values {
                body: req.body,
                headers: req.headers,
                method: req.method,
                timestamp: timestamp.as_deref(),
                url: url.as_deref(),
                form: body_hash.is_none(),
            })?;
            for (i, key) in prepared.keys(algorithm).iter().enumerate() {
                let expected = key.compute_parts(&pieces);
                let hit = candidates
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, c| acc | expected.ct_eq(c))
                    & !found;
                index.conditional_assign(&(i as u32), hit);
                found |= hit;
            }
        }
        if !bool::from(found) || body_hash == Some(false) {
            return Err(VerifyError::BadSignature);
        }
        // Checked after the signature, so `stale_timestamp` only ever
        // describes an authentic request (a replay or a skewed clock),
        // never a forgery.
        if let (Some(spec), Some(text)) = (&source.timestamp, &timestamp) {
            spec.check(text, req.now)?;
        }
        Ok(Verified {
            secret_index: Some(index as usize),
            strip_header: None,
        })
    }

    /// The headers a sender would send for `body` signed with secret
    /// `secret_index` at `now` (for `hookgate sign` and tests). Headers the
    /// payload signs but the caller did not give get a generated value.
    pub fn sign(
        &self,
        secret_index: usize,
        method: &str,
        query: Option<&str>,
        given: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<(HeaderName, String)>, String> {
        let PreparedSource {
            source,
            keys,
            bases,
        } = &self.sources[0];
        let key = keys[0].1.get(secret_index).ok_or("no such secret")?;
        if let Some(pointer) = &source.body_signature {
            return Err(format!(
                "the signature travels in the body (json:{}), where hookgate sign cannot write it; the sender's own tools sign such requests",
                pointer.as_str()
            ));
        }
        let mut headers = given.clone();
        let mut out: Vec<(HeaderName, String)> = Vec::new();
        let mut add = |headers: &mut HeaderMap, name: &HeaderName, value: String| {
            if let Ok(v) = value.parse() {
                headers.insert(name.clone(), v);
            }
            out.push((name.clone(), value));
        };
        if let Some((name, value)) = &source.only_when {
            add(&mut headers, name, value.clone());
        }
        let (timestamp, in_signature) = match &source.timestamp {
            None => (None, None),
            Some(ts) => {
                let (t, placed) = signed_timestamp(source, ts, &headers, body, now)?;
                if let Some(name) = placed.header {
                    add(&mut headers, &name, t.clone());
                }
                (Some(t), placed.in_list)
            }
        };
        let nonce = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for h in source.payload.headers() {
            if !headers.contains_key(h) {
                add(&mut headers, h, format!("msg_hookgate{nonce}"));
            }
        }
        let url = bases.first().map(|b| with_query(b, query)).map(|u| {
            if source.url_decode_reserved {
                decode_reserved(&u)
            } else {
                u
            }
        });
        let pieces = source
            .payload
            .render(&Values {
                body,
                headers: &headers,
                method,
                timestamp: timestamp.as_deref(),
                url: url.as_deref(),
                form: source.body_hash_matches(query, body).is_none(),
            })
            .map_err(|e| e.to_string())?;
        let mac = source.encoding.encode(&key.compute_parts(&pieces));
        let mut value = format!("{}{mac}", source.prefix);
        if let Some(t) = in_signature {
            let sep = source.separator.as_deref().unwrap_or(",");
            value = format!("{t}{sep}{value}");
        }
        out.push((source.header.clone(), value));
        Ok(out)
    }

    /// Whether signing needs a `{url}` this description does not have.
    pub fn uses_url(&self) -> bool {
        self.sources
            .iter()
            .any(|p| p.source.payload.uses(&Part::Url))
    }
}

/// Where `sign` puts the timestamp: in a header, or as an item of the
/// signature list (`t=…`, or Recurly's bare leading value).
struct PlacedTimestamp {
    header: Option<HeaderName>,
    in_list: Option<String>,
}

/// The timestamp `sign` signs at `now`, and where it goes; a timestamp in
/// the body must already be there.
fn signed_timestamp(
    source: &SignatureSource,
    ts: &TimestampSpec,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(String, PlacedTimestamp), String> {
    let t = ts.unit.format(now);
    let placed = |header, in_list| PlacedTimestamp { header, in_list };
    Ok(match &ts.source {
        TimestampSource::Header(h) => (t, placed(Some(h.clone()), None)),
        TimestampSource::SignatureKey(k) => {
            let item = format!("{k}={t}");
            (t, placed(None, Some(item)))
        }
        // The bare timestamp leads the list (only item 0 is signed this way).
        TimestampSource::SignatureItem(_) => (t.clone(), placed(None, Some(t))),
        TimestampSource::Json(p) => {
            let t = ts
                .extract(headers, body, (&source.header, None))
                .map_err(|_| {
                    format!(
                        "the body must hold the timestamp at JSON pointer {}",
                        p.as_str()
                    )
                })?;
            (t, placed(None, None))
        }
    })
}

/// `url` with the percent-escapes of the reserved characters HubSpot's v3
/// signature decodes replaced by the characters; every other escape kept.
fn decode_reserved(url: &str) -> String {
    const RESERVED: &[(&str, char)] = &[
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i + 1..i + 3);
        match escape.and_then(|e| RESERVED.iter().find(|(hex, _)| hex.eq_ignore_ascii_case(e))) {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `base` with the request's query string appended.
fn with_query(base: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}{q}")
        }
        _ => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::hmac_preset;
    use crate::verify::secrets;
    use bytes::Bytes;
    use http::HeaderValue;

    trait VerifyNow {
        fn verify_now(&self, h: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError>;
    }

    impl VerifyNow for HmacVerifier {
        fn verify_now(&self, h: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
            self.verify(&SignedRequest {
                method: "POST",
                query: None,
                headers: h,
                body,
                now: SystemTime::now(),
            })
        }
    }

    fn sign(alg: Algorithm, secret: &str, body: &[u8]) -> Vec<u8> {
        KeyedMac::new(alg, secret.as_bytes()).compute(body)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn trutac(secrets_: &[&str]) -> HmacVerifier {
        HmacVerifier::new(hmac_preset("trutac").unwrap(), &secrets(secrets_))
    }

    #[test]
    fn trutac_sign_verify_tamper() {
        let body = Bytes::from_static(br#"{"action":"clocking.created","clocking":{"id":7}}"#);
        let sig = format!(
            "sha1={}",
            hex::encode(sign(Algorithm::Sha1, "s3cret", &body))
        );
        let v = trutac(&["s3cret"]);
        let ok = v.verify_now(&headers(&[("TT-Hook-Signature", &sig)]), &body);
        assert_eq!(ok.unwrap().secret_index, Some(0));

        let tampered = Bytes::from_static(br#"{"action":"clocking.created","clocking":{"id":8}}"#);
        assert_eq!(
            v.verify_now(&headers(&[("TT-Hook-Signature", &sig)]), &tampered),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            trutac(&["other"]).verify_now(&headers(&[("TT-Hook-Signature", &sig)]), &body),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn upper_case_hex_and_prefix_verify() {
        let body = Bytes::from_static(b"ping");
        let mac = hex::encode_upper(sign(Algorithm::Sha1, "k", &body));
        let v = trutac(&["k"]);
        for sig in [format!("sha1={mac}"), format!("SHA1={mac}")] {
            assert!(v
                .verify_now(&headers(&[("tt-hook-signature", &sig)]), &body)
                .is_ok());
        }
    }

    #[test]
    fn every_rotated_secret_is_tried() {
        let body = Bytes::from_static(b"{}");
        let sig = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "new", &body)));
        let v = trutac(&["old", "new"]);
        let ok = v
            .verify_now(&headers(&[("TT-Hook-Signature", &sig)]), &body)
            .unwrap();
        assert_eq!(ok.secret_index, Some(1));
    }

    #[test]
    fn missing_and_malformed_signatures() {
        let body = Bytes::from_static(b"{}");
        let v = trutac(&["k"]);
        assert_eq!(
            v.verify_now(&headers(&[]), &body),
            Err(VerifyError::MissingCredentials)
        );
        let good_hex = hex::encode(sign(Algorithm::Sha1, "k", &body));
        for bad in [
            "sha1=zz".to_string(),
            "sha1=".to_string(),
            good_hex.clone(),                   // no prefix
            format!("sha256={good_hex}"),       // wrong prefix
            format!("sha1={}", &good_hex[2..]), // wrong length
            "garbage".to_string(),
        ] {
            assert_eq!(
                v.verify_now(&headers(&[("TT-Hook-Signature", &bad)]), &body),
                Err(VerifyError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_repeated_header_value_may_match() {
        let body = Bytes::from_static(b"x");
        let good = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "k", &body)));
        let v = trutac(&["k"]);
        let h = headers(&[
            ("TT-Hook-Signature", "sha1=00"),
            ("TT-Hook-Signature", &good),
        ]);
        assert!(v.verify_now(&h, &body).is_ok());
    }

    #[test]
    fn github_prefers_sha256_and_falls_back_to_sha1() {
        let body = Bytes::from_static(b"{\"zen\":\"x\"}");
        let v = HmacVerifier::new(hmac_preset("github").unwrap(), &secrets(&["gh"]));
        let s256 = format!(
            "sha256={}",
            hex::encode(sign(Algorithm::Sha256, "gh", &body))
        );
        let s1 = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "gh", &body)));
        assert!(v
            .verify_now(&headers(&[("X-Hub-Signature-256", &s256)]), &body)
            .is_ok());
        assert!(v
            .verify_now(&headers(&[("X-Hub-Signature", &s1)]), &body)
            .is_ok());
        // When both are sent, the SHA-256 one decides: a bad SHA-256 is not
        // rescued by a good SHA-1.
        let bad256 = format!("sha256={}", hex::encode([0u8; 32]));
        assert_eq!(
            v.verify_now(
                &headers(&[("X-Hub-Signature-256", &bad256), ("X-Hub-Signature", &s1)]),
                &body
            ),
            Err(VerifyError::BadSignature)
        );
    }

    /// No early return: every secret (and every `{url}` form) is computed
    /// whichever one matches, so timing does not tell which secret it was.
    #[test]
    fn every_secret_is_computed_whichever_matches() {
        let body = Bytes::from_static(b"{}");
        let v = trutac(&["first", "second", "third"]);
        for (secret, index) in [("first", 0), ("second", 1), ("third", 2), ("none", 9)] {
            let sig = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, secret, &body)));
            let before = MACS_COMPUTED.get();
            let r = v.verify_now(&headers(&[("TT-Hook-Signature", &sig)]), &body);
            assert_eq!(MACS_COMPUTED.get() - before, 3, "{secret}");
            match index {
                9 => assert_eq!(r, Err(VerifyError::BadSignature)),
                i => assert_eq!(r.unwrap().secret_index, Some(i)),
            }
        }
        // Twilio: two URL forms (with and without the port) times two secrets.
        let mut spec = hmac_preset("twilio").unwrap();
        spec.sources[0].public_url = Some("https://x.test/in".into());
        let v = HmacVerifier::new(spec, &secrets(&["a", "b"]));
        let payload = b"https://x.test/in";
        let sig =
            base64::engine::general_purpose::STANDARD.encode(sign(Algorithm::Sha1, "a", payload));
        let before = MACS_COMPUTED.get();
        let ok = v.verify_now(&headers(&[("X-Twilio-Signature", &sig)]), b"");
        assert_eq!(ok.unwrap().secret_index, Some(0));
        assert_eq!(MACS_COMPUTED.get() - before, 4);
    }

    #[test]
    fn standard_webhooks_secrets_with_or_without_prefix_and_padding() {
        let raw = [7u8; 24];
        let padded = base64::engine::general_purpose::STANDARD.encode([7u8; 25]);
        assert!(padded.ends_with('='), "{padded}");
        let unpadded = padded.trim_end_matches('=');
        for text in [
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ),
            base64::engine::general_purpose::STANDARD.encode(raw),
        ] {
            assert_eq!(
                SecretEncoding::Whsec.key(&text),
                Some(raw.to_vec()),
                "{text}"
            );
        }
        for text in [
            format!("whsec_{unpadded}"),
            unpadded.to_string(),
            padded.clone(),
        ] {
            assert_eq!(
                SecretEncoding::Whsec.key(&text),
                Some(vec![7u8; 25]),
                "{text}"
            );
        }
        assert_eq!(SecretEncoding::Whsec.key("whsec_"), Some(Vec::new()));
        assert_eq!(SecretEncoding::Whsec.key("whsec_not base64!"), None);
    }

    #[test]
    fn twilio_algorithm_settings_header() {
        let mut spec = hmac_preset("twilio").unwrap();
        spec.sources[0].public_url = Some("https://x.test/in".into());
        let source = &spec.sources[0];
        let algorithm = |value: &str| {
            source.request_algorithm(&headers(&[("X-Twilio-Webhooks-Signature-Settings", value)]))
        };
        assert_eq!(
            algorithm("key=k,algorithm=HMAC_SHA256"),
            Ok(Algorithm::Sha256)
        );
        assert_eq!(
            algorithm(" algorithm = hmac_sha256 ,key=k"),
            Ok(Algorithm::Sha256)
        );
        assert_eq!(algorithm("algorithm=HMAC_SHA1"), Ok(Algorithm::Sha1));
        assert_eq!(algorithm("key=k"), Ok(Algorithm::Sha1));
        assert_eq!(algorithm("algorithm="), Ok(Algorithm::Sha1));
        assert_eq!(
            algorithm("algorithm=HMAC_SHA512"),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            source.request_algorithm(&HeaderMap::new()),
            Ok(Algorithm::Sha1)
        );
        // Other presets ignore the header.
        let github = &hmac_preset("github").unwrap().sources[0];
        assert_eq!(
            github.request_algorithm(&headers(&[(
                "X-Twilio-Webhooks-Signature-Settings",
                "algorithm=HMAC_SHA1"
            )])),
            Ok(Algorithm::Sha256)
        );
    }

    #[test]
    fn hubspot_reserved_characters_are_decoded() {
        assert_eq!(
            decode_reserved("https://h.test/p?a=%3a%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%25%7e%"),
            "https://h.test/p?a=:/?@!$'()*,;&b=%20%25%7e%"
        );
        assert_eq!(decode_reserved("https://h.test/%"), "https://h.test/%");
        assert_eq!(decode_reserved("%2"), "%2");
    }

    #[test]
    fn generic_base64_sha512() {
        let body = Bytes::from_static(b"payload");
        let spec = HmacSpec {
            sources: vec![SignatureSource::new(
                HeaderName::from_static("x-sig"),
                Algorithm::Sha512,
                Encoding::Base64,
                "",
            )],
        };
        let v = HmacVerifier::new(spec, &secrets(&["k"]));
        let sig =
            base64::engine::general_purpose::STANDARD.encode(sign(Algorithm::Sha512, "k", &body));
        assert!(v.verify_now(&headers(&[("x-sig", &sig)]), &body).is_ok());
        assert_eq!(
            v.verify_now(&headers(&[("x-sig", "not base64!")]), &body),
            Err(VerifyError::MalformedSignature)
        );
    }
}
