//! Test helpers: a real gateway on port 0 (or the built binary as a child
//! process), a real upstream on port 0 that records what it receives, and a
//! small HTTP client.
#![allow(dead_code)]

pub mod brokers;
pub mod postgres;
pub mod proxy;
pub mod redis;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Responder = dyn Fn(&Received) -> Response<Full<Bytes>> + Send + Sync;

/// A recording upstream: answers every request with `respond` after `delay`.
pub struct Upstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    /// An upstream that answers `200 {"ok":true}`.
    pub async fn start() -> Upstream {
        Upstream::with(Duration::ZERO, |_| {
            json_response(StatusCode::OK, r#"{"ok":true}"#)
        })
        .await
    }

    pub async fn with(
        delay: Duration,
        respond: impl Fn(&Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Upstream {
        Upstream::at("127.0.0.1:0".parse().unwrap(), delay, respond).await
    }

    /// An upstream on a given address (e.g. one that was down until now).
    pub async fn at(
        addr: SocketAddr,
        delay: Duration,
        respond: impl Fn(&Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Upstream {
        Upstream::serve(addr, delay, None, respond).await
    }

    /// An upstream that records each request as it arrives and answers
    /// `200 {"ok":true}` only once `gate` gives it a permit (one per answer).
    pub async fn gated(gate: Arc<tokio::sync::Semaphore>) -> Upstream {
        Upstream::gated_with(gate, |_| json_response(StatusCode::OK, r#"{"ok":true}"#)).await
    }

    /// [`Upstream::gated`] with its own answer.
    pub async fn gated_with(
        gate: Arc<tokio::sync::Semaphore>,
        respond: impl Fn(&Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Upstream {
        Upstream::serve(
            "127.0.0.1:0".parse().unwrap(),
            Duration::ZERO,
            Some(gate),
            respond,
        )
        .await
    }

    async fn serve(
        addr: SocketAddr,
        delay: Duration,
        gate: Option<Arc<tokio::sync::Semaphore>>,
        respond: impl Fn(&Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let log = received.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let log = log.clone();
                let respond = respond.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        let respond = respond.clone();
                        let gate = gate.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let r = Received {
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                            };
                            log.lock().unwrap().push(r.clone());
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            if let Some(gate) = gate {
                                gate.acquire().await.unwrap().forget();
                            }
                            Ok::<_, Infallible>(respond(&r))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            received,
            connections,
        }
    }

    /// The `Hookgate-Delivery-Id` of every request received, in order.
    pub fn delivery_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|r| r.headers.get("hookgate-delivery-id"))
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// How many TCP connections the upstream has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub fn json_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// A gateway running in this process on port 0.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The data directory when the helper made one (kept alive with the gateway).
    pub data_dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Boots a gateway from YAML. `listen` and `admin.listen` default to
    /// port 0 unless the YAML sets them.
    pub async fn start(yaml: &str) -> Gateway {
        Gateway::start_with_env(yaml, &[]).await
    }

    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        let mut text = yaml.to_string();
        if !text.contains("\nlisten:") && !text.starts_with("listen:") {
            text = format!("listen: \"127.0.0.1:0\"\n{text}");
        }
        if !text.contains("admin:") {
            text = format!("admin: {{ listen: \"127.0.0.1:0\" }}\n{text}");
        }
        // Each gateway gets its own store unless the test shares one.
        let data_dir = if text.contains("data_dir:") {
            None
        } else {
            let dir = tempfile::tempdir().unwrap();
            text = format!("data_dir: \"{}\"\n{text}", dir.path().display());
            Some(dir)
        };
        let env = env_map(env);
        let config = hookgate::Config::from_yaml(&text, &env).expect("test config is valid");
        let server = hookgate::Server::bind(config).await.unwrap();
        Gateway::serve(server, data_dir)
    }

    /// Serves `server` until the gateway is dropped or shut down.
    fn serve(server: hookgate::Server, data_dir: Option<tempfile::TempDir>) -> Gateway {
        let (addr, admin) = (server.ingress_addr(), server.admin_addr());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            admin,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Boots a gateway from a config file, reloadable from that file (as
    /// the binary does). The file must set its own ports and data_dir.
    pub async fn start_file(path: &std::path::Path, env: &[(&str, &str)]) -> Gateway {
        let env = env_map(env);
        let config = hookgate::Config::load(path, &env).expect("test config is valid");
        let server = hookgate::Server::bind(config)
            .await
            .unwrap()
            .with_source(path.to_path_buf(), env);
        Gateway::serve(server, None)
    }

    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap()
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = get(&self.admin_url("/metrics")).await;
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    /// The value of one series in `/metrics`, e.g.
    /// `hookgate_requests_total{route="trutac",outcome="accepted"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        scrape_metric(&self.admin_url(""), series).await
    }
}

fn env_map(env: &[(&str, &str)]) -> HashMap<String, String> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of one series in the `/metrics` of the admin listener at
/// `admin` (`http://host:port`); fails the test if it is not there.
pub async fn scrape_metric(admin: &str, series: &str) -> f64 {
    let text = get(&format!("{admin}/metrics")).await;
    let text = String::from_utf8(text.body.to_vec()).unwrap();
    metric_value(&text, series).unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// Polls `check` every 20 ms until it holds; fails the test, naming
/// `what`, if it does not within `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An admin API call on `gateway` with `Authorization: Bearer <token>`.
pub async fn admin_call(
    gateway: &Gateway,
    token: &str,
    method: http::Method,
    path: &str,
) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(gateway.admin_url(path))
        .header("Authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(req).await
}

/// [`wait_until`] for a check that needs no I/O, up to 20 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    wait_until(
        what,
        Duration::from_secs(20),
        || std::future::ready(check()),
    )
    .await
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(request: Request<Full<Bytes>>) -> Answer {
    let response = client().request(request).await.expect("request sent");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Answer {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

/// POSTs `body` with the given headers.
pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Answer {
    let mut builder = Request::post(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(builder.body(Full::new(body.into())).unwrap()).await
}

/// `sha1=<hex HMAC-SHA1>` as TruTac sends it.
pub fn trutac_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A free port with nothing listening on it.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The built binary serving a config file, as a child process (so it can
/// be killed, restarted, or have its resource limits changed).
pub struct GatewayProcess {
    pub child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// Starts `hookgate serve --config <config>` and waits until it serves.
    pub fn spawn(config: &std::path::Path) -> GatewayProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["serve", "--config"])
            .arg(config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        loop {
            let line = lines
                .next()
                .expect("gateway exited before serving")
                .unwrap();
            let serving = line.contains("hookgate is serving");
            log.push(line);
            if serving {
                break;
            }
        }
        let log = Arc::new(Mutex::new(log));
        // Keep draining stderr so the child never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        GatewayProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the process has written to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, and the process must exit 0.
    pub fn terminate(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(self.child.wait().unwrap().success());
    }

    /// A memory figure of the process from `/proc/<pid>/status`, in KiB:
    /// `VmRSS` (resident now) or `VmHWM` (the most it has been resident).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .unwrap_or_else(|| panic!("no {field} in\n{status}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for GatewayProcess {
    /// A test that fails half-way must not leave the process running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A config file for the built binary, written to `dir/hookgate.yaml`.
pub struct ProcessConfig {
    pub file: std::path::PathBuf,
    pub ingress: u16,
    pub admin: u16,
}

/// Writes a config for [`GatewayProcess::spawn`]: fixed free ports (so the
/// process can be killed and restarted on them), `dir/data` as its
/// data_dir, then `rest` (more top-level YAML, at least `routes:`).
pub fn process_config(dir: &std::path::Path, rest: &str) -> ProcessConfig {
    let (ingress, admin) = (free_port(), free_port());
    let file = dir.join("hookgate.yaml");
    std::fs::write(
        &file,
        format!(
            "listen: \"127.0.0.1:{ingress}\"\nadmin: {{ listen: \"127.0.0.1:{admin}\" }}\ndata_dir: \"{}\"\n{rest}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    ProcessConfig {
        file,
        ingress,
        admin,
    }
}

/// A free port for a child process to listen on (nothing holds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `command` with `input` as JSON on its stdin and returns the JSON it
/// prints (the senders' SDK scripts answer this way); `what` names the
/// script in the failure message.
pub fn run_json(
    mut command: std::process::Command,
    input: &serde_json::Value,
    what: &str,
) -> serde_json::Value {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}
