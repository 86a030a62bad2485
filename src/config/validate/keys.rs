//! `verify.secrets` and `verify.public_keys`: present, and usable by the
//! scheme. Errors name a secret or a key by index, never by value.

use secrecy::{ExposeSecret, SecretString};

use super::super::leaf::Secret;
use super::super::ConfigError;
use super::At;
use crate::verify::{HmacSpec, PublicKey, PublicKeySpec, SecretEncoding};

/// At least one secret (each is non-empty already).
pub fn secrets(at: &At, raw: Option<Vec<Secret>>) -> Result<Vec<SecretString>, ConfigError> {
    let secrets: Vec<SecretString> = raw.unwrap_or_default().into_iter().map(|s| s.0).collect();
    if secrets.is_empty() {
        return Err(at
            .field("secrets")
            .error("at least one secret is required (list several to rotate)"));
    }
    Ok(secrets)
}

/// Every secret must decode with the description's `secret_encoding`.
pub fn check_secrets_decode(
    at: &At,
    spec: &HmacSpec,
    secrets: &[SecretString],
) -> Result<(), ConfigError> {
    for source in &spec.sources {
        for (i, s) in secrets.iter().enumerate() {
            let key = source.secret_encoding.key(s.expose_secret());
            let what = match (&key, source.secret_encoding) {
                (Some(k), _) if k.is_empty() => {
                    "decodes to an empty key, which anyone could sign with"
                }
                (Some(_), _) => continue,
                (None, SecretEncoding::Whsec) => {
                    "is not a Standard Webhooks secret (base64, optionally after `whsec_`)"
                }
                (None, _) => "is not valid base64",
            };
            return Err(at
                .field("secrets")
                .index(i)
                .error(format!("the secret {what}")));
        }
    }
    Ok(())
}

/// The sender's public keys, each parsed in the preset's format.
pub fn public_keys(
    at: &At,
    spec: &PublicKeySpec,
    raw: Option<Vec<String>>,
) -> Result<Vec<PublicKey>, ConfigError> {
    let at = at.field("public_keys");
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(at.error(format!(
            "at least one public key is required (list several to rotate): {}",
            spec.key_format.expected()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(i, text)| {
            PublicKey::parse(spec.algorithm, spec.key_format, text).ok_or_else(|| {
                at.index(i).error(format!(
                    "not a valid key: expected {}",
                    spec.key_format.expected()
                ))
            })
        })
        .collect()
}
