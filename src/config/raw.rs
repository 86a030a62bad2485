//! The configuration file as written, after `${…}` expansion, with every
//! leaf already parsed into its type (`leaf/`).
//!
//! These structs describe shape: every field the user may write, with
//! `deny_unknown_fields` so a typo is an error rather than a silently
//! ignored setting. A field left out (or `null`) is `None` here and takes
//! its default, from the `Default` impls and `DEFAULT_*` constants next to
//! the typed [`super::Config`], in `validate/`. Rules between fields
//! (which verify fields a scheme takes, a key the signature covers) are
//! checked there too.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::leaf::{
    self, AdminToken, AtLeast, ListedHeader, LogFormat, LogLevel, NonEmptyList, Parsed, Pattern,
    Positive, PostgresUrl, PublicUrl, RedisUrl, RouteName, RoutePath, SchemaName, Secret,
    Separator, SettableHeaders, SuccessStatus, UnsignedKey, UpstreamUrl,
};
use super::{AckMode, DedupBackend, IngressThreads, StoreBackend, StoreErrorPolicy};
use crate::dedup::KeyTemplate;
use crate::events::EventSource;
use crate::verify::{Algorithm, Encoding, SecretEncoding, Template, TimeUnit, TimestampSource};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Parsed<SocketAddr>>,
    pub admin: Option<RawAdmin>,
    pub data_dir: Option<PathBuf>,
    pub limits: Option<RawLimits>,
    pub runtime: Option<RawRuntime>,
    pub shutdown_timeout: Option<Parsed<Duration>>,
    pub redis: Option<RawRedis>,
    pub store: Option<RawStore>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub trusted_proxies: Vec<Parsed<IpNet>>,
    pub log: Option<RawLog>,
    pub reload: Option<RawReload>,
    pub telemetry: Option<RawTelemetry>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp: Option<RawOtlp>,
}

/// `telemetry.otlp`: traces exported over OTLP/HTTP.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The collector's base URL (`/v1/traces` is added).
    pub endpoint: Parsed<UpstreamUrl>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<Parsed<LogFormat>>,
    pub level: Option<Parsed<LogLevel>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub interval: Option<Parsed<Duration>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub per_second: Positive<u32>,
    /// Defaults to `per_second`.
    pub burst: Option<Positive<u32>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub backend: Option<Parsed<StoreBackend>>,
    pub fsync: Option<bool>,
    pub retention: Option<Parsed<Duration>>,
    pub postgres: Option<RawPostgres>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Holds a password: a secret.
    pub url: Parsed<PostgresUrl>,
    pub schema: Option<Parsed<SchemaName>>,
    pub pool_size: Option<Positive<u32>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// May carry a password: a secret.
    pub url: Parsed<RedisUrl>,
    pub key_prefix: Option<String>,
    pub timeout: Option<Parsed<Duration>>,
}

/// `dedup:` is `off` or a map.
pub enum RawDedupMode {
    Off,
    On(RawDedup),
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDedup {
    pub key: Option<Parsed<KeyTemplate>>,
    pub ttl: Option<Parsed<Duration>>,
    pub backend: Option<Parsed<DedupBackend>>,
    pub on_store_error: Option<Parsed<StoreErrorPolicy>>,
    /// `allow`: accept key parts the route's signature does not cover.
    pub unsigned_key: Option<Parsed<UnsignedKey>>,
}

const DEDUP_EXPECTED: &str =
    "`off` or a map with `key`, `ttl`, `backend`, `on_store_error`, `unsigned_key`";

impl<'de> Deserialize<'de> for RawDedupMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;
        impl<'de> Visitor<'de> for ModeVisitor {
            type Value = RawDedupMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DEDUP_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawDedupMode, E> {
                match text {
                    "off" => Ok(RawDedupMode::Off),
                    _ => Err(leaf::error(format_args!("expected {DEDUP_EXPECTED}"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDedupMode, A::Error> {
                let deserializer = serde::de::value::MapAccessDeserializer::new(map);
                RawDedup::deserialize(deserializer).map(RawDedupMode::On)
            }
        }
        deserializer.deserialize_any(ModeVisitor)
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Parsed<SocketAddr>>,
    pub token: Option<AdminToken>,
}

/// `runtime`: the threads that serve ingress connections.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub ingress: Option<Parsed<IngressThreads>>,
    pub threads: Option<Positive<u64>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<Positive<u64>>,
    pub header_read_timeout: Option<Parsed<Duration>>,
    pub body_read_timeout: Option<Parsed<Duration>>,
    pub idle_timeout: Option<Parsed<Duration>>,
    pub max_upstream_response_bytes: Option<Positive<u64>>,
    pub max_connections: Option<Positive<u64>>,
    pub max_concurrent_requests: Option<Positive<u64>>,
    /// hyper's read buffer cannot be smaller.
    pub max_header_bytes: Option<AtLeast<u64, 8192>>,
    pub max_headers: Option<Positive<u64>>,
    pub body_min_rate: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Parsed<RouteName>,
    pub path: Parsed<RoutePath>,
    pub verify: Option<RawVerify>,
    pub ack: Option<Parsed<AckMode>>,
    pub ack_status: Option<SuccessStatus>,
    pub max_pending: Option<Positive<u64>>,
    pub dedup: Option<RawDedupMode>,
    pub events: Option<RawEvents>,
    pub allow_ips: Option<NonEmptyList<Parsed<IpNet>>>,
    pub rate_limit: Option<RawRateLimit>,
    pub upstream: Option<RawUpstream>,
    pub destinations: Option<Vec<RawDestination>>,
}

/// One entry of `destinations:`: the `upstream:` keys, a name, and the
/// kind's own block (the URL's scheme says which kind it is).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub name: Parsed<RouteName>,
    pub url: String,
    pub timeout: Option<Parsed<Duration>>,
    #[serde(default)]
    pub headers: SettableHeaders,
    pub forward_headers: Option<Vec<Parsed<ListedHeader>>>,
    pub relay_headers: Option<Vec<Parsed<ListedHeader>>>,
    pub concurrency: Option<Positive<u32>>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub ordering: Option<RawOrdering>,
    pub nats: Option<RawNats>,
    pub amqp: Option<RawAmqp>,
    pub redis: Option<RawRedisStream>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrdering {
    pub key: Parsed<KeyTemplate>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    pub subject: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmqp {
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisStream {
    pub stream: String,
    pub maxlen: Option<Positive<u64>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub from: Option<Parsed<EventSource>>,
    pub allow: Option<NonEmptyList<Parsed<Pattern>>>,
    pub ack_only: Option<Vec<Parsed<Pattern>>>,
}

/// One flat struct for every scheme: which fields apply to which scheme is
/// checked in validation, so the error can say "`prefix` does not apply to
/// scheme `header`" instead of serde's generic "unknown field".
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub scheme: String,
    pub header: Option<Parsed<HeaderName>>,
    pub algorithm: Option<Parsed<Algorithm>>,
    pub encoding: Option<Parsed<Encoding>>,
    pub prefix: Option<String>,
    pub separator: Option<Parsed<Separator>>,
    pub secret_encoding: Option<Parsed<SecretEncoding>>,
    pub payload: Option<Parsed<Template>>,
    pub timestamp: Option<RawTimestamp>,
    pub tolerance: Option<Parsed<Duration>>,
    pub public_url: Option<Parsed<PublicUrl>>,
    pub secrets: Option<Vec<Secret>>,
    /// The sender's public keys, for public-key schemes; their format
    /// depends on the scheme, so they are parsed in validation.
    pub public_keys: Option<Vec<String>>,
    /// Meta's verify token, for its subscription `GET` (meta, whatsapp,
    /// instagram).
    pub verify_token: Option<Secret>,
    // `scheme: jwt` (src/config/validate/jwt.rs)
    pub algorithms: Option<Vec<String>>,
    /// Public keys as JWKs; parsed in validation, which names the bad one.
    pub keys: Option<Vec<serde_json::Value>>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Option<Parsed<Duration>>,
    pub jwks_min_refetch: Option<Parsed<Duration>>,
    pub jwks_timeout: Option<Parsed<Duration>>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub required_claims: Option<Vec<String>>,
    pub claims: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    pub leeway: Option<Parsed<Duration>>,
    pub max_age: Option<Parsed<Duration>>,
    pub body_sha256_claim: Option<String>,
}

/// A string or a list of strings (`issuer`, `audience`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimestamp {
    pub from: Parsed<TimestampSource>,
    pub unit: Option<Parsed<TimeUnit>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Parsed<UpstreamUrl>,
    pub timeout: Option<Parsed<Duration>>,
    #[serde(default)]
    pub headers: SettableHeaders,
    /// When set, the only sender headers forwarded.
    pub forward_headers: Option<Vec<Parsed<ListedHeader>>>,
    /// Sync: upstream response headers relayed besides the default ones.
    pub relay_headers: Option<Vec<Parsed<ListedHeader>>>,
    pub concurrency: Option<Positive<u32>>,
    pub retry: Option<RawRetry>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<AtLeast<u32, 1>>,
    pub initial_backoff: Option<Parsed<Duration>>,
    pub max_backoff: Option<Parsed<Duration>>,
    pub max_age: Option<Parsed<Duration>>,
    /// `[5xx, 429, 408]`: the answers retried (default: any non-2xx).
    pub on: Option<Vec<RawStatusMatch>>,
}

/// A status (`429`, a YAML integer) or a class (`5xx`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub enum RawStatusMatch {
    Status(u64),
    Text(String),
}

impl RawStatusMatch {
    pub fn text(&self) -> String {
        match self {
            RawStatusMatch::Status(n) => n.to_string(),
            RawStatusMatch::Text(t) => t.clone(),
        }
    }
}
