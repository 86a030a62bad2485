//! Thread-per-core ingress (`runtime.ingress: per_core`): each serving
//! thread runs its own single-threaded tokio runtime, accepts on its own
//! listener (all bound to one address with `SO_REUSEPORT`, so the kernel
//! spreads new connections over them), and sends sync requests upstream
//! through its own connection pool (`forward::UpstreamClient::use_thread_pool`).
//! A request is then served on one thread from accept to answer: the
//! connection task, the handler and the upstream connection's task never
//! wake one another across threads, which is what nginx's event loop per
//! worker does and what the multi-threaded runtime cannot (BENCHMARKS.md,
//! scenario 1's profile).
//!
//! What the handlers hand to other threads stays as it is: the store's
//! writer thread, the Redis connection, the delivery workers on the
//! process's multi-threaded runtime.
//!
//! Shutdown, in [`PerCore::stop`]: every thread stops accepting and drains
//! its connections; the runtimes are kept until [`PerCore::finish`], since
//! tasks started while serving (a dedup release, a pooled store
//! connection) may still be needed until the stores are flushed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch, Semaphore};

use super::tls::SharedTls;
use super::{ConnectionService, ResponseBody};

/// The listen backlog of each serving thread's socket.
const BACKLOG: u32 = 1024;

/// Binds the ingress address for the serving threads: first as a plain
/// listener would, so that a port another process holds is refused as it
/// always was (`SO_REUSEPORT` would otherwise let a second gateway of the
/// same user, started by mistake, take a share of the connections), then
/// with `SO_REUSEPORT` for the threads (port 0 picks a free port, which
/// they then share).
pub fn bind_first(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    bind_shared(addr)
}

/// Binds `addr` with `SO_REUSEPORT`, beside the serving threads' other
/// listeners.
fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What one serving thread is given: everything it needs to serve, built
/// on the thread that starts it.
#[derive(Clone)]
pub struct Serving<M> {
    pub builder: auto::Builder<TokioExecutor>,
    /// The service for each accepted connection, by peer address.
    pub make: M,
    pub tls: Option<(SharedTls, Duration)>,
    /// Shared by every thread: `limits.max_connections` for the process.
    pub slots: Arc<Semaphore>,
    pub idle_timeout: Duration,
    /// Run on each serving thread before it accepts (its upstream pool).
    pub on_start: fn(),
}

/// The serving threads, and the signals that stop and release them.
pub struct PerCore {
    stop: watch::Sender<bool>,
    threads: Vec<ServingThread>,
}

struct ServingThread {
    /// The address its listener is bound to (the others bind it too).
    addr: Option<SocketAddr>,
    /// Sends whether the thread's connections drained within the timeout.
    drained: oneshot::Receiver<bool>,
    /// Dropped (or sent) to let the thread's runtime end.
    finish: oneshot::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl PerCore {
    /// Starts `threads` serving threads: the first accepts on `first`
    /// (bound by [`bind_first`]), the others on listeners of their own
    /// bound to the same address. A thread that cannot start is logged and
    /// left out. When not even the first can, `first` is handed back with
    /// the error, to be served some other way.
    pub fn start<M, S, B>(
        first: TcpListener,
        threads: usize,
        serving: Serving<M>,
        drain_timeout: Duration,
    ) -> Result<PerCore, (std::io::Error, TcpListener)>
    where
        M: Fn(SocketAddr) -> S + Clone + Send + 'static,
        S: ConnectionService<B>,
        B: ResponseBody,
    {
        let (stop, stop_rx) = watch::channel(false);
        let mut first = Some(first);
        let mut started = Vec::with_capacity(threads);
        for index in 0..threads.max(1) {
            let listener = match first.take() {
                Some(first) => Ok(first),
                None => started_addr(&started).and_then(bind_shared),
            };
            let listener = match listener {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, index, "a serving thread could not bind; serving with fewer threads");
                    continue;
                }
            };
            let (drained_tx, drained) = oneshot::channel();
            let (finish, finish_rx) = oneshot::channel();
            // The listener is handed over once the thread exists, so that a
            // thread that cannot be started does not take it along.
            let (handover, taken) = std::sync::mpsc::channel();
            let (stop_rx, serving) = (stop_rx.clone(), serving.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("hookgate-srv-{index}"))
                .spawn(move || {
                    if let Ok(listener) = taken.recv() {
                        serve_thread(
                            listener,
                            serving,
                            stop_rx,
                            drain_timeout,
                            drained_tx,
                            finish_rx,
                        );
                    }
                });
            let handle = match spawned {
                Ok(handle) => handle,
                Err(error) if started.is_empty() => return Err((error, listener)),
                Err(error) => {
                    tracing::warn!(%error, index, "could not start a serving thread; serving with fewer threads");
                    continue;
                }
            };
            let addr = listener.local_addr().ok();
            let _ = handover.send(listener.into_std());
            started.push(ServingThread {
                addr,
                drained,
                finish,
                handle,
            });
        }
        Ok(PerCore {
            stop,
            threads: started,
        })
    }

    /// Stops accepting on every thread and waits until each has drained its
    /// connections (or given up after the drain timeout). False when some
    /// connections had to be closed with requests in progress.
    pub async fn stop(&mut self) -> bool {
        let _ = self.stop.send(true);
        let mut all = true;
        for thread in &mut self.threads {
            // A thread that ended early (it panicked) has no connections left.
            all &= (&mut thread.drained).await.unwrap_or(true);
        }
        all
    }

    /// Lets the serving runtimes end, and waits for their threads.
    pub async fn finish(self) {
        let handles: Vec<_> = self
            .threads
            .into_iter()
            .map(|thread| {
                let _ = thread.finish.send(());
                thread.handle
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for handle in handles {
                let _ = handle.join();
            }
        })
        .await;
    }
}

/// The address the first thread's listener is bound to (the one the
/// configured `listen` resolved to, port 0 included).
fn started_addr(started: &[ServingThread]) -> std::io::Result<SocketAddr> {
    started
        .first()
        .and_then(|thread| thread.addr)
        .ok_or_else(|| std::io::Error::other("the first serving thread has no address"))
}

/// One serving thread: its runtime accepts and serves until `stop`, drains,
/// reports, then keeps running the tasks it holds until `finish`.
fn serve_thread<M, S, B>(
    listener: std::io::Result<std::net::TcpListener>,
    serving: Serving<M>,
    stop: watch::Receiver<bool>,
    drain_timeout: Duration,
    drained: oneshot::Sender<bool>,
    finish: oneshot::Receiver<()>,
) where
    M: Fn(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "a serving thread could not start its runtime");
            let _ = drained.send(true);
            return;
        }
    };
    runtime.block_on(async move {
        (serving.on_start)();
        let listener = match listener.and_then(TcpListener::from_std) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "a serving thread could not use its listener");
                let _ = drained.send(true);
                return;
            }
        };
        let connections = super::accept_loop(
            listener,
            serving.builder,
            serving.make,
            stop,
            serving.tls,
            serving.slots,
            serving.idle_timeout,
        )
        .await;
        let in_time = tokio::time::timeout(drain_timeout, connections.shutdown())
            .await
            .is_ok();
        let _ = drained.send(in_time);
        let _ = finish.await;
    });
}
