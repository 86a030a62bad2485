//! The keys a JWT is checked with: HS256 secrets, and public keys written
//! as JWKs (RFC 7517), inline in the config or fetched from a JWKS URL.
//!
//! Each key has one algorithm, fixed by its type (an `oct` secret is
//! HS256, an `RSA` key RS256, an `EC` P-256 key ES256, an `OKP` Ed25519
//! key EdDSA): a token's `alg` header picks among the keys of its own
//! type only, so an RSA public key can never be used as an HMAC secret
//! (the classic algorithm confusion). Signatures are checked by ring.

use std::fmt;

use base64::Engine;
use serde_json::Value;

/// RSA moduli shorter than this are refused (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// An HS256 secret shorter than the hash is refused (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 4] = [
        JwtAlgorithm::Hs256,
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::EdDsa,
    ];

    /// The `alg` header value, exactly as JOSE spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Case-sensitive, as `alg` values are (`none` is never one).
    pub fn parse(text: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

#[derive(Clone)]
enum Material {
    Hmac(ring::hmac::Key),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed SEC1 point.
    P256(Vec<u8>),
    Ed25519([u8; 32]),
}

/// One verification key, with the `kid` it is published under.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    material: Material,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JwtKey({}, kid {:?}, [REDACTED])",
            self.algorithm().as_str(),
            self.kid
        )
    }
}

/// Why a JWK cannot be used; never quotes the key.
pub type JwkError = &'static str;

fn b64url(value: &Value, field: &str) -> Result<Vec<u8>, JwkError> {
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .ok_or(match field {
            "n" => "an RSA key needs `n` (base64url)",
            "e" => "an RSA key needs `e` (base64url)",
            "x" => "the key needs `x` (base64url)",
            _ => "the key needs `y` (base64url)",
        })?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| "a key field is not base64url")
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

impl JwtKey {
    /// An HS256 secret (its bytes as written).
    pub fn secret(secret: &[u8]) -> JwtKey {
        JwtKey {
            kid: None,
            material: Material::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)),
        }
    }

    /// A public key from its JWK. Symmetric (`oct`) JWKs are refused:
    /// HS256 secrets are configured as secrets, never published.
    pub fn from_jwk(jwk: &Value) -> Result<JwtKey, JwkError> {
        if !jwk.is_object() {
            return Err("a JWK is a JSON object");
        }
        let text = |field: &str| jwk.get(field).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            return Err("the key's `use` is not `sig`");
        }
        let material = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => {
                let n = strip_zeros(b64url(jwk, "n")?);
                let e = strip_zeros(b64url(jwk, "e")?);
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                if bits < MIN_RSA_BITS || e.is_empty() {
                    return Err("an RSA key must have a modulus of at least 2048 bits");
                }
                Material::Rsa { n, e }
            }
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (b64url(jwk, "x")?, b64url(jwk, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("a P-256 key's `x` and `y` are 32 bytes each");
                }
                let point = [&[4u8][..], &x, &y].concat();
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                    .map_err(|_| "the P-256 key is not a point on the curve")?;
                Material::P256(point)
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x: [u8; 32] = b64url(jwk, "x")?
                    .try_into()
                    .map_err(|_| "an Ed25519 key's `x` is 32 bytes")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| "the Ed25519 key is not a valid point")?;
                if key.is_weak() {
                    return Err("the Ed25519 key has small order");
                }
                Material::Ed25519(x)
            }
            (Some("oct"), _) => return Err(
                "symmetric (`oct`) keys are not read from JWKs: give HS256 secrets in `secrets`",
            ),
            (Some("EC" | "OKP"), _) => {
                return Err("unsupported curve (P-256 and Ed25519 are supported)")
            }
            _ => return Err("unsupported `kty` (RSA, EC and OKP are supported)"),
        };
        let key = JwtKey {
            kid: text("kid").map(str::to_string),
            material,
        };
        // A JWK's own `alg`, when given, must be the one its type implies.
        match text("alg") {
            Some(alg) if alg != key.algorithm().as_str() => {
                Err("the key's `alg` does not match its type")
            }
            _ => Ok(key),
        }
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> JwtAlgorithm {
        match self.material {
            Material::Hmac(_) => JwtAlgorithm::Hs256,
            Material::Rsa { .. } => JwtAlgorithm::Rs256,
            Material::P256(_) => JwtAlgorithm::Es256,
            Material::Ed25519(_) => JwtAlgorithm::EdDsa,
        }
    }

    /// Whether `message` carries a valid `signature` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{self, UnparsedPublicKey};
        match &self.material {
            Material::Hmac(key) => ring::hmac::verify(key, message, signature).is_ok(),
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The keys of a JWKS document (`{"keys": [...]}`), at most `max` of them.
/// Keys hookgate cannot use (encryption keys, other curves, short RSA
/// moduli) are skipped, as a JWKS may list them for other consumers.
pub fn parse_jwks(document: &[u8], max: usize) -> Result<Vec<JwtKey>, &'static str> {
    let value: Value = serde_json::from_slice(document).map_err(|_| "the JWKS is not JSON")?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no `keys` list")?;
    let keys: Vec<JwtKey> = keys
        .iter()
        .filter_map(|k| JwtKey::from_jwk(k).ok())
        .take(max)
        .collect();
    if keys.is_empty() {
        return Err("the JWKS has no usable signing key");
    }
    Ok(keys)
}
