//! The top-level sections: no rules between their fields, only defaults.

use super::super::leaf::{LogFormat, Parsed, Positive};
use super::super::raw::{RawLimits, RawLog, RawRedis, RawReload, RawTls};
use super::super::{Limits, LogConfig, RedisConfig, ReloadConfig, TlsConfig};

pub fn limits(raw: RawLimits) -> Limits {
    let d = Limits::default();
    let size = |v: Option<Positive<u64>>, default: usize| v.map_or(default, |v| v.get() as usize);
    Limits {
        max_body_bytes: raw.max_body_bytes.map_or(d.max_body_bytes, Positive::get),
        header_read_timeout: raw
            .header_read_timeout
            .map_or(d.header_read_timeout, Parsed::into_inner),
        body_read_timeout: raw
            .body_read_timeout
            .map_or(d.body_read_timeout, Parsed::into_inner),
        idle_timeout: raw.idle_timeout.map_or(d.idle_timeout, Parsed::into_inner),
        max_upstream_response_bytes: raw
            .max_upstream_response_bytes
            .map_or(d.max_upstream_response_bytes, Positive::get),
        max_connections: size(raw.max_connections, d.max_connections),
        max_concurrent_requests: size(raw.max_concurrent_requests, d.max_concurrent_requests),
        max_header_bytes: raw
            .max_header_bytes
            .map_or(d.max_header_bytes, |v| v.0 as usize),
        max_headers: size(raw.max_headers, d.max_headers),
        body_min_rate: raw.body_min_rate.unwrap_or(d.body_min_rate),
    }
}

pub fn redis(raw: RawRedis) -> RedisConfig {
    RedisConfig {
        url: raw.url.0 .0,
        key_prefix: raw
            .key_prefix
            .unwrap_or_else(|| RedisConfig::DEFAULT_KEY_PREFIX.to_string()),
        timeout: raw
            .timeout
            .map_or(RedisConfig::DEFAULT_TIMEOUT, Parsed::into_inner),
    }
}

pub fn tls(raw: RawTls) -> TlsConfig {
    TlsConfig {
        cert_file: raw.cert_file,
        key_file: raw.key_file,
    }
}

pub fn log(raw: RawLog) -> LogConfig {
    let d = LogConfig::default();
    LogConfig {
        json: raw.format.map_or(d.json, |f| f.0 == LogFormat::Json),
        level: raw.level.map_or(d.level, |l| l.0 .0),
    }
}

pub fn reload(raw: RawReload) -> ReloadConfig {
    let d = ReloadConfig::default();
    ReloadConfig {
        watch: raw.watch.unwrap_or(d.watch),
        interval: raw.interval.map_or(d.interval, Parsed::into_inner),
    }
}
