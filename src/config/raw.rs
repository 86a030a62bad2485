//! The configuration file exactly as written, after `${…}` expansion.
//!
//! These structs only describe shape: every field the user may write, with
//! `deny_unknown_fields` so a typo is an error rather than a silently ignored
//! setting. Meaning (durations, addresses, per-scheme rules) is checked in
//! `validate.rs`, which turns them into the typed [`super::Config`].

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub admin: Option<RawAdmin>,
    pub data_dir: Option<String>,
    pub limits: Option<RawLimits>,
    pub shutdown_timeout: Option<String>,
    pub redis: Option<RawRedis>,
    pub store: Option<RawStore>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub log: Option<RawLog>,
    pub reload: Option<RawReload>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub per_second: u32,
    pub burst: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub fsync: Option<bool>,
    pub retention: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// May carry a password: a secret.
    pub url: SecretString,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
}

/// `dedup:` as a map (the string `off` is handled before this).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDedup {
    pub key: Option<String>,
    pub ttl: Option<String>,
    pub backend: Option<String>,
    pub on_store_error: Option<String>,
    /// `allow`: accept key parts the route's signature does not cover.
    pub unsigned_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<u64>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_upstream_response_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_concurrent_requests: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub max_headers: Option<u64>,
    pub body_min_rate: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub path: String,
    pub verify: Option<RawVerify>,
    pub ack: Option<String>,
    pub ack_status: Option<u16>,
    pub max_pending: Option<u64>,
    pub dedup: Option<serde_yaml::Value>,
    pub events: Option<RawEvents>,
    pub allow_ips: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
    pub upstream: RawUpstream,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub from: Option<String>,
    pub allow: Option<Vec<String>>,
    pub ack_only: Option<Vec<String>>,
}

/// One flat struct for every scheme: which fields apply to which scheme is
/// checked in validation, so the error can say "`prefix` does not apply to
/// scheme `header`" instead of serde's generic "unknown field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub scheme: String,
    pub header: Option<String>,
    pub algorithm: Option<String>,
    pub encoding: Option<String>,
    pub prefix: Option<String>,
    pub separator: Option<String>,
    pub secret_encoding: Option<String>,
    pub payload: Option<String>,
    pub timestamp: Option<RawTimestamp>,
    pub tolerance: Option<String>,
    pub public_url: Option<String>,
    pub secrets: Option<Vec<SecretString>>,
    /// The sender's public keys, for public-key schemes.
    pub public_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimestamp {
    pub from: String,
    pub unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    pub timeout: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When set, the only sender headers forwarded.
    pub forward_headers: Option<Vec<String>>,
    /// Sync: upstream response headers relayed besides the default ones.
    pub relay_headers: Option<Vec<String>>,
    pub concurrency: Option<u32>,
    pub retry: Option<RawRetry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub max_age: Option<String>,
}
