//! JSON Web Tokens (`scheme: jwt`): a signed token in a header (by default
//! `Authorization: Bearer …`), as Google Pub/Sub push (OIDC tokens), Plaid
//! (`Plaid-Verification`) and others send.
//!
//! Order of the checks, each refusal with its reason code:
//! 1. the token is there (`missing_credentials`) and is three base64url
//!    parts with a JSON header (`malformed_signature`); a `crit` header is
//!    refused, as no extension is understood;
//! 2. its `alg` is one the route allows (`bad_signature`; `none` never is);
//! 3. a key of that algorithm with the token's `kid` exists (`unknown_key`,
//!    or `keys_unavailable` while a JWKS could not be loaded) and verifies
//!    the signature (`bad_signature`);
//! 4. only then are the claims read: `exp`, `nbf` and, with `max_age`,
//!    `iat` within `leeway` (`stale_timestamp`); a time claim that is not
//!    a number is refused, never skipped; `iss`, `aud`, required and fixed
//!    claims (`bad_claims`); the body's SHA-256 claim (`bad_signature`).
//!
//! A token must expire: it carries `exp`, or the route sets `max_age` and
//! the token carries `iat`. The token is a credential: it is stripped
//! before the request is forwarded, and never logged.

pub mod jwks;
pub mod keys;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use self::jwks::{Jwks, JwksSource};
pub use self::keys::{JwtAlgorithm, JwtKey};
use super::{SignedRequest, Verified, VerifyError};

/// Longer tokens are refused before decoding (Google's are about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A route's JWT rules, as configured.
#[derive(Debug, Clone)]
pub struct JwtSpec {
    /// The header carrying the token; a `Bearer ` prefix is removed.
    pub header: HeaderName,
    pub algorithms: Vec<JwtAlgorithm>,
    pub jwks: Option<JwksSource>,
    /// `iss` must be one of these, when any are given.
    pub issuers: Vec<String>,
    /// `aud` (a string or a list) must hold one of these, when any are given.
    pub audiences: Vec<String>,
    /// Claims that must be present (any value but null).
    pub required_claims: Vec<String>,
    /// Claims that must have exactly this value.
    pub claims: Vec<(String, Value)>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// With it, `iat` is required and may be at most this old.
    pub max_age: Option<Duration>,
    /// A claim that must be the lowercase hex SHA-256 of the body.
    pub body_sha256_claim: Option<String>,
}

impl JwtSpec {
    /// One line for `hookgate check`, without key values.
    pub fn describe(&self) -> String {
        let algs: Vec<&str> = self.algorithms.iter().map(|a| a.as_str()).collect();
        let mut d = format!("{} token in {}", algs.join("/"), self.header);
        if let Some(jwks) = &self.jwks {
            d.push_str(&format!(", keys from {}", jwks.url));
        }
        if !self.issuers.is_empty() {
            d.push_str(&format!(", issuer {}", self.issuers.join(" or ")));
        }
        if !self.audiences.is_empty() {
            d.push_str(&format!(", audience {}", self.audiences.join(" or ")));
        }
        let mut claims: Vec<&str> = self.required_claims.iter().map(String::as_str).collect();
        claims.extend(self.claims.iter().map(|(name, _)| name.as_str()));
        if !claims.is_empty() {
            d.push_str(&format!(", claims {}", claims.join(", ")));
        }
        if let Some(age) = self.max_age {
            d.push_str(&format!(", iat within {}", humantime::format_duration(age)));
        }
        if let Some(claim) = &self.body_sha256_claim {
            d.push_str(&format!(", body SHA-256 in claim {claim}"));
        }
        d
    }
}

/// A token's JOSE header, as far as verification reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
}

/// A token split and decoded, before any check.
#[derive(Debug)]
pub struct Token<'a> {
    pub header: Header,
    /// `header.payload`, what the signature covers.
    pub signed: &'a [u8],
    payload: &'a [u8],
    pub signature: Vec<u8>,
}

fn b64url(part: &[u8]) -> Result<Vec<u8>, VerifyError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::MalformedSignature)
}

/// Splits and decodes a compact JWS. Public for the fuzz target.
pub fn parse_token(text: &[u8]) -> Result<Token<'_>, VerifyError> {
    if text.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::MalformedSignature);
    }
    let mut parts = text.split(|b| *b == b'.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::MalformedSignature);
    };
    let json: Value =
        serde_json::from_slice(&b64url(header)?).map_err(|_| VerifyError::MalformedSignature)?;
    let object = json.as_object().ok_or(VerifyError::MalformedSignature)?;
    // Extensions the token says must be understood: none are.
    if object.contains_key("crit") {
        return Err(VerifyError::MalformedSignature);
    }
    let alg = object.get("alg").and_then(Value::as_str);
    let kid = match object.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(VerifyError::MalformedSignature),
    };
    Ok(Token {
        header: Header {
            alg: alg.ok_or(VerifyError::MalformedSignature)?.to_string(),
            kid,
        },
        signed: &text[..header.len() + 1 + payload.len()],
        payload,
        signature: b64url(signature)?,
    })
}

impl Token<'_> {
    /// The claims; read only once the signature verified (and by the fuzz
    /// target).
    pub fn claims(&self) -> Result<Map<String, Value>, VerifyError> {
        match serde_json::from_slice(&b64url(self.payload)?) {
            Ok(Value::Object(claims)) => Ok(claims),
            _ => Err(VerifyError::MalformedSignature),
        }
    }
}

/// A time claim: absent, or a number (NumericDate). Anything else is
/// refused rather than ignored.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(VerifyError::BadClaims),
    }
}

impl JwtSpec {
    /// Checks the claims of a token whose signature verified.
    pub fn check_claims(
        &self,
        claims: &Map<String, Value>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        self.check_times(claims, now)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if !self.issuers.is_empty()
            && !text("iss").is_some_and(|i| self.issuers.iter().any(|x| x == i))
        {
            return Err(VerifyError::BadClaims);
        }
        if !self.audiences.is_empty() {
            let accepted = |v: &Value| {
                v.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|x| x == a))
            };
            let ok = match claims.get("aud") {
                Some(Value::Array(list)) => list.iter().any(accepted),
                Some(one) => accepted(one),
                None => false,
            };
            if !ok {
                return Err(VerifyError::BadClaims);
            }
        }
        let present = |name: &String| claims.get(name).is_some_and(|v| !v.is_null());
        if !self.required_claims.iter().all(present)
            || !self
                .claims
                .iter()
                .all(|(name, want)| claims.get(name) == Some(want))
        {
            return Err(VerifyError::BadClaims);
        }
        if let Some(name) = &self.body_sha256_claim {
            let claimed = text(name).ok_or(VerifyError::BadClaims)?;
            if !hex::encode(Sha256::digest(body)).eq_ignore_ascii_case(claimed) {
                return Err(VerifyError::BadSignature);
            }
        }
        Ok(())
    }

    fn check_times(&self, claims: &Map<String, Value>, now: SystemTime) -> Result<(), VerifyError> {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(_) => 0.0,
        };
        let leeway = self.leeway.as_secs_f64();
        let exp = numeric(claims, "exp")?;
        let nbf = numeric(claims, "nbf")?;
        let iat = numeric(claims, "iat")?;
        if exp.is_none() && self.max_age.is_none() {
            return Err(VerifyError::BadClaims);
        }
        if exp.is_some_and(|exp| now >= exp + leeway) || nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(VerifyError::StaleTimestamp);
        }
        if let Some(max_age) = self.max_age {
            let iat = iat.ok_or(VerifyError::BadClaims)?;
            if now > iat + max_age.as_secs_f64() + leeway || iat > now + leeway {
                return Err(VerifyError::StaleTimestamp);
            }
        }
        Ok(())
    }
}

/// A route's JWT verifier: its inline keys and, with a JWKS URL, the
/// route's key cache.
pub struct JwtVerifier {
    spec: JwtSpec,
    keys: Arc<[JwtKey]>,
    jwks: Option<Arc<Jwks>>,
}

impl JwtVerifier {
    pub fn new(spec: JwtSpec, keys: &[JwtKey]) -> JwtVerifier {
        let jwks = spec.jwks.clone().map(|s| Arc::new(Jwks::new(s)));
        JwtVerifier {
            spec,
            keys: keys.into(),
            jwks,
        }
    }

    /// The route's JWKS cache, if it has one.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_deref()
    }

    /// The token in the request: the header's value, less `Bearer `.
    fn token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h [u8], VerifyError> {
        let value = headers
            .get(&self.spec.header)
            .ok_or(VerifyError::MissingCredentials)?
            .as_bytes()
            .trim_ascii();
        let token = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
            _ => value,
        };
        if token.is_empty() {
            return Err(VerifyError::MissingCredentials);
        }
        Ok(token)
    }

    /// Loads the JWKS keys this request's token needs, when that is due.
    /// Runs before [`JwtVerifier::verify`], which never waits.
    pub async fn prepare(&self, headers: &HeaderMap) {
        let Some(jwks) = &self.jwks else { return };
        let Ok(token) = self.token(headers).and_then(parse_token) else {
            return;
        };
        // Only tokens of an algorithm the JWKS can serve may cost a fetch.
        match JwtAlgorithm::parse(&token.header.alg) {
            Some(alg) if alg != JwtAlgorithm::Hs256 && self.spec.algorithms.contains(&alg) => {
                jwks.prepare(token.header.kid.as_deref()).await;
            }
            _ => {}
        }
    }

    pub fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        let token = parse_token(self.token(req.headers)?)?;
        let alg = JwtAlgorithm::parse(&token.header.alg)
            .filter(|a| self.spec.algorithms.contains(a))
            .ok_or(VerifyError::BadSignature)?;
        let index = self.check_signature(&token, alg)?;
        let claims = token.claims()?;
        self.spec.check_claims(&claims, req.body, req.now)?;
        Ok(Verified {
            secret_index: Some(index),
            strip_header: Some(self.spec.header.clone()),
        })
    }

    /// The index of the key that signed the token: the inline keys first,
    /// then the JWKS's. Every candidate key is tried.
    fn check_signature(&self, token: &Token<'_>, alg: JwtAlgorithm) -> Result<usize, VerifyError> {
        let fetched = self.jwks.as_ref().map(|j| j.snapshot());
        let from_jwks = fetched.as_ref().map_or(&[][..], |set| &set.keys[..]);
        let kid = token.header.kid.as_deref();
        let candidates: Vec<(usize, &JwtKey)> = self
            .keys
            .iter()
            .chain(from_jwks)
            .enumerate()
            .filter(|(_, k)| k.algorithm() == alg)
            .filter(|(_, k)| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            let unloaded = fetched.as_ref().is_some_and(|set| set.loaded.is_none());
            return Err(if unloaded && alg != JwtAlgorithm::Hs256 {
                VerifyError::KeysUnavailable
            } else {
                VerifyError::UnknownKey
            });
        }
        let mut matched = None;
        for (index, key) in candidates {
            if key.verify(token.signed, &token.signature) && matched.is_none() {
                matched = Some(index);
            }
        }
        matched.ok_or(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests;
