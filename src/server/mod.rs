//! Listeners: accepting connections, the per-connection service stack, and
//! graceful shutdown. What happens to each request is in `pipeline`.

mod connection;
mod error;
pub mod per_core;
mod pipeline;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

pub use connection::Connections;
pub use error::{json_error, RequestError};
pub use pipeline::Gateway;

/// Response body of the ingress stack (as boxed by the panic guard).
pub type IngressBody = tower_http::body::UnsyncBoxBody<Bytes, tower_http::BoxError>;

use crate::config::Limits;

/// The HTTP/1.1 + HTTP/2 (h2c) connection settings shared by both listeners.
pub fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A sender that does not finish its request head in time is cut off
        // (slowloris); the body has its own timeout (`pipeline/body.rs`). hyper
        // also runs this timer while a keep-alive connection waits for its
        // next request; `limits.idle_timeout` (see `connection`) closes idle
        // connections of both protocols.
        .header_read_timeout(limits.header_read_timeout)
        // Heads larger than this, or with more headers, get 431.
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        // Dead HTTP/2 peers are found by pings and dropped.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// What a connection is served with: a cloneable service that answers
/// every request (errors are answers too) with a [`ResponseBody`]. The
/// accept loop, the serving threads and `connection::serve` share it.
pub trait ConnectionService<B>:
    tower::Service<
        Request<Incoming>,
        Response = Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> ConnectionService<B> for S where
    S: tower::Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// A response body hyper can send on any thread.
pub trait ResponseBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Unpin
    + Send
    + 'static
{
}

impl<B> ResponseBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Unpin
        + Send
        + 'static
{
}

/// The ingress stack for one connection, outermost layer first. Each
/// request runs on the gateway `current()` returns when it starts (the
/// routes in force, see `reload`); `sensitive` are the headers marked
/// sensitive on every request.
pub fn ingress_stack<G>(
    current: G,
    sensitive: Arc<[HeaderName]>,
    peer: SocketAddr,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<IngressBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + 'static
where
    G: Fn() -> Arc<Gateway> + Clone + Send + 'static,
{
    ServiceBuilder::new()
        // Last line of defence: a bug that panics answers this one request
        // with a JSON 500 and keeps the connection's other requests and the
        // process alive.
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("request handler panicked");
                json_error(http::StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            },
        ))
        // Credential and signature headers are marked sensitive before any
        // layer or handler could log the request.
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
        .service_fn(move |request: Request<Incoming>| {
            let gateway = current();
            async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
        })
}

/// Accepts connections until `stop` turns true, serving each (after a TLS
/// handshake when `tls` is set) with the service `make(peer)` until it
/// ends, is idle for `idle_timeout`, or is drained; each connection holds
/// one permit of `slots`. Hands back the open connections so the caller
/// can drain them.
pub async fn accept_loop<M, S, B>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    make: M,
    mut stop: watch::Receiver<bool>,
    tls: Option<(tls::SharedTls, Duration)>,
    slots: Arc<tokio::sync::Semaphore>,
    idle_timeout: Duration,
) -> Connections
where
    M: Fn(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let connections = Connections::default();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            // The only change ever sent is "stop"; a dropped sender also stops.
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning; the
                    // listener itself stays open.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Past `max_connections` (the permits of `slots`, which serving
        // threads share), the connection just accepted waits unserved until
        // one closes, and this listener accepts no other meanwhile: the
        // next ones wait in the kernel's backlog, existing ones are
        // unaffected. Accepting first means a permit only ever goes to a
        // connection that exists: with a listener per thread, a permit
        // taken before accepting could sit with a thread whose listener
        // has nothing, while another's connection waits for it.
        let slot = tokio::select! {
            biased;
            _ = stop.changed() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let _ = stream.set_nodelay(true);
        let service = make(peer);
        let builder = builder.clone();
        let drain = connections.register();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => connection::serve(stream, &builder, service, drain, idle_timeout).await,
                Some((config, handshake_timeout)) => {
                    let Some(stream) = handshake(stream, peer, &config, handshake_timeout).await
                    else {
                        return;
                    };
                    connection::serve(stream, &builder, service, drain, idle_timeout).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    connections
}

/// The TLS handshake of one connection. It shares the header timeout: a
/// client that never finishes it is cut off like a slow sender.
async fn handshake(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    config: &tls::SharedTls,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config.load_full());
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
