//! The async spool: events acknowledged to their sender and not yet
//! delivered, kept by a [`SpoolStore`] (the SQLite file, [`sqlite`], or
//! PostgreSQL, [`postgres`]; the schemas are in `crate::store`), and the [`Spool`] handle the ingress, the
//! delivery workers and the admin API use, whatever the store.
//!
//! # What every store must keep
//!
//! `tests/spool_conformance.rs` checks these against each implementation.
//! - **Nothing is acknowledged unless committed.** [`SpoolStore::append`]
//!   resolves `Ok` only after the transaction holding the event committed
//!   (with the configured durability); on any error nothing of it is
//!   visible, now or after a restart.
//! - **The dedup claim and the event are one transaction.** With a
//!   [`LocalClaim`], the claim and the insert commit together or not at
//!   all: an event is never "seen" without being spooled, and a failed
//!   append leaves no claim behind. Of concurrent appends with one key,
//!   exactly one is [`Appended::Spooled`].
//! - **A delivery is handed to one holder at a time.** [`SpoolStore::claim_due`]
//!   returns pending deliveries due now, earliest `next_attempt_at` first,
//!   each under a [`Lease`]; a leased delivery is not returned again until
//!   its attempt is recorded or the lease expires. **A lease expiry makes a
//!   delivery due again** (its holder died or hung), with the same attempt
//!   number; its holder keeps it by [`SpoolStore::renew`]ing.
//! - **An attempt is recorded at most once, by its holder.**
//!   [`SpoolStore::record`] is keyed by delivery id and attempt number: it
//!   applies only while the lease is the delivery's latest (not taken over
//!   by a later claim, not ended by a record) and the delivery is pending
//!   with `attempt - 1` attempts recorded; otherwise it changes nothing and
//!   answers [`Recorded::Stale`]. So a holder whose lease expired may still
//!   record if nobody took over, and an old lease never records over a
//!   replayed dead letter. The attempt row (its start, duration, and the
//!   upstream's status or the error) and the delivery's next state are one
//!   transaction.
//! - **Nothing is deleted silently.** A delivery leaves `pending` only to
//!   become `delivered` (deleted by [`SpoolStore::prune_delivered`] once
//!   finished before the cutoff) or `dead` (kept until replayed or dropped
//!   by an operator). A delivered delivery is never due again and is not
//!   replayed; only dead letters are.
//! - **What a restart finds is what was committed**: events, attempts,
//!   states and dedup claims; leases held by the stopped process expire.
//!
//! Delivery is at-least-once: an attempt interrupted by a crash is made
//! again after its lease ends. `Hookgate-Delivery-Id` is the idempotency key.
//!
//! # Why the trait returns boxed futures
//!
//! The store is chosen by the configuration at start-up, and the spool is
//! shared by the ingress, the admin API, the reloader and the workers: a
//! trait object keeps all of them free of a type parameter (and of a
//! hand-written dispatch enum). The price is one boxed future per store
//! call, next to a transaction commit.

pub mod postgres;
pub mod sqlite;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::Notify;

use crate::dedup::EventKey;
use crate::store::now_ms;
pub use crate::store::{Appended, Recorded, StoreError};
use crate::telemetry::RouteMetrics;
pub use postgres::PostgresSpoolStore;
pub use sqlite::SqliteSpoolStore;

/// One call to a [`SpoolStore`], in progress.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where acknowledged events wait for delivery. Times are unix ms. See the
/// module docs for the invariants every implementation keeps.
pub trait SpoolStore: Send + Sync + 'static {
    /// Appends `event` with one pending delivery per destination, due now,
    /// and `claim` (when given), in one transaction; resolves after the
    /// commit with the event's id.
    fn append(&self, event: NewEvent, claim: Option<LocalClaim>) -> StoreFuture<'_, Appended>;
    /// Leases up to `limit` pending deliveries of `route` to `destination`
    /// that are due now and not leased, earliest `next_attempt_at` first,
    /// each for `lease`. A delivery with an ordering key is due only when
    /// no delivery of an earlier event with that key is pending at that
    /// destination (FIFO per key).
    fn claim_due(
        &self,
        route: &str,
        destination: &str,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<Due>>;
    /// Extends `lease` by `lease_for` from now if its holder still holds
    /// it; false if it was lost (expired and taken, or recorded).
    fn renew(&self, lease: &Lease, lease_for: Duration) -> StoreFuture<'_, bool>;
    /// The earliest time [`SpoolStore::claim_due`] may return something for
    /// `route`'s `destination` (a due time or a lease expiry), if anything
    /// is pending there.
    fn next_due_at(&self, route: &str, destination: &str) -> StoreFuture<'_, Option<i64>>;
    /// Records attempt `lease.attempt` and the delivery's next state in one
    /// transaction, and ends the lease.
    fn record(&self, lease: &Lease, outcome: AttemptOutcome) -> StoreFuture<'_, Recorded>;
    /// Deliveries, newest first, filtered.
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Vec<DeliverySummary>>;
    /// One delivery with its attempt history.
    fn get(&self, id: &str) -> StoreFuture<'_, Option<DeliveryDetail>>;
    /// Moves dead letters back to pending, due now, their attempts reset;
    /// returns how many per route.
    fn replay(&self, which: Replay) -> StoreFuture<'_, Vec<(String, i64)>>;
    /// Deletes one dead letter and its attempts; returns its route if it was one.
    fn drop_dead(&self, id: &str) -> StoreFuture<'_, Option<String>>;
    /// Deletes delivered deliveries (and their attempts) finished at or
    /// before `finished_before`; returns how many.
    fn prune_delivered(&self, finished_before: i64) -> StoreFuture<'_, usize>;
    /// How many deliveries of `route` are pending and dead.
    fn counts(&self, route: &str) -> StoreFuture<'_, SpoolCounts>;
    /// Per route with anything pending: the oldest pending `received_at`.
    fn oldest_pending(&self) -> StoreFuture<'_, Vec<(String, i64)>>;
    /// Cheap health check for readiness: the store answers a read.
    fn check(&self) -> StoreFuture<'_, ()>;
}

/// One event to spool.
pub struct NewEvent {
    pub route: String,
    /// The headers to forward (credentials already removed).
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    /// One delivery per destination (at least one).
    pub deliveries: Vec<NewDelivery>,
    /// The event's dedup key as the sender's values (for operators; the
    /// claim itself is a digest), when the route deduplicates.
    pub dedup_key: Option<String>,
}

/// One destination's delivery of a new event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub destination: String,
    /// Deliveries with the same key are made in order, one at a time.
    pub order_key: Option<String>,
}

impl NewDelivery {
    pub fn to(destination: &str) -> NewDelivery {
        NewDelivery {
            destination: destination.to_string(),
            order_key: None,
        }
    }
}

/// The id of an event's delivery to `destination`: the event's id for the
/// destination `upstream` (so a route with one `upstream` keeps the ids it
/// always had), `<event id>.<destination>` for the others. Destination
/// names are `[a-z0-9_-]+`, so the id stays one URL path segment.
pub fn delivery_id(event_id: &str, destination: &str) -> String {
    if destination == UPSTREAM {
        event_id.to_string()
    } else {
        format!("{event_id}.{destination}")
    }
}

/// The destination a route's `upstream:` is: its one HTTP destination.
pub const UPSTREAM: &str = "upstream";

/// What [`SpoolStore::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub route: Option<String>,
    pub destination: Option<String>,
    pub state: Option<DeliveryState>,
    pub limit: usize,
}

/// A dedup claim to make in the same transaction as the insert.
pub struct LocalClaim {
    pub key: EventKey,
    pub ttl: Duration,
}

/// Where a delivery is in its life. Stored as the same lowercase text it
/// serialises to (`pending | delivered | dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not a [`DeliveryState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a delivery state: {0:?} (pending, delivered or dead)")]
pub struct UnknownState(pub String);

impl std::str::FromStr for DeliveryState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// One holder's right to attempt one delivery, from [`SpoolStore::claim_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The delivery id.
    pub id: String,
    pub route: String,
    pub destination: String,
    /// The attempt this lease is for: the attempts recorded so far, plus one.
    pub attempt: u32,
    /// Tells this holder from a later one of the same delivery.
    pub token: u64,
}

/// A spooled event due for delivery, leased to the caller.
#[derive(Debug, Clone)]
pub struct Due {
    pub lease: Lease,
    /// The event's id: `hookgate-delivery-id`, the same at every destination.
    pub event_id: String,
    pub received_at: i64,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    One(String),
    Route(String),
    /// A route's dead letters at one destination.
    Destination {
        route: String,
        destination: String,
    },
}

impl Replay {
    /// `(id, route, destination)` filters, `None` for any.
    pub fn filters(self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Replay::One(id) => (Some(id), None, None),
            Replay::Route(route) => (None, Some(route), None),
            Replay::Destination { route, destination } => (None, Some(route), Some(destination)),
        }
    }
}

/// Deliveries of a route by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    pub pending: i64,
    pub dead: i64,
}

/// One row of the admin API's delivery listings.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub id: String,
    /// The event this delivery is of (the same for each destination).
    pub event_id: String,
    pub route: String,
    pub destination: String,
    /// The event's dedup key as sent, when the route deduplicates.
    pub dedup_key: Option<String>,
    pub state: DeliveryState,
    pub received_at: i64,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub attempt_history: Vec<AttemptRecord>,
    /// Header names and values as forwarded (credentials never stored).
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
    /// The body as received (the console shows it; the admin API's JSON
    /// keeps to its size).
    #[serde(skip)]
    pub body: Bytes,
}

/// The outcome of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub started_at: i64,
    pub duration: Duration,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub next: NextState,
}

#[derive(Debug, Clone)]
pub enum NextState {
    Delivered,
    RetryAt(i64),
    Dead(&'static str),
}

impl AttemptOutcome {
    /// The delivery's state after this attempt.
    pub fn state(&self) -> DeliveryState {
        match self.next {
            NextState::Delivered => DeliveryState::Delivered,
            NextState::RetryAt(_) => DeliveryState::Pending,
            NextState::Dead(_) => DeliveryState::Dead,
        }
    }

    /// The delivery's `last_error` after this attempt (the same text in
    /// every store): the attempt's error, with why it was dead-lettered.
    pub fn last_error(&self) -> Option<String> {
        match (&self.error, &self.next) {
            (Some(e), NextState::Dead(why)) => Some(format!("{e} (dead letter: {why})")),
            (None, NextState::Dead(why)) => Some(format!("dead letter: {why}")),
            (e, _) => e.clone(),
        }
    }
}

/// How often a shared spool re-reads its counts from the store.
pub const SHARED_COUNTS_REFRESH: Duration = Duration::from_secs(2);

/// Per-route counters behind the gauges and `max_pending`.
struct RouteCounts {
    pending: AtomicI64,
    dead: AtomicI64,
    /// One per destination a worker waits on.
    wakes: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    metrics: RouteMetrics,
}

impl RouteCounts {
    fn wake(&self, destination: &str) -> Arc<Notify> {
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(destination.to_string())
            .or_default()
            .clone()
    }

    /// Wakes the workers of `destinations` (a wake-up waits for a worker
    /// not waiting yet), or of every destination.
    fn wake_up(&self, destinations: Option<&[String]>) {
        let mut wakes = self.wakes.lock().unwrap_or_else(|p| p.into_inner());
        match destinations {
            Some(destinations) => {
                for destination in destinations {
                    // Every record wakes its worker: no allocation when the
                    // worker's wake-up exists already (nearly always).
                    match wakes.get(destination) {
                        Some(wake) => wake.notify_one(),
                        None => wakes.entry(destination.clone()).or_default().notify_one(),
                    }
                }
            }
            None => wakes.values().for_each(|wake| wake.notify_one()),
        }
    }
}

impl RouteCounts {
    fn publish(&self) {
        self.metrics.spool(
            self.pending.load(Ordering::Relaxed),
            self.dead.load(Ordering::Relaxed),
        );
    }
}

/// The spool as this process uses it: a [`SpoolStore`] plus what stays in
/// memory (the per-route counts behind `max_pending` and the gauges, and
/// the wake-ups of the delivery workers). Cheap to clone.
///
/// The counts start from [`SpoolStore::counts`] and follow this process's
/// own appends, records, replays and drops: exact while one process owns
/// the store. A store shared by several processes has them refreshed from
/// the store ([`Spool::shared`]), and its workers are woken by a poll as
/// well as by [`Spool::wait_for_work`].
#[derive(Clone)]
pub struct Spool {
    store: Arc<dyn SpoolStore>,
    /// Grows when a reload adds an async route; never shrinks (a removed
    /// route's events stay in the store and in the admin API).
    routes: Arc<std::sync::RwLock<HashMap<String, Arc<RouteCounts>>>>,
    /// Other processes append too ([`Spool::shared`]): idle workers poll.
    /// Otherwise every append, replay and lease is this process's own and
    /// wakes them, and an idle worker sleeps until then.
    polled: bool,
}

impl Spool {
    /// Opens the spool for `routes` (name and metrics), counting what the
    /// previous run left pending or dead.
    pub async fn open(
        store: Arc<dyn SpoolStore>,
        routes: Vec<(String, RouteMetrics)>,
    ) -> Result<Spool, StoreError> {
        let spool = Spool {
            store,
            routes: Arc::default(),
            polled: false,
        };
        for (name, metrics) in routes {
            spool.add_route(name, metrics).await?;
        }
        Ok(spool)
    }

    /// For a store shared by several processes (PostgreSQL): the per-route
    /// counts (behind `max_pending` and the gauges) are re-read from the
    /// store every [`SHARED_COUNTS_REFRESH`], since other replicas append
    /// and deliver too; between refreshes they follow this process's own
    /// changes. (Workers notice other replicas' appends by polling
    /// [`Spool::next_due_at`], at least once a second.) The refresh ends
    /// when the last handle of this spool is dropped.
    pub fn shared(mut self) -> Spool {
        self.polled = true;
        let routes = Arc::downgrade(&self.routes);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SHARED_COUNTS_REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(routes) = routes.upgrade() else {
                    return;
                };
                let known: Vec<(String, Arc<RouteCounts>)> = routes
                    .read()
                    .unwrap()
                    .iter()
                    .map(|(name, counts)| (name.clone(), counts.clone()))
                    .collect();
                drop(routes);
                for (route, counts) in known {
                    match store.counts(&route).await {
                        Ok(SpoolCounts { pending, dead }) => {
                            counts.pending.store(pending, Ordering::Relaxed);
                            counts.dead.store(dead, Ordering::Relaxed);
                            counts.publish();
                        }
                        Err(error) => {
                            tracing::debug!(%route, %error, "refreshing the spool counts failed")
                        }
                    }
                }
            }
        });
        self
    }

    /// Makes `route` known (at start-up, or when a reload adds it); a route
    /// already known is left as it is.
    pub async fn add_route(&self, route: String, metrics: RouteMetrics) -> Result<(), StoreError> {
        if self.routes.read().unwrap().contains_key(&route) {
            return Ok(());
        }
        let SpoolCounts { pending, dead } = self.store.counts(&route).await?;
        let counts = RouteCounts {
            pending: AtomicI64::new(pending),
            dead: AtomicI64::new(dead),
            wakes: std::sync::Mutex::default(),
            metrics,
        };
        counts.publish();
        self.routes
            .write()
            .unwrap()
            .entry(route)
            .or_insert_with(|| Arc::new(counts));
        Ok(())
    }

    fn counts(&self, route: &str) -> Arc<RouteCounts> {
        self.known(route).expect("spool knows every async route")
    }

    fn known(&self, route: &str) -> Option<Arc<RouteCounts>> {
        self.routes.read().unwrap().get(route).cloned()
    }

    /// Cheap health check for readiness: the store answers a read.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.store.check().await
    }

    /// Undelivered events of `route`.
    pub fn pending(&self, route: &str) -> i64 {
        self.counts(route).pending.load(Ordering::Relaxed)
    }

    /// How many deliveries of `route` are pending and dead, as this
    /// process counts them (the numbers behind the gauges); `None` for a
    /// route the spool does not know.
    pub fn route_counts(&self, route: &str) -> Option<SpoolCounts> {
        self.known(route).map(|c| SpoolCounts {
            pending: c.pending.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
        })
    }

    /// Per route with anything pending: the oldest pending `received_at`
    /// (unix ms), from the store.
    pub async fn oldest_pending(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.store.oldest_pending().await
    }

    /// Whether idle workers must poll the store: other processes append to
    /// it too, without waking this one's workers.
    pub fn polled(&self) -> bool {
        self.polled
    }

    /// Resolves when `route`'s `destination` may have new work.
    pub async fn wait_for_work(&self, route: &str, destination: &str) {
        let wake = self.counts(route).wake(destination);
        wake.notified().await
    }

    /// Appends an event, with its dedup claim when given, in one
    /// transaction. Resolves after the commit.
    ///
    /// The append and what follows its commit (the pending count, the
    /// workers' wake-up) run as a task of their own: a sender that hangs up
    /// drops the request's future, but an event it sent may be committed
    /// already, and must then be counted and delivered like any other.
    pub async fn append(
        &self,
        event: NewEvent,
        claim: Option<LocalClaim>,
    ) -> Result<Appended, StoreError> {
        let this = self.clone();
        tokio::spawn(async move { this.append_and_count(event, claim).await })
            .await
            .map_err(|error| StoreError::AppendTask {
                source: Arc::new(error),
            })?
    }

    async fn append_and_count(
        &self,
        event: NewEvent,
        claim: Option<LocalClaim>,
    ) -> Result<Appended, StoreError> {
        let route = event.route.clone();
        let destinations: Vec<String> = event
            .deliveries
            .iter()
            .map(|d| d.destination.clone())
            .collect();
        let appended = self.store.append(event, claim).await?;
        if let Appended::Spooled(_) = appended {
            let counts = self.counts(&route);
            counts
                .pending
                .fetch_add(destinations.len() as i64, Ordering::Relaxed);
            counts.publish();
            counts.wake_up(Some(&destinations));
        }
        Ok(appended)
    }

    /// Leases up to `limit` due deliveries of `route` to `destination`
    /// (see [`SpoolStore::claim_due`]).
    pub async fn claim_due(
        &self,
        route: &str,
        destination: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Due>, StoreError> {
        self.store.claim_due(route, destination, limit, lease).await
    }

    /// Extends a lease its holder still holds.
    pub async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, StoreError> {
        self.store.renew(lease, lease_for).await
    }

    /// When `route`'s `destination` may next have something to claim
    /// (unix ms), if ever.
    pub async fn next_due_at(
        &self,
        route: &str,
        destination: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.store.next_due_at(route, destination).await
    }

    /// Sets each known route's `hookgate_spool_oldest_pending_age_seconds`
    /// from the store (0 for a route with nothing pending). Called when
    /// metrics are scraped, so the age is current whatever the traffic.
    pub async fn publish_oldest_pending(&self) -> Result<(), StoreError> {
        let oldest: HashMap<String, i64> = self.store.oldest_pending().await?.into_iter().collect();
        let now = now_ms();
        for (route, counts) in self.routes.read().unwrap().iter() {
            let age = oldest.get(route).map_or(0, |at| (now - at).max(0));
            counts.metrics.oldest_pending_age(age as f64 / 1000.0);
        }
        Ok(())
    }

    /// Records an attempt and the event's next state, in one transaction.
    pub async fn record(
        &self,
        lease: &Lease,
        outcome: AttemptOutcome,
    ) -> Result<Recorded, StoreError> {
        let state = outcome.state();
        let recorded = self.store.record(lease, outcome).await?;
        if let Some(counts) = self.known(&lease.route) {
            if recorded == Recorded::Written && state != DeliveryState::Pending {
                counts.pending.fetch_sub(1, Ordering::Relaxed);
                if state == DeliveryState::Dead {
                    counts.dead.fetch_add(1, Ordering::Relaxed);
                }
                counts.publish();
            }
            // The lease ended: the delivery may be due again (a retry), or
            // the next event of its ordering key may be. An idle worker
            // does not poll its own store, so it is told.
            counts.wake_up(Some(std::slice::from_ref(&lease.destination)));
        }
        Ok(recorded)
    }

    /// Deliveries, newest first, filtered.
    pub async fn list(&self, filter: ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        self.store.list(filter).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        self.store.get(id).await
    }

    /// Moves dead letters back to pending with their attempts reset: one by
    /// id, or every one of a route. Returns how many, per route.
    pub async fn replay(&self, which: Replay) -> Result<Vec<(String, i64)>, StoreError> {
        let moved = self.store.replay(which).await?;
        for (route, n) in &moved {
            if let Some(counts) = self.known(route) {
                counts.dead.fetch_sub(*n, Ordering::Relaxed);
                counts.pending.fetch_add(*n, Ordering::Relaxed);
                counts.publish();
                counts.wake_up(None);
            }
        }
        Ok(moved)
    }

    /// Deletes one dead letter (an operator's decision). Returns whether it existed.
    pub async fn drop_dead(&self, id: &str) -> Result<bool, StoreError> {
        let route = self.store.drop_dead(id).await?;
        if let Some(counts) = route.as_deref().and_then(|r| self.known(r)) {
            counts.dead.fetch_sub(1, Ordering::Relaxed);
            counts.publish();
        }
        Ok(route.is_some())
    }

    /// Deletes delivered events older than `retention`.
    pub async fn prune_delivered(&self, retention: Duration) -> Result<usize, StoreError> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        self.store.prune_delivered(cutoff).await
    }
}

/// Headers as JSON `[[name, value]]`, readable in the `sqlite3` shell; a
/// value that is not visible ASCII is stored as `[name, base64, "base64"]`.
pub(crate) fn encode_headers(headers: &HeaderMap) -> String {
    let pairs: Vec<serde_json::Value> = headers
        .iter()
        .map(|(name, value)| match value.to_str() {
            Ok(text) => serde_json::json!([name.as_str(), text]),
            Err(_) => serde_json::json!([
                name.as_str(),
                base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
                "base64"
            ]),
        })
        .collect();
    serde_json::Value::Array(pairs).to_string()
}

pub(crate) fn decode_headers(text: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Ok(serde_json::Value::Array(pairs)) = serde_json::from_str(text) else {
        return headers;
    };
    for pair in pairs {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            continue;
        };
        let bytes = if pair.get(2).and_then(|v| v.as_str()) == Some("base64") {
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .unwrap_or_default()
        } else {
            value.as_bytes().to_vec()
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&bytes),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    const LEASE: Duration = Duration::from_secs(60);

    async fn spool(dir: &std::path::Path) -> Spool {
        let db = Db::open(dir, false, Box::new(|_, _, _| {})).unwrap();
        let metrics = crate::telemetry::Metrics::new();
        let store = Arc::new(SqliteSpoolStore::new(db));
        Spool::open(store, vec![("r".into(), metrics.route("r", 0))])
            .await
            .unwrap()
    }

    fn event(body: &'static str) -> NewEvent {
        NewEvent {
            route: "r".into(),
            headers: HeaderMap::new(),
            query: None,
            body: Bytes::from_static(body.as_bytes()),
            deliveries: vec![NewDelivery::to(UPSTREAM)],
            dedup_key: None,
        }
    }

    fn outcome(next: NextState) -> AttemptOutcome {
        AttemptOutcome {
            started_at: now_ms(),
            duration: Duration::from_millis(3),
            status: Some(200),
            error: None,
            next,
        }
    }

    #[tokio::test]
    async fn only_a_spool_shared_with_other_processes_is_polled() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        assert!(!spool.polled(), "this process's own store: wake-ups only");
        assert!(spool.shared().polled(), "a shared store: its workers poll");
    }

    #[tokio::test]
    async fn delivered_events_are_pruned_after_retention_and_dead_letters_never() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        for body in ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"] {
            match spool.append(event(body), None).await.unwrap() {
                Appended::Spooled(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(spool.pending("r"), 3);
        let due = spool.claim_due("r", UPSTREAM, 10, LEASE).await.unwrap();
        let ids: Vec<String> = due.iter().map(|d| d.lease.id.clone()).collect();
        assert_eq!(ids.len(), 3);
        spool
            .record(&due[0].lease, outcome(NextState::Delivered))
            .await
            .unwrap();
        spool
            .record(&due[1].lease, outcome(NextState::Dead("max_attempts")))
            .await
            .unwrap();
        assert_eq!(spool.pending("r"), 1);
        // Within the retention period nothing goes.
        assert_eq!(
            spool
                .prune_delivered(Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Past it, only the delivered event (and its attempts) go.
        assert_eq!(
            spool
                .prune_delivered(Duration::from_millis(10))
                .await
                .unwrap(),
            1
        );
        assert!(spool.get(&ids[0]).await.unwrap().is_none());
        let dead = spool.get(&ids[1]).await.unwrap().unwrap();
        assert_eq!(dead.summary.state, DeliveryState::Dead);
        assert_eq!(dead.attempt_history.len(), 1);
        assert!(
            spool.get(&ids[2]).await.unwrap().is_some(),
            "pending events are kept"
        );
    }

    #[tokio::test]
    async fn counts_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = spool(dir.path()).await;
            for body in ["1", "2"] {
                spool.append(event(body), None).await.unwrap();
            }
            let due = spool.claim_due("r", UPSTREAM, 10, LEASE).await.unwrap();
            spool
                .record(&due[0].lease, outcome(NextState::Dead("max_age")))
                .await
                .unwrap();
        }
        let spool = spool(dir.path()).await;
        assert_eq!(spool.pending("r"), 1);
        let dead = spool
            .list(ListFilter {
                route: Some("r".into()),
                state: Some(DeliveryState::Dead),
                limit: 10,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].last_error.as_deref().unwrap().contains("max_age"));
    }

    #[test]
    fn states_keep_their_stored_text() {
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        let texts: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["pending", "delivered", "dead"]);
        assert!("Dead".parse::<DeliveryState>().is_err());
    }

    #[test]
    fn headers_round_trip_including_opaque_bytes() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("x-opaque", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let back = decode_headers(&encode_headers(&h));
        assert_eq!(back, h);
    }
}
