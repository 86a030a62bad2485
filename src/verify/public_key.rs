//! Public-key signatures (`public_keys` in a route's `verify` block):
//! Ed25519 (Discord, Standard Webhooks `v1a`) and ECDSA P-256 with SHA-256
//! (SendGrid).
//!
//! The sender signs with a private key hookgate never has; the route lists
//! the sender's public keys, and every key is tried so they can be rotated
//! (the matching key's index is what `secret_index` reports). The signature
//! header is parsed like an HMAC one (prefix, encoding, optional list
//! separator), the signed payload is a [`Template`], and a signed timestamp
//! is checked only after a signature verified, so `stale_timestamp` only
//! ever describes an authentic request.
//!
//! Public keys are not secret, but they identify a customer's sender
//! account: like secrets, they never appear in Debug output, logs or
//! errors. Verification is a public computation on public inputs, so no
//! constant-time comparison is needed; the signature libraries do it.
//! Ed25519 is verified strictly (no small-order keys or `R`, canonical `S`),
//! which honest signers always satisfy.

use std::fmt;

use base64::Engine;
use http::{HeaderMap, HeaderName};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey;

use super::hmac::{collect_candidates, Encoding};
use super::template::{Template, Values};
use super::timestamp::TimestampSpec;
use super::{SignedRequest, Verified, VerifyError};

/// At most this many candidate signatures are checked per request. Each
/// costs a public-key verification per key, far more than an HMAC, so the
/// bound is lower than the HMAC one.
const MAX_CANDIDATES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Ed25519,
    /// ECDSA over P-256 with SHA-256, signatures DER-encoded.
    EcdsaP256Sha256,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "Ed25519",
            KeyAlgorithm::EcdsaP256Sha256 => "ECDSA P-256/SHA-256",
        }
    }
}

/// How a configured public key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// 64 hex digits: the raw 32-byte Ed25519 key (Discord).
    Hex,
    /// `whpk_` then the base64 of the raw 32-byte Ed25519 key (Standard
    /// Webhooks).
    Whpk,
    /// Base64 of a DER SubjectPublicKeyInfo (SendGrid's P-256 key).
    Base64Der,
    /// Base64 of the raw 32-byte Ed25519 key (Telnyx).
    Base64,
}

impl KeyFormat {
    /// What a key in this format looks like, for config errors.
    pub fn expected(self) -> &'static str {
        match self {
            KeyFormat::Hex => "a 32-byte Ed25519 public key written as 64 hex digits",
            KeyFormat::Whpk => "`whpk_` followed by the base64 of a 32-byte Ed25519 public key",
            KeyFormat::Base64Der => {
                "a base64 DER (SubjectPublicKeyInfo) P-256 public key, without PEM header lines"
            }
            KeyFormat::Base64 => "the base64 of a 32-byte Ed25519 public key",
        }
    }
}

/// A sender's public key, parsed once at start-up.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256Sha256,
        };
        write!(f, "PublicKey({}, [REDACTED])", algorithm.as_str())
    }
}

impl PublicKey {
    /// Parses `text` in `format` for `algorithm`; `None` when it is not
    /// such a key (including Ed25519 keys of small order, which would
    /// accept forged signatures).
    pub fn parse(algorithm: KeyAlgorithm, format: KeyFormat, text: &str) -> Option<PublicKey> {
        let text = text.trim();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
        let ed25519 = |bytes: Vec<u8>| {
            let bytes: [u8; 32] = bytes.try_into().ok()?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
            (!key.is_weak()).then_some(PublicKey::Ed25519(key))
        };
        match (algorithm, format) {
            (KeyAlgorithm::Ed25519, KeyFormat::Hex) => ed25519(hex::decode(text).ok()?),
            (KeyAlgorithm::Ed25519, KeyFormat::Whpk) => ed25519(b64(text.strip_prefix("whpk_")?)?),
            (KeyAlgorithm::Ed25519, KeyFormat::Base64) => ed25519(b64(text)?),
            (KeyAlgorithm::EcdsaP256Sha256, KeyFormat::Base64Der) => {
                p256::ecdsa::VerifyingKey::from_public_key_der(&b64(text)?)
                    .ok()
                    .map(PublicKey::P256)
            }
            _ => None,
        }
    }

    fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        #[cfg(test)]
        KEY_CHECKS.with(|n| n.set(n.get() + 1));
        match (self, signature) {
            (PublicKey::Ed25519(key), Signature::Ed25519(sig)) => {
                key.verify_strict(message, sig).is_ok()
            }
            (PublicKey::P256(key), Signature::P256(sig)) => key.verify(message, sig).is_ok(),
            _ => false,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Signature checks made on this thread, so tests can see that every
    /// key is tried whichever one matches.
    pub(crate) static KEY_CHECKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

enum Signature {
    Ed25519(ed25519_dalek::Signature),
    P256(p256::ecdsa::Signature),
}

/// One sender's public-key scheme, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeySpec {
    /// The signature header.
    pub header: HeaderName,
    pub algorithm: KeyAlgorithm,
    pub key_format: KeyFormat,
    /// How the signature is written in the header.
    pub encoding: Encoding,
    /// Text before the encoded signature (`v1a,`); matched
    /// case-insensitively. In a list, only items with it are candidates.
    pub prefix: String,
    /// The header holds a list split on this; every item is a candidate.
    pub separator: Option<String>,
    /// What is signed.
    pub payload: Template,
    pub timestamp: Option<TimestampSpec>,
}

impl PublicKeySpec {
    /// Every decodable candidate signature in the request.
    fn candidates(&self, headers: &HeaderMap) -> Vec<Signature> {
        collect_candidates(
            headers.get_all(&self.header).iter(),
            self.separator.as_deref(),
            MAX_CANDIDATES,
            |item| self.decode_candidate(item),
        )
    }

    fn decode_candidate(&self, item: &[u8]) -> Option<Signature> {
        let item = item.trim_ascii();
        let prefix = self.prefix.as_bytes();
        if item.len() < prefix.len() || !item[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return None;
        }
        let bytes = self.encoding.decode(&item[prefix.len()..])?;
        match self.algorithm {
            KeyAlgorithm::Ed25519 => Some(Signature::Ed25519(
                ed25519_dalek::Signature::from_slice(&bytes).ok()?,
            )),
            KeyAlgorithm::EcdsaP256Sha256 => Some(Signature::P256(
                p256::ecdsa::Signature::from_der(&bytes).ok()?,
            )),
        }
    }

    /// One line for `hookgate check`, without key values.
    pub fn describe(&self) -> String {
        let mut d = format!(
            "{} signature in {} ({}{}) of {}",
            self.algorithm.as_str(),
            self.header,
            self.prefix,
            self.encoding.as_str(),
            self.payload.describe()
        );
        if let Some(sep) = &self.separator {
            d.push_str(&format!(", list split on {sep:?}"));
        }
        if let Some(t) = &self.timestamp {
            d.push_str(&format!(
                ", timestamp {} ({}) within {}",
                t.source.describe(),
                t.unit.as_str(),
                humantime::format_duration(t.tolerance)
            ));
        }
        d
    }
}

pub struct PublicKeyVerifier {
    spec: PublicKeySpec,
    keys: Vec<PublicKey>,
}

impl PublicKeyVerifier {
    pub fn new(spec: PublicKeySpec, keys: &[PublicKey]) -> PublicKeyVerifier {
        PublicKeyVerifier {
            spec,
            keys: keys.to_vec(),
        }
    }

    pub fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        let spec = &self.spec;
        if !req.headers.contains_key(&spec.header) {
            return Err(VerifyError::MissingCredentials);
        }
        let candidates = spec.candidates(req.headers);
        if candidates.is_empty() {
            return Err(VerifyError::MalformedSignature);
        }
        let timestamp = match &spec.timestamp {
            Some(ts) => Some(ts.extract(
                req.headers,
                req.body,
                (&spec.header, spec.separator.as_deref()),
            )?),
            None => None,
        };
        // Ed25519 signs the whole message, not a digest fed in pieces.
        let message = spec
            .payload
            .render(&Values {
                body: req.body,
                headers: req.headers,
                method: req.method,
                timestamp: timestamp.as_deref(),
                url: None,
                form: true,
            })?
            .concat();
        // Every key checks every candidate, with no early exit, so the time
        // taken does not tell which key matched.
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let hit = candidates
                .iter()
                .fold(false, |acc, c| key.verify(&message, c) | acc);
            if hit && matched.is_none() {
                matched = Some(index);
            }
        }
        if let Some(index) = matched {
            if let (Some(ts), Some(text)) = (&spec.timestamp, &timestamp) {
                ts.check(text, req.now)?;
            }
            return Ok(Verified {
                secret_index: Some(index),
                strip_header: None,
            });
        }
        Err(VerifyError::BadSignature)
    }
}
