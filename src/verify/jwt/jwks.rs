//! A JWKS URL's keys: fetched, cached, refreshed, and never fetched more
//! often than the sender's key server should see.
//!
//! The keys are loaded on the first request that needs them and kept for
//! `refresh`; after that the next request reloads them (keeping the old
//! ones if that fails). A token whose `kid` is not among the cached keys
//! (the sender rotated its keys) triggers a refetch, but at most one per
//! `min_refetch`: a flood of tokens with random `kid`s costs the key server
//! one request, and its senders get `unknown_key`. Loading or refreshing
//! is also attempted at most once per `min_refetch`, so a key server that
//! is down is not retried by every request: until it answers, requests
//! that need keys get `keys_unavailable` (503, the sender retries).
//!
//! One fetch at a time per route (later requests wait for it and use its
//! result), each bounded by `timeout` and its body by [`MAX_JWKS_BYTES`].
//! Verification itself never waits: [`Jwks::prepare`] runs before it, and
//! the verifier reads the current snapshot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::keys::{parse_jwks, JwtKey};

/// The largest JWKS document read (Google's is about 2 KiB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// At most this many keys are kept from a JWKS: each token's signature may
/// be checked against every key of its algorithm without a `kid`.
pub const MAX_JWKS_KEYS: usize = 16;

/// Where a route's keys are published, and how often they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    pub url: http::Uri,
    /// Keys older than this are reloaded by the next request.
    pub refresh: Duration,
    /// At most one refetch for an unknown `kid`, and one load attempt, per
    /// this interval.
    pub min_refetch: Duration,
    /// The bound on one fetch: connecting, TLS, the answer and its body.
    pub timeout: Duration,
}

/// The cached keys, as verification reads them.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<JwtKey>,
    /// When the keys were last loaded; `None` until the first success.
    pub loaded: Option<Instant>,
}

impl KeySet {
    fn knows(&self, kid: Option<&str>) -> bool {
        match kid {
            None => !self.keys.is_empty(),
            Some(kid) => self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
        }
    }
}

#[derive(Debug, Default)]
struct Attempts {
    /// The last load or refresh attempt.
    load: Option<Instant>,
    /// The last refetch for an unknown `kid`.
    unknown_kid: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Never loaded, or older than `refresh`.
    Load,
    UnknownKid,
}

/// A route's JWKS cache.
pub struct Jwks {
    source: JwksSource,
    keys: ArcSwap<KeySet>,
    attempts: Mutex<Attempts>,
    /// One fetch at a time.
    flight: tokio::sync::Mutex<()>,
    /// How many fetches were made (tests and `hookgate check`).
    fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    pub fn new(source: JwksSource) -> Jwks {
        Jwks {
            source,
            keys: ArcSwap::from_pointee(KeySet::default()),
            attempts: Mutex::new(Attempts::default()),
            flight: tokio::sync::Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The keys as they are now.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Fetches attempted so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What a fetch now would be for, if one is allowed; with `claim`, the
    /// attempt is recorded (the caller then fetches).
    fn due(&self, kid: Option<&str>, now: Instant, claim: bool) -> Option<Trigger> {
        let set = self.keys.load();
        let trigger = match set.loaded {
            Some(at) if now.duration_since(at) < self.source.refresh => {
                if set.knows(kid) {
                    return None;
                }
                Trigger::UnknownKid
            }
            _ => Trigger::Load,
        };
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let last = match trigger {
            Trigger::Load => &mut attempts.load,
            Trigger::UnknownKid => &mut attempts.unknown_kid,
        };
        if last.is_some_and(|t| now.duration_since(t) < self.source.min_refetch) {
            return None;
        }
        if claim {
            *last = Some(now);
        }
        Some(trigger)
    }

    /// Makes sure the keys for a token with `kid` are loaded, fetching them
    /// if that is due and allowed. Failures are logged and leave the cached
    /// keys as they were; verification then answers for itself.
    pub async fn prepare(&self, kid: Option<&str>) {
        if self.due(kid, Instant::now(), false).is_none() {
            return;
        }
        let _flight = self.flight.lock().await;
        // Another request may have fetched while this one waited.
        if self.due(kid, Instant::now(), true).is_none() {
            return;
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = tokio::time::timeout(self.source.timeout, fetch(&self.source.url)).await;
        match fetched.unwrap_or(Err(FetchError::Timeout)) {
            Ok(keys) => {
                tracing::info!(host = self.host(), keys = keys.len(), "JWKS loaded");
                self.keys.store(Arc::new(KeySet {
                    keys,
                    loaded: Some(Instant::now()),
                }));
            }
            Err(e) => {
                tracing::warn!(host = self.host(), error = %e, "JWKS fetch failed");
            }
        }
    }

    fn host(&self) -> &str {
        self.source.url.host().unwrap_or("")
    }
}

/// Why a JWKS could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the key server did not answer in time")]
    Timeout,
    #[error("cannot connect to the key server: {0}")]
    Connect(#[source] std::io::Error),
    #[error("TLS with the key server failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("HTTP exchange with the key server failed: {0}")]
    Http(#[source] hyper::Error),
    #[error("the key server answered {0}")]
    Status(http::StatusCode),
    #[error("the JWKS body could not be read or is over {MAX_JWKS_BYTES} bytes")]
    Body,
    #[error("{0}")]
    Document(&'static str),
}

/// One GET of the JWKS over its own connection (a fetch is rare: no pool).
async fn fetch(url: &http::Uri) -> Result<Vec<JwtKey>, FetchError> {
    let host = url.host().unwrap_or_default().to_string();
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host_for_connect = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((host_for_connect, port))
        .await
        .map_err(FetchError::Connect)?;
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(
            http::header::HOST,
            url.authority().map_or("", |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "hookgate")
        .body(Empty::<Bytes>::new())
        .expect("a GET with valid headers");
    let response = if https {
        let tls = tls_connector()
            .connect(server_name(host_for_connect)?, tcp)
            .await
            .map_err(FetchError::Tls)?;
        exchange(TokioIo::new(tls), request).await?
    } else {
        exchange(TokioIo::new(tcp), request).await?
    };
    parse_jwks(&response, MAX_JWKS_KEYS).map_err(FetchError::Document)
}

async fn exchange<I>(io: I, request: http::Request<Empty<Bytes>>) -> Result<Bytes, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(FetchError::Http)?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(FetchError::Http)?;
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Status(response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|_| FetchError::Body)?;
    Ok(body.to_bytes())
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, FetchError> {
    rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|_| {
        FetchError::Tls(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a valid TLS server name",
        ))
    })
}

/// A TLS client trusting the system's roots, built once.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        Arc::new(
            tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    tokio_rustls::TlsConnector::from(config.clone())
}
