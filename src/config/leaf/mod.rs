//! Leaf values, parsed while the file is deserialised.
//!
//! A field of type [`Parsed<T>`] is written as a string and parsed into a
//! `T` by serde itself, so a bad value is reported at its field by
//! `serde_path_to_error` (`routes[0].upstream.timeout: not a duration: …`)
//! and the validator only sees values that already have their types.
//!
//! Messages never print the value they refuse (it may be a secret brought
//! in by `${VAR}`): they name what was expected. The one exception is an
//! unknown word for a field with a fixed set of words (`ack: later`),
//! shown only when it is a short plain word, which the expansion scrub in
//! `error_text.rs` can always find (a value with quotes or escapes would
//! be printed escaped, and could slip past it).

mod enums;
mod http;
mod text;

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};

pub use self::http::{ListedHeader, SettableHeaders, UpstreamUrl};
pub use enums::{unknown, LogFormat, UnsignedKey};
pub use text::{
    AdminToken, LogLevel, NonEmptyList, Pattern, PostgresUrl, PublicUrl, RedisUrl, RouteName,
    RoutePath, SchemaName, Secret, Separator,
};

/// Starts a message written here, so `error_text::serde_message` keeps it
/// as it is instead of rewriting it as one of serde's own.
pub const OWN_MESSAGE: &str = "\u{1}hookgate\u{1}";

/// A deserialisation error with one of our messages.
pub fn error<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format_args!("{OWN_MESSAGE}{message}"))
}

/// A type written as a string in the config file.
pub trait Leaf: Sized {
    /// What the field takes, for a value of the wrong YAML type:
    /// `expected a duration like 10s, found an integer`.
    const EXPECTING: &'static str;

    /// Parses the string. Messages written in `leaf/` never hold `text`;
    /// the parsers borrowed from other modules (payload and key templates,
    /// timestamp and event sources) quote the part of a template they
    /// refuse, which the expansion scrub still covers.
    fn parse(text: &str) -> Result<Self, String>;
}

/// A leaf parsed during deserialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<T> Parsed<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: Leaf> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<T>(PhantomData<T>);
        impl<T: Leaf> Visitor<'_> for StrVisitor<T> {
            type Value = Parsed<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Parsed<T>, E> {
                T::parse(text).map(Parsed).map_err(error)
            }
        }
        deserializer.deserialize_str(StrVisitor(PhantomData))
    }
}

/// A number that must not be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive<T>(pub T);

impl<T> Positive<T> {
    pub fn get(self) -> T {
        self.0
    }
}

impl<'de, T: Deserialize<'de> + Default + PartialEq> Deserialize<'de> for Positive<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = T::deserialize(deserializer)?;
        if value == T::default() {
            return Err(error("must be greater than zero"));
        }
        Ok(Positive(value))
    }
}

/// A number with a lower bound: `max_header_bytes` (hyper's read buffer
/// cannot be smaller), `retry.max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLeast<T, const MIN: u64>(pub T);

impl<'de, T, const MIN: u64> Deserialize<'de> for AtLeast<T, MIN>
where
    T: Deserialize<'de> + Into<u64> + Copy,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = T::deserialize(deserializer)?;
        if value.into() < MIN {
            return Err(error(format_args!("must be at least {MIN}")));
        }
        Ok(AtLeast(value))
    }
}

/// `ack_status`: a 2xx status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessStatus(pub ::http::StatusCode);

impl<'de> Deserialize<'de> for SuccessStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(deserializer)?;
        ::http::StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_success())
            .map(SuccessStatus)
            .ok_or_else(|| error("not a 2xx status"))
    }
}
