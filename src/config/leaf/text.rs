//! Leaves written as free text: durations, addresses, names, URLs, secrets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserialize, Deserializer};

use super::{error, Leaf, Parsed};
use crate::config::UNMATCHED_ROUTE;
use crate::dedup::KeyTemplate;
use crate::events::EventSource;
use crate::verify::{Template, TimestampSource};

/// Durations are greater than zero everywhere in the file.
impl Leaf for Duration {
    const EXPECTING: &'static str = "a duration like 10s";

    fn parse(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text)
            .map_err(|_| "not a duration: write e.g. 250ms, 10s, 5m, 24h or 7d".to_string())?;
        if duration.is_zero() {
            return Err("must be greater than zero".into());
        }
        Ok(duration)
    }
}

impl Leaf for SocketAddr {
    const EXPECTING: &'static str = "an address like \"0.0.0.0:8080\"";

    fn parse(text: &str) -> Result<Self, String> {
        text.parse().map_err(|_| {
            "not an address: write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"".to_string()
        })
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`203.0.113.7`).
impl Leaf for IpNet {
    const EXPECTING: &'static str = "an address or CIDR like 192.30.252.0/22";

    fn parse(text: &str) -> Result<Self, String> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|net| net.trunc())
            .map_err(|_| "not an address or CIDR (e.g. 192.30.252.0/22)".to_string())
    }
}

/// A route's name: `[a-z0-9_-]+`, the `route` metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteName(pub String);

impl Leaf for RouteName {
    const EXPECTING: &'static str = "a route name";

    fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(
                "not a valid route name: use lower-case letters, digits, `_` and `-`".into(),
            );
        }
        if text == UNMATCHED_ROUTE {
            return Err(format!(
                "{UNMATCHED_ROUTE:?} is reserved for requests that match no route"
            ));
        }
        Ok(RouteName(text.to_string()))
    }
}

/// A route's path: absolute, without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath(pub String);

impl Leaf for RoutePath {
    const EXPECTING: &'static str = "a path like /hooks/github";

    fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') || text.contains(['?', '#']) || text.parse::<Uri>().is_err() {
            return Err(
                "not a valid path: it must start with `/` and hold no query or fragment".into(),
            );
        }
        Ok(RoutePath(text.to_string()))
    }
}

/// `verify.public_url`: an absolute http(s) URL without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(pub String);

impl Leaf for PublicUrl {
    const EXPECTING: &'static str = "a URL like https://hooks.example.com/hooks/x";

    fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text.parse().map_err(|_| "not a valid URL".to_string())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err("must be an absolute http:// or https:// URL".into());
        }
        if text.contains(['?', '#']) {
            return Err(
                "must not hold a query or fragment: the request's query string is appended".into(),
            );
        }
        Ok(PublicUrl(text.to_string()))
    }
}

/// `log.level`: a tracing filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

impl Leaf for LogLevel {
    const EXPECTING: &'static str = "a log level or filter";

    fn parse(text: &str) -> Result<Self, String> {
        if tracing_subscriber::EnvFilter::try_new(text).is_err() {
            return Err(
                "not a level or filter: e.g. `info`, `debug`, `hookgate=debug`".to_string(),
            );
        }
        Ok(LogLevel(text.to_string()))
    }
}

/// `redis.url`: may hold a password, so it is a secret from the start.
#[derive(Debug, Clone)]
pub struct RedisUrl(pub SecretString);

impl Leaf for RedisUrl {
    const EXPECTING: &'static str = "a redis:// URL";

    fn parse(text: &str) -> Result<Self, String> {
        let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if !schemes.iter().any(|s| text.starts_with(s)) {
            return Err("must be a redis:// (or rediss://, redis+unix://) URL".into());
        }
        if redis::Client::open(text).is_err() {
            return Err("is not a valid Redis URL".into());
        }
        Ok(RedisUrl(SecretString::from(text)))
    }
}

/// `store.postgres.url`: `postgres://user:password@host:5432/db`. Holds a
/// password, so it is a secret; the driver parses it here, so a bad URL is
/// refused at its field, without printing it.
#[derive(Debug, Clone)]
pub struct PostgresUrl(pub SecretString);

impl Leaf for PostgresUrl {
    const EXPECTING: &'static str = "a postgres:// URL";

    fn parse(text: &str) -> Result<Self, String> {
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|s| text.starts_with(s))
        {
            return Err("must be a postgres:// (or postgresql://) URL".into());
        }
        let config: tokio_postgres::Config = text
            .parse()
            .map_err(|_| "is not a valid PostgreSQL URL".to_string())?;
        // Connections are made without TLS (see docs/configuration.md):
        // refuse a URL that asks for it rather than ignore the request.
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err("sslmode=require is not supported yet: hookgate connects to PostgreSQL without TLS (use a private network or a sidecar proxy)".into());
        }
        Ok(PostgresUrl(SecretString::from(text)))
    }
}

/// `store.postgres.schema`: a plain SQL identifier (it is written into
/// statements unquoted), not one of PostgreSQL's own (`pg_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaName(pub String);

impl Leaf for SchemaName {
    const EXPECTING: &'static str = "a schema name like hookgate";

    fn parse(text: &str) -> Result<Self, String> {
        let mut bytes = text.bytes();
        let valid = (1..=63).contains(&text.len())
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err("not a valid schema name: use 1 to 63 lower-case letters, digits and `_`, starting with a letter or `_`".into());
        }
        if text.starts_with("pg_") || text == "information_schema" {
            return Err("is reserved by PostgreSQL: choose another schema name".into());
        }
        Ok(SchemaName(text.to_string()))
    }
}

/// `admin.token`: long enough not to be guessed.
#[derive(Debug, Clone)]
pub struct AdminToken(pub SecretString);

impl<'de> Deserialize<'de> for AdminToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = SecretString::deserialize(deserializer)?;
        if token.expose_secret().len() < 16 {
            return Err(error("the token is too short: use at least 16 characters"));
        }
        Ok(AdminToken(token))
    }
}

/// One of `verify.secrets`: never empty.
#[derive(Debug, Clone)]
pub struct Secret(pub SecretString);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secret = SecretString::deserialize(deserializer)?;
        if secret.expose_secret().is_empty() {
            return Err(error(
                "the secret is empty (is its environment variable set to an empty string?)",
            ));
        }
        Ok(Secret(secret))
    }
}

/// An event-type pattern in `events.allow` or `events.ack_only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl Leaf for Pattern {
    const EXPECTING: &'static str = "an event type pattern";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(Pattern(text.to_string()))
    }
}

/// `verify.separator`: splits the signature header into a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Separator(pub String);

impl Leaf for Separator {
    const EXPECTING: &'static str = "a separator like \",\"";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "must not be empty: e.g. \" \" (Standard Webhooks), \",\" (Stripe), \";\" (Paddle)"
                    .into(),
            );
        }
        Ok(Separator(text.to_string()))
    }
}

/// Why an empty list of these is refused, where leaving the list out
/// means "everything".
pub trait RefuseEmpty {
    const EMPTY: &'static str;
}

impl RefuseEmpty for Parsed<Pattern> {
    const EMPTY: &'static str =
        "an empty list would forward nothing; leave `allow` out to forward every event";
}

impl RefuseEmpty for Parsed<IpNet> {
    const EMPTY: &'static str =
        "an empty list would refuse every sender; remove `allow_ips` to allow all";
}

/// A list that must not be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmptyList<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de> + RefuseEmpty> Deserialize<'de> for NonEmptyList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<T>::deserialize(deserializer)?;
        if list.is_empty() {
            return Err(error(T::EMPTY));
        }
        Ok(NonEmptyList(list))
    }
}

impl Leaf for Template {
    const EXPECTING: &'static str = "a payload template like \"{timestamp}.{body}\"";

    fn parse(text: &str) -> Result<Self, String> {
        Template::parse(text)
    }
}

impl Leaf for TimestampSource {
    const EXPECTING: &'static str = "a timestamp source like \"header:NAME\"";

    fn parse(text: &str) -> Result<Self, String> {
        TimestampSource::parse(text)
    }
}

impl Leaf for EventSource {
    const EXPECTING: &'static str = "an event source like \"json:/type\"";

    fn parse(text: &str) -> Result<Self, String> {
        EventSource::parse(text)
    }
}

impl Leaf for KeyTemplate {
    const EXPECTING: &'static str = "a key template like \"{json:/id}\"";

    fn parse(text: &str) -> Result<Self, String> {
        KeyTemplate::parse(text)
    }
}
