//! Raw structs -> the typed [`Config`]: defaults, and the rules between
//! fields. Every leaf already has its type (`leaf/`), so what is left here
//! is what one field cannot know alone, one file per section.

mod dedup;
mod destinations;
mod events;
mod hmac;
mod jwt;
mod keys;
mod route;
mod sections;
mod store;
mod upstream;
mod verify;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use super::leaf::Parsed;
use super::raw::{RawConfig, RawRoute};
use super::{Config, ConfigError, Dedup, DedupBackend, DedupMode, Route};

/// A field path being built, such as `routes[0].verify`.
#[derive(Debug, Clone)]
pub struct At(String);

impl At {
    pub fn new(path: &str) -> At {
        At(path.to_string())
    }

    /// The path of a field under this one.
    pub fn field(&self, name: &str) -> At {
        At(format!("{}.{name}", self.0))
    }

    /// The path of a list item under this one.
    pub fn index(&self, i: usize) -> At {
        At(format!("{}[{i}]", self.0))
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.0.clone(), message)
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen = raw
        .listen
        .map_or(Config::DEFAULT_LISTEN, Parsed::into_inner);
    let admin = raw.admin.unwrap_or_default();
    let admin_listen = admin
        .listen
        .map_or(Config::DEFAULT_ADMIN_LISTEN, Parsed::into_inner);
    if admin_listen == listen && listen.port() != 0 {
        return Err(At::new("admin.listen")
            .error("must differ from `listen`: the admin endpoints are served on their own port"));
    }
    let redis = raw.redis.map(sections::redis);
    let store = raw.store.map(store::store).transpose()?.unwrap_or_default();
    let routes = routes(raw.routes, redis.is_some())?;
    Ok(Config {
        listen,
        admin_listen,
        data_dir: raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(Config::DEFAULT_DATA_DIR)),
        limits: raw.limits.map(sections::limits).unwrap_or_default(),
        runtime: raw.runtime.map(sections::runtime).unwrap_or_default(),
        shutdown_timeout: raw
            .shutdown_timeout
            .map_or(Config::DEFAULT_SHUTDOWN_TIMEOUT, Parsed::into_inner),
        redis,
        store,
        admin_token: admin.token.map(|t| t.0),
        tls: raw.tls.map(sections::tls),
        trusted_proxies: raw
            .trusted_proxies
            .into_iter()
            .map(Parsed::into_inner)
            .collect(),
        log: raw.log.map(sections::log).unwrap_or_default(),
        reload: raw.reload.map(sections::reload).unwrap_or_default(),
        otlp: match raw.telemetry.and_then(|t| t.otlp) {
            Some(otlp) => Some(sections::otlp(&At::new("telemetry.otlp"), otlp)?),
            None => None,
        },
        routes,
    })
}

/// At least one route; names and paths unique; `backend: redis` only with
/// a `redis:` block.
fn routes(raw: Vec<RawRoute>, has_redis: bool) -> Result<Vec<Route>, ConfigError> {
    if raw.is_empty() {
        return Err(At::new("routes").error("at least one route is required"));
    }
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let mut routes = Vec::with_capacity(raw.len());
    for (i, raw_route) in raw.into_iter().enumerate() {
        let at = At::new("routes").index(i);
        let route = route::route(&at, raw_route)?;
        if !names.insert(route.name.clone()) {
            return Err(at.field("name").error(format!(
                "route name {:?} is used by an earlier route",
                route.name
            )));
        }
        if !paths.insert(route.path.clone()) {
            return Err(at
                .field("path")
                .error(format!("path {:?} is used by an earlier route", route.path)));
        }
        let uses_redis = matches!(
            route.dedup,
            DedupMode::On(Dedup {
                backend: DedupBackend::Redis,
                ..
            })
        );
        if uses_redis && !has_redis {
            return Err(at.field("dedup.backend").error(
                "`backend: redis` needs the top-level `redis:` block with the server's `url`",
            ));
        }
        routes.push(route);
    }
    Ok(routes)
}
