//! Raw structs -> typed [`Config`]: every rule about meaning lives here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use secrecy::{ExposeSecret, SecretString};

use super::raw::{RawConfig, RawDedup, RawEvents, RawRedis, RawRoute, RawUpstream, RawVerify};
use super::{
    AckMode, Config, ConfigError, Dedup, DedupBackend, DedupMode, Limits, LogConfig, RateLimit,
    RedisConfig, ReloadConfig, RetryConfig, Route, StoreConfig, StoreErrorPolicy, TlsConfig,
    Upstream,
};
use crate::dedup::key::{natural_key, signed_body_digest, BODY_SHA256};
use crate::dedup::KeyTemplate;
use crate::events::{EventPolicy, EventSource};
use crate::reserved_headers::{is_gateway_managed, is_hop_by_hop};
use crate::verify::presets::{Preset, PresetKind};
use crate::verify::template::Part;
use crate::verify::timestamp::DEFAULT_TOLERANCE;
use crate::verify::{
    presets, Algorithm, Encoding, HmacSpec, PublicKey, PublicKeySpec, SecretEncoding,
    SignatureSource, SpecKind, Template, TimeUnit, TimestampSource, TimestampSpec, Trust,
    VerifySpec,
};

/// The route label used for requests that match no route.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen = socket_addr("listen", raw.listen.as_deref().unwrap_or("0.0.0.0:8080"))?;
    let admin = raw.admin.unwrap_or_default();
    let admin_listen = socket_addr(
        "admin.listen",
        admin.listen.as_deref().unwrap_or("127.0.0.1:9090"),
    )?;
    if admin_listen == listen && listen.port() != 0 {
        return Err(ConfigError::at(
            "admin.listen",
            "must differ from `listen`: the admin endpoints are served on their own port",
        ));
    }
    let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or("./data"));

    let defaults = Limits::default();
    let raw_limits = raw.limits.unwrap_or_default();
    let limits = Limits {
        max_body_bytes: positive(
            "limits.max_body_bytes",
            raw_limits.max_body_bytes,
            defaults.max_body_bytes,
        )?,
        header_read_timeout: duration(
            "limits.header_read_timeout",
            raw_limits.header_read_timeout.as_deref(),
            defaults.header_read_timeout,
        )?,
        body_read_timeout: duration(
            "limits.body_read_timeout",
            raw_limits.body_read_timeout.as_deref(),
            defaults.body_read_timeout,
        )?,
        idle_timeout: duration(
            "limits.idle_timeout",
            raw_limits.idle_timeout.as_deref(),
            defaults.idle_timeout,
        )?,
        max_upstream_response_bytes: positive(
            "limits.max_upstream_response_bytes",
            raw_limits.max_upstream_response_bytes,
            defaults.max_upstream_response_bytes,
        )?,
        max_connections: positive(
            "limits.max_connections",
            raw_limits.max_connections,
            defaults.max_connections as u64,
        )? as usize,
        max_concurrent_requests: positive(
            "limits.max_concurrent_requests",
            raw_limits.max_concurrent_requests,
            defaults.max_concurrent_requests as u64,
        )? as usize,
        max_header_bytes: match raw_limits.max_header_bytes {
            None => defaults.max_header_bytes,
            // hyper's read buffer cannot be smaller.
            Some(n) if n < 8192 => {
                return Err(ConfigError::at(
                    "limits.max_header_bytes",
                    "must be at least 8192",
                ))
            }
            Some(n) => n as usize,
        },
        max_headers: positive(
            "limits.max_headers",
            raw_limits.max_headers,
            defaults.max_headers as u64,
        )? as usize,
        body_min_rate: raw_limits.body_min_rate.unwrap_or(defaults.body_min_rate),
    };
    let shutdown_timeout = duration(
        "shutdown_timeout",
        raw.shutdown_timeout.as_deref(),
        Duration::from_secs(30),
    )?;

    let redis = raw.redis.map(redis).transpose()?;
    let tls = raw.tls.map(|t| TlsConfig {
        cert_file: PathBuf::from(t.cert_file),
        key_file: PathBuf::from(t.key_file),
    });
    let trusted_proxies = cidrs("trusted_proxies", &raw.trusted_proxies)?;
    let raw_log = raw.log.unwrap_or_default();
    let log = LogConfig {
        json: match raw_log.format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::at(
                    "log.format",
                    format!("unknown format {other:?}: expected `text` or `json`"),
                ))
            }
        },
        level: {
            let level = raw_log.level.unwrap_or_else(|| "info".to_string());
            if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
                return Err(ConfigError::at(
                    "log.level",
                    format!("{level:?} is not a level or filter: e.g. `info`, `debug`, `hookgate=debug`"),
                ));
            }
            level
        },
    };
    let raw_reload = raw.reload.unwrap_or_default();
    let reload = ReloadConfig {
        watch: raw_reload.watch.unwrap_or(false),
        interval: duration(
            "reload.interval",
            raw_reload.interval.as_deref(),
            Duration::from_secs(5),
        )?,
    };
    let raw_store = raw.store.unwrap_or_default();
    let store = StoreConfig {
        fsync: raw_store.fsync.unwrap_or(true),
        retention: duration(
            "store.retention",
            raw_store.retention.as_deref(),
            Duration::from_secs(7 * 86400),
        )?,
    };
    if let Some(token) = &admin.token {
        if token.expose_secret().len() < 16 {
            return Err(ConfigError::at(
                "admin.token",
                "the token is too short: use at least 16 characters",
            ));
        }
    }

    if raw.routes.is_empty() {
        return Err(ConfigError::at("routes", "at least one route is required"));
    }
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, raw_route) in raw.routes.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        let route = route(&at, raw_route)?;
        if !names.insert(route.name.clone()) {
            return Err(ConfigError::at(
                format!("{at}.name"),
                format!("route name {:?} is used by an earlier route", route.name),
            ));
        }
        if !paths.insert(route.path.clone()) {
            return Err(ConfigError::at(
                format!("{at}.path"),
                format!("path {:?} is used by an earlier route", route.path),
            ));
        }
        if let DedupMode::On(Dedup {
            backend: DedupBackend::Redis,
            ..
        }) = route.dedup
        {
            if redis.is_none() {
                return Err(ConfigError::at(
                    format!("{at}.dedup.backend"),
                    "`backend: redis` needs the top-level `redis:` block with the server's `url`",
                ));
            }
        }
        routes.push(route);
    }

    Ok(Config {
        listen,
        admin_listen,
        data_dir,
        limits,
        shutdown_timeout,
        redis,
        store,
        admin_token: admin.token,
        tls,
        trusted_proxies,
        log,
        reload,
        routes,
    })
}

fn redis(raw: RawRedis) -> Result<RedisConfig, ConfigError> {
    let url = raw.url.expose_secret();
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        // Never echo the value: it may hold a password.
        return Err(ConfigError::at(
            "redis.url",
            "must be a redis:// (or rediss://, redis+unix://) URL",
        ));
    }
    if redis::Client::open(url).is_err() {
        return Err(ConfigError::at("redis.url", "is not a valid Redis URL"));
    }
    Ok(RedisConfig {
        url: raw.url,
        key_prefix: raw.key_prefix.unwrap_or_else(|| "hookgate:".to_string()),
        timeout: duration(
            "redis.timeout",
            raw.timeout.as_deref(),
            Duration::from_secs(1),
        )?,
    })
}

/// `dedup:` is `off`, a map, or absent (the scheme's natural event ID, else
/// the digest of the signed body, with every other setting at its default).
fn dedup(
    at: &str,
    raw: Option<serde_yaml::Value>,
    verify: &VerifySpec,
) -> Result<DedupMode, ConfigError> {
    let settings: RawDedup = match raw {
        Some(serde_yaml::Value::String(s)) if s == "off" => return Ok(DedupMode::Off),
        None => RawDedup::default(),
        Some(value @ serde_yaml::Value::Mapping(_)) => {
            serde_path_to_error::deserialize(value).map_err(|e| ConfigError::from_serde(at, e))?
        }
        Some(_) => {
            return Err(ConfigError::at(
                at,
                "expected `off` or a map with `key`, `ttl`, `backend`, `on_store_error`, `unsigned_key`",
            ))
        }
    };
    let key = dedup_key(at, &settings, verify)?;
    let ttl = duration(
        &format!("{at}.ttl"),
        settings.ttl.as_deref(),
        Duration::from_secs(24 * 3600),
    )?;
    let backend = match settings.backend.as_deref() {
        None | Some("local") => DedupBackend::Local,
        Some("redis") => DedupBackend::Redis,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{at}.backend"),
                format!("unknown backend {other:?}: expected `local` or `redis`"),
            ))
        }
    };
    let on_store_error = match settings.on_store_error.as_deref() {
        None | Some("accept") => StoreErrorPolicy::Accept,
        Some("reject") => StoreErrorPolicy::Reject,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{at}.on_store_error"),
                format!("unknown policy {other:?}: expected `accept` or `reject`"),
            ))
        }
    };
    Ok(DedupMode::On(Dedup {
        key,
        ttl,
        backend,
        on_store_error,
        unsigned_key_allowed: settings.unsigned_key.is_some(),
    }))
}

/// The route's key: as written, else the scheme's natural event ID when
/// its signature covers it, else the digest of the signed body. On a
/// signed route every part must be signed, unless `unsigned_key: allow`.
fn dedup_key(
    at: &str,
    settings: &RawDedup,
    verify: &VerifySpec,
) -> Result<KeyTemplate, ConfigError> {
    let allow_unsigned = match settings.unsigned_key.as_deref() {
        None => false,
        Some("allow") => true,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{at}.unsigned_key"),
                format!("unknown value {other:?}: the only value is `allow` (leave it out to refuse unsigned key parts)"),
            ))
        }
    };
    let parse =
        |text: &str| KeyTemplate::parse(text).map_err(|e| ConfigError::at(format!("{at}.key"), e));
    let Trust::Signed(coverage) = verify.trust() else {
        let text = settings
            .key
            .as_deref()
            .or_else(|| natural_key(&verify.scheme));
        return parse(text.unwrap_or(BODY_SHA256));
    };
    let mut key = match settings.key.as_deref() {
        Some(text) => parse(text)?,
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
            .map_err(|e| ConfigError::at(format!("{at}.key"), e))?;
    }
    Ok(key)
}

fn route(at: &str, raw: RawRoute) -> Result<Route, ConfigError> {
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(ConfigError::at(
            format!("{at}.name"),
            format!(
                "{:?} is not a valid route name: use lower-case letters, digits, `_` and `-`",
                raw.name
            ),
        ));
    }
    if raw.name == UNMATCHED_ROUTE {
        return Err(ConfigError::at(
            format!("{at}.name"),
            format!("{UNMATCHED_ROUTE:?} is reserved for requests that match no route"),
        ));
    }
    if !raw.path.starts_with('/')
        || raw.path.contains(['?', '#'])
        || raw.path.parse::<Uri>().is_err()
    {
        return Err(ConfigError::at(
            format!("{at}.path"),
            format!(
                "{:?} is not a valid path: it must start with `/` and hold no query or fragment",
                raw.path
            ),
        ));
    }
    let (verify, preset) = match raw.verify {
        Some(v) => verify(&format!("{at}.verify"), v)?,
        None => {
            return Err(ConfigError::at(
                format!("{at}.verify"),
                "every route needs `verify`; to accept unverified requests write `verify: { scheme: none }`",
            ))
        }
    };
    let ack = match raw.ack.as_deref() {
        Some("sync") => AckMode::Sync,
        None | Some("async") => AckMode::Async,
        Some(other) => {
            return Err(ConfigError::at(
                format!("{at}.ack"),
                format!("unknown ack mode {other:?}: expected `async` or `sync`"),
            ))
        }
    };
    let dedup = dedup(&format!("{at}.dedup"), raw.dedup, &verify)?;
    let ack_status = match raw.ack_status {
        None => http::StatusCode::OK,
        Some(code) => http::StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_success())
            .ok_or_else(|| {
                ConfigError::at(
                    format!("{at}.ack_status"),
                    format!("{code} is not a 2xx status"),
                )
            })?,
    };
    let max_pending = positive(&format!("{at}.max_pending"), raw.max_pending, 100_000)?;
    let events = events(&format!("{at}.events"), raw.events, preset.as_ref())?;
    let upstream = upstream(&format!("{at}.upstream"), raw.upstream)?;
    if ack == AckMode::Async && !upstream.relay_headers.is_empty() {
        return Err(ConfigError::at(
            format!("{at}.upstream.relay_headers"),
            "applies only to `ack: sync` routes: an async route answers with its own acknowledgement",
        ));
    }
    let allow_ips = match raw.allow_ips {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            return Err(ConfigError::at(
                format!("{at}.allow_ips"),
                "an empty list would refuse every sender; remove `allow_ips` to allow all",
            ))
        }
        Some(list) => cidrs(&format!("{at}.allow_ips"), &list)?,
    };
    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) if r.per_second == 0 => {
            return Err(ConfigError::at(
                format!("{at}.rate_limit.per_second"),
                "must be greater than zero",
            ))
        }
        Some(r) => {
            let burst = r.burst.unwrap_or(r.per_second);
            if burst == 0 {
                return Err(ConfigError::at(
                    format!("{at}.rate_limit.burst"),
                    "must be greater than zero",
                ));
            }
            Some(RateLimit {
                per_second: r.per_second,
                burst,
            })
        }
    };
    Ok(Route {
        name: raw.name,
        path: raw.path,
        verify,
        ack,
        ack_status,
        max_pending,
        dedup,
        events,
        allow_ips,
        rate_limit,
        upstream,
    })
}

/// What a preset contributes to the route's event policy.
type PresetEvents = Option<Preset>;

fn verify(at: &str, raw: RawVerify) -> Result<(VerifySpec, PresetEvents), ConfigError> {
    let scheme = raw.scheme.clone();
    let preset = presets::preset(&scheme);
    // Which optional fields each scheme takes; anything else is an error.
    let generic_hmac: &[&str] = &[
        "header",
        "algorithm",
        "encoding",
        "prefix",
        "separator",
        "secret_encoding",
        "payload",
        "timestamp",
        "tolerance",
        "public_url",
        "secrets",
    ];
    // A preset verified with the sender's public keys: its only form
    // (discord, sendgrid), or standard_webhooks' `v1a` form.
    let public_key_spec = presets::public_key_preset(&scheme);
    let mut preset_fields = vec![];
    match preset.as_ref().map(|p| &p.kind) {
        Some(PresetKind::PublicKey(_)) => {}
        Some(_) => preset_fields.push("secrets"),
        None => {}
    }
    if public_key_spec.is_some() {
        preset_fields.push("public_keys");
    }
    let timestamped = match preset.as_ref().map(|p| &p.kind) {
        Some(PresetKind::Hmac(spec)) => spec.sources.iter().any(|s| s.timestamp.is_some()),
        Some(PresetKind::PublicKey(spec)) => spec.timestamp.is_some(),
        _ => false,
    };
    if timestamped {
        preset_fields.push("tolerance");
    }
    if let Some(PresetKind::Hmac(spec)) = preset.as_ref().map(|p| &p.kind) {
        if spec.sources.iter().any(|s| s.payload.uses(&Part::Url)) {
            preset_fields.push("public_url");
        }
    }
    let allowed: &[&str] = match scheme.as_str() {
        "none" => &[],
        "header" | "api_key" => &["header", "secrets"],
        "hmac" => generic_hmac,
        _ if preset.is_some() => &preset_fields,
        other => {
            return Err(ConfigError::at(
                format!("{at}.scheme"),
                format!(
                    "unknown scheme {other:?}: expected one of none, header, api_key, hmac, {}",
                    presets::NAMES.join(", ")
                ),
            ))
        }
    };
    let given = [
        ("header", raw.header.is_some()),
        ("algorithm", raw.algorithm.is_some()),
        ("encoding", raw.encoding.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("separator", raw.separator.is_some()),
        ("secret_encoding", raw.secret_encoding.is_some()),
        ("payload", raw.payload.is_some()),
        ("timestamp", raw.timestamp.is_some()),
        ("tolerance", raw.tolerance.is_some()),
        ("public_url", raw.public_url.is_some()),
        ("secrets", raw.secrets.is_some()),
        ("public_keys", raw.public_keys.is_some()),
    ];
    for (field, present) in given {
        if present && !allowed.contains(&field) {
            let takes = preset_fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let why = if preset.is_some() && field == "secrets" {
                format!("`{scheme}` checks signatures with the sender's public keys: it takes {takes}, no shared secrets")
            } else if field == "public_keys" {
                format!("`{scheme}` takes no public keys (they apply to discord, sendgrid and standard_webhooks){}", if preset.is_some() { format!("; it takes {takes}") } else { String::new() })
            } else if preset.is_some() {
                format!(
                    "is fixed by the `{scheme}` preset; it takes only {}",
                    preset_fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("does not apply to scheme `{scheme}`")
            };
            return Err(ConfigError::at(format!("{at}.{field}"), why));
        }
    }
    let tolerance = match &raw.tolerance {
        Some(t) => Some(duration(
            &format!("{at}.tolerance"),
            Some(t),
            DEFAULT_TOLERANCE,
        )?),
        None => None,
    };
    let public_url = match &raw.public_url {
        Some(u) => Some(public_url(&format!("{at}.public_url"), u)?),
        None => None,
    };

    let kind = match scheme.as_str() {
        _ if matches!(
            preset.as_ref().map(|p| &p.kind),
            Some(PresetKind::PublicKey(_))
        ) || (public_key_spec.is_some() && raw.public_keys.is_some()) =>
        {
            if raw.secrets.is_some() {
                return Err(ConfigError::at(
                    format!("{at}.secrets"),
                    format!(
                        "`{scheme}` with `public_keys` checks signatures made with the sender's private key and takes no `secrets`: give one or the other"
                    ),
                ));
            }
            let mut spec = public_key_spec.expect("public-key presets have a public-key form");
            if let (Some(ts), Some(t)) = (&mut spec.timestamp, tolerance) {
                ts.tolerance = t;
            }
            let keys = public_keys(at, &spec, raw.public_keys)?;
            SpecKind::PublicKey { spec, keys }
        }
        "none" => SpecKind::None,
        "header" => SpecKind::Header {
            header: header_name(
                &format!("{at}.header"),
                raw.header.as_deref().ok_or_else(|| {
                    ConfigError::at(format!("{at}.header"), "required for scheme `header`")
                })?,
            )?,
            secrets: secrets(at, raw.secrets)?,
        },
        "api_key" => SpecKind::ApiKey {
            header: header_name(
                &format!("{at}.header"),
                raw.header.as_deref().unwrap_or("X-API-Key"),
            )?,
            secrets: secrets(at, raw.secrets)?,
        },
        "hmac" => {
            let source = generic_hmac_source(at, &raw, tolerance, public_url)?;
            let spec = HmacSpec {
                sources: vec![source],
            };
            let secrets = secrets(at, raw.secrets)?;
            check_secrets_decode(at, &spec, &secrets)?;
            SpecKind::Hmac { spec, secrets }
        }
        _ => match preset.as_ref().map(|p| p.kind.clone()) {
            Some(PresetKind::Header(header)) => SpecKind::Header {
                header,
                secrets: secrets(at, raw.secrets)?,
            },
            Some(PresetKind::Hmac(mut spec)) => {
                for source in &mut spec.sources {
                    if let (Some(ts), Some(t)) = (&mut source.timestamp, tolerance) {
                        ts.tolerance = t;
                    }
                    if source.payload.uses(&Part::Url) {
                        source.public_url = Some(public_url.clone().ok_or_else(|| {
                            ConfigError::at(
                                format!("{at}.public_url"),
                                format!(
                                    "required for `{scheme}`: the URL the sender posts to, which it signs"
                                ),
                            )
                        })?);
                    }
                }
                if raw.secrets.is_none() && public_key_spec.is_some() {
                    return Err(ConfigError::at(
                        format!("{at}.secrets"),
                        format!("`{scheme}` needs `secrets` (HMAC signatures) or `public_keys` (public-key signatures)"),
                    ));
                }
                let secrets = secrets(at, raw.secrets)?;
                check_secrets_decode(at, &spec, &secrets)?;
                SpecKind::Hmac { spec, secrets }
            }
            Some(PresetKind::PublicKey(_)) => unreachable!("handled above"),
            None => unreachable!("unknown schemes were rejected above"),
        },
    };
    Ok((VerifySpec { scheme, kind }, preset))
}

/// The generic `scheme: hmac` description.
fn generic_hmac_source(
    at: &str,
    raw: &RawVerify,
    tolerance: Option<Duration>,
    public_url: Option<String>,
) -> Result<SignatureSource, ConfigError> {
    let header = header_name(
        &format!("{at}.header"),
        raw.header
            .as_deref()
            .ok_or_else(|| ConfigError::at(format!("{at}.header"), "required for scheme `hmac`"))?,
    )?;
    let algorithm = match raw.algorithm.as_deref() {
        None => {
            return Err(ConfigError::at(
                format!("{at}.algorithm"),
                "required for scheme `hmac`: sha1, sha256 or sha512",
            ))
        }
        Some(a) => Algorithm::parse(a).ok_or_else(|| {
            ConfigError::at(
                format!("{at}.algorithm"),
                format!("unknown algorithm {a:?}: expected sha1, sha256 or sha512"),
            )
        })?,
    };
    let encoding = match raw.encoding.as_deref() {
        None => Encoding::Hex,
        Some(e) => Encoding::parse(e).ok_or_else(|| {
            ConfigError::at(
                format!("{at}.encoding"),
                format!("unknown encoding {e:?}: expected hex, base64 or base64url"),
            )
        })?,
    };
    let secret_encoding = match raw.secret_encoding.as_deref() {
        None => SecretEncoding::Utf8,
        Some(e) => SecretEncoding::parse(e).ok_or_else(|| {
            ConfigError::at(
                format!("{at}.secret_encoding"),
                format!("unknown secret encoding {e:?}: expected utf8, base64 or whsec"),
            )
        })?,
    };
    if raw.separator.as_deref() == Some("") {
        return Err(ConfigError::at(
            format!("{at}.separator"),
            "must not be empty: e.g. \" \" (Standard Webhooks), \",\" (Stripe), \";\" (Paddle)",
        ));
    }
    let payload = match raw.payload.as_deref() {
        None => Template::default(),
        Some(p) => Template::parse(p).map_err(|e| ConfigError::at(format!("{at}.payload"), e))?,
    };
    let timestamp = match &raw.timestamp {
        None => None,
        Some(t) => {
            let source = TimestampSource::parse(&t.from)
                .map_err(|e| ConfigError::at(format!("{at}.timestamp.from"), e))?;
            if matches!(source, TimestampSource::SignatureKey(_)) && raw.separator.is_none() {
                return Err(ConfigError::at(
                    format!("{at}.timestamp.from"),
                    "`signature:KEY` needs `separator`: the signature header must be a list",
                ));
            }
            let unit = match t.unit.as_deref() {
                None => TimeUnit::Seconds,
                Some(u) => TimeUnit::parse(u).ok_or_else(|| {
                    ConfigError::at(
                        format!("{at}.timestamp.unit"),
                        format!("unknown unit {u:?}: expected seconds, milliseconds or rfc3339"),
                    )
                })?,
            };
            Some(TimestampSpec {
                source,
                unit,
                tolerance: tolerance.unwrap_or(DEFAULT_TOLERANCE),
            })
        }
    };
    if timestamp.is_none() {
        if tolerance.is_some() {
            return Err(ConfigError::at(
                format!("{at}.tolerance"),
                "applies only with `timestamp`",
            ));
        }
        if payload.uses(&Part::Timestamp) {
            return Err(ConfigError::at(
                format!("{at}.payload"),
                "uses {timestamp}, so `timestamp` must say where the timestamp is",
            ));
        }
    }
    match (payload.uses(&Part::Url), &public_url) {
        (true, None) => {
            return Err(ConfigError::at(
                format!("{at}.public_url"),
                "required: the payload signs {url}",
            ))
        }
        (false, Some(_)) => {
            return Err(ConfigError::at(
                format!("{at}.public_url"),
                "applies only when the payload uses {url}",
            ))
        }
        _ => {}
    }
    Ok(SignatureSource {
        separator: raw.separator.clone(),
        secret_encoding,
        payload,
        timestamp,
        public_url,
        ..SignatureSource::new(
            header,
            algorithm,
            encoding,
            raw.prefix.as_deref().unwrap_or(""),
        )
    })
}

/// Every secret must decode with the description's `secret_encoding`; the
/// error names the secret by index, never by value.
fn check_secrets_decode(
    at: &str,
    spec: &HmacSpec,
    secrets: &[SecretString],
) -> Result<(), ConfigError> {
    for source in &spec.sources {
        for (i, s) in secrets.iter().enumerate() {
            let key = source.secret_encoding.key(s.expose_secret());
            let what = match (&key, source.secret_encoding) {
                (Some(k), _) if k.is_empty() => {
                    "decodes to an empty key, which anyone could sign with"
                }
                (Some(_), _) => continue,
                (None, SecretEncoding::Whsec) => {
                    "is not a Standard Webhooks secret (base64, optionally after `whsec_`)"
                }
                (None, _) => "is not valid base64",
            };
            return Err(ConfigError::at(
                format!("{at}.secrets[{i}]"),
                format!("the secret {what}"),
            ));
        }
    }
    Ok(())
}

/// An absolute http(s) URL without query or fragment.
fn public_url(at: &str, value: &str) -> Result<String, ConfigError> {
    let uri: Uri = value
        .parse()
        .map_err(|_| ConfigError::at(at, format!("{value:?} is not a valid URL")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(ConfigError::at(
            at,
            format!("{value:?} must be an absolute http:// or https:// URL"),
        ));
    }
    if value.contains(['?', '#']) {
        return Err(ConfigError::at(
            at,
            "must not hold a query or fragment: the request's query string is appended",
        ));
    }
    Ok(value.to_string())
}

fn events(
    at: &str,
    raw: Option<RawEvents>,
    preset: Option<&Preset>,
) -> Result<EventPolicy, ConfigError> {
    let mut policy = EventPolicy::default();
    if let Some(p) = preset {
        policy.from = p
            .events_from
            .map(|f| EventSource::parse(f).expect("preset event sources are valid"));
        policy.ack_only = p.ack_only.iter().map(|s| s.to_string()).collect();
        policy.handshake = p.handshake;
    }
    let Some(raw) = raw else {
        return Ok(policy);
    };
    if let Some(from) = &raw.from {
        policy.from =
            Some(EventSource::parse(from).map_err(|e| ConfigError::at(format!("{at}.from"), e))?);
    }
    let patterns = |field: &str, list: Vec<String>| -> Result<Vec<String>, ConfigError> {
        for (i, p) in list.iter().enumerate() {
            if p.is_empty() {
                return Err(ConfigError::at(
                    format!("{at}.{field}[{i}]"),
                    "empty pattern",
                ));
            }
        }
        Ok(list)
    };
    if let Some(allow) = raw.allow {
        if allow.is_empty() {
            return Err(ConfigError::at(
                format!("{at}.allow"),
                "an empty list would forward nothing; leave `allow` out to forward every event",
            ));
        }
        policy.allow = patterns("allow", allow)?;
    }
    if let Some(ack_only) = raw.ack_only {
        policy.ack_only = patterns("ack_only", ack_only)?;
    }
    if policy.filters() && policy.from.is_none() {
        return Err(ConfigError::at(
            format!("{at}.from"),
            "required: this route's scheme does not say where the event type is (e.g. `header:X-Event` or `json:/type`)",
        ));
    }
    Ok(policy)
}

/// The sender's public keys, each parsed in the preset's format; an error
/// names the key by index, never by value.
fn public_keys(
    at: &str,
    spec: &PublicKeySpec,
    raw: Option<Vec<String>>,
) -> Result<Vec<PublicKey>, ConfigError> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(ConfigError::at(
            format!("{at}.public_keys"),
            format!(
                "at least one public key is required (list several to rotate): {}",
                spec.key_format.expected()
            ),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, text)| {
            PublicKey::parse(spec.algorithm, spec.key_format, text).ok_or_else(|| {
                ConfigError::at(
                    format!("{at}.public_keys[{i}]"),
                    format!("not a valid key: expected {}", spec.key_format.expected()),
                )
            })
        })
        .collect()
}

fn secrets(at: &str, raw: Option<Vec<SecretString>>) -> Result<Vec<SecretString>, ConfigError> {
    let secrets = raw.unwrap_or_default();
    if secrets.is_empty() {
        return Err(ConfigError::at(
            format!("{at}.secrets"),
            "at least one secret is required (list several to rotate)",
        ));
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.expose_secret().is_empty() {
            return Err(ConfigError::at(
                format!("{at}.secrets[{i}]"),
                "the secret is empty (is its environment variable set to an empty string?)",
            ));
        }
    }
    Ok(secrets)
}

fn upstream(at: &str, raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let url: Uri = raw.url.parse().map_err(|e| {
        ConfigError::at(
            format!("{at}.url"),
            format!("{:?} is not a valid URL: {e}", raw.url),
        )
    })?;
    match url.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ConfigError::at(
                format!("{at}.url"),
                "https upstreams are not supported yet; use http:// (hookgate usually runs next to its upstream)",
            ))
        }
        _ => {
            return Err(ConfigError::at(
                format!("{at}.url"),
                format!("{:?} must be an absolute http:// URL", raw.url),
            ))
        }
    }
    let authority = url
        .authority()
        .ok_or_else(|| ConfigError::at(format!("{at}.url"), "the URL has no host"))?;
    if authority.as_str().contains('@') {
        return Err(ConfigError::at(
            format!("{at}.url"),
            "credentials in the URL are not supported; send them with `upstream.headers`",
        ));
    }
    let timeout = duration(
        &format!("{at}.timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(10),
    )?;
    let mut headers = HeaderMap::new();
    for (name, value) in raw.headers {
        let field = format!("{at}.headers.{name}");
        let header = header_name(&field, &name)?;
        if is_hop_by_hop(&header)
            || header == http::header::HOST
            || header == http::header::CONTENT_LENGTH
        {
            return Err(ConfigError::at(
                field,
                "this header is managed by hookgate and cannot be set",
            ));
        }
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| ConfigError::at(&field, "the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    let forward_headers = raw
        .forward_headers
        .map(|names| upstream_header_list(&format!("{at}.forward_headers"), &names))
        .transpose()?;
    let relay_headers = upstream_header_list(
        &format!("{at}.relay_headers"),
        raw.relay_headers.as_deref().unwrap_or_default(),
    )?;
    let concurrency = match raw.concurrency {
        None => 16,
        Some(0) => {
            return Err(ConfigError::at(
                format!("{at}.concurrency"),
                "must be greater than zero",
            ))
        }
        Some(n) => n,
    };
    let raw_retry = raw.retry.unwrap_or_default();
    let retry = RetryConfig {
        max_attempts: match raw_retry.max_attempts {
            None => 15,
            Some(0) => {
                return Err(ConfigError::at(
                    format!("{at}.retry.max_attempts"),
                    "must be at least 1",
                ))
            }
            Some(n) => n,
        },
        initial_backoff: duration(
            &format!("{at}.retry.initial_backoff"),
            raw_retry.initial_backoff.as_deref(),
            Duration::from_secs(1),
        )?,
        max_backoff: duration(
            &format!("{at}.retry.max_backoff"),
            raw_retry.max_backoff.as_deref(),
            Duration::from_secs(600),
        )?,
        max_age: duration(
            &format!("{at}.retry.max_age"),
            raw_retry.max_age.as_deref(),
            Duration::from_secs(72 * 3600),
        )?,
    };
    if retry.max_backoff < retry.initial_backoff {
        return Err(ConfigError::at(
            format!("{at}.retry.max_backoff"),
            "must not be shorter than `initial_backoff`",
        ));
    }
    Ok(Upstream {
        url,
        timeout,
        headers,
        forward_headers,
        relay_headers,
        concurrency,
        retry,
    })
}

/// `upstream.forward_headers` and `upstream.relay_headers`: header names,
/// none that hookgate sets or removes itself (those would be silently
/// ignored, so they are refused).
fn upstream_header_list(at: &str, names: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    let mut list = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = format!("{at}[{i}]");
        let header = header_name(&field, name)?;
        if is_hop_by_hop(&header)
            || is_gateway_managed(&header)
            || header == http::header::HOST
            || header == http::header::CONTENT_LENGTH
        {
            return Err(ConfigError::at(
                field,
                format!("`{header}` is set or removed by hookgate and cannot be listed"),
            ));
        }
        if !list.contains(&header) {
            list.push(header);
        }
    }
    Ok(list)
}

/// CIDRs (`10.0.0.0/8`) or single addresses (`203.0.113.7`).
fn cidrs(at: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ConfigError::at(
                        format!("{at}[{i}]"),
                        format!("{text:?} is not an address or CIDR (e.g. 192.30.252.0/22)"),
                    )
                })
        })
        .collect()
}

fn header_name(at: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::at(at, format!("{name:?} is not a valid header name")))
}

fn socket_addr(at: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::at(
            at,
            format!("{value:?} is not an address: write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\""),
        )
    })
}

fn duration(at: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed = humantime::parse_duration(value).map_err(|_| {
        ConfigError::at(
            at,
            format!("{value:?} is not a duration: write e.g. 250ms, 10s, 5m, 24h or 7d"),
        )
    })?;
    if parsed.is_zero() {
        return Err(ConfigError::at(at, "must be greater than zero"));
    }
    Ok(parsed)
}

fn positive(at: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::at(at, "must be greater than zero")),
        Some(v) => Ok(v),
    }
}
