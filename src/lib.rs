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
pub mod events;
pub mod forward;
pub mod server;
pub mod telemetry;
pub mod verify;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

use admin::Admin;
use server::Gateway;
use telemetry::Metrics;
use verify::SpecKind;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
    metrics: Metrics,
}

impl Server {
    /// Binds the ingress and admin listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let ingress = bind("ingress", config.listen).await?;
        let admin = bind("admin", config.admin_listen).await?;
        Ok(Server {
            config,
            ingress,
            admin,
            metrics: Metrics::new(),
        })
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
        let Server {
            config,
            ingress,
            admin,
            metrics,
        } = self;
        let gateway = Arc::new(Gateway::new(&config, &metrics));
        let sensitive = sensitive_headers(&config);
        let ready = Arc::new(AtomicBool::new(false));
        let admin_state = Admin {
            metrics: metrics.clone(),
            ready: ready.clone(),
        };

        let (stop_ingress, stop_ingress_rx) = watch::channel(false);
        let (stop_admin, stop_admin_rx) = watch::channel(false);

        let builder = server::connection_builder(&config.limits);
        let ingress_task = tokio::spawn(server::accept_loop(
            ingress,
            builder.clone(),
            move |peer| server::ingress_stack(gateway.clone(), sensitive.clone(), peer),
            GracefulShutdown::new(),
            stop_ingress_rx,
        ));
        let admin_task = tokio::spawn(server::accept_loop(
            admin,
            builder,
            move |_peer| {
                let admin = admin_state.clone();
                tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let response = admin.handle(&request);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                })
            },
            GracefulShutdown::new(),
            stop_admin_rx,
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

        ready.store(true, Ordering::Release);
        metrics.set_ready(true);
        tracing::info!(
            ingress = %config.listen,
            admin = %config.admin_listen,
            routes = config.routes.len(),
            "hookgate is serving"
        );

        shutdown.await;

        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        ready.store(false, Ordering::Release);
        metrics.set_ready(false);
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
        let _ = stop_admin.send(true);
        let admin_conns = admin_task.await.unwrap_or_default();
        let _ = tokio::time::timeout(Duration::from_secs(1), admin_conns.shutdown()).await;
        upkeep.abort();
        tracing::info!("hookgate stopped");
    }
}

/// Binds and serves `config` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Server::bind(config).await?.serve(shutdown).await;
    Ok(())
}

/// Headers that carry credentials anywhere in this config, marked sensitive
/// on every request so no layer logs their values.
fn sensitive_headers(config: &Config) -> Arc<[HeaderName]> {
    let mut names = vec![
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
    ];
    for route in &config.routes {
        match &route.verify.kind {
            SpecKind::None => {}
            SpecKind::Header { header, .. } | SpecKind::ApiKey { header, .. } => {
                names.push(header.clone())
            }
            SpecKind::Hmac { spec, .. } => {
                names.extend(spec.sources.iter().map(|s| s.header.clone()))
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names.into()
}
