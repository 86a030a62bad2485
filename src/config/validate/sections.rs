//! The top-level sections: defaults, and the few rules within one section.

use super::super::leaf::{LogFormat, Parsed, Positive};
use super::super::raw::{RawLimits, RawLog, RawOtlp, RawRedis, RawReload, RawRuntime, RawTls};
use super::super::{
    ConfigError, Limits, LogConfig, OtlpConfig, RedisConfig, ReloadConfig, RuntimeConfig, TlsConfig,
};
use super::At;

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

pub fn runtime(raw: RawRuntime) -> RuntimeConfig {
    RuntimeConfig {
        ingress: raw
            .ingress
            .map_or_else(Default::default, Parsed::into_inner),
        threads: raw.threads.map(|t| t.get() as usize),
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

/// `telemetry.otlp`: the traces URL from the collector's base URL, a
/// service name, and a sample ratio between 0 and 1.
pub fn otlp(at: &At, raw: RawOtlp) -> Result<OtlpConfig, ConfigError> {
    let sample_ratio = raw.sample_ratio.unwrap_or(OtlpConfig::DEFAULT_SAMPLE_RATIO);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(at
            .field("sample_ratio")
            .error("must be between 0.0 and 1.0 (the share of traces recorded)"));
    }
    let service_name = raw
        .service_name
        .unwrap_or_else(|| OtlpConfig::DEFAULT_SERVICE_NAME.to_string());
    if service_name.trim().is_empty() {
        return Err(at.field("service_name").error("must not be empty"));
    }
    let base = raw.endpoint.0 .0;
    let path = base.path().trim_end_matches('/');
    let path = if path.ends_with("/v1/traces") {
        path.to_string()
    } else {
        format!("{path}/v1/traces")
    };
    let mut parts = base.into_parts();
    parts.path_and_query = Some(path.parse().map_err(|_| {
        at.field("endpoint")
            .error("cannot add /v1/traces to this URL")
    })?);
    let traces_url = http::Uri::from_parts(parts).map_err(|_| {
        at.field("endpoint")
            .error("cannot add /v1/traces to this URL")
    })?;
    Ok(OtlpConfig {
        traces_url,
        service_name,
        sample_ratio,
    })
}
