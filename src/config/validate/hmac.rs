//! The generic `scheme: hmac` description: which parts the payload signs
//! decides which other fields it needs.

use std::time::Duration;

use super::super::leaf::Parsed;
use super::super::raw::{RawTimestamp, RawVerify};
use super::super::ConfigError;
use super::At;
use crate::verify::template::Part;
use crate::verify::timestamp::DEFAULT_TOLERANCE;
use crate::verify::{
    Encoding, SecretEncoding, SignatureSource, Template, TimeUnit, TimestampSource, TimestampSpec,
};

const DEFAULT_ENCODING: Encoding = Encoding::Hex;
const DEFAULT_SECRET_ENCODING: SecretEncoding = SecretEncoding::Utf8;
const DEFAULT_TIME_UNIT: TimeUnit = TimeUnit::Seconds;

/// The description's one signature source (its secrets are checked by the
/// caller).
pub fn generic_source(
    at: &At,
    raw: RawVerify,
    tolerance: Option<Duration>,
    public_url: Option<String>,
) -> Result<SignatureSource, ConfigError> {
    let header = raw
        .header
        .ok_or_else(|| at.field("header").error("required for scheme `hmac`"))?;
    let algorithm = raw.algorithm.ok_or_else(|| {
        at.field("algorithm")
            .error("required for scheme `hmac`: sha1, sha256 or sha512")
    })?;
    let separator = raw.separator.map(|Parsed(s)| s.0);
    let payload = raw.payload.map(Parsed::into_inner).unwrap_or_default();
    let timestamp = timestamp(at, raw.timestamp, separator.is_some(), tolerance)?;
    check_parts(
        at,
        &payload,
        timestamp.is_some(),
        tolerance.is_some(),
        public_url.is_some(),
    )?;
    Ok(SignatureSource {
        separator,
        secret_encoding: raw
            .secret_encoding
            .map_or(DEFAULT_SECRET_ENCODING, Parsed::into_inner),
        payload,
        timestamp,
        public_url,
        ..SignatureSource::new(
            header.0,
            algorithm.0,
            raw.encoding.map_or(DEFAULT_ENCODING, Parsed::into_inner),
            raw.prefix.as_deref().unwrap_or(""),
        )
    })
}

/// `signature:KEY` reads the timestamp from the signature list, so the
/// header must be one.
fn timestamp(
    at: &At,
    raw: Option<RawTimestamp>,
    has_separator: bool,
    tolerance: Option<Duration>,
) -> Result<Option<TimestampSpec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let source = raw.from.0;
    if matches!(
        source,
        TimestampSource::SignatureKey(_) | TimestampSource::SignatureItem(_)
    ) && !has_separator
    {
        return Err(at
            .field("timestamp.from")
            .error("`signature:KEY` needs `separator`: the signature header must be a list"));
    }
    Ok(Some(TimestampSpec {
        source,
        unit: raw.unit.map_or(DEFAULT_TIME_UNIT, Parsed::into_inner),
        tolerance: tolerance.unwrap_or(DEFAULT_TOLERANCE),
    }))
}

/// `{timestamp}` needs `timestamp` (and `tolerance` applies only with it);
/// `{url}` needs `public_url` (which applies only with it).
fn check_parts(
    at: &At,
    payload: &Template,
    timestamped: bool,
    has_tolerance: bool,
    has_public_url: bool,
) -> Result<(), ConfigError> {
    if !timestamped {
        if has_tolerance {
            return Err(at.field("tolerance").error("applies only with `timestamp`"));
        }
        if payload.uses(&Part::Timestamp) {
            return Err(at
                .field("payload")
                .error("uses {timestamp}, so `timestamp` must say where the timestamp is"));
        }
    }
    match (payload.uses(&Part::Url), has_public_url) {
        (true, false) => Err(at
            .field("public_url")
            .error("required: the payload signs {url}")),
        (false, true) => Err(at
            .field("public_url")
            .error("applies only when the payload uses {url}")),
        _ => Ok(()),
    }
}
