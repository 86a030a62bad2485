//! Test fixtures for the phases, without a listener: a [`Gateway`] built
//! from YAML and driven in-process with `tower::ServiceExt::oneshot`, a
//! real upstream on port 0 that counts what reaches it, and request bodies
//! that misbehave on purpose.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use super::Gateway;
use crate::config::Config;
use crate::dedup::LocalStore;
use crate::forward::UpstreamClient;
use crate::spool::{Spool, SqliteSpoolStore};
use crate::stores::Stores;
use crate::telemetry::Metrics;

/// The TruTac secret of the fixtures' signed routes.
pub(super) const SECRET: &str = "phase-secret";

/// A gateway over the given config, with its metrics and its stores in a
/// temporary directory.
pub(super) struct Fixture {
    gateway: Arc<Gateway>,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// `yaml`: top-level config (at least `routes:`); `listen`, `admin` and
    /// `data_dir` are filled in.
    pub(super) async fn new(yaml: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\n{yaml}",
            dir.path().display()
        );
        let config = Config::from_yaml(&text, &HashMap::new()).expect("fixture config is valid");
        let metrics = Metrics::new();
        let stores = stores(&config, &metrics, dir.path()).await;
        let client = UpstreamClient::new(config.limits.max_upstream_response_bytes);
        let gateway = Arc::new(Gateway::new(&config, &metrics, &stores, &client));
        Fixture {
            gateway,
            metrics,
            _dir: dir,
        }
    }

    /// Sends `request` as if from `peer`, through a `tower::Service` around
    /// [`Gateway::handle`], and reads the answer to the end.
    pub(super) async fn send_from<B>(&self, peer: &str, request: Request<B>) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let peer: SocketAddr = peer.parse().unwrap();
        let gateway = self.gateway.clone();
        let service = tower::service_fn(move |request: Request<B>| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
        });
        let response = service.oneshot(request).await.unwrap();
        Reply::read(response).await
    }

    pub(super) async fn send<B>(&self, request: Request<B>) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        self.send_from("192.0.2.10:4711", request).await
    }

    /// The gateway itself, to drive [`Gateway::handle`] by hand.
    pub(super) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The value of one series, e.g.
    /// `hookgate_requests_total{route="r",outcome="accepted"}`; 0 when it
    /// has not been recorded.
    pub(super) fn metric(&self, series: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }
}

/// The stores a route can use without a server: one embedded database
/// for local dedup and the spool of the async routes (no delivery worker
/// runs: spooled events stay pending).
async fn stores(config: &Config, metrics: &Metrics, dir: &std::path::Path) -> Stores {
    let db = crate::store::Db::open(dir, false, Box::new(|_, _, _| {})).unwrap();
    let async_routes = config
        .routes
        .iter()
        .filter(|r| r.spools())
        .map(|r| {
            (
                r.name.clone(),
                metrics.route(&r.name, r.verify.secret_count()),
            )
        })
        .collect();
    let spool = Spool::open(Arc::new(SqliteSpoolStore::new(db.clone())), async_routes);
    let (local, _) = LocalStore::build(db).await.unwrap();
    Stores::from_parts(
        [(crate::config::DedupBackend::Local, local)],
        Some(spool.await.unwrap()),
    )
}

/// A response read to the end.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) body: Bytes,
}

impl Reply {
    pub(super) async fn read(response: Response<Full<Bytes>>) -> Reply {
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// The `error` code of a JSON error body.
    pub(super) fn error_code(&self) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        json["error"].as_str().unwrap_or_default().to_string()
    }
}

/// A `POST` to `path` with `headers` and a complete body.
pub(super) fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut request = Request::post(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

/// A TruTac `POST` to `path`, signed with `secret`.
pub(super) fn trutac_post(path: &str, secret: &str, body: &str) -> Request<Full<Bytes>> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha1={}", hex::encode(mac.finalize().into_bytes()));
    post(path, &[("TT-Hook-Signature", &signature)], body)
}

/// A real upstream on port 0 that answers every request with `status` and
/// counts the requests that reach it.
pub(super) struct Upstream {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub(super) async fn start(status: StatusCode) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                    *response.status_mut() = status;
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Upstream {
            addr,
            received,
            task,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// How many requests have reached it.
    pub(super) fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request body that yields `frames` in order, then ends, or with
/// `stall` never ends (nor wakes its reader).
pub(super) struct TestBody {
    frames: VecDeque<Result<Bytes, std::io::Error>>,
    stall: bool,
}

impl TestBody {
    pub(super) fn frames(frames: &[&'static [u8]]) -> TestBody {
        TestBody {
            frames: frames.iter().map(|f| Ok(Bytes::from_static(f))).collect(),
            stall: false,
        }
    }

    /// Sends nothing, ever.
    pub(super) fn stalled() -> TestBody {
        TestBody {
            frames: VecDeque::new(),
            stall: true,
        }
    }

    /// One frame, then a broken connection.
    pub(super) fn broken() -> TestBody {
        TestBody {
            frames: VecDeque::from([
                Ok(Bytes::from_static(b"{")),
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            ]),
            stall: false,
        }
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(frame.map(Frame::data))),
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

/// Everything logged while it is the thread's default subscriber, as JSON
/// lines (for tests on a current-thread runtime).
#[derive(Clone, Default)]
pub(super) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    pub(super) fn subscribe(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || log.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(super) fn lines(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
