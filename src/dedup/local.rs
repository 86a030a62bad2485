//! The embedded dedup store: the `dedup_claims` table of the embedded store
//! (`crate::store`, where the schema is documented).
//!
//! Every claim is one job in the store's group transaction, so it is atomic
//! in this process and against any other process opening the same file. A
//! single gateway owns a data directory, so in-flight claims left by a
//! previous run (a crash) are cleared on open. Expired rows are pruned in
//! small batches by [`LocalStore::prune_expired`], which the server calls
//! periodically.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Claim, ClaimToken, DedupStore, EventKey, StoreError};
use crate::store::{now_ms, Db};

const STATE_IN_FLIGHT: i64 = 0;
const STATE_COMMITTED: i64 = 1;
const PRUNE_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct LocalStore {
    db: Db,
}

impl LocalStore {
    /// Uses the dedup table of `db`, first clearing claims a previous run
    /// left in flight.
    pub async fn new(db: Db) -> Result<LocalStore, StoreError> {
        db.write(|tx| {
            tx.prepare_cached("DELETE FROM dedup_claims WHERE state = ?1")?
                .execute([STATE_IN_FLIGHT])
        })
        .await
        .map_err(store)?;
        Ok(LocalStore { db })
    }

    /// Opens its own store in `data_dir` (fsync on): for tests and tools.
    pub async fn open(data_dir: &Path) -> Result<LocalStore, StoreError> {
        let db = Db::open(data_dir, true, Box::new(|_, _| {})).map_err(store)?;
        LocalStore::new(db).await
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Deletes expired rows, a batch at a time so requests are never blocked
    /// for long. Returns how many were deleted.
    pub async fn prune_expired(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let now = now_ms();
            let deleted = self
                .db
                .write(move |tx| {
                    tx.prepare_cached(
                        "DELETE FROM dedup_claims WHERE key IN
                           (SELECT key FROM dedup_claims WHERE expires_at <= ?1 LIMIT ?2)",
                    )?
                    .execute(params![now, PRUNE_BATCH])
                })
                .await
                .map_err(store)?;
            total += deleted;
            if (deleted as i64) < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }
}

/// Claims `key` inside `tx`; shared by the sync path and the async
/// claim-and-spool transaction. `lease` is how long the claim may stay in
/// flight; `committed_ttl` set means the claim is committed at once (the
/// caller spools the event in the same transaction).
pub(crate) fn claim_in(
    tx: &Transaction<'_>,
    route: &str,
    key: &EventKey,
    token: ClaimToken,
    lease: Duration,
    committed_ttl: Option<Duration>,
) -> rusqlite::Result<Claim> {
    let now = now_ms();
    let existing: Option<(i64, i64)> = tx
        .query_row(
            "SELECT state, expires_at FROM dedup_claims WHERE key = ?1",
            [&key.0[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match existing {
        Some((STATE_COMMITTED, expires)) if expires > now => Claim::Duplicate,
        Some((_, expires)) if expires > now => Claim::InFlight,
        _ => {
            let (state, until) = match committed_ttl {
                Some(ttl) => (STATE_COMMITTED, now + ttl.as_millis() as i64),
                None => (STATE_IN_FLIGHT, now + lease.as_millis() as i64),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dedup_claims (key, route, state, token, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![&key.0[..], route, state, token.0 as i64, until])?;
            Claim::New(token)
        }
    })
}

impl DedupStore for LocalStore {
    async fn claim(
        &self,
        route: &str,
        key: &EventKey,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let (key, route, token) = (*key, route.to_string(), ClaimToken::random());
        self.db
            .write(move |tx| claim_in(tx, &route, &key, token, lease, None))
            .await
            .map_err(store)
    }

    async fn commit(
        &self,
        route: &str,
        key: &EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, route) = (*key, route.to_string());
        let ttl = ttl.as_millis() as i64;
        self.db
            .write(move |tx| {
                let now = now_ms();
                let holder: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT token, expires_at FROM dedup_claims WHERE key = ?1",
                        [&key.0[..]],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                // Ours, or nobody's (our lease ran out and nobody took over):
                // record the event. Another live claim is left alone.
                let ours_or_free = match holder {
                    None => true,
                    Some((t, _)) if t == token.0 as i64 => true,
                    Some((_, expires)) => expires <= now,
                };
                if ours_or_free {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO dedup_claims (key, route, state, token, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        &key.0[..],
                        route,
                        STATE_COMMITTED,
                        token.0 as i64,
                        now + ttl
                    ])?;
                }
                Ok(())
            })
            .await
            .map_err(store)
    }

    async fn release(
        &self,
        _route: &str,
        key: &EventKey,
        token: ClaimToken,
    ) -> Result<(), StoreError> {
        let key = *key;
        self.db
            .write(move |tx| {
                tx.prepare_cached(
                    "DELETE FROM dedup_claims WHERE key = ?1 AND token = ?2 AND state = ?3",
                )?
                .execute(params![&key.0[..], token.0 as i64, STATE_IN_FLIGHT])
                .map(|_| ())
            })
            .await
            .map_err(store)
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.db
            .read(|c| c.query_row("SELECT count(*) FROM dedup_claims WHERE 0", [], |_| Ok(())))
            .await
            .map_err(store)
    }
}

fn store(e: crate::store::StoreError) -> StoreError {
    StoreError(e.0)
}
