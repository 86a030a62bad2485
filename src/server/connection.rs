//! One accepted connection, served until the peer closes it, the listener
//! drains, or it has had no request in progress for `limits.idle_timeout`.
//!
//! The last two end it the same way: hyper's graceful shutdown, so a
//! request already in progress is answered first and an HTTP/2 peer gets a
//! GOAWAY. A request is in progress from the moment the service is called
//! until its response body has been written or dropped; the time before a
//! request head is complete counts as idle (`header_read_timeout` bounds it
//! as well).
//!
//! The per-request cost is one `Arc` clone and two atomic updates; the idle
//! timer runs in the connection's own task and wakes at most once per
//! `idle_timeout` while requests are in progress.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use super::{ConnectionService, ResponseBody};

/// The open connections of one listener, so that shutdown can ask each to
/// finish and wait until they have.
pub struct Connections {
    drain: watch::Sender<()>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            drain: watch::channel(()).0,
        }
    }
}

impl Connections {
    /// Subscribes a connection that is about to be served; done on the
    /// accept loop, before the connection's task starts, so that no
    /// connection can miss a drain that starts in between.
    pub fn register(&self) -> watch::Receiver<()> {
        self.drain.subscribe()
    }

    /// Asks every connection to finish its requests and close, and waits
    /// until all have (each holds its receiver until it ends).
    pub async fn shutdown(self) {
        let _ = self.drain.send(());
        self.drain.closed().await;
    }
}

/// Serves one connection with `service`; see the module docs for when it ends.
pub async fn serve<I, S, B>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
    mut drain: watch::Receiver<()>,
    idle_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let activity = Arc::new(Activity::new());
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = tracked.begin();
        let response = service.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        }
    });
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
    tokio::select! {
        result = conn.as_mut() => return result,
        // A dropped `Connections` drains too: nothing could wait for it.
        _ = drain.changed() => {}
        _ = activity.idle_for(idle_timeout) => {}
    }
    conn.as_mut().graceful_shutdown();
    // `drain` lives until here: shutdown waits for this connection's end.
    conn.await
}

/// Whether a connection has a request in progress, and since when it has not.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds after `opened`.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut deadline = self.opened + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            // Acquire pairs with the Release in `InFlight::drop`: seeing the
            // count at zero, we see the end time stored before it dropped.
            if self.in_flight.load(Ordering::Acquire) > 0 {
                deadline = Instant::now() + timeout;
                continue;
            }
            let last_end =
                self.opened + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
            deadline = last_end + timeout;
            if deadline <= Instant::now() {
                return;
            }
        }
    }
}

/// One request in progress; it ends when this is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let now_ms = activity.opened.elapsed().as_millis() as u64;
        // `fetch_max`: HTTP/2 requests may end in any order.
        activity.last_end_ms.fetch_max(now_ms, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request in progress until hyper has
/// written it (or given up on it) and dropped it.
struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
