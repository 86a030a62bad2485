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
pub mod console;
pub mod dedup;
pub mod destination;
pub mod events;
pub mod forward;
pub mod health;
pub mod presets;
pub mod reload;
pub mod reserved_headers;
pub mod server;
pub mod sign;
pub mod spool;
pub mod store;
pub mod stores;
pub mod telemetry;
pub mod verify;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

use admin::Admin;
use config::IngressThreads;
use stores::Stores;
use telemetry::Metrics;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store: {0}")]
    Store(#[from] dedup::StoreError),
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Traces(#[from] telemetry::traces::TracesError),
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
        let traces = telemetry::traces::Traces::start(config.otlp.as_ref())?;
        let metrics = Metrics::new().with_traces(traces);
        let stores = Stores::open(&config, &metrics).await?;
        let tls = match &config.tls {
            None => None,
            Some(tls) => Some(Arc::new(arc_swap::ArcSwap::new(
                server::tls::load(tls).map_err(StartError::Tls)?,
            ))),
        };
        let ingress = match config.runtime.ingress {
            IngressThreads::Shared => bind_listener("ingress", config.listen).await?,
            // Serving threads bind the same address after it.
            IngressThreads::PerCore => {
                server::per_core::bind_first(config.listen).map_err(|source| StartError::Bind {
                    what: "ingress",
                    addr: config.listen,
                    source,
                })?
            }
        };
        let admin = bind_listener("admin", config.admin_listen).await?;
        // The process's one upstream connection pool: every generation of
        // routes and delivery workers sends through it (see `reload::Live`).
        let client = forward::UpstreamClient::new(config.limits.max_upstream_response_bytes);
        let live = reload::Live::new(config.clone(), metrics, stores.clone(), tls, client);
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
        reloads: tokio::sync::mpsc::Receiver<()>,
    ) {
        let running = Running::start(self, reloads).await;
        shutdown.await;
        running.stop().await;
    }
}

async fn bind_listener(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// A listener's accept loop and the signal that stops it.
struct Listening {
    stop: watch::Sender<bool>,
    task: JoinHandle<server::Connections>,
}

impl Listening {
    /// Stops accepting and hands back the open connections, to drain.
    async fn stop(self) -> server::Connections {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The ingress listener's accept loops: one task on the process's runtime,
/// or serving threads of their own (`runtime.ingress`).
enum Ingress {
    Shared(Listening),
    PerCore(server::per_core::PerCore),
}

impl Ingress {
    /// Stops accepting and drains the open connections for up to
    /// `timeout`; false when some had to be closed with requests in progress.
    async fn stop_and_drain(&mut self, timeout: Duration) -> bool {
        match self {
            Ingress::Shared(listening) => {
                let _ = listening.stop.send(true);
                let connections = (&mut listening.task).await.unwrap_or_default();
                tokio::time::timeout(timeout, connections.shutdown())
                    .await
                    .is_ok()
            }
            // Each thread drains its own connections, with the same timeout.
            Ingress::PerCore(per_core) => per_core.stop().await,
        }
    }

    /// Lets the serving threads' runtimes end (after the stores are flushed:
    /// tasks they started may hold store connections).
    async fn finish(self) {
        if let Ingress::PerCore(per_core) = self {
            per_core.finish().await;
        }
    }
}

/// The reload tasks (on request, and the file watcher) and their stop signal.
struct Reloading {
    stop: watch::Sender<bool>,
    reloader: JoinHandle<()>,
    watcher: Option<JoinHandle<()>>,
}

/// A serving gateway: every task it started, and the one place
/// ([`Running::stop`]) that stops them, in order.
struct Running {
    config: Config,
    live: Arc<reload::Live>,
    stores: Stores,
    ready: Arc<AtomicBool>,
    ingress: Ingress,
    admin: Listening,
    upkeep: JoinHandle<()>,
    pruner: JoinHandle<()>,
    reloading: Reloading,
}

impl Running {
    /// The start-up sequence: the listeners accept, the background upkeep
    /// and pruning run, delivery workers start, reloads are taken, and
    /// only then does the gateway report ready.
    async fn start(server: Server, reloads: tokio::sync::mpsc::Receiver<()>) -> Running {
        let Server {
            config,
            ingress,
            admin,
            live,
            stores,
        } = server;
        let live = Arc::new(live);
        let ready = Arc::new(AtomicBool::new(false));
        let ingress_addr = ingress.local_addr().unwrap_or(config.listen);
        let builder = server::connection_builder(&config.limits);
        let ingress = serve_ingress(&config, &live, ingress, builder.clone());
        let admin_state = admin_state(&config, &live, &stores, &ready, ingress_addr);
        let admin = serve_admin(&config, admin_state, admin, builder);
        let upkeep = spawn_upkeep(live.metrics().clone());
        let pruner = spawn_pruner(&config, &stores);
        // Delivery workers, one per async route.
        live.start_workers().await;
        let reloading = take_reloads(&config, &live, reloads);
        let running = Running {
            config,
            live,
            stores,
            ready,
            ingress,
            admin,
            upkeep,
            pruner,
            reloading,
        };
        running.report_ready();
        running
    }

    /// Logs the config's warnings, reports ready, and says where it serves.
    fn report_ready(&self) {
        let config = &self.config;
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        self.ready.store(true, Ordering::Release);
        self.live.metrics().set_ready(true);
        tracing::info!(
            ingress = %config.listen,
            admin = %config.admin_listen,
            tls = config.tls.is_some(),
            routes = config.routes.len(),
            "hookgate is serving"
        );
    }

    /// Stops everything, in this order (the one place it is decided):
    ///
    /// 1. report not ready (`/readyz` and the ready gauge), so load
    ///    balancers stop sending;
    /// 2. stop taking reloads (the reload task and the file watcher end);
    /// 3. stop accepting ingress connections, then drain in-flight requests
    ///    for up to `shutdown_timeout`, closing what is left;
    /// 4. stop the delivery workers: no new attempts, running ones finish
    ///    (bounded inside each worker), the rest stays pending on disk;
    /// 5. flush the local dedup store (keys of the last sync requests are
    ///    written in the background, see `LocalStore::commit_detached`);
    /// 6. stop the admin listener (it answered probes until now) and drain
    ///    its connections for up to a second;
    /// 7. end the metrics upkeep and the pruner.
    async fn stop(self) {
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        self.ready.store(false, Ordering::Release);
        self.live.metrics().set_ready(false);
        self.reloading.stop().await;
        let timeout = self.config.shutdown_timeout;
        let mut ingress = self.ingress;
        if !ingress.stop_and_drain(timeout).await {
            tracing::warn!(
                ?timeout,
                "in-flight requests did not finish in time; closing them"
            );
        }
        self.live.stop_workers().await;
        for store in self.stores.dedup_backends() {
            if let Err(error) = store.flush().await {
                tracing::warn!(%error, "could not write the last dedup keys");
            }
        }
        let admin_conns = self.admin.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), admin_conns.shutdown()).await;
        ingress.finish().await;
        self.upkeep.abort();
        self.pruner.abort();
        self.live.metrics().traces().shutdown().await;
        tracing::info!("hookgate stopped");
    }
}

impl Reloading {
    /// Ends the reload task and the watcher (a reload under way finishes).
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.reloader.await;
        if let Some(watcher) = self.watcher {
            let _ = watcher.await;
        }
    }
}

/// What the admin endpoints report on; readiness runs the probes the
/// stores were opened with (see [`Stores::open`] for which are required).
fn admin_state(
    config: &Config,
    live: &Arc<reload::Live>,
    stores: &Stores,
    ready: &Arc<AtomicBool>,
    ingress: SocketAddr,
) -> Admin {
    let spool = stores.spool().cloned();
    Admin {
        console: console::Console::new(live.clone(), spool, ingress, config.tls.is_some()),
        metrics: live.metrics().clone(),
        ready: ready.clone(),
        healthchecks: stores.healthchecks().to_vec(),
        spool: stores.spool().cloned(),
        live: live.clone(),
        loopback: config.admin_listen.ip().is_loopback(),
    }
}

/// Accepts ingress connections (with TLS when configured); each request
/// runs on the routes in force when it starts. `runtime.ingress` says on
/// which threads: the process's runtime, or serving threads of their own.
fn serve_ingress(
    config: &Config,
    live: &Arc<reload::Live>,
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
) -> Ingress {
    let tls = live
        .tls
        .clone()
        .map(|shared| (shared, config.limits.header_read_timeout));
    let make = {
        let live = live.clone();
        move |peer| {
            let live = live.clone();
            let sensitive = live.sensitive.load().as_slice().into();
            server::ingress_stack(move || live.gateway.load_full(), sensitive, peer)
        }
    };
    let serving = server::per_core::Serving {
        builder,
        make,
        tls,
        slots: Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections)),
        idle_timeout: config.limits.idle_timeout,
        on_start: forward::UpstreamClient::use_thread_pool,
    };
    let listener = match config.runtime.ingress {
        IngressThreads::Shared => listener,
        IngressThreads::PerCore => {
            let threads = config.runtime.serving_threads();
            match server::per_core::PerCore::start(
                listener,
                threads,
                serving.clone(),
                config.shutdown_timeout,
            ) {
                Ok(per_core) => return Ingress::PerCore(per_core),
                // Not even one thread could start (the process is at its
                // thread limit): the process's runtime serves instead.
                Err((error, listener)) => {
                    tracing::warn!(%error, "no serving thread could start; serving on the shared runtime");
                    listener
                }
            }
        }
    };
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(
        listener,
        serving.builder,
        serving.make,
        stop_rx,
        serving.tls,
        serving.slots,
        serving.idle_timeout,
    ));
    Ingress::Shared(Listening { stop, task })
}

/// Accepts admin connections (probes, scrapes, the admin API).
fn serve_admin(
    config: &Config,
    admin: Admin,
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
) -> Listening {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(
        listener,
        builder,
        move |_peer| {
            let admin = admin.clone();
            tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(admin.handle(request).await) }
            })
        },
        stop_rx,
        None,
        // The admin port serves probes and scrapes: a small fixed cap.
        Arc::new(tokio::sync::Semaphore::new(64)),
        config.limits.idle_timeout,
    ));
    Listening { stop, task }
}

/// Metrics upkeep every five seconds.
fn spawn_upkeep(metrics: Metrics) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    })
}

/// Deletes expired dedup keys and delivered events past retention, every
/// [`PRUNE_INTERVAL`].
fn spawn_pruner(config: &Config, stores: &Stores) -> JoinHandle<()> {
    let (dedup, spool, retention) = (
        stores.dedup_backends().cloned().collect::<Vec<_>>(),
        stores.spool().cloned(),
        config.store.retention,
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tick.tick().await;
            for store in &dedup {
                match store.prune_expired().await {
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
                    Ok(n) => tracing::debug!(deleted = n, "pruned delivered events past retention"),
                    Err(error) => tracing::warn!(%error, "pruning delivered events failed"),
                }
            }
        }
    })
}

/// Reloads: on request (each message on `reloads`), and by polling the
/// files when `reload.watch` asks to.
fn take_reloads(
    config: &Config,
    live: &Arc<reload::Live>,
    mut reloads: tokio::sync::mpsc::Receiver<()>,
) -> Reloading {
    let (stop, stop_rx) = watch::channel(false);
    let reloader = {
        let live = live.clone();
        let mut stop = stop_rx.clone();
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
        .then(|| tokio::spawn(live.clone().watch(config.reload.interval, stop_rx)));
    Reloading {
        stop,
        reloader,
        watcher,
    }
}

/// How often expired dedup keys are deleted from the local store.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Binds and serves `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Server::bind(config).await?.serve(shutdown).await;
    Ok(())
}
