//! Request verification: does this request really come from its sender?
//!
//! A route's [`VerifySpec`] (from the config) is turned once, at start-up,
//! into a [`Verifier`] that holds prepared key material. Each request is then
//! checked against the raw headers and the raw body bytes exactly as
//! received, and the answer is a [`Verified`] or a [`VerifyError`] whose
//! reason code is what the sender sees and what metrics count.
//!
//! Rules every scheme keeps:
//! - every configured secret (or public key) is tried, so they can be
//!   rotated;
//! - comparisons are constant time and never reveal a secret's length;
//! - errors never carry the expected or the received credential.
//!
//! Scheme families live one per file; providers are data in
//! [`crate::presets`], which builds on this module (never the reverse).

mod client_state;
pub mod coverage;
mod hmac;
pub mod jwt;
pub mod pointer;
mod public_key;
mod shared_secret;
pub mod template;
pub mod timestamp;

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use secrecy::SecretString;

pub use self::coverage::{Coverage, Trust};
pub use self::hmac::{
    Algorithm, BadSecret, Encoding, HmacSpec, HmacVerifier, SecretEncoding, SignatureSource,
};
pub use self::jwt::{JwksSource, JwtAlgorithm, JwtKey, JwtSpec};
/// Signature checks made on this thread (tests of the public-key presets).
#[cfg(test)]
pub(crate) use self::public_key::KEY_CHECKS;
pub use self::public_key::{KeyAlgorithm, KeyFormat, PublicKey, PublicKeySpec, PublicKeyVerifier};
pub use self::shared_secret::Presented;
pub use self::template::Template;
pub use self::timestamp::{TimeUnit, TimestampSource, TimestampSpec};

/// One request as a verifier sees it. `now` is passed in, never read from
/// the system clock inside a verifier, so tests can pin it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The request's query string, appended to `public_url` for `{url}`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The body exactly as received.
    pub body: &'a [u8],
    pub now: SystemTime,
}

/// How a route authenticates its sender, as configured.
#[derive(Debug, Clone)]
pub struct VerifySpec {
    /// The scheme name as written in the config (`trutac`, `hmac`, …).
    pub scheme: String,
    pub kind: SpecKind,
}

#[derive(Debug, Clone)]
pub enum SpecKind {
    /// No verification: an explicit opt-out.
    None,
    /// The header's value must equal one of the secrets (TIMIFY style), or
    /// with `Presented::Basic` carry them as HTTP basic credentials.
    Header {
        header: HeaderName,
        presented: Presented,
        secrets: Vec<SecretString>,
    },
    /// An API key in a header; `Authorization` carries `Bearer <key>`.
    ApiKey {
        header: HeaderName,
        secrets: Vec<SecretString>,
    },
    /// An HMAC over the raw body.
    Hmac {
        spec: HmacSpec,
        secrets: Vec<SecretString>,
    },
    /// A signature made with the sender's private key, checked with its
    /// public keys (Ed25519, ECDSA P-256).
    PublicKey {
        spec: PublicKeySpec,
        keys: Vec<PublicKey>,
    },
    /// Microsoft Graph: every notification's `clientState` in the body
    /// equals one of the secrets (`client_state.rs`).
    ClientState { secrets: Vec<SecretString> },
    /// A signed JSON Web Token, checked with inline keys (HS256 secrets,
    /// JWKs) and/or the keys of a JWKS URL.
    Jwt { spec: JwtSpec, keys: Vec<JwtKey> },
}

impl VerifySpec {
    pub fn secret_count(&self) -> usize {
        match &self.kind {
            SpecKind::None => 0,
            SpecKind::Header { secrets, .. }
            | SpecKind::ApiKey { secrets, .. }
            | SpecKind::Hmac { secrets, .. }
            | SpecKind::ClientState { secrets } => secrets.len(),
            SpecKind::PublicKey { keys, .. } => keys.len(),
            SpecKind::Jwt { keys, .. } => keys.len(),
        }
    }

    /// A one-line description for `hookgate check`, without secret values.
    pub fn summary(&self) -> String {
        let secrets = self.secret_count();
        match &self.kind {
            SpecKind::None => "none (requests are NOT verified)".to_string(),
            SpecKind::Header {
                presented: Presented::Basic,
                ..
            } => format!(
                "{}: HTTP basic authentication, {secrets} user:password secret(s)",
                self.scheme
            ),
            SpecKind::Header { header, .. } => {
                format!(
                    "{}: header {header} equals one of {secrets} secret(s)",
                    self.scheme
                )
            }
            SpecKind::ApiKey { header, .. } => {
                format!("{}: key in {header}, {secrets} secret(s)", self.scheme)
            }
            SpecKind::Hmac { spec, .. } => {
                let sources: Vec<String> = spec
                    .sources
                    .iter()
                    .map(|s| {
                        let at = match &s.body_signature {
                            Some(p) => format!("body json:{}", p.as_str()),
                            None => s.header.to_string(),
                        };
                        let mut d = format!(
                            "{} {}({}{}) of {}",
                            at,
                            s.algorithm.as_str(),
                            s.prefix,
                            s.encoding.as_str(),
                            s.payload.describe()
                        );
                        if let Some(sep) = &s.separator {
                            d.push_str(&format!(", list split on {sep:?}"));
                        }
                        if let Some(t) = &s.timestamp {
                            d.push_str(&format!(
                                ", timestamp {} ({}) within {}",
                                t.source.describe(),
                                t.unit.as_str(),
                                humantime::format_duration(t.tolerance)
                            ));
                        }
                        d
                    })
                    .collect();
                format!(
                    "{}: HMAC in {}, {secrets} secret(s)",
                    self.scheme,
                    sources.join(" or ")
                )
            }
            SpecKind::PublicKey { spec, .. } => format!(
                "{}: {}, {secrets} public key(s) (verify only)",
                self.scheme,
                spec.describe()
            ),
            SpecKind::ClientState { .. } => format!(
                "{}: every value[].clientState in the body equals one of {secrets} secret(s)",
                self.scheme
            ),
            SpecKind::Jwt { spec, .. } => format!(
                "{}: {}, {secrets} inline key(s)",
                self.scheme,
                spec.describe()
            ),
        }
    }
}

/// What a successful verification tells the rest of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Which configured secret or public key matched (its index, never
    /// its value).
    pub secret_index: Option<usize>,
    /// A credential header that must not be forwarded upstream.
    pub strip_header: Option<HeaderName>,
}

/// Why a request was not verified. The code is sent to the sender and used
/// as the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request carries no credentials")]
    MissingCredentials,
    #[error("the credentials do not match any configured secret")]
    BadCredentials,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the signature header cannot be parsed")]
    MalformedSignature,
    #[error("the signed timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("the token's claims are not accepted")]
    BadClaims,
    #[error("no key with the token's key id")]
    UnknownKey,
    #[error("the sender's keys could not be loaded")]
    KeysUnavailable,
}

impl VerifyError {
    pub const ALL: [VerifyError; 8] = [
        VerifyError::MissingCredentials,
        VerifyError::BadCredentials,
        VerifyError::BadSignature,
        VerifyError::MalformedSignature,
        VerifyError::StaleTimestamp,
        VerifyError::BadClaims,
        VerifyError::UnknownKey,
        VerifyError::KeysUnavailable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            VerifyError::MissingCredentials => "missing_credentials",
            VerifyError::BadCredentials => "bad_credentials",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::MalformedSignature => "malformed_signature",
            VerifyError::StaleTimestamp => "stale_timestamp",
            VerifyError::BadClaims => "bad_claims",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// A route's verifier with key material prepared once at start-up.
pub enum Verifier {
    None,
    SharedSecret(shared_secret::SharedSecretVerifier),
    Hmac(hmac::HmacVerifier),
    PublicKey(public_key::PublicKeyVerifier),
    ClientState(client_state::ClientStateVerifier),
    Jwt(jwt::JwtVerifier),
}

impl Verifier {
    pub fn new(spec: &VerifySpec) -> Verifier {
        match &spec.kind {
            SpecKind::None => Verifier::None,
            SpecKind::Header {
                header,
                presented,
                secrets,
            } => Verifier::SharedSecret(shared_secret::SharedSecretVerifier::new(
                header.clone(),
                *presented,
                secrets,
            )),
            SpecKind::ApiKey { header, secrets } => {
                let presented = if header == http::header::AUTHORIZATION {
                    Presented::Bearer
                } else {
                    Presented::Verbatim
                };
                Verifier::SharedSecret(shared_secret::SharedSecretVerifier::new(
                    header.clone(),
                    presented,
                    secrets,
                ))
            }
            SpecKind::Hmac { spec, secrets } => {
                Verifier::Hmac(hmac::HmacVerifier::new(spec.clone(), secrets))
            }
            SpecKind::PublicKey { spec, keys } => {
                Verifier::PublicKey(PublicKeyVerifier::new(spec.clone(), keys))
            }
            SpecKind::ClientState { secrets } => {
                Verifier::ClientState(client_state::ClientStateVerifier::new(secrets))
            }
            SpecKind::Jwt { spec, keys } => {
                Verifier::Jwt(jwt::JwtVerifier::new(spec.clone(), keys))
            }
        }
    }

    /// Loads what verifying this request needs from the network (a JWT
    /// route's JWKS keys), when due; a no-op for every other scheme. The
    /// request path awaits it just before [`Verifier::verify_request`],
    /// which never waits.
    pub async fn prepare(&self, headers: &HeaderMap) {
        if let Verifier::Jwt(v) = self {
            v.prepare(headers).await;
        }
    }

    /// Checks a `POST` without query string, now.
    pub fn verify(&self, headers: &HeaderMap, body: &Bytes) -> Result<Verified, VerifyError> {
        self.verify_request(&SignedRequest {
            method: "POST",
            query: None,
            headers,
            body,
            now: SystemTime::now(),
        })
    }

    /// Checks one request: its headers and its body exactly as received.
    pub fn verify_request(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        match self {
            Verifier::None => Ok(Verified {
                secret_index: None,
                strip_header: None,
            }),
            Verifier::SharedSecret(v) => v.verify(req.headers),
            Verifier::Hmac(v) => v.verify(req),
            Verifier::PublicKey(v) => v.verify(req),
            Verifier::ClientState(v) => v.verify(req.body),
            Verifier::Jwt(v) => v.verify(req),
        }
    }
}

#[cfg(test)]
pub(crate) fn secrets(values: &[&str]) -> Vec<SecretString> {
    values.iter().map(|s| SecretString::from(*s)).collect()
}
