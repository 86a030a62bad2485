//! Signed timestamps: where a sender puts the time it signed, and the
//! window (`tolerance`, past and future) in which hookgate accepts it.
//!
//! The current time is always passed in by the caller, so tests can pin the
//! clock for old published vectors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName};

use super::pointer::{Found, Pointer};
use super::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampSource {
    /// `header:NAME`: the whole value of a header.
    Header(HeaderName),
    /// `signature:KEY`: the `KEY=value` item of the signature header list
    /// (Stripe's `t=`, Paddle's `ts=`).
    SignatureKey(String),
    /// `signature:#N`: item N (from 0) of the signature header list, a bare
    /// value (Recurly's `recurly-signature: <ms>,<hex>,<hex>`).
    SignatureItem(usize),
    /// `json:/pointer`: a string or number in the JSON body (RFC 6901),
    /// found by the streaming pointer scanner: the body is not yet
    /// authenticated, so it is never parsed into a document tree.
    Json(Pointer),
}

impl TimestampSource {
    /// Parses `header:NAME`, `signature:KEY` or `json:/pointer`.
    pub fn parse(text: &str) -> Result<TimestampSource, String> {
        if let Some(h) = text.strip_prefix("header:") {
            return HeaderName::from_bytes(h.as_bytes())
                .map(TimestampSource::Header)
                .map_err(|_| format!("{h:?} is not a valid header name"));
        }
        if let Some(k) = text.strip_prefix("signature:") {
            if let Some(n) = k.strip_prefix('#') {
                return n.parse().map(TimestampSource::SignatureItem).map_err(|_| {
                    format!("{k:?}: `#` is followed by the item's index, e.g. `signature:#0`")
                });
            }
            if k.is_empty() || k.contains(['=', ' ', ',', ';']) {
                return Err(format!("{k:?} is not a key of the signature header"));
            }
            return Ok(TimestampSource::SignatureKey(k.to_string()));
        }
        if let Some(p) = text.strip_prefix("json:") {
            if !p.starts_with('/') {
                return Err(format!("{p:?} is not a JSON pointer: it starts with `/`"));
            }
            return Ok(TimestampSource::Json(Pointer::parse(p)));
        }
        Err(format!(
            "{text:?}: expected `header:NAME`, `signature:KEY` or `json:/pointer`"
        ))
    }

    pub fn describe(&self) -> String {
        match self {
            TimestampSource::Header(h) => format!("header:{h}"),
            TimestampSource::SignatureKey(k) => format!("signature:{k}"),
            TimestampSource::SignatureItem(n) => format!("signature:#{n}"),
            TimestampSource::Json(p) => format!("json:{}", p.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Milliseconds,
    Rfc3339,
}

impl TimeUnit {
    pub fn parse(s: &str) -> Option<TimeUnit> {
        match s {
            "seconds" => Some(TimeUnit::Seconds),
            "milliseconds" => Some(TimeUnit::Milliseconds),
            "rfc3339" => Some(TimeUnit::Rfc3339),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Milliseconds => "milliseconds",
            TimeUnit::Rfc3339 => "rfc3339",
        }
    }

    /// The time `text` stands for; `None` when it is not one.
    pub fn parse_time(self, text: &str) -> Option<SystemTime> {
        let number = || -> Option<u64> {
            // Digits only: no sign, no spaces, no exponent.
            if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        match self {
            TimeUnit::Seconds => UNIX_EPOCH.checked_add(Duration::from_secs(number()?)),
            TimeUnit::Milliseconds => UNIX_EPOCH.checked_add(Duration::from_millis(number()?)),
            TimeUnit::Rfc3339 => match offset_seconds(text) {
                // humantime reads UTC (`Z`) only: strip the offset, apply it after.
                Some(_) => humantime::parse_rfc3339_weak(&text[..text.len() - 6])
                    .ok()
                    .and_then(|t| apply_offset(t, text)),
                None if text.ends_with(['Z', 'z']) => humantime::parse_rfc3339_weak(text).ok(),
                None => None,
            },
        }
    }

    /// `time` written in this unit (used by `hookgate sign`).
    pub fn format(self, time: SystemTime) -> String {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        match self {
            TimeUnit::Seconds => since.as_secs().to_string(),
            TimeUnit::Milliseconds => since.as_millis().to_string(),
            TimeUnit::Rfc3339 => humantime::format_rfc3339_seconds(time).to_string(),
        }
    }
}

/// The `+hh:mm` / `-hh:mm` at the end of an RFC 3339 time, in seconds.
fn offset_seconds(text: &str) -> Option<i64> {
    let tail = text.get(text.len().checked_sub(6)?..)?.as_bytes();
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if tail[3] != b':' || !tail[1..3].iter().chain(&tail[4..6]).all(u8::is_ascii_digit) {
        return None;
    }
    let h = i64::from((tail[1] - b'0') * 10 + (tail[2] - b'0'));
    let m = i64::from((tail[4] - b'0') * 10 + (tail[5] - b'0'));
    Some(sign * (h * 3600 + m * 60))
}

/// humantime's weak parser ignores the offset; apply it (local = UTC + offset).
fn apply_offset(parsed: SystemTime, text: &str) -> Option<SystemTime> {
    match offset_seconds(text) {
        None => Some(parsed),
        Some(off) if off >= 0 => parsed.checked_sub(Duration::from_secs(off as u64)),
        Some(off) => parsed.checked_add(Duration::from_secs(off.unsigned_abs())),
    }
}

/// Where the timestamp is, how it is written, and how far from now it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampSpec {
    pub source: TimestampSource,
    pub unit: TimeUnit,
    /// Accepted distance from now, in the past and in the future.
    pub tolerance: Duration,
}

/// The default window for descriptions that have a timestamp.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

impl TimestampSpec {
    /// The timestamp text as sent. `signature` is the signature header's
    /// values and the list separator, for `signature:KEY`.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        signature: (&HeaderName, Option<&str>),
    ) -> Result<String, VerifyError> {
        match &self.source {
            TimestampSource::Header(h) => {
                let v = headers.get(h).ok_or(VerifyError::MissingCredentials)?;
                let s = v.to_str().map_err(|_| VerifyError::MalformedSignature)?;
                Ok(s.trim().to_string())
            }
            TimestampSource::SignatureKey(key) => {
                let sep = signature.1.unwrap_or(",");
                headers
                    .get_all(signature.0)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(sep))
                    .find_map(|item| {
                        let (k, v) = item.trim().split_once('=')?;
                        (k == key).then(|| v.to_string())
                    })
                    .ok_or(VerifyError::MalformedSignature)
            }
            TimestampSource::SignatureItem(n) => {
                let sep = signature.1.unwrap_or(",");
                headers
                    .get_all(signature.0)
                    .iter()
                    .next()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(sep).nth(*n))
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .ok_or(VerifyError::MalformedSignature)
            }
            TimestampSource::Json(pointer) => match pointer.lookup(body) {
                Some(Found::Scalar(bytes)) => {
                    String::from_utf8(bytes).map_err(|_| VerifyError::MalformedSignature)
                }
                Some(Found::Missing) => Err(VerifyError::MissingCredentials),
                Some(Found::NotScalar) | None => Err(VerifyError::MalformedSignature),
            },
        }
    }

    /// Whether `text` is a time within `tolerance` of `now`.
    pub fn check(&self, text: &str, now: SystemTime) -> Result<(), VerifyError> {
        let at = self
            .unit
            .parse_time(text)
            .ok_or(VerifyError::MalformedSignature)?;
        let distance = match now.duration_since(at) {
            Ok(past) => past,
            Err(future) => future.duration(),
        };
        if distance > self.tolerance {
            return Err(VerifyError::StaleTimestamp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn units_parse() {
        assert_eq!(
            TimeUnit::Seconds.parse_time("1614265330"),
            Some(at(1614265330))
        );
        assert_eq!(
            TimeUnit::Milliseconds.parse_time("1700000300000"),
            Some(at(1700000300))
        );
        assert_eq!(
            TimeUnit::Rfc3339.parse_time("2021-02-25T15:02:10Z"),
            Some(at(1614265330))
        );
        assert_eq!(
            TimeUnit::Rfc3339.parse_time("2021-02-25T16:02:10+01:00"),
            Some(at(1614265330))
        );
        assert_eq!(
            TimeUnit::Rfc3339.parse_time("2019-11-16T10:11:12.634234626Z"),
            Some(at(1573899072) + Duration::from_nanos(634234626))
        );
        for bad in ["", "-1", "+5", "1e9", " 12", "99999999999999999999", "abc"] {
            assert_eq!(TimeUnit::Seconds.parse_time(bad), None, "{bad:?}");
        }
        assert_eq!(TimeUnit::Rfc3339.parse_time("2021-02-25T15:02:10"), None);
        assert_eq!(TimeUnit::Rfc3339.parse_time("1614265330"), None);
    }

    #[test]
    fn rfc3339_offsets_both_ways() {
        // 2021-02-25T15:02:10Z written with other offsets: west of UTC (a
        // minus sign), and with every digit of hours and minutes counting
        // (two-digit hours, minutes that are not whole hours).
        for text in [
            "2021-02-25T10:02:10-05:00",
            "2021-02-26T02:32:10+11:30",
            "2021-02-25T03:17:10-11:45",
        ] {
            assert_eq!(
                TimeUnit::Rfc3339.parse_time(text),
                Some(at(1614265330)),
                "{text}"
            );
        }
        // An offset needs its colon, digits around it, and a sign.
        for bad in [
            "2021-02-25T16:02:10+01-00",
            "2021-02-25T16:02:10+0a:00",
            "2021-02-25T16:02:10 01:00",
        ] {
            assert_eq!(TimeUnit::Rfc3339.parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn unit_names_round_trip() {
        for unit in [TimeUnit::Seconds, TimeUnit::Milliseconds, TimeUnit::Rfc3339] {
            assert_eq!(TimeUnit::parse(unit.as_str()), Some(unit), "{unit:?}");
        }
        assert_eq!(TimeUnit::parse("Seconds"), None);
        assert_eq!(TimeUnit::parse("ms"), None);
    }

    #[test]
    fn numbers_have_at_most_nineteen_digits() {
        // 10^18 and 10^19 milliseconds both fit a u64 and a SystemTime:
        // only the digit limit tells them apart.
        assert_eq!(
            TimeUnit::Milliseconds.parse_time("1000000000000000000"),
            Some(at(1_000_000_000_000_000))
        );
        assert_eq!(
            TimeUnit::Milliseconds.parse_time("10000000000000000000"),
            None
        );
    }

    #[test]
    fn tolerance_applies_to_past_and_future() {
        let spec = TimestampSpec {
            source: TimestampSource::Header(HeaderName::from_static("x-ts")),
            unit: TimeUnit::Seconds,
            tolerance: Duration::from_secs(300),
        };
        let now = at(1_000_000);
        assert_eq!(spec.check("1000000", now), Ok(()));
        assert_eq!(spec.check("999700", now), Ok(()));
        assert_eq!(spec.check("1000300", now), Ok(()));
        assert_eq!(spec.check("999699", now), Err(VerifyError::StaleTimestamp));
        assert_eq!(spec.check("1000301", now), Err(VerifyError::StaleTimestamp));
        assert_eq!(
            spec.check("soon", now),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn sources_parse_and_extract() {
        let mut h = HeaderMap::new();
        h.insert("x-ts", " 12 ".parse().unwrap());
        h.insert("stripe-signature", "t=34,v1=ab".parse().unwrap());
        let sig = HeaderName::from_static("stripe-signature");
        let get = |s: &str, body: &[u8]| {
            TimestampSpec {
                source: TimestampSource::parse(s).unwrap(),
                unit: TimeUnit::Seconds,
                tolerance: DEFAULT_TOLERANCE,
            }
            .extract(&h, body, (&sig, Some(",")))
        };
        assert_eq!(get("header:X-Ts", b"").unwrap(), "12");
        assert_eq!(get("signature:t", b"").unwrap(), "34");
        assert_eq!(get("signature:#0", b"").unwrap(), "t=34");
        assert_eq!(get("signature:#1", b"").unwrap(), "v1=ab");
        assert_eq!(
            get("signature:#2", b""),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(get("json:/a/ts", br#"{"a":{"ts":56}}"#).unwrap(), "56");
        assert_eq!(get("json:/ts", br#"{"ts":"78"}"#).unwrap(), "78");
        assert_eq!(
            get("header:x-none", b""),
            Err(VerifyError::MissingCredentials)
        );
        assert_eq!(
            get("signature:ts", b""),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            get("json:/ts", b"not json"),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(get("json:/ts", b"{}"), Err(VerifyError::MissingCredentials));
        assert_eq!(
            get("json:/ts", br#"{"ts":[1]}"#),
            Err(VerifyError::MalformedSignature)
        );
        for bad in [
            "x-ts",
            "header:bad name",
            "signature:",
            "signature:#",
            "signature:#x",
            "json:ts",
            "body:/x",
        ] {
            assert!(TimestampSource::parse(bad).is_err(), "{bad}");
        }
    }
}
