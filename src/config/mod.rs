//! Configuration: one YAML file, parsed then validated into the typed
//! [`Config`] the rest of the gateway uses.
//!
//! Loading is three steps, each with errors that name the field:
//! 1. parse YAML into a tree and expand `${…}` in every string (`expand.rs`);
//! 2. deserialise the tree into raw structs that reject unknown keys
//!    (`raw.rs`), parsing every leaf into its type on the way (`leaf/`:
//!    durations, addresses, header names, URLs, words like `ack: sync`);
//! 3. fill in defaults (the `Default` impls and `DEFAULT_*` constants
//!    below) and check the rules between fields (`validate/`).
//!
//! Nothing here may print a secret: errors name fields, variables and files,
//! and secret values are [`secrecy::SecretString`]s.

mod error_text;
mod expand;
mod leaf;
mod raw;
mod trust;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderMap, HeaderName, Uri};
use secrecy::{ExposeSecret, SecretString};

use crate::dedup::KeyTemplate;
use crate::events::EventPolicy;
use crate::verify::VerifySpec;

pub use expand::expand_str;

/// The route label used for requests that match no route.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Webhook ingress listener.
    pub listen: SocketAddr,
    /// Admin listener: health, readiness, metrics.
    pub admin_listen: SocketAddr,
    /// Embedded store directory (used by the dedup and spool features).
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// How ingress connections are served (threads and runtimes).
    pub runtime: RuntimeConfig,
    /// How long shutdown waits for in-flight requests before closing them.
    pub shutdown_timeout: Duration,
    /// Needed only when a route uses `dedup.backend: redis`.
    pub redis: Option<RedisConfig>,
    pub store: StoreConfig,
    /// When set, `/admin/*` requires `Authorization: Bearer <token>`.
    pub admin_token: Option<SecretString>,
    /// TLS on the ingress listener.
    pub tls: Option<TlsConfig>,
    /// Proxies whose `X-Forwarded-For` is believed when finding a sender's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub log: LogConfig,
    pub reload: ReloadConfig,
    /// Traces (off unless `telemetry.otlp` is set).
    pub otlp: Option<OtlpConfig>,
    pub routes: Vec<Route>,
}

pub use crate::telemetry::traces::OtlpConfig;

impl Config {
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080));
    pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
    pub const DEFAULT_DATA_DIR: &'static str = "./data";
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request bodies larger than this get 413, without being buffered.
    pub max_body_bytes: u64,
    /// Time a sender has to send the request line and headers.
    pub header_read_timeout: Duration,
    /// Time a sender has to send the whole body once the headers arrived.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed
    /// gracefully (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// Largest upstream response body relayed to the sender in sync mode.
    pub max_upstream_response_bytes: u64,
    /// Open ingress connections; beyond it new connections wait in the
    /// listen backlog (the kernel refuses them when that is full).
    pub max_connections: usize,
    /// Requests processed at once; beyond it `503 overloaded`.
    pub max_concurrent_requests: usize,
    /// Size of a request head (HTTP/1.1) or header list (HTTP/2); beyond it 431.
    pub max_header_bytes: usize,
    /// Number of request headers (HTTP/1.1); beyond it 431.
    pub max_headers: usize,
    /// Slowest body a sender may trickle, in bytes per second, after the
    /// first [`BODY_RATE_GRACE`]; slower gets 408.
    pub body_min_rate: u64,
}

/// How long a body may arrive slower than `body_min_rate` before the rate
/// is enforced (TCP slow start, a sender's first flush).
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(2);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_upstream_response_bytes: 10 * 1024 * 1024,
            max_connections: 10_000,
            max_concurrent_requests: 5_000,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            body_min_rate: 1024,
        }
    }
}

/// `runtime`: the threads that serve ingress connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    pub ingress: IngressThreads,
    /// `per_core`: how many serving threads; `None` is one per CPU the
    /// process may run on.
    pub threads: Option<usize>,
}

/// `runtime.ingress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngressThreads {
    /// One single-threaded runtime per serving thread, each accepting on
    /// its own `SO_REUSEPORT` listener and sending to upstreams through
    /// its own connection pool: a request is served on one thread from
    /// accept to answer, with no wake-up of another thread.
    #[default]
    PerCore,
    /// The process's multi-threaded (work-stealing) runtime serves every
    /// connection, beside the delivery workers and the admin listener.
    Shared,
}

impl RuntimeConfig {
    /// The number of serving threads `per_core` starts.
    pub fn serving_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Unique, `[a-z0-9_-]+`; used as the `route` metric label.
    pub name: String,
    /// Exact path matched for `POST` requests (query string ignored).
    pub path: String,
    pub verify: VerifySpec,
    /// Meta's verify token (`verify.verify_token`): the subscription `GET`
    /// is answered only when it carries this value.
    pub verify_token: Option<secrecy::SecretString>,
    pub ack: AckMode,
    /// Status of the acknowledgement (async) and of duplicate answers.
    pub ack_status: http::StatusCode,
    /// Async: undelivered events beyond which new ones get 503.
    pub max_pending: u64,
    pub dedup: DedupMode,
    /// Which verified events are forwarded, acknowledged or answered.
    pub events: EventPolicy,
    /// Senders allowed to call this route (empty: everyone).
    pub allow_ips: Vec<ipnet::IpNet>,
    pub rate_limit: Option<RateLimit>,
    /// Where the route's events go, at least one; `upstream:` is one HTTP
    /// destination named `upstream`. A sync route's first is HTTP.
    pub destinations: Vec<Destination>,
}

impl Route {
    /// The first destination: a sync route's, whose answer is relayed.
    pub fn first(&self) -> &Destination {
        &self.destinations[0]
    }

    /// The HTTP service a sync route forwards to (its first destination).
    pub fn sync_upstream(&self) -> Option<&Upstream> {
        match &self.first().kind {
            DestinationKind::Http(upstream) => Some(upstream.as_ref()),
            _ => None,
        }
    }

    /// Whether some of the route's deliveries go through the spool.
    pub fn spools(&self) -> bool {
        !self.spooled_destinations().is_empty()
    }

    /// The destinations delivered from the spool: all of an async route's,
    /// a sync route's after the first.
    pub fn spooled_destinations(&self) -> &[Destination] {
        match self.ack {
            AckMode::Async => &self.destinations,
            AckMode::Sync => &self.destinations[1..],
        }
    }
}

/// One place a route's events are delivered to, with its own retries,
/// dead letters, rate and order.
#[derive(Debug, Clone)]
pub struct Destination {
    /// `[a-z0-9_-]+`, unique in the route: the `destination` metric label.
    pub name: String,
    pub kind: DestinationKind,
    /// Bound on one attempt.
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: u32,
    pub retry: RetryConfig,
    /// Which answers are retried; another non-2xx dead-letters at once.
    pub retry_on: RetryOn,
    /// Deliveries started per second.
    pub rate_limit: Option<RateLimit>,
    /// FIFO per key: events with the same key are delivered one at a time,
    /// in the order they were accepted.
    pub ordering: Option<KeyTemplate>,
}

/// What a destination is.
#[derive(Debug, Clone)]
pub enum DestinationKind {
    /// An HTTP service; its `timeout`, `concurrency` and `retry` are the
    /// destination's.
    Http(Box<Upstream>),
    /// A NATS JetStream subject. The URL may hold credentials.
    Nats { url: SecretString, subject: String },
    /// An AMQP 0-9-1 exchange. The URL may hold credentials.
    Amqp {
        url: SecretString,
        exchange: String,
        routing_key: String,
    },
    /// A Redis stream. The URL may hold credentials.
    Redis {
        url: SecretString,
        stream: String,
        maxlen: Option<u64>,
    },
}

impl DestinationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DestinationKind::Http(_) => "http",
            DestinationKind::Nats { .. } => "nats",
            DestinationKind::Amqp { .. } => "amqp",
            DestinationKind::Redis { .. } => "redis",
        }
    }

    /// Where it delivers, without credentials: for logs and `check`.
    pub fn describe(&self) -> String {
        let at = |url: &SecretString| crate::destination::redacted(url.expose_secret());
        match self {
            DestinationKind::Http(upstream) => upstream.url.to_string(),
            DestinationKind::Nats { url, subject } => format!("{} subject {subject}", at(url)),
            DestinationKind::Amqp {
                url,
                exchange,
                routing_key,
            } => format!(
                "{} exchange {exchange:?} routing key {routing_key:?}",
                at(url)
            ),
            DestinationKind::Redis { url, stream, .. } => format!("{} stream {stream}", at(url)),
        }
    }
}

/// `retry.on`: the HTTP answers worth another attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RetryOn {
    /// Any non-2xx (the default).
    #[default]
    AnyFailure,
    /// Only these; `classes` are the hundreds (5 for `5xx`).
    Only {
        classes: Vec<u16>,
        statuses: Vec<u16>,
    },
}

impl RetryOn {
    /// Whether an answer with `status` (not 2xx) is retried.
    pub fn retries(&self, status: u16) -> bool {
        match self {
            RetryOn::AnyFailure => true,
            RetryOn::Only { classes, statuses } => {
                statuses.contains(&status) || classes.contains(&(status / 100))
            }
        }
    }
}

impl Route {
    pub const DEFAULT_ACK: AckMode = AckMode::Async;
    pub const DEFAULT_ACK_STATUS: http::StatusCode = http::StatusCode::OK;
    pub const DEFAULT_MAX_PENDING: u64 = 100_000;
}

/// When the sender gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Forward first, then relay the upstream's answer to the sender.
    Sync,
    /// Answer once the event is committed to the spool; deliver in the
    /// background with retries.
    Async,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Sync => "sync",
            AckMode::Async => "async",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` or `json`.
    pub json: bool,
    /// A tracing filter, e.g. `info` or `hookgate=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            json: false,
            level: "info".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Poll the config file and the files it reads, and reload on change.
    pub watch: bool,
    pub interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: false,
            interval: Duration::from_secs(5),
        }
    }
}

/// A route's rate limit: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Where the spool and `backend: store` dedup keys live, their
/// durability and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// SQLite: sync to disk on every commit, so acked events survive power
    /// loss. PostgreSQL's durability is its own (`synchronous_commit`).
    pub fsync: bool,
    /// How long delivered events are kept for inspection.
    pub retention: Duration,
    /// Set when `backend` is `postgres`.
    pub postgres: Option<PostgresConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::default(),
            fsync: true,
            retention: Duration::from_secs(7 * 86400),
            postgres: None,
        }
    }
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreBackend {
    /// One SQLite file in `data_dir`: a sidecar or a single edge replica.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several replicas.
    Postgres,
}

impl StoreBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Sqlite => "sqlite",
            StoreBackend::Postgres => "postgres",
        }
    }
}

pub use crate::store::postgres::PostgresConfig;

impl PostgresConfig {
    pub const DEFAULT_SCHEMA: &'static str = "hookgate";
    pub const DEFAULT_POOL_SIZE: usize = 16;

    /// The URL without its password (and without any query parameters,
    /// which may carry one too), for display.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// `scheme://user:***@host/path` from a URL that may hold a password; the
/// query string is dropped (it may hold `password=`).
fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "<redacted>".to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{}{user}{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Async delivery retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Past this age an event is dead-lettered even if attempts remain.
    pub max_age: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 15,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

/// Whether and how a route drops repeated copies of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupMode {
    Off,
    On(Dedup),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// Which parts of a request identify its event.
    pub key: KeyTemplate,
    /// How long an accepted event is remembered.
    pub ttl: Duration,
    pub backend: DedupBackend,
    pub on_store_error: StoreErrorPolicy,
    /// `unsigned_key: allow`: the key may use parts the signature does not
    /// cover, giving up replay protection for this route.
    pub unsigned_key_allowed: bool,
}

impl Dedup {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DedupBackend {
    /// The configured store (`store.backend`): the SQLite file in
    /// `data_dir`, or PostgreSQL. Written `store` (or `local`, its old name).
    #[default]
    Local,
    /// The top-level `redis` server, shared by replicas.
    Redis,
}

impl DedupBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupBackend::Local => "store",
            DedupBackend::Redis => "redis",
        }
    }
}

/// What to do when the dedup store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreErrorPolicy {
    /// Forward without dedup (nothing lost; a duplicate is possible).
    #[default]
    Accept,
    /// Answer 503 with Retry-After.
    Reject,
}

impl StoreErrorPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorPolicy::Accept => "accept",
            StoreErrorPolicy::Reject => "reject",
        }
    }
}

/// The Redis server used by `backend: redis` routes.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`; may hold a password.
    pub url: SecretString,
    pub key_prefix: String,
    /// Bound on connecting and on each command.
    pub timeout: Duration,
}

impl RedisConfig {
    pub const DEFAULT_KEY_PREFIX: &'static str = "hookgate:";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// The URL with any password replaced, for display.
    pub fn redacted_url(&self) -> String {
        let url = self.url.expose_secret();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port/path[?query]`.
    pub url: Uri,
    /// Bound on the whole exchange with the upstream (connect, request, response).
    pub timeout: Duration,
    /// Added to every forwarded request. Values are marked sensitive: they
    /// may carry the upstream's own credentials.
    pub headers: HeaderMap,
    /// When set, the only sender headers forwarded (hookgate's own and
    /// `headers` are always added).
    pub forward_headers: Option<Vec<HeaderName>>,
    /// Sync: upstream response headers relayed to the sender besides
    /// `Content-Type`, `Content-Language`, `Retry-After` and `Location`.
    pub relay_headers: Vec<HeaderName>,
    /// Async: deliveries in flight at once.
    pub concurrency: u32,
    pub retry: RetryConfig,
}

impl Upstream {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONCURRENCY: u32 = 16;
}

/// A configuration problem, with the file and the field it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    /// Field path such as `routes[0].verify.secrets[1]`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A deserialisation error, naming the field and the expected type,
    /// never the value.
    pub(crate) fn from_serde(e: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let path = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::at(path, error_text::serde_message(&e.into_inner().to_string()))
    }

    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads and validates `file`, expanding `${VAR}` from `env`.
    pub fn load(file: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: Some(file.to_path_buf()),
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        })?;
        Config::from_yaml(&text, env).map_err(|mut e| {
            e.file = Some(file.to_path_buf());
            e
        })
    }

    /// Parses and validates YAML text, expanding `${VAR}` from `env`.
    pub fn from_yaml(text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut tree: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::at("", format!("invalid YAML: {e}")))?;
        if tree.is_null() {
            return Err(ConfigError::at("", "the file is empty"));
        }
        let mut expanded = Vec::new();
        expand::expand_tree(&mut tree, &mut String::new(), env, &mut expanded)
            .map_err(|(path, message)| ConfigError::at(path, message))?;
        // Any error from here on may be about an expanded value: it is
        // scrubbed of them, whichever check wrote it.
        let scrub = |mut e: ConfigError| {
            e.message = error_text::redact(&e.message, &expanded);
            e
        };
        let raw: raw::RawConfig = serde_path_to_error::deserialize(tree)
            .map_err(ConfigError::from_serde)
            .map_err(scrub)?;
        validate::validate(raw).map_err(scrub)
    }

    /// Settings that work but are probably not what was meant; `check`
    /// prints them and start-up logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.admin_token.is_none() && !self.admin_listen.ip().is_loopback() {
            warnings.push(format!(
                "admin.listen {} is not a loopback address and admin.token is not set: /admin/* answers 403 admin_token_required (/healthz, /readyz and /metrics still answer); set admin.token to use the admin API",
                self.admin_listen
            ));
        }
        for route in &self.routes {
            if route.events.handshake == Some(crate::events::Handshake::MetaSubscription)
                && route.verify_token.is_none()
            {
                warnings.push(format!(
                    "route {} has no verify.verify_token: Meta's subscription GET (hub.mode=subscribe) is answered 403, so the callback URL cannot be verified; set it to the Verify Token entered in Meta's dashboard",
                    route.name
                ));
            }
        }
        warnings.extend(self.trust_warnings());
        warnings
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests;
