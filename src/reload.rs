//! The live, swappable state of a running gateway, and configuration reload.
//!
//! A reload (SIGHUP, `POST /admin/reload`, or `reload.watch`) re-reads the
//! config file and every `${file:…}` it names, validates it, and swaps the
//! routes atomically: each request runs start to end on the routes it
//! started with. An invalid file, or one that changes what cannot change
//! without a restart (listeners, data_dir, store, Redis, TLS on/off, a store
//! the new routes need but the process did not open), is refused: the old
//! configuration keeps serving, the error is logged and
//! `hookgate_config_reloads_total{result="failure"}` counts it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderName;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, DedupMode};
use crate::forward::UpstreamClient;
use crate::server::tls::SharedTls;
use crate::server::Gateway;
use crate::spool::worker::DeliveryWorker;
use crate::stores::Stores;
use crate::telemetry::Metrics;
use crate::verify::SpecKind;

/// Why a reload was refused. The message is what the log and
/// `POST /admin/reload` say; it names fields and files, never secret
/// values (a [`ConfigError`] never holds one).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this gateway was not started from a config file")]
    NoConfigFile,
    /// The file does not load or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting only a restart applies (`listen`, `data_dir`, …) changed.
    #[error("`{0}` changed: restart hookgate to apply it")]
    RestartRequired(&'static str),
    /// An async route appeared, but the process has no spool open.
    #[error("route {0:?} is async, but this process started without async routes: restart to open the spool")]
    NoSpool(String),
    /// A route names a dedup backend the process did not open.
    #[error("route {route:?} uses the {backend} dedup store, which this process did not open: restart to apply it")]
    DedupStoreNotOpen {
        route: String,
        backend: &'static str,
    },
    /// The new TLS certificate or key does not load.
    #[error("{0}")]
    Tls(String),
    /// The spool could not take the new async routes.
    #[error(transparent)]
    Spool(Box<dyn std::error::Error + Send + Sync>),
}

/// Where the configuration was read from, so it can be read again.
#[derive(Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub env: HashMap<String, String>,
}

/// One generation of delivery workers.
struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

pub struct Live {
    /// The routes requests are served with.
    pub gateway: ArcSwap<Gateway>,
    /// Headers marked sensitive on every request.
    pub sensitive: ArcSwap<Vec<HeaderName>>,
    /// `admin.token`.
    pub admin_token: ArcSwap<Option<SecretString>>,
    pub tls: Option<SharedTls>,
    source: Option<ConfigSource>,
    /// The configuration in force; the lock also serialises reloads.
    config: Mutex<Config>,
    metrics: Metrics,
    stores: Stores,
    client: UpstreamClient,
    workers: Mutex<Option<Workers>>,
}

impl Live {
    /// The first generation. `client` is the process's one upstream pool:
    /// every generation of routes and workers sends through it, so reloads
    /// keep its connections.
    pub fn new(
        config: Config,
        metrics: Metrics,
        stores: Stores,
        tls: Option<SharedTls>,
        client: UpstreamClient,
    ) -> Live {
        let gateway = Gateway::new(&config, &metrics, &stores, &client);
        Live {
            gateway: ArcSwap::from_pointee(gateway),
            sensitive: ArcSwap::from_pointee(sensitive_headers(&config)),
            admin_token: ArcSwap::from_pointee(config.admin_token.clone()),
            tls,
            source: None,
            client,
            config: Mutex::new(config),
            metrics,
            stores,
            workers: Mutex::new(None),
        }
    }

    pub fn set_source(&mut self, source: ConfigSource) {
        self.source = Some(source);
    }

    pub fn source(&self) -> Option<&ConfigSource> {
        self.source.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub async fn config(&self) -> Config {
        self.config.lock().await.clone()
    }

    /// Starts a delivery worker per async route of the current config.
    pub async fn start_workers(&self) {
        let config = self.config.lock().await;
        let next = self.spawn_workers(&config);
        let previous = self.workers.lock().await.replace(next);
        debug_assert!(previous.is_none());
    }

    fn spawn_workers(&self, config: &Config) -> Workers {
        let (stop, stop_rx) = watch::channel(false);
        let handles = match self.stores.spool() {
            None => Vec::new(),
            Some(spool) => config
                .routes
                .iter()
                .flat_map(|route| {
                    let metrics = self.metrics.route(&route.name, route.verify.secret_count());
                    route
                        .spooled_destinations()
                        .iter()
                        .map(move |d| (route.name.clone(), d.clone(), metrics.clone()))
                })
                .map(|(route, destination, route_metrics)| {
                    let metrics =
                        self.metrics
                            .destination(&route_metrics, &route, &destination.name);
                    let (spool, client, stop) =
                        (spool.clone(), self.client.clone(), stop_rx.clone());
                    let drain = config.shutdown_timeout;
                    tokio::spawn(async move {
                        let Some(target) =
                            build_destination(&route, &destination, &client, stop.clone()).await
                        else {
                            return;
                        };
                        let worker = DeliveryWorker {
                            route,
                            config: destination,
                            destination: target,
                            spool,
                            metrics,
                        };
                        worker.run(stop, drain).await
                    })
                })
                .collect(),
        };
        Workers { stop, handles }
    }

    /// Stops the workers: no new attempts; running ones finish, bounded by
    /// `shutdown_timeout` inside each worker.
    pub async fn stop_workers(&self) {
        if let Some(workers) = self.workers.lock().await.take() {
            let _ = workers.stop.send(true);
            for handle in workers.handles {
                let _ = handle.await;
            }
        }
    }

    /// Re-reads the config file and applies it. The error says why a reload
    /// was refused; the old configuration is then still in force.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let result = match &self.source {
            None => Err(ReloadError::NoConfigFile),
            Some(source) => match Config::load(&source.path, &source.env) {
                Ok(config) => {
                    // As at start-up: what the new routes trust unsigned.
                    let warnings = config.trust_warnings();
                    let applied = self.apply(config).await;
                    if applied.is_ok() {
                        warnings.iter().for_each(|w| tracing::warn!("{w}"));
                    }
                    applied
                }
                Err(error) => Err(error.into()),
            },
        };
        match &result {
            Ok(()) => {
                self.metrics.config_reload(true);
                tracing::info!("configuration reloaded");
            }
            Err(error) => {
                self.metrics.config_reload(false);
                tracing::error!(%error, "configuration reload refused; the previous configuration keeps serving");
            }
        }
        result
    }

    async fn apply(&self, new: Config) -> Result<(), ReloadError> {
        let mut current = self.config.lock().await;
        restart_required(&current, &new, &self.stores)?;
        // New TLS material first: if it does not load, nothing changes.
        if let (Some(shared), Some(tls)) = (&self.tls, &new.tls) {
            let loaded = crate::server::tls::load(tls).map_err(ReloadError::Tls)?;
            shared.store(loaded);
        }
        if let Some(spool) = self.stores.spool() {
            for route in new.routes.iter().filter(|r| r.spools()) {
                spool
                    .add_route(
                        route.name.clone(),
                        self.metrics.route(&route.name, route.verify.secret_count()),
                    )
                    .await
                    .map_err(|e| ReloadError::Spool(e.into()))?;
            }
        }
        self.gateway.store(Arc::new(Gateway::new(
            &new,
            &self.metrics,
            &self.stores,
            &self.client,
        )));
        self.sensitive.store(Arc::new(sensitive_headers(&new)));
        self.admin_token.store(Arc::new(new.admin_token.clone()));

        // A new generation of workers takes over; the old one stops taking
        // events and finishes its running attempts in the background.
        let mut workers = self.workers.lock().await;
        if workers.is_some() {
            let next = self.spawn_workers(&new);
            if let Some(old) = workers.replace(next) {
                let _ = old.stop.send(true);
                tokio::spawn(async move {
                    for handle in old.handles {
                        let _ = handle.await;
                    }
                });
            }
        }
        *current = new;
        Ok(())
    }

    /// Polls the config file, the files it reads with `${file:…}` and the
    /// TLS files every `interval`; reloads when their content changes.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let mut last = fingerprint(&source, &self.config().await);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let now = fingerprint(&source, &self.config().await);
            if now != last {
                last = now;
                tracing::info!("configuration files changed; reloading");
                let _ = self.reload().await;
            }
        }
    }
}

/// What a reload cannot change: the error names it.
/// The destination's client, trying again every few seconds while it
/// cannot be made (its deliveries wait, pending); `None` once stopped.
async fn build_destination(
    route: &str,
    destination: &crate::config::Destination,
    client: &UpstreamClient,
    mut stop: watch::Receiver<bool>,
) -> Option<crate::destination::SharedDestination> {
    loop {
        match crate::destination::build(&destination.kind, destination.timeout, client).await {
            Ok(target) => return Some(target),
            Err(error) => {
                tracing::error!(%route, destination = %destination.name, %error, "cannot set up the destination; its deliveries wait, pending");
                tokio::select! {
                    _ = stop.changed() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

fn restart_required(old: &Config, new: &Config, stores: &Stores) -> Result<(), ReloadError> {
    let redis = |c: &Config| {
        c.redis.as_ref().map(|r| {
            (
                r.url.expose_secret().to_string(),
                r.key_prefix.clone(),
                r.timeout,
            )
        })
    };
    let checks = [
        ("listen", old.listen != new.listen),
        ("admin.listen", old.admin_listen != new.admin_listen),
        ("data_dir", old.data_dir != new.data_dir),
        ("store", old.store != new.store),
        ("redis", redis(old) != redis(new)),
        ("tls (on or off)", old.tls.is_some() != new.tls.is_some()),
        ("runtime", old.runtime != new.runtime),
        ("telemetry.otlp", old.otlp != new.otlp),
    ];
    for (what, changed) in checks {
        if changed {
            return Err(ReloadError::RestartRequired(what));
        }
    }
    for route in &new.routes {
        if route.spools() && stores.spool().is_none() {
            return Err(ReloadError::NoSpool(route.name.clone()));
        }
        if let DedupMode::On(d) = &route.dedup {
            if stores.dedup(d.backend).is_none() {
                return Err(ReloadError::DedupStoreNotOpen {
                    route: route.name.clone(),
                    backend: d.backend.as_str(),
                });
            }
        }
    }
    Ok(())
}

/// Contents of every file the configuration depends on.
fn fingerprint(source: &ConfigSource, config: &Config) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let text = std::fs::read(&source.path).unwrap_or_default();
    hash.update(&text);
    let text = String::from_utf8_lossy(&text);
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("${file:") {
        let after = &rest[start + 7..];
        let Some(end) = after.find('}') else { break };
        hash.update(std::fs::read(&after[..end]).unwrap_or_default());
        rest = &after[end..];
    }
    if let Some(tls) = &config.tls {
        hash.update(std::fs::read(&tls.cert_file).unwrap_or_default());
        hash.update(std::fs::read(&tls.key_file).unwrap_or_default());
    }
    hash.finalize().to_vec()
}

/// Headers that carry credentials anywhere in this config, marked sensitive
/// on every request so no layer logs their values.
pub fn sensitive_headers(config: &Config) -> Vec<HeaderName> {
    let mut names = vec![
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
    ];
    for route in &config.routes {
        match &route.verify.kind {
            SpecKind::Header { header, .. } | SpecKind::ApiKey { header, .. } => {
                names.push(header.clone())
            }
            SpecKind::Hmac { spec, .. } => {
                names.extend(spec.sources.iter().map(|s| s.header.clone()))
            }
            SpecKind::PublicKey { spec, .. } => names.push(spec.header.clone()),
            SpecKind::Jwt { spec, .. } => names.push(spec.header.clone()),
            SpecKind::None | SpecKind::ClientState { .. } => {}
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons read exactly as they did when they were strings: the
    /// log and `POST /admin/reload` show them.
    #[test]
    fn refusals_read_as_before() {
        assert_eq!(
            ReloadError::RestartRequired("data_dir").to_string(),
            "`data_dir` changed: restart hookgate to apply it"
        );
        assert_eq!(
            ReloadError::NoSpool("orders".into()).to_string(),
            "route \"orders\" is async, but this process started without async routes: restart to open the spool"
        );
        assert_eq!(
            ReloadError::DedupStoreNotOpen {
                route: "orders".into(),
                backend: "redis"
            }
            .to_string(),
            "route \"orders\" uses the redis dedup store, which this process did not open: restart to apply it"
        );
        assert_eq!(
            ReloadError::NoConfigFile.to_string(),
            "this gateway was not started from a config file"
        );
        let config = ConfigError {
            file: None,
            path: "listen".into(),
            message: "not an address".into(),
        };
        let error = ReloadError::from(config.clone());
        assert_eq!(error.to_string(), config.to_string());
        assert!(matches!(&error, ReloadError::Config(c) if *c == config));
        let spool = ReloadError::Spool(Box::new(std::io::Error::other("disk full")));
        assert_eq!(spool.to_string(), "disk full");
    }
}
