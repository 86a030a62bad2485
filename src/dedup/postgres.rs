//! Dedup in PostgreSQL (`dedup.backend: store` with `store.backend:
//! postgres`): the `dedup_claims` table of `crate::store::postgres`, shared
//! by every replica on the database, and the same table the async spool
//! claims in (in the append's own transaction).
//!
//! Unlike the SQLite dedup store, in-flight claims are rows too (`state`
//! 0, expiring with their lease): a copy of an event that reaches another
//! replica while the first is being forwarded is answered "in flight".
//! Each call is one statement, so one round trip and atomic:
//! - claim: insert, or take over a row whose lease or window has passed;
//!   otherwise the row is left as it is and its state answers;
//! - commit: only the caller's own claim, or a key nobody holds any more
//!   (the caller's lease ran out and nobody took over);
//! - release: only the caller's own in-flight claim.
//!
//! Times are the database's clock, as in the spool.

use std::sync::Arc;
use std::time::Duration;

use super::{Claim, ClaimToken, DedupFuture, DedupStore, EventKey, SharedDedupStore, StoreError};
use crate::health::Healthcheck;
use crate::store::postgres::{locks, PgStore};

const STATE_IN_FLIGHT: i16 = 0;

/// Parameters: key, route, token, lease (ms). Answers the row's state and
/// token after the statement: our token means the claim is ours.
const CLAIM: &str = "
WITH clock AS (SELECT now_ms() AS now)
INSERT INTO dedup_claims AS c (key, route, state, token, expires_at)
SELECT $1, $2, 0, $3, now + $4 FROM clock
ON CONFLICT (key) DO UPDATE SET
    route = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.route ELSE c.route END,
    state = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.state ELSE c.state END,
    token = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.token ELSE c.token END,
    expires_at = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.expires_at ELSE c.expires_at END
RETURNING c.state, c.token";

/// Parameters: key, route, token, ttl (ms).
const COMMIT: &str = "
INSERT INTO dedup_claims AS c (key, route, state, token, expires_at)
VALUES ($1, $2, 1, $3, now_ms() + $4)
ON CONFLICT (key) DO UPDATE SET state = 1, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
WHERE c.token = EXCLUDED.token OR c.expires_at <= now_ms()";

const RELEASE: &str = "DELETE FROM dedup_claims WHERE key = $1 AND token = $2 AND state = 0";

/// Rows deleted per transaction when pruning.
const PRUNE_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct PostgresStore {
    db: PgStore,
}

impl PostgresStore {
    pub fn new(db: PgStore) -> PostgresStore {
        PostgresStore { db }
    }

    /// The store as the gateway holds it, with its readiness probe.
    pub fn build(db: PgStore) -> (SharedDedupStore, Healthcheck) {
        let store: SharedDedupStore = Arc::new(PostgresStore::new(db));
        let check = super::healthcheck("postgres_store", &store);
        (store, check)
    }

    /// Deletes claims whose lease or window has passed, a batch per
    /// transaction; one replica at a time (the others skip their turn).
    /// Returns how many were deleted.
    async fn prune(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let deleted = async {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                if !self.db.try_lock(&tx, locks::PRUNE_CLAIMS).await? {
                    return Ok::<_, crate::store::StoreError>(None);
                }
                let n = tx
                    .execute(
                        "DELETE FROM dedup_claims WHERE key IN (
                             SELECT key FROM dedup_claims WHERE expires_at <= now_ms()
                             LIMIT $1 FOR UPDATE SKIP LOCKED)",
                        &[&PRUNE_BATCH],
                    )
                    .await?;
                tx.commit().await?;
                Ok::<_, crate::store::StoreError>(Some(n as usize))
            }
            .await
            .map_err(store)?;
            match deleted {
                Some(n) => {
                    total += n;
                    if (n as i64) < PRUNE_BATCH {
                        return Ok(total);
                    }
                }
                None => return Ok(total),
            }
        }
    }
}

fn store(e: crate::store::StoreError) -> StoreError {
    StoreError::Local(e)
}

fn millis(d: Duration) -> i64 {
    d.as_millis().max(1) as i64
}

impl DedupStore for PostgresStore {
    fn claim<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        lease: Duration,
    ) -> DedupFuture<'a, Claim> {
        Box::pin(self.claim_now(route, key, lease))
    }

    fn commit<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(store)?;
            let stmt = client.prepare_cached(COMMIT).await.map_err(pg)?;
            client
                .execute(
                    &stmt,
                    &[&&key.0[..], &route, &(token.0 as i64), &millis(ttl)],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        _route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
    ) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(store)?;
            let stmt = client.prepare_cached(RELEASE).await.map_err(pg)?;
            client
                .execute(&stmt, &[&&key.0[..], &(token.0 as i64)])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn check(&self) -> DedupFuture<'_, ()> {
        Box::pin(async move {
            let client = self.db.client().await.map_err(store)?;
            client
                .query_one("SELECT count(*) FROM dedup_claims WHERE false", &[])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn prune_expired(&self) -> DedupFuture<'_, usize> {
        Box::pin(self.prune())
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    store(e.into())
}

impl PostgresStore {
    async fn claim_now(
        &self,
        route: &str,
        key: &EventKey,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let token = ClaimToken::random();
        let row = async {
            let client = self.db.client().await?;
            let stmt = client.prepare_cached(CLAIM).await?;
            let row = client
                .query_one(
                    &stmt,
                    &[&&key.0[..], &route, &(token.0 as i64), &millis(lease)],
                )
                .await?;
            Ok::<_, crate::store::StoreError>(row)
        }
        .await
        .map_err(store)?;
        let (state, holder): (i16, i64) = (row.get(0), row.get(1));
        Ok(if holder == token.0 as i64 {
            Claim::New(token)
        } else if state == STATE_IN_FLIGHT {
            Claim::InFlight
        } else {
            Claim::Duplicate
        })
    }
}
