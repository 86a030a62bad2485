//! The spool in the embedded SQLite store: the `deliveries` and `attempts`
//! tables of `crate::store` (where the schema is documented), written
//! through its group commit.
//!
//! One process owns a data directory, so leases live in memory: they are
//! taken and checked under one lock, and a crash ends them all (every
//! delivery that was in flight is due again after the restart). Claims are
//! serialised, so a delivery read as due cannot be leased by another claim
//! between the read and the lease; a lease ends only after its attempt's
//! record committed, so the next claim reads the recorded state. An expired
//! lease is remembered until another claim takes the delivery over, so a
//! slow holder nobody replaced may still record, and a holder that was
//! replaced (or whose delivery was recorded since) may not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension, Row};

use super::{
    decode_headers, encode_headers, Appended, AttemptOutcome, AttemptRecord, DeliveryDetail,
    DeliveryState, DeliverySummary, Due, Lease, ListFilter, LocalClaim, NewEvent, NextState,
    Recorded, Replay, SpoolCounts, SpoolStore, StoreFuture,
};
use crate::dedup::local::claim_in;
use crate::dedup::{Claim, ClaimToken};
use crate::store::{now_ms, Db, Durability};

/// FIFO per ordering key: a delivery whose key has an earlier event's
/// delivery pending at the same destination (leased, or waiting for its
/// retry) is not due.
const IN_ORDER: &str = "(d.order_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.route = d.route AND e.destination = d.destination
      AND e.order_key = d.order_key AND e.state = 'pending'
      AND (e.received_at < d.received_at
           OR (e.received_at = d.received_at AND e.event_id < d.event_id))))";

/// Rows deleted per write when pruning, so requests never wait long.
const PRUNE_BATCH: usize = 1000;

/// The spool's tables in a [`Db`].
pub struct SqliteSpoolStore {
    db: Db,
    leases: Leases,
}

impl SqliteSpoolStore {
    pub fn new(db: Db) -> SqliteSpoolStore {
        SqliteSpoolStore {
            db,
            leases: Leases::default(),
        }
    }

    /// The store underneath (for tests that inject faults into it).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The leases this process holds.
#[derive(Default)]
struct Leases {
    /// Held while a claim reads due rows and leases them.
    claiming: tokio::sync::Mutex<()>,
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    route: String,
    token: u64,
    /// Unix ms.
    until: i64,
}

impl Leases {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ids of `route`'s unexpired leases and the earliest of their
    /// expiries. Expired ones stay until taken over or recorded.
    fn live(&self, route: &str, now: i64) -> (Vec<String>, Option<i64>) {
        let held = self.held();
        let mine = held
            .iter()
            .filter(|(_, h)| h.route == route && h.until > now);
        let expiry = mine.clone().map(|(_, h)| h.until).min();
        (mine.map(|(id, _)| id.clone()).collect(), expiry)
    }

    /// Leases each of `due` to the caller until `until`.
    fn grant(&self, due: &mut [Due], until: i64) {
        let mut held = self.held();
        for event in due {
            event.lease.token = fastrand::u64(1..);
            let lease = Held {
                route: event.lease.route.clone(),
                token: event.lease.token,
                until,
            };
            held.insert(event.lease.id.clone(), lease);
        }
    }

    /// Whether `lease` is the latest one of its delivery and not ended.
    fn holds(&self, lease: &Lease) -> bool {
        self.held()
            .get(&lease.id)
            .is_some_and(|h| h.token == lease.token)
    }

    fn renew(&self, lease: &Lease, until: i64) -> bool {
        match self.held().get_mut(&lease.id) {
            Some(h) if h.token == lease.token => {
                h.until = until;
                true
            }
            _ => false,
        }
    }

    fn end(&self, lease: &Lease) {
        let mut held = self.held();
        if held.get(&lease.id).is_some_and(|h| h.token == lease.token) {
            held.remove(&lease.id);
        }
    }
}

impl ToSql for DeliveryState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DeliveryState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

fn as_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl SpoolStore for SqliteSpoolStore {
    fn append(&self, event: NewEvent, claim: Option<LocalClaim>) -> StoreFuture<'_, Appended> {
        let event_id = uuid::Uuid::now_v7().to_string();
        let headers = encode_headers(&event.headers);
        let keys = self.db.dedup_keys().clone();
        Box::pin(self.db.write(move |tx| {
            if let Some(claim) = claim {
                // Lease unused: a spooled claim is committed at once.
                let token = ClaimToken::random();
                match claim_in(tx, &keys, &event.route, &claim.key, token, claim.ttl, Some(claim.ttl))? {
                    Claim::New(_) => {}
                    Claim::Duplicate => return Ok(Appended::Duplicate),
                    Claim::InFlight => return Ok(Appended::InFlight),
                }
            }
            let now = now_ms();
            let mut insert = tx.prepare_cached("INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body,
                     destination, event_id, order_key, dedup_key)
                 VALUES (?1, ?2, 'pending', ?3, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")?;
            for delivery in &event.deliveries {
                insert.execute(params![
                    super::delivery_id(&event_id, &delivery.destination),
                    event.route,
                    now,
                    event.query,
                    headers,
                    &event.body[..],
                    delivery.destination,
                    event_id,
                    delivery.order_key,
                    event.dedup_key
                ])?;
            }
            Ok(Appended::Spooled(event_id))
        }))
    }

    fn claim_due(
        &self,
        route: &str,
        destination: &str,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<Due>> {
        let (route, destination) = (route.to_string(), destination.to_string());
        Box::pin(async move {
            let _one_claim_at_a_time = self.leases.claiming.lock().await;
            let now = now_ms();
            let skip = as_json(&self.leases.live(&route, now).0);
            let mut due = self
                .db
                .read(move |c| {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT id, received_at, attempts, headers, query, body, event_id FROM deliveries d
                         WHERE state = 'pending' AND route = ?1 AND destination = ?5 AND next_attempt_at <= ?2
                           AND id NOT IN (SELECT value FROM json_each(?4)) AND {IN_ORDER}
                         ORDER BY next_attempt_at LIMIT ?3"
                    ))?;
                    let rows = stmt.query_map(params![route, now, limit as i64, skip, destination], |r| {
                        Ok(Due {
                            lease: Lease {
                                id: r.get(0)?,
                                route: route.clone(),
                                destination: destination.clone(),
                                attempt: r.get::<_, u32>(2)? + 1,
                                token: 0,
                            },
                            event_id: r.get(6)?,
                            received_at: r.get(1)?,
                            headers: decode_headers(&r.get::<_, String>(3)?),
                            query: r.get(4)?,
                            body: Bytes::from(r.get::<_, Vec<u8>>(5)?),
                        })
                    })?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()
                })
                .await?;
            self.leases.grant(&mut due, now + lease.as_millis() as i64);
            Ok(due)
        })
    }

    fn renew(&self, lease: &Lease, lease_for: Duration) -> StoreFuture<'_, bool> {
        let renewed = self
            .leases
            .renew(lease, now_ms() + lease_for.as_millis() as i64);
        Box::pin(async move { Ok(renewed) })
    }

    fn next_due_at(&self, route: &str, destination: &str) -> StoreFuture<'_, Option<i64>> {
        let (route, destination) = (route.to_string(), destination.to_string());
        Box::pin(async move {
            let (leased, expiry) = self.leases.live(&route, now_ms());
            let skip = as_json(&leased);
            let due: Option<i64> = self
                .db
                .read(move |c| {
                    c.prepare_cached(&format!(
                        "SELECT next_attempt_at FROM deliveries d
                         WHERE state = 'pending' AND route = ?1 AND destination = ?3
                           AND id NOT IN (SELECT value FROM json_each(?2)) AND {IN_ORDER}
                         ORDER BY next_attempt_at LIMIT 1"
                    ))?
                    .query_row(params![route, skip, destination], |r| r.get(0))
                    .optional()
                })
                .await?;
            Ok(match (due, expiry) {
                (Some(due), Some(expiry)) => Some(due.min(expiry)),
                (due, expiry) => due.or(expiry),
            })
        })
    }

    fn record(&self, lease: &Lease, outcome: AttemptOutcome) -> StoreFuture<'_, Recorded> {
        let lease = lease.clone();
        Box::pin(async move {
            if !self.leases.holds(&lease) {
                // Taken over by a later claim, or recorded already.
                return Ok(Recorded::Stale);
            }
            let (id, attempt) = (lease.id.clone(), lease.attempt);
            let now = now_ms();
            let state = outcome.state();
            let next_at = match outcome.next {
                NextState::RetryAt(at) => Some(at),
                NextState::Delivered | NextState::Dead(_) => None,
            };
            let finished = (state != DeliveryState::Pending).then_some(now);
            let last_error = outcome.last_error();
            let recorded = self
                .db
                // Relaxed: an outcome lost with the machine means the event is
                // attempted again (at-least-once), never lost.
                .write_with(Durability::Relaxed, move |tx| {
                    // Only from the state the lease was taken in: at most
                    // once, even if the lease was taken over meanwhile.
                    let changed = tx.prepare_cached("UPDATE deliveries SET state = ?2, attempts = ?3, next_attempt_at = coalesce(?4, next_attempt_at),
                           last_status = ?5, last_error = ?6, finished_at = ?7
                         WHERE id = ?1 AND state = 'pending' AND attempts = ?3 - 1")?.execute(
                        params![id, state, attempt, next_at, outcome.status, last_error, finished],
                    )?;
                    if changed == 0 {
                        return Ok(Recorded::Stale);
                    }
                    // REPLACE: a replayed dead letter counts its attempts afresh.
                    tx.prepare_cached("INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, duration_ms, status, error)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
                        params![id, attempt, outcome.started_at, outcome.duration.as_millis() as i64, outcome.status, outcome.error],
                    )?;
                    Ok(Recorded::Written)
                })
                .await?;
            self.leases.end(&lease);
            Ok(recorded)
        })
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Vec<DeliverySummary>> {
        Box::pin(self.db.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SUMMARY} FROM deliveries
                 WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR state = ?2) AND (?4 IS NULL OR destination = ?4)
                 ORDER BY received_at DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.route,
                    filter.state,
                    filter.limit as i64,
                    filter.destination
                ],
                summary,
            )?;
            rows.collect()
        }))
    }

    fn get(&self, id: &str) -> StoreFuture<'_, Option<DeliveryDetail>> {
        let id = id.to_string();
        Box::pin(self.db.read(move |c| detail(c, &id)))
    }

    fn replay(&self, which: Replay) -> StoreFuture<'_, Vec<(String, i64)>> {
        let now = now_ms();
        let (id, route, destination) = which.filters();
        Box::pin(self.db.write(move |tx| {
            let mut stmt = tx.prepare(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?3, finished_at = NULL
                 WHERE state = 'dead' AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR route = ?2)
                   AND (?4 IS NULL OR destination = ?4)
                 RETURNING route",
            )?;
            let routes =
                stmt.query_map(params![id, route, now, destination], |r| r.get::<_, String>(0))?;
            let mut per_route: HashMap<String, i64> = HashMap::new();
            for r in routes {
                *per_route.entry(r?).or_default() += 1;
            }
            Ok(per_route.into_iter().collect())
        }))
    }

    fn drop_dead(&self, id: &str) -> StoreFuture<'_, Option<String>> {
        let id = id.to_string();
        Box::pin(self.db.write(move |tx| {
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
        }))
    }

    fn prune_delivered(&self, finished_before: i64) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut total = 0;
            loop {
                let deleted = self
                    .db
                    .write(move |tx| {
                        tx.prepare_cached("DELETE FROM attempts WHERE delivery_id IN
                               (SELECT id FROM deliveries WHERE state = 'delivered' AND finished_at <= ?1 LIMIT ?2)")?.execute(
                            params![finished_before, PRUNE_BATCH as i64],
                        )?;
                        tx.prepare_cached("DELETE FROM deliveries WHERE id IN
                               (SELECT id FROM deliveries WHERE state = 'delivered' AND finished_at <= ?1 LIMIT ?2)")?.execute(
                            params![finished_before, PRUNE_BATCH as i64],
                        )
                    })
                    .await?;
                total += deleted;
                if deleted < PRUNE_BATCH {
                    return Ok(total);
                }
            }
        })
    }

    fn counts(&self, route: &str) -> StoreFuture<'_, SpoolCounts> {
        let route = route.to_string();
        Box::pin(self.db.read(move |c| {
            c.query_row(
                "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
                 FROM deliveries WHERE route = ?1",
                [route],
                |r| {
                    Ok(SpoolCounts {
                        pending: r.get(0)?,
                        dead: r.get(1)?,
                    })
                },
            )
        }))
    }

    fn oldest_pending(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(self.db.read(|c| {
            c.prepare_cached(
                "SELECT route, min(received_at) FROM deliveries WHERE state = 'pending' GROUP BY route",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        }))
    }

    fn check(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.db.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))))
    }
}

/// One delivery with its attempts and headers.
fn detail(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<DeliveryDetail>> {
    let Some((summary, headers, body)) = c
        .query_row(
            &format!("SELECT {SUMMARY}, headers, body FROM deliveries WHERE id = ?1"),
            [id],
            |r| {
                Ok((
                    summary(r)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, Vec<u8>>(12)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = c.prepare(
        "SELECT attempt, started_at, duration_ms, status, error FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    let attempt_history = stmt
        .query_map([id], |r| {
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
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Some(DeliveryDetail {
        summary,
        attempt_history,
        headers,
        body_bytes: body.len(),
        body: Bytes::from(body),
    }))
}

/// The columns [`summary`] reads, in its order.
const SUMMARY: &str =
    "id, route, state, received_at, attempts, next_attempt_at, last_status, last_error,
     coalesce(event_id, id), destination, dedup_key";

fn summary(r: &Row<'_>) -> rusqlite::Result<DeliverySummary> {
    let state: DeliveryState = r.get(2)?;
    Ok(DeliverySummary {
        id: r.get(0)?,
        event_id: r.get(8)?,
        route: r.get(1)?,
        destination: r.get(9)?,
        dedup_key: r.get(10)?,
        next_attempt_at: if state == DeliveryState::Pending {
            r.get(5)?
        } else {
            None
        },
        state,
        received_at: r.get(3)?,
        attempts: r.get(4)?,
        last_status: r.get(6)?,
        last_error: r.get(7)?,
    })
}
