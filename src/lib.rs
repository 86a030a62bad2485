//! hookgate: a receiver-side webhook verification gateway.
//!
//! The binary is a thin CLI over this library so tests can boot the real
//! gateway: [`Server::bind`] then [`Server::serve`], or [`run`].
//!
//! A request's path through the code: `server` (listener, tower stack,
//! handler) -> `verify` -> `forward`, with `telemetry` counting each step
//! and `admin` reporting on all of it.

pub mod admin;
pub mod config;
pub mod dedup;
pub mod events;
pub mod forward;
pub mod presets;
pub mod reload;
pub mod reserved_headers;
pub mod server;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod verify;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

use admin::Admin;
use config::{AckMode, DedupBackend, DedupMode, StoreErrorPolicy};
use secrecy::ExposeSecret;
use server::Stores;
use telemetry::Metrics;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the dedup store: {0}")]
    Store(#[from] dedup::StoreError),
    #[error("{0}")]
    Tls(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A gateway whose listeners are bound but not yet serving.
pub struct Server {
    config: Config,
    ingress: TcpListener,
    admin: TcpListener,
    live: reload::Live,
    stores: Stores,
}

impl Server {
    /// Opens the stores the routes use and binds the ingress and admin
    /// listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let uses = |backend| {
            config
                .routes
                .iter()
                .any(|r| matches!(&r.dedup, DedupMode::On(d) if d.backend == backend))
        };
        let metrics = Metrics::new();
        let mut stores = Stores::default();
        let any_async = config.routes.iter().any(|r| r.ack == AckMode::Async);
        if any_async || uses(DedupBackend::Local) {
            let observer = metrics.clone();
            let db = store::Db::open(
                &config.data_dir,
                config.store.fsync,
                Box::new(move |took, _jobs, committed| {
                    observer.store_commit(took.as_secs_f64(), committed)
                }),
            )
            .map_err(|e| StartError::Store(dedup::StoreError::Local(e)))?;
            if uses(DedupBackend::Local) {
                stores.local = Some(dedup::LocalStore::new(db.clone()).await?);
            }
            if any_async {
                let routes = config
                    .routes
                    .iter()
                    .filter(|r| r.ack == AckMode::Async)
                    .map(|r| {
                        (
                            r.name.clone(),
                            metrics.route(&r.name, r.verify.secret_count()),
                        )
                    })
                    .collect();
                stores.spool = Some(
                    spool::Spool::open(Arc::new(spool::SqliteSpoolStore::new(db)), routes)
                        .await
                        .map_err(|e| StartError::Store(dedup::StoreError::Local(e)))?,
                );
            }
        }
        if uses(DedupBackend::Redis) {
            let redis = config
                .redis
                .as_ref()
                .expect("validated: routes using redis have a redis block");
            stores.redis = Some(dedup::RedisStore::new(
                redis.url.expose_secret(),
                &redis.key_prefix,
                redis.timeout,
            )?);
        }
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let tls = match &config.tls {
            None => None,
            Some(tls) => Some(Arc::new(arc_swap::ArcSwap::new(
                server::tls::load(tls).map_err(StartError::Tls)?,
            ))),
        };
        let ingress = bind("ingress", config.listen).await?;
        let admin = bind("admin", config.admin_listen).await?;
        let live = reload::Live::new(config.clone(), metrics, stores.clone(), tls);
        Ok(Server {
            config,
            ingress,
            admin,
            live,
            stores,
        })
    }

    /// Remembers the file the config came from, so it can be reloaded
    /// (SIGHUP through [`Server::reloader`], `POST /admin/reload`,
    /// `reload.watch`).
    pub fn with_source(mut self, path: PathBuf, env: HashMap<String, String>) -> Server {
        self.live.set_source(reload::ConfigSource { path, env });
        self
    }

    pub fn ingress_addr(&self) -> SocketAddr {
        self.ingress
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting, reports not
    /// ready, and waits up to `shutdown_timeout` for in-flight requests.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        // No reload requests: the sender stays alive (and silent) until
        // serving ends.
        let (_no_reloads, reloads) = tokio::sync::mpsc::channel(1);
        self.serve_with_reloads(shutdown, reloads).await
    }

    /// [`Server::serve`], also reloading the configuration each time
    /// `reloads` receives a message.
    pub async fn serve_with_reloads(
        self,
        shutdown: impl Future<Output = ()>,
        mut reloads: tokio::sync::mpsc::Receiver<()>,
    ) {
        let Server {
            config,
            ingress,
            admin,
            live,
            stores,
        } = self;
        let live = Arc::new(live);
        let metrics = live.metrics().clone();
        let ready = Arc::new(AtomicBool::new(false));
        // Readiness depends on the local store always (it is on this
        // machine), and on Redis only when a route refuses to work without
        // it: with `on_store_error: accept` a Redis outage degrades dedup,
        // and pulling every replica out of the load balancer would turn it
        // into an outage.
        let redis_required = config.routes.iter().any(|r| {
            matches!(&r.dedup, DedupMode::On(d)
                if d.backend == DedupBackend::Redis && d.on_store_error == StoreErrorPolicy::Reject)
        });
        let admin_state = Admin {
            metrics: metrics.clone(),
            ready: ready.clone(),
            local: stores.local.clone(),
            redis: stores.redis.clone().filter(|_| redis_required),
            spool: stores.spool.clone(),
            live: live.clone(),
            loopback: config.admin_listen.ip().is_loopback(),
        };

        let (stop_ingress, stop_ingress_rx) = watch::channel(false);
        let (stop_admin, stop_admin_rx) = watch::channel(false);

        let builder = server::connection_builder(&config.limits);
        let tls = live
            .tls
            .clone()
            .map(|shared| (shared, config.limits.header_read_timeout));
        let ingress_live = live.clone();
        let ingress_task = tokio::spawn(server::accept_loop(
            ingress,
            builder.clone(),
            move |peer| server::ingress_stack(ingress_live.clone(), peer),
            stop_ingress_rx,
            tls,
            config.limits.max_connections,
            config.limits.idle_timeout,
        ));
        let admin_task = tokio::spawn(server::accept_loop(
            admin,
            builder,
            move |_peer| {
                let admin = admin_state.clone();
                tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let admin = admin.clone();
                    async move { Ok::<_, std::convert::Infallible>(admin.handle(&request).await) }
                })
            },
            stop_admin_rx,
            None,
            // The admin port serves probes and scrapes: a small fixed cap.
            64,
            config.limits.idle_timeout,
        ));
        let upkeep = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    metrics.run_upkeep();
                }
            })
        };

        let pruner = {
            let (local, spool, retention) = (
                stores.local.clone(),
                stores.spool.clone(),
                config.store.retention,
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_INTERVAL);
                loop {
                    tick.tick().await;
                    if let Some(local) = &local {
                        match local.prune_expired().await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(deleted = n, "pruned expired dedup keys"),
                            Err(error) => {
                                tracing::warn!(%error, "pruning expired dedup keys failed")
                            }
                        }
                    }
                    if let Some(spool) = &spool {
                        match spool.prune_delivered(retention).await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(
                                deleted = n,
                                "pruned delivered events past retention"
                            ),
                            Err(error) => tracing::warn!(%error, "pruning delivered events failed"),
                        }
                    }
                }
            })
        };

        // Delivery workers, one per async route.
        live.start_workers().await;
        // Reloads: on request, and by polling the files when asked to.
        let (stop_reloads, stop_reloads_rx) = watch::channel(false);
        let reloader = {
            let live = live.clone();
            let mut stop = stop_reloads_rx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        request = reloads.recv() => match request {
                            Some(()) => { let _ = live.reload().await; }
                            None => return,
                        },
                    }
                }
            })
        };
        let watcher = config
            .reload
            .watch
            .then(|| tokio::spawn(live.clone().watch(config.reload.interval, stop_reloads_rx)));

        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        ready.store(true, Ordering::Release);
        metrics.set_ready(true);
        tracing::info!(
            ingress = %config.listen,
            admin = %config.admin_listen,
            tls = config.tls.is_some(),
            routes = config.routes.len(),
            "hookgate is serving"
        );

        shutdown.await;

        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        ready.store(false, Ordering::Release);
        metrics.set_ready(false);
        let _ = stop_reloads.send(true);
        let _ = reloader.await;
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        let _ = stop_ingress.send(true);
        let ingress_conns = ingress_task.await.unwrap_or_default();
        if tokio::time::timeout(config.shutdown_timeout, ingress_conns.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?config.shutdown_timeout,
                "in-flight requests did not finish in time; closing them"
            );
        }
        // Then deliveries: no new attempts, running ones finish (bounded
        // inside each worker); the rest stays pending on disk.
        live.stop_workers().await;
        // Dedup keys of the last sync requests are written in the background
        // (see `LocalStore::commit_detached`): write them before exiting.
        if let Some(local) = &stores.local {
            if let Err(error) = local.flush().await {
                tracing::warn!(%error, "could not write the last dedup keys");
            }
        }
        let _ = stop_admin.send(true);
        let admin_conns = admin_task.await.unwrap_or_default();
        let _ = tokio::time::timeout(Duration::from_secs(1), admin_conns.shutdown()).await;
        upkeep.abort();
        pruner.abort();
        tracing::info!("hookgate stopped");
    }
}

/// How often expired dedup keys are deleted from the local store.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Binds and serves `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Server::bind(config).await?.serve(shutdown).await;
    Ok(())
}
