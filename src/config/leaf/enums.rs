//! Leaves with a fixed set of words: `ack`, `dedup.backend`,
//! `verify.algorithm`, …

use super::Leaf;
use crate::config::{AckMode, DedupBackend, IngressThreads, StoreBackend, StoreErrorPolicy};
use crate::verify::{Algorithm, Encoding, SecretEncoding, TimeUnit};

/// `unknown <what> "<word>": <expected>`, with the word only when it is
/// short and plain (so the expansion scrub can always find it).
pub fn unknown(what: &str, word: &str, expected: &str) -> String {
    let plain = (1..=32).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        format!("unknown {what} {word:?}: {expected}")
    } else {
        format!("unknown {what}: {expected}")
    }
}

/// A word leaf from a `match`, or from the type's own `parse`.
macro_rules! words {
    ($ty:ty, $what:literal, $choices:literal, $parse:expr) => {
        impl Leaf for $ty {
            const EXPECTING: &'static str = $choices;

            fn parse(text: &str) -> Result<Self, String> {
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(text).ok_or_else(|| unknown($what, text, concat!("expected ", $choices)))
            }
        }
    };
}

words!(AckMode, "ack mode", "`async` or `sync`", |w| match w {
    "sync" => Some(AckMode::Sync),
    "async" => Some(AckMode::Async),
    _ => None,
});
words!(
    DedupBackend,
    "backend",
    "`store` (or `local`, its old name) or `redis`",
    |w| match w {
        // `local` is the old name of `store`, kept as an alias.
        "store" | "local" => Some(DedupBackend::Local),
        "redis" => Some(DedupBackend::Redis),
        _ => None,
    }
);
words!(
    StoreBackend,
    "store backend",
    "`sqlite` or `postgres`",
    |w| match w {
        "sqlite" => Some(StoreBackend::Sqlite),
        "postgres" => Some(StoreBackend::Postgres),
        _ => None,
    }
);
words!(
    IngressThreads,
    "ingress threading",
    "`per_core` or `shared`",
    |w| match w {
        "per_core" => Some(IngressThreads::PerCore),
        "shared" => Some(IngressThreads::Shared),
        _ => None,
    }
);
words!(
    StoreErrorPolicy,
    "policy",
    "`accept` or `reject`",
    |w| match w {
        "accept" => Some(StoreErrorPolicy::Accept),
        "reject" => Some(StoreErrorPolicy::Reject),
        _ => None,
    }
);
words!(LogFormat, "format", "`text` or `json`", |w| match w {
    "text" => Some(LogFormat::Text),
    "json" => Some(LogFormat::Json),
    _ => None,
});
impl Leaf for UnsignedKey {
    const EXPECTING: &'static str = "`allow`";

    fn parse(text: &str) -> Result<Self, String> {
        (text == "allow")
            .then_some(UnsignedKey::Allow)
            .ok_or_else(|| {
                unknown(
                    "value",
                    text,
                    "the only value is `allow` (leave it out to refuse unsigned key parts)",
                )
            })
    }
}
words!(
    Algorithm,
    "algorithm",
    "sha1, sha256 or sha512",
    Algorithm::parse
);
words!(
    Encoding,
    "encoding",
    "hex, base64 or base64url",
    Encoding::parse
);
words!(
    SecretEncoding,
    "secret encoding",
    "utf8, base64 or whsec",
    SecretEncoding::parse
);
words!(
    TimeUnit,
    "unit",
    "seconds, milliseconds or rfc3339",
    TimeUnit::parse
);

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `dedup.unsigned_key`: its only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsignedKey {
    /// Key parts the route's signature does not cover are accepted.
    Allow,
}
