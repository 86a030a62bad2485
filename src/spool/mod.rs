//! The async spool: events acknowledged to their sender and not yet
//! delivered, in the `deliveries` and `attempts` tables of the embedded
//! store (schema in `crate::store`).
//!
//! Invariants:
//! - an event is acknowledged only after the transaction that inserted it
//!   committed (the store's group commit answers after the commit);
//! - with the `local` dedup backend, the dedup claim and the insert are one
//!   transaction: an event is never "seen" without being spooled;
//! - nothing is deleted silently: events leave `pending` only to become
//!   `delivered` (pruned after the retention period) or `dead` (kept until
//!   replayed or dropped through the admin API);
//! - every attempt is recorded in `attempts`, with its time, duration, and
//!   the upstream's status or the error.
//!
//! Delivery is at-least-once: an attempt interrupted by a crash is made
//! again after restart. `Hookgate-Delivery-Id` is the idempotency key.

pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use tokio::sync::Notify;

use crate::dedup::local::claim_in;
use crate::dedup::{Claim, ClaimToken, EventKey};
use crate::store::{now_ms, Db, Durability, StoreError};
use crate::telemetry::RouteMetrics;

/// One event to spool.
pub struct NewEvent {
    pub route: String,
    /// The headers to forward (credentials already removed).
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
}

/// A local dedup claim to make in the same transaction as the insert.
pub struct LocalClaim {
    pub key: EventKey,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Committed; the delivery id.
    Spooled(String),
    Duplicate,
    InFlight,
}

/// A spooled event due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub received_at: i64,
    pub attempts: u32,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
}

/// One row of the admin API's delivery listings.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub id: String,
    pub route: String,
    pub state: String,
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
}

/// The outcome of one attempt, as recorded.
#[derive(Clone)]
pub struct AttemptOutcome {
    pub attempt: u32,
    pub started_at: i64,
    pub duration: Duration,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub next: NextState,
}

#[derive(Clone)]
pub enum NextState {
    Delivered,
    RetryAt(i64),
    Dead(&'static str),
}

/// Per-route counters behind the gauges and `max_pending`.
struct RouteCounts {
    pending: AtomicI64,
    dead: AtomicI64,
    wake: Notify,
    busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    metrics: RouteMetrics,
}

impl RouteCounts {
    fn publish(&self) {
        self.metrics.spool(
            self.pending.load(Ordering::Relaxed),
            self.dead.load(Ordering::Relaxed),
        );
    }
}

#[derive(Clone)]
pub struct Spool {
    db: Db,
    /// Grows when a reload adds an async route; never shrinks (a removed
    /// route's events stay on disk and in the admin API).
    routes: Arc<std::sync::RwLock<HashMap<String, Arc<RouteCounts>>>>,
}

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

impl Spool {
    /// Opens the spool for `routes` (name and metrics), counting what the
    /// previous run left pending or dead.
    pub async fn open(db: Db, routes: Vec<(String, RouteMetrics)>) -> Result<Spool, StoreError> {
        let spool = Spool {
            db,
            routes: Arc::default(),
        };
        for (name, metrics) in routes {
            spool.add_route(name, metrics).await?;
        }
        Ok(spool)
    }

    /// Makes `route` known (at start-up, or when a reload adds it); a route
    /// already known is left as it is.
    pub async fn add_route(&self, route: String, metrics: RouteMetrics) -> Result<(), StoreError> {
        if self.routes.read().unwrap().contains_key(&route) {
            return Ok(());
        }
        let name = route.clone();
        let (pending, dead): (i64, i64) = self
            .db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
                     FROM deliveries WHERE route = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await?;
        let counts = RouteCounts {
            pending: AtomicI64::new(pending),
            dead: AtomicI64::new(dead),
            wake: Notify::new(),
            busy: Arc::default(),
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
        self.routes
            .read()
            .unwrap()
            .get(route)
            .cloned()
            .expect("spool knows every async route")
    }

    fn known(&self, route: &str) -> Option<Arc<RouteCounts>> {
        self.routes.read().unwrap().get(route).cloned()
    }

    /// The ids of `route`'s deliveries being attempted right now, shared by
    /// every worker of the route (across reloads), so none is sent twice
    /// at once.
    pub fn busy(&self, route: &str) -> Arc<std::sync::Mutex<std::collections::HashSet<String>>> {
        self.counts(route).busy.clone()
    }

    /// Cheap health check for readiness: the store answers a read.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.db
            .read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    /// Undelivered events of `route`.
    pub fn pending(&self, route: &str) -> i64 {
        self.counts(route).pending.load(Ordering::Relaxed)
    }

    /// Resolves when `route` may have new work.
    pub async fn wait_for_work(&self, route: &str) {
        self.counts(route).wake.notified().await
    }

    /// Appends an event, with its local dedup claim when given, in one
    /// transaction. Resolves after the commit.
    pub async fn append(
        &self,
        event: NewEvent,
        claim: Option<LocalClaim>,
    ) -> Result<Appended, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let headers = encode_headers(&event.headers);
        let route = event.route.clone();
        let appended = self
            .db
            .write(move |tx| {
                if let Some(claim) = claim {
                    // Lease unused: a spooled claim is committed at once.
                    match claim_in(tx, &event.route, &claim.key, ClaimToken::random(), claim.ttl, Some(claim.ttl))? {
                        Claim::New(_) => {}
                        Claim::Duplicate => return Ok(Appended::Duplicate),
                        Claim::InFlight => return Ok(Appended::InFlight),
                    }
                }
                let now = now_ms();
                tx.prepare_cached("INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body)
                     VALUES (?1, ?2, 'pending', ?3, 0, ?3, ?4, ?5, ?6)")?.execute(
                    params![id, event.route, now, event.query, headers, &event.body[..]],
                )?;
                Ok(Appended::Spooled(id))
            })
            .await?;
        if let Appended::Spooled(_) = appended {
            let counts = self.counts(&route);
            counts.pending.fetch_add(1, Ordering::Relaxed);
            counts.publish();
            counts.wake.notify_one();
        }
        Ok(appended)
    }

    /// Pending events of `route` due now, oldest first, skipping `busy` ones
    /// (those being attempted right now) in the query itself, so only rows
    /// handed out are read and decoded.
    pub async fn due(
        &self,
        route: &str,
        limit: usize,
        busy: Vec<String>,
    ) -> Result<Vec<Due>, StoreError> {
        let route = route.to_string();
        let now = now_ms();
        let busy = serde_json::to_string(&busy).unwrap_or_else(|_| "[]".into());
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, received_at, attempts, headers, query, body FROM deliveries
                     WHERE state = 'pending' AND route = ?1 AND next_attempt_at <= ?2
                       AND id NOT IN (SELECT value FROM json_each(?4))
                     ORDER BY next_attempt_at LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![route, now, limit as i64, busy], |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        received_at: r.get(1)?,
                        attempts: r.get(2)?,
                        headers: decode_headers(&r.get::<_, String>(3)?),
                        query: r.get(4)?,
                        body: Bytes::from(r.get::<_, Vec<u8>>(5)?),
                    })
                })?;
                rows.collect()
            })
            .await
    }

    /// When the next pending event of `route` falls due (unix ms), if any.
    pub async fn next_due_at(&self, route: &str) -> Result<Option<i64>, StoreError> {
        let route = route.to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND route = ?1",
                    [route],
                    |r| r.get(0),
                )
            })
            .await
    }

    /// Sets each known route's `hookgate_spool_oldest_pending_age_seconds`
    /// from the store (0 for a route with nothing pending). Called when
    /// metrics are scraped, so the age is current whatever the traffic.
    pub async fn publish_oldest_pending(&self) -> Result<(), StoreError> {
        let oldest: HashMap<String, i64> = self
            .db
            .read(|c| {
                c.prepare_cached(
                    "SELECT route, min(received_at) FROM deliveries WHERE state = 'pending' GROUP BY route",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await?;
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
        route: &str,
        id: &str,
        outcome: AttemptOutcome,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let now = now_ms();
        let (state, next_at, finished) = match outcome.next {
            NextState::Delivered => (DELIVERED, None, Some(now)),
            NextState::RetryAt(t) => (PENDING, Some(t), None),
            NextState::Dead(_) => (DEAD, None, Some(now)),
        };
        let error = match (&outcome.error, &outcome.next) {
            (Some(e), NextState::Dead(why)) => Some(format!("{e} (dead letter: {why})")),
            (None, NextState::Dead(why)) => Some(format!("dead letter: {why}")),
            (e, _) => e.clone(),
        };
        self.db
            // Relaxed: an outcome lost with the machine means the event is
            // attempted again (at-least-once), never lost.
            .write_with(Durability::Relaxed, move |tx| {
                tx.prepare_cached("INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, duration_ms, status, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
                    params![id, outcome.attempt, outcome.started_at, outcome.duration.as_millis() as i64, outcome.status, outcome.error],
                )?;
                tx.prepare_cached("UPDATE deliveries SET state = ?2, attempts = ?3, next_attempt_at = coalesce(?4, next_attempt_at),
                       last_status = ?5, last_error = ?6, finished_at = ?7 WHERE id = ?1")?.execute(
                    params![id, state, outcome.attempt, next_at, outcome.status, error, finished],
                )?;
                Ok(())
            })
            .await?;
        if state != PENDING {
            let counts = self.counts(route);
            counts.pending.fetch_sub(1, Ordering::Relaxed);
            if state == DEAD {
                counts.dead.fetch_add(1, Ordering::Relaxed);
            }
            counts.publish();
        }
        Ok(())
    }

    /// Deliveries, newest first, filtered by route and state.
    pub async fn list(
        &self,
        route: Option<String>,
        state: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, route, state, received_at, attempts, next_attempt_at, last_status, last_error
                     FROM deliveries WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR state = ?2)
                     ORDER BY received_at DESC, id DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![route, state, limit as i64], summary)?;
                rows.collect()
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        let id = id.to_string();
        self.db
            .read(move |c| {
                let Some((summary, headers, body_bytes)) = c
                    .query_row(
                        "SELECT id, route, state, received_at, attempts, next_attempt_at, last_status, last_error, headers, length(body)
                         FROM deliveries WHERE id = ?1",
                        [&id],
                        |r| Ok((summary(r)?, r.get::<_, String>(8)?, r.get::<_, i64>(9)?)),
                    )
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut stmt = c.prepare(
                    "SELECT attempt, started_at, duration_ms, status, error FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
                )?;
                let attempt_history = stmt
                    .query_map([&id], |r| {
                        Ok(AttemptRecord {
                            attempt: r.get(0)?,
                            started_at: r.get(1)?,
                            duration_ms: r.get(2)?,
                            status: r.get(3)?,
                            error: r.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let headers = decode_headers(&headers)
                    .iter()
                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                Ok(Some(DeliveryDetail {
                    summary,
                    attempt_history,
                    headers,
                    body_bytes: body_bytes as usize,
                }))
            })
            .await
    }

    /// Moves dead letters back to pending with their attempts reset: one by
    /// id, or every one of a route. Returns how many.
    pub async fn replay(
        &self,
        id: Option<String>,
        route: Option<String>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let now = now_ms();
        let moved: Vec<(String, i64)> = self
            .db
            .write(move |tx| {
                let mut stmt = tx.prepare(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?3, finished_at = NULL
                     WHERE state = 'dead' AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR route = ?2)
                     RETURNING route",
                )?;
                let routes = stmt.query_map(params![id, route, now], |r| r.get::<_, String>(0))?;
                let mut per_route: HashMap<String, i64> = HashMap::new();
                for r in routes {
                    *per_route.entry(r?).or_default() += 1;
                }
                Ok(per_route.into_iter().collect())
            })
            .await?;
        for (route, n) in &moved {
            if let Some(counts) = self.known(route) {
                counts.dead.fetch_sub(*n, Ordering::Relaxed);
                counts.pending.fetch_add(*n, Ordering::Relaxed);
                counts.publish();
                counts.wake.notify_one();
            }
        }
        Ok(moved)
    }

    /// Deletes one dead letter (an operator's decision). Returns whether it existed.
    pub async fn drop_dead(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        let route: Option<String> = self
            .db
            .write(move |tx| {
                let route = tx
                    .query_row(
                        "DELETE FROM deliveries WHERE id = ?1 AND state = 'dead' RETURNING route",
                        [&id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if route.is_some() {
                    tx.prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")?
                        .execute([&id])?;
                }
                Ok(route)
            })
            .await?;
        if let Some(counts) = route.as_deref().and_then(|r| self.known(r)) {
            counts.dead.fetch_sub(1, Ordering::Relaxed);
            counts.publish();
        }
        Ok(route.is_some())
    }

    /// Deletes delivered events older than `retention`, in batches.
    pub async fn prune_delivered(&self, retention: Duration) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let cutoff = now_ms() - retention.as_millis() as i64;
            let deleted = self
                .db
                .write(move |tx| {
                    tx.prepare_cached("DELETE FROM attempts WHERE delivery_id IN
                           (SELECT id FROM deliveries WHERE state = 'delivered' AND finished_at <= ?1 LIMIT 1000)")?.execute(
                        [cutoff],
                    )?;
                    tx.prepare_cached("DELETE FROM deliveries WHERE id IN
                           (SELECT id FROM deliveries WHERE state = 'delivered' AND finished_at <= ?1 LIMIT 1000)")?.execute(
                        [cutoff],
                    )
                })
                .await?;
            total += deleted;
            if deleted < 1000 {
                return Ok(total);
            }
        }
    }
}

fn summary(r: &Row<'_>) -> rusqlite::Result<DeliverySummary> {
    let state: String = r.get(2)?;
    Ok(DeliverySummary {
        id: r.get(0)?,
        route: r.get(1)?,
        next_attempt_at: if state == PENDING { r.get(5)? } else { None },
        state,
        received_at: r.get(3)?,
        attempts: r.get(4)?,
        last_status: r.get(6)?,
        last_error: r.get(7)?,
    })
}

/// Headers as JSON `[[name, value]]`, readable in the `sqlite3` shell; a
/// value that is not visible ASCII is stored as `[name, base64, "base64"]`.
fn encode_headers(headers: &HeaderMap) -> String {
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

fn decode_headers(text: &str) -> HeaderMap {
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

    async fn spool(dir: &std::path::Path) -> Spool {
        let db = Db::open(dir, false, Box::new(|_, _, _| {})).unwrap();
        let metrics = crate::telemetry::Metrics::new();
        Spool::open(db, vec![("r".into(), metrics.route("r", 0))])
            .await
            .unwrap()
    }

    fn event(body: &'static str) -> NewEvent {
        NewEvent {
            route: "r".into(),
            headers: HeaderMap::new(),
            query: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn outcome(next: NextState) -> AttemptOutcome {
        AttemptOutcome {
            attempt: 1,
            started_at: now_ms(),
            duration: Duration::from_millis(3),
            status: Some(200),
            error: None,
            next,
        }
    }

    #[tokio::test]
    async fn delivered_events_are_pruned_after_retention_and_dead_letters_never() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path()).await;
        let mut ids = Vec::new();
        for body in ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"] {
            match spool.append(event(body), None).await.unwrap() {
                Appended::Spooled(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(spool.pending("r"), 3);
        spool
            .record("r", &ids[0], outcome(NextState::Delivered))
            .await
            .unwrap();
        spool
            .record("r", &ids[1], outcome(NextState::Dead("max_attempts")))
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
        assert_eq!(dead.summary.state, DEAD);
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
            let due = spool.due("r", 10, Vec::new()).await.unwrap();
            spool
                .record("r", &due[0].id, outcome(NextState::Dead("max_age")))
                .await
                .unwrap();
        }
        let spool = spool(dir.path()).await;
        assert_eq!(spool.pending("r"), 1);
        let dead = spool
            .list(Some("r".into()), Some(DEAD.into()), 10)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].last_error.as_deref().unwrap().contains("max_age"));
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
