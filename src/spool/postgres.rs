//! The spool in PostgreSQL (`store.backend: postgres`): the `deliveries`
//! and `attempts` tables of `crate::store::postgres` (where the schema is
//! documented), shared by every replica on the database.
//!
//! Unlike the SQLite store, leases live in the rows, so a replica can take
//! over the deliveries of one that died:
//! - [`SpoolStore::claim_due`] picks due rows with `FOR UPDATE SKIP LOCKED`
//!   (two replicas claiming at once get different rows, neither waits) and
//!   stamps each with a fresh token from the `lease_tokens` sequence and a
//!   `lease_until`, in one statement. A row whose `lease_until` has passed
//!   is due again: its holder died or hung.
//! - [`SpoolStore::record`] applies only where the row still carries the
//!   holder's token, is pending and has `attempt - 1` attempts: the
//!   attempt row and the next state are one statement, and the token is
//!   cleared, so a lease records at most once and an old lease never
//!   records over a later claim or a replayed dead letter. Records are
//!   grouped into one commit (`crate::store::postgres::records`).
//! - Due times and lease expiries are compared with the database's clock
//!   (`now_ms()`), never a replica's.
//! - Retention pruning runs on one replica at a time (a transaction-level
//!   advisory lock; the others skip their turn).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_postgres::Row;

use super::{
    decode_headers, encode_headers, Appended, AttemptOutcome, AttemptRecord, DeliveryDetail,
    DeliveryState, DeliverySummary, Due, Lease, ListFilter, LocalClaim, NewEvent, NextState,
    Recorded, Replay, SpoolCounts, SpoolStore, StoreFuture,
};
use crate::dedup::ClaimToken;
use crate::store::postgres::{locks, records::RecordJob, writer::AppendJob, PgStore};
use crate::store::StoreError;

/// Rows deleted per transaction when pruning, so no transaction is long.
const PRUNE_BATCH: i64 = 1000;

/// FIFO per ordering key: a delivery whose key has an earlier event's
/// delivery pending at the same destination (leased, locked by another
/// replica's claim, or waiting for its retry) is not due. Plain reads see
/// locked rows, so two replicas claiming at once cannot both pass a key's
/// head and its successor.
const IN_ORDER: &str = "(d.order_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries e
        WHERE e.route = d.route AND e.destination = d.destination
          AND e.order_key = d.order_key AND e.state = 'pending'
          AND (e.received_at, e.event_id) < (d.received_at, d.event_id)))";

fn claim_due_sql() -> String {
    format!(
        "WITH due AS (
    SELECT id FROM deliveries d
    WHERE state = 'pending' AND route = $1 AND destination = $4
      AND next_attempt_at <= now_ms()
      AND (lease_until IS NULL OR lease_until <= now_ms())
      AND {IN_ORDER}
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET lease_token = nextval('lease_tokens'), lease_until = now_ms() + $3
FROM due WHERE d.id = due.id
RETURNING d.id, d.received_at, d.attempts, d.headers, d.query, d.body, d.lease_token, d.next_attempt_at, d.event_id"
    )
}

const RENEW: &str = "
UPDATE deliveries SET lease_until = now_ms() + $3
WHERE id = $1 AND lease_token = $2 AND state = 'pending'";

/// A leased row is claimable again once its lease ends; one held back by
/// its key's order, once that key's earlier delivery is recorded.
fn next_due_sql() -> String {
    format!(
        "SELECT min(greatest(next_attempt_at, coalesce(lease_until, next_attempt_at)))
FROM deliveries d WHERE state = 'pending' AND route = $1 AND destination = $2 AND {IN_ORDER}"
    )
}

const SUMMARY_COLUMNS: &str =
    "id, route, state, received_at, attempts, next_attempt_at, last_status, last_error, event_id, destination, dedup_key";

/// The spool's tables in a [`PgStore`].
pub struct PostgresSpoolStore {
    db: PgStore,
}

impl PostgresSpoolStore {
    pub fn new(db: PgStore) -> PostgresSpoolStore {
        PostgresSpoolStore { db }
    }

    /// The store underneath (for tests that inject faults into it).
    pub fn db(&self) -> &PgStore {
        &self.db
    }
}

fn state_of(text: &str) -> Result<DeliveryState, StoreError> {
    text.parse()
        .map_err(|e: super::UnknownState| StoreError::PostgresSetup {
            detail: e.to_string(),
        })
}

fn summary(r: &Row) -> Result<DeliverySummary, StoreError> {
    let state = state_of(r.try_get(2)?)?;
    Ok(DeliverySummary {
        id: r.try_get(0)?,
        event_id: r.try_get(8)?,
        route: r.try_get(1)?,
        destination: r.try_get(9)?,
        dedup_key: r.try_get(10)?,
        next_attempt_at: if state == DeliveryState::Pending {
            r.try_get(5)?
        } else {
            None
        },
        state,
        received_at: r.try_get(3)?,
        attempts: r.try_get::<_, i32>(4)? as u32,
        last_status: r.try_get::<_, Option<i32>>(6)?.map(|s| s as u16),
        last_error: r.try_get(7)?,
    })
}

impl SpoolStore for PostgresSpoolStore {
    fn append(&self, event: NewEvent, claim: Option<LocalClaim>) -> StoreFuture<'_, Appended> {
        let (reply, answer) = oneshot::channel();
        let id = uuid::Uuid::now_v7().to_string();
        let deliveries: Vec<serde_json::Value> = event
            .deliveries
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": super::delivery_id(&id, &d.destination),
                    "destination": d.destination,
                    "order_key": d.order_key,
                })
            })
            .collect();
        self.db.writer().append(AppendJob {
            id,
            deliveries: serde_json::Value::Array(deliveries).to_string(),
            dedup_key: event.dedup_key,
            headers: encode_headers(&event.headers),
            route: event.route,
            query: event.query,
            body: event.body,
            claim: claim.map(|c| {
                let token = ClaimToken::random().0 as i64;
                (c.key.0, token, c.ttl.as_millis() as i64)
            }),
            reply,
        });
        Box::pin(async move { answer.await.map_err(|_| StoreError::NotCommitted)? })
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
            let mut client = self.db.client().await?;
            let stmt = client.prepare_cached(&claim_due_sql()).await?;
            let lease_ms = lease.as_millis() as i64;
            // A lease lost with the server only lets the delivery be taken
            // again (at-least-once): not worth waiting for the WAL flush,
            // which would bound how fast the workers can take deliveries.
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let rows = tx
                .query(&stmt, &[&route, &(limit as i64), &lease_ms, &destination])
                .await?;
            tx.commit().await?;
            let mut due = Vec::with_capacity(rows.len());
            for r in rows {
                let next_at: i64 = r.try_get(7)?;
                let id: String = r.try_get(0)?;
                due.push((
                    (next_at, id.clone()),
                    Due {
                        lease: Lease {
                            id,
                            route: route.clone(),
                            destination: destination.clone(),
                            attempt: r.try_get::<_, i32>(2)? as u32 + 1,
                            token: r.try_get::<_, i64>(6)? as u64,
                        },
                        event_id: r.try_get(8)?,
                        received_at: r.try_get(1)?,
                        headers: decode_headers(r.try_get(3)?),
                        query: r.try_get(4)?,
                        body: Bytes::from(r.try_get::<_, Vec<u8>>(5)?),
                    },
                ));
            }
            // UPDATE … RETURNING keeps no order: earliest due first.
            due.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(due.into_iter().map(|(_, d)| d).collect())
        })
    }

    fn renew(&self, lease: &Lease, lease_for: Duration) -> StoreFuture<'_, bool> {
        let (id, token) = (lease.id.clone(), lease.token as i64);
        Box::pin(async move {
            let client = self.db.client().await?;
            let stmt = client.prepare_cached(RENEW).await?;
            let ms = lease_for.as_millis() as i64;
            Ok(client.execute(&stmt, &[&id, &token, &ms]).await? == 1)
        })
    }

    fn next_due_at(&self, route: &str, destination: &str) -> StoreFuture<'_, Option<i64>> {
        let (route, destination) = (route.to_string(), destination.to_string());
        Box::pin(async move {
            let client = self.db.client().await?;
            let stmt = client.prepare_cached(&next_due_sql()).await?;
            Ok(client
                .query_one(&stmt, &[&route, &destination])
                .await?
                .try_get(0)?)
        })
    }

    fn record(&self, lease: &Lease, outcome: AttemptOutcome) -> StoreFuture<'_, Recorded> {
        let (reply, answer) = oneshot::channel();
        self.db.records().record(RecordJob {
            id: lease.id.clone(),
            token: lease.token as i64,
            state: outcome.state().as_str(),
            attempt: lease.attempt as i32,
            next_at: match outcome.next {
                NextState::RetryAt(at) => Some(at),
                NextState::Delivered | NextState::Dead(_) => None,
            },
            status: outcome.status.map(i32::from),
            last_error: outcome.last_error(),
            started_at: outcome.started_at,
            duration_ms: outcome.duration.as_millis() as i64,
            error: outcome.error,
            reply,
        });
        Box::pin(async move { answer.await.map_err(|_| StoreError::NotCommitted)? })
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Vec<DeliverySummary>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM deliveries
                 WHERE ($1::text IS NULL OR route = $1) AND ($2::text IS NULL OR state = $2)
                   AND ($4::text IS NULL OR destination = $4)
                 ORDER BY received_at DESC, id DESC LIMIT $3"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let rows = client
                .query(
                    &stmt,
                    &[
                        &filter.route,
                        &filter.state.map(|s| s.as_str()),
                        &(filter.limit as i64),
                        &filter.destination,
                    ],
                )
                .await?;
            rows.iter().map(summary).collect()
        })
    }

    fn get(&self, id: &str) -> StoreFuture<'_, Option<DeliveryDetail>> {
        let id = id.to_string();
        Box::pin(async move {
            let client = self.db.client().await?;
            let sql =
                format!("SELECT {SUMMARY_COLUMNS}, headers, body FROM deliveries WHERE id = $1");
            let Some(row) = client.query_opt(&sql, &[&id]).await? else {
                return Ok(None);
            };
            let attempts = client
                .query(
                    "SELECT attempt, started_at, duration_ms, status, error FROM attempts
                     WHERE delivery_id = $1 ORDER BY attempt",
                    &[&id],
                )
                .await?;
            let attempt_history = attempts
                .iter()
                .map(|r| {
                    Ok(AttemptRecord {
                        attempt: r.try_get::<_, i32>(0)? as u32,
                        started_at: r.try_get(1)?,
                        duration_ms: r.try_get(2)?,
                        status: r.try_get::<_, Option<i32>>(3)?.map(|s| s as u16),
                        error: r.try_get(4)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            let headers = decode_headers(row.try_get(11)?)
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body: Vec<u8> = row.try_get(12)?;
            Ok(Some(DeliveryDetail {
                summary: summary(&row)?,
                attempt_history,
                headers,
                body_bytes: body.len(),
                body: Bytes::from(body),
            }))
        })
    }

    fn replay(&self, which: Replay) -> StoreFuture<'_, Vec<(String, i64)>> {
        let (id, route, destination) = which.filters();
        Box::pin(async move {
            let client = self.db.client().await?;
            let rows = client
                .query(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now_ms(),
                         finished_at = NULL, lease_token = NULL, lease_until = NULL
                     WHERE state = 'dead' AND ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR route = $2)
                       AND ($3::text IS NULL OR destination = $3)
                     RETURNING route",
                    &[&id, &route, &destination],
                )
                .await?;
            let mut per_route: HashMap<String, i64> = HashMap::new();
            for r in rows {
                *per_route.entry(r.try_get(0)?).or_default() += 1;
            }
            Ok(per_route.into_iter().collect())
        })
    }

    fn drop_dead(&self, id: &str) -> StoreFuture<'_, Option<String>> {
        let id = id.to_string();
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await?;
            let route = tx
                .query_opt(
                    "DELETE FROM deliveries WHERE id = $1 AND state = 'dead' RETURNING route",
                    &[&id],
                )
                .await?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?;
            if route.is_some() {
                tx.execute("DELETE FROM attempts WHERE delivery_id = $1", &[&id])
                    .await?;
            }
            tx.commit().await?;
            Ok(route)
        })
    }

    fn prune_delivered(&self, finished_before: i64) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut total = 0;
            loop {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                if !self.db.try_lock(&tx, locks::PRUNE_DELIVERED).await? {
                    // Another replica is pruning.
                    return Ok(total);
                }
                let deleted: i64 = tx
                    .query_one(
                        "WITH gone AS (
                             DELETE FROM deliveries WHERE id IN (
                                 SELECT id FROM deliveries WHERE state = 'delivered' AND finished_at <= $1
                                 LIMIT $2 FOR UPDATE SKIP LOCKED)
                             RETURNING id),
                         their_attempts AS (
                             DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone))
                         SELECT count(*) FROM gone",
                        &[&finished_before, &PRUNE_BATCH],
                    )
                    .await?
                    .try_get(0)?;
                tx.commit().await?;
                total += deleted as usize;
                if deleted < PRUNE_BATCH {
                    return Ok(total);
                }
            }
        })
    }

    fn counts(&self, route: &str) -> StoreFuture<'_, SpoolCounts> {
        let route = route.to_string();
        Box::pin(async move {
            let client = self.db.client().await?;
            let row = client
                .query_one(
                    // Each count from its partial index, not a scan of
                    // every delivered row kept for retention.
                    "SELECT (SELECT count(*) FROM deliveries WHERE route = $1 AND state = 'pending'),
                            (SELECT count(*) FROM deliveries WHERE route = $1 AND state = 'dead')",
                    &[&route],
                )
                .await?;
            Ok(SpoolCounts {
                pending: row.try_get(0)?,
                dead: row.try_get(1)?,
            })
        })
    }

    fn oldest_pending(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let rows = client
                // A probe of the pending-age index per route (a loose
                // index scan), not a scan of every pending row: it runs
                // at every metrics scrape.
                .query(
                    "WITH RECURSIVE routes AS (
                         (SELECT route FROM deliveries WHERE state = 'pending' ORDER BY route LIMIT 1)
                         UNION ALL
                         SELECT (SELECT route FROM deliveries
                                 WHERE state = 'pending' AND route > r.route ORDER BY route LIMIT 1)
                         FROM routes r WHERE r.route IS NOT NULL
                     )
                     SELECT route, (SELECT min(received_at) FROM deliveries
                                    WHERE state = 'pending' AND route = routes.route)
                     FROM routes WHERE route IS NOT NULL",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn check(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.db.client().await?;
            client.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
    }
}
