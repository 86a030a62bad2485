//! `dedup:`: the key must fit what the route's signature covers.

use super::super::leaf::Parsed;
use super::super::raw::{RawDedup, RawDedupMode};
use super::super::{ConfigError, Dedup, DedupMode};
use super::At;
use crate::dedup::key::{signed_body_digest, BODY_SHA256};
use crate::dedup::KeyTemplate;
use crate::presets::natural_key;
use crate::verify::{Trust, VerifySpec};

/// `dedup:` is `off`, a map, or absent (the scheme's natural event ID, else
/// the digest of the signed body, with every other setting at its default).
pub fn dedup(
    at: &At,
    raw: Option<RawDedupMode>,
    verify: &VerifySpec,
) -> Result<DedupMode, ConfigError> {
    let settings = match raw {
        Some(RawDedupMode::Off) => return Ok(DedupMode::Off),
        Some(RawDedupMode::On(settings)) => settings,
        None => RawDedup::default(),
    };
    let unsigned_key_allowed = settings.unsigned_key.is_some();
    let key = dedup_key(
        &at.field("key"),
        settings.key.map(Parsed::into_inner),
        unsigned_key_allowed,
        verify,
    )?;
    Ok(DedupMode::On(Dedup {
        key,
        ttl: settings.ttl.map_or(Dedup::DEFAULT_TTL, Parsed::into_inner),
        backend: settings.backend.map(Parsed::into_inner).unwrap_or_default(),
        on_store_error: settings
            .on_store_error
            .map(Parsed::into_inner)
            .unwrap_or_default(),
        unsigned_key_allowed,
    }))
}

/// The route's key: as written, else the scheme's natural event ID when
/// its signature covers it, else the digest of the signed body. On a
/// signed route every part must be signed, unless `unsigned_key: allow`.
fn dedup_key(
    at: &At,
    written: Option<KeyTemplate>,
    allow_unsigned: bool,
    verify: &VerifySpec,
) -> Result<KeyTemplate, ConfigError> {
    let parse = |text: &str| KeyTemplate::parse(text).map_err(|e| at.error(e));
    let Trust::Signed(coverage) = verify.trust() else {
        return match written {
            Some(key) => Ok(key),
            None => parse(natural_key(&verify.scheme).unwrap_or(BODY_SHA256)),
        };
    };
    // A preset whose signature covers some fields of the body but not the
    // body (Mailgun's `token`): its natural key is built from those fields
    // only, which the key module's body-wide rule cannot see.
    if written.is_none() {
        if let Some(text) = natural_key(&verify.scheme) {
            if !coverage.body && signs_every_field_of(text, &coverage) {
                let mut key = parse(text)?;
                key.set_fallback(&coverage);
                return Ok(key);
            }
        }
    }
    let mut key = match written {
        Some(key) => key,
        None => {
            let natural = natural_key(&verify.scheme)
                .map(parse)
                .transpose()?
                .filter(|k| k.check_signed(&verify.scheme, &coverage).is_ok());
            match natural {
                Some(k) => k,
                None => parse(signed_body_digest(&coverage))?,
            }
        }
    };
    key.set_fallback(&coverage);
    if !allow_unsigned {
        key.check_signed(&verify.scheme, &coverage)
            .map_err(|e| at.error(e))?;
    }
    Ok(key)
}

/// Whether `text` is made of `{json:/pointer}` parts only (no literal
/// text), each a field the signature covers on its own.
fn signs_every_field_of(text: &str, coverage: &crate::verify::Coverage) -> bool {
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix("{json:").and_then(|r| r.split_once('}')) else {
            return false;
        };
        if !coverage.json.iter().any(|p| p == inner.0) {
            return false;
        }
        parts += 1;
        rest = inner.1;
    }
    parts > 0
}
