//! Heap allocations per request through a real gateway (listeners, the
//! upstream and the client all in this process, on 127.0.0.1), counted by
//! a global allocator that wraps the system's. The client's and the
//! upstream's own allocations are measured alone first (the client sending
//! straight to the upstream) and subtracted, so each figure is what
//! hookgate allocates for one request: the request path of scenarios 1, 2
//! and 4 of `bench/run.sh` (for 4, the delivery of each event as well).
//!
//!   cargo bench --bench allocations
//!
//! A measurement, not a test: it asserts nothing and is not part of
//! `.ci/run`. Figures and what they led to are in BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &str = "bench-secret";
/// Requests per measurement, after as many to warm up.
const REQUESTS: u64 = 5_000;

/// A TruTac-signed request like `bench/gen_requests.py`'s: ~1.5 KB of JSON
/// with its own event id.
fn request(url: &str, n: u64) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"id":"evt_{n}","type":"clocking","action":"created","clocking":{{"id":"c_{n}","note":"{}"}}}}"#,
        "x".repeat(1400)
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha1={}", hex::encode(mac.finalize().into_bytes()));
    Request::post(url)
        .header("content-type", "application/json")
        .header("tt-hook-signature", signature)
        .header("tt-hook-event", "clocking")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// An upstream answering 204 to everything; it counts requests.
async fn upstream() -> (SocketAddr, std::sync::Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            counter.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::NO_CONTENT)
                                    .body(Empty::<Bytes>::new())
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// Sends `REQUESTS` requests (ids from `first`) one after another on one
/// keep-alive connection, and waits until the upstream has seen each (an
/// async route delivers after answering); answers (allocations, bytes)
/// per request.
async fn measure(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    first: u64,
    seen: &AtomicU64,
) -> (f64, f64) {
    let expected = seen.load(Ordering::Relaxed) + REQUESTS;
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for n in first..first + REQUESTS {
        let response = client.request(request(url, n)).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.into_body().collect().await;
    }
    while seen.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / REQUESTS as f64,
        (b1 - b0) as f64 / REQUESTS as f64,
    )
}

fn config(upstream: SocketAddr, data_dir: &std::path::Path, route: &str) -> hookgate::Config {
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nlog: {{ level: \"off\" }}\nroutes:\n  - name: trutac\n    path: /hooks/trutac\n    verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}\n{route}    upstream: {{ url: \"http://{upstream}/trutac\" }}\n",
        data_dir.display()
    );
    hookgate::Config::from_yaml(&yaml, &Default::default()).unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (upstream, seen) = upstream().await;
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let direct = format!("http://{upstream}/trutac");
        measure(&client, &direct, 0, &seen).await;
        let (base_allocs, base_bytes) = measure(&client, &direct, 0, &seen).await;
        println!("client + upstream alone: {base_allocs:.1} allocations, {base_bytes:.0} bytes per request (subtracted below)");
        println!("| scenario | allocations per request | bytes allocated per request |");
        println!("|---|---|---|");
        let scenarios = [
            ("1 sync, verify", "    ack: sync\n    dedup: off\n"),
            ("2 sync, verify, local dedup", "    ack: sync\n    dedup: { key: \"{json:/id}\" }\n"),
            ("4 async (delivery included)", "    ack: async\n    dedup: off\n"),
        ];
        for (i, (name, route)) in scenarios.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let server = hookgate::Server::bind(config(upstream, dir.path(), route)).await.unwrap();
            let url = format!("http://{}/hooks/trutac", server.ingress_addr());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(server.serve(async move {
                let _ = stopped.await;
            }));
            let first = 1_000_000 * (i as u64 + 1);
            measure(&client, &url, first, &seen).await;
            let (allocs, bytes) = measure(&client, &url, first + REQUESTS, &seen).await;
            println!(
                "| {name} | {:.1} | {:.0} |",
                allocs - base_allocs,
                bytes - base_bytes
            );
            let _ = stop.send(());
            let _ = serving.await;
        }
    });
}
