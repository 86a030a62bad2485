//! The embedded dedup store: SQLite (WAL mode) in `data_dir/hookgate.db`.
//!
//! Schema (inspect with `sqlite3 data/hookgate.db`):
//!
//! ```sql
//! CREATE TABLE dedup_claims (
//!   key        BLOB PRIMARY KEY,   -- SHA-256 of route + key parts (EventKey)
//!   route      TEXT NOT NULL,
//!   state      INTEGER NOT NULL,   -- 0 in flight, 1 committed
//!   token      INTEGER NOT NULL,   -- the holder's ClaimToken
//!   expires_at INTEGER NOT NULL    -- unix milliseconds
//! ) WITHOUT ROWID;
//! ```
//!
//! One connection, used from blocking threads behind a mutex: every claim is
//! one `BEGIN IMMEDIATE` transaction, so it is atomic in this process and
//! against any other process opening the same file. A single gateway owns a
//! data directory, so in-flight claims left by a previous run (a crash) are
//! cleared on open. Expired rows are pruned in small batches by
//! [`LocalStore::prune_expired`], which the server calls periodically.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Claim, ClaimToken, DedupStore, EventKey, StoreError};

const STATE_IN_FLIGHT: i64 = 0;
const STATE_COMMITTED: i64 = 1;
const PRUNE_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct LocalStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<LocalStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError(format!(
                "cannot create data_dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("hookgate.db");
        let conn = Connection::open(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // WAL + NORMAL: a committed claim survives a process crash; the
        // last claims before a power loss may be forgotten (a duplicate is
        // then possible, never a lost event).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS dedup_claims (
                key BLOB PRIMARY KEY,
                route TEXT NOT NULL,
                state INTEGER NOT NULL,
                token INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS dedup_claims_expiry ON dedup_claims (expires_at);",
        )
        .map_err(sql)?;
        conn.execute(
            "DELETE FROM dedup_claims WHERE state = ?1",
            [STATE_IN_FLIGHT],
        )
        .map_err(sql)?;
        Ok(LocalStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn).map_err(sql)
        })
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
    }

    /// Deletes expired rows, a batch at a time so requests are never blocked
    /// for long. Returns how many were deleted.
    pub async fn prune_expired(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let now = now_ms();
            let deleted = self
                .with_conn(move |c| {
                    c.execute(
                        "DELETE FROM dedup_claims WHERE key IN
                           (SELECT key FROM dedup_claims WHERE expires_at <= ?1 LIMIT ?2)",
                        params![now, PRUNE_BATCH],
                    )
                })
                .await?;
            total += deleted;
            if (deleted as i64) < PRUNE_BATCH {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

impl DedupStore for LocalStore {
    async fn claim(
        &self,
        route: &str,
        key: &EventKey,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let (key, route, token) = (key.0, route.to_string(), ClaimToken::random());
        let lease = lease.as_millis() as i64;
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let existing: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT state, expires_at FROM dedup_claims WHERE key = ?1",
                    [&key[..]],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let claim =
                match existing {
                    Some((STATE_COMMITTED, expires)) if expires > now => Claim::Duplicate,
                    Some((_, expires)) if expires > now => Claim::InFlight,
                    _ => {
                        tx.execute(
                        "INSERT OR REPLACE INTO dedup_claims (key, route, state, token, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![&key[..], route, STATE_IN_FLIGHT, token.0 as i64, now + lease],
                    )?;
                        Claim::New(token)
                    }
                };
            tx.commit()?;
            Ok(claim)
        })
        .await
    }

    async fn commit(
        &self,
        route: &str,
        key: &EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, route) = (key.0, route.to_string());
        let ttl = ttl.as_millis() as i64;
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let holder: Option<(i64, i64, i64)> = tx
                .query_row(
                    "SELECT state, token, expires_at FROM dedup_claims WHERE key = ?1",
                    [&key[..]],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            // Ours, or nobody's (our lease ran out and nobody took over):
            // record the event. Another live claim is left alone.
            let ours_or_free = match holder {
                None => true,
                Some((_, t, _)) if t == token.0 as i64 => true,
                Some((_, _, expires)) => expires <= now,
            };
            if ours_or_free {
                tx.execute(
                    "INSERT OR REPLACE INTO dedup_claims (key, route, state, token, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![&key[..], route, STATE_COMMITTED, token.0 as i64, now + ttl],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn release(
        &self,
        _route: &str,
        key: &EventKey,
        token: ClaimToken,
    ) -> Result<(), StoreError> {
        let key = key.0;
        self.with_conn(move |c| {
            c.execute(
                "DELETE FROM dedup_claims WHERE key = ?1 AND token = ?2 AND state = ?3",
                params![&key[..], token.0 as i64, STATE_IN_FLIGHT],
            )
            .map(|_| ())
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.with_conn(|c| c.query_row("SELECT count(*) FROM dedup_claims WHERE 0", [], |_| Ok(())))
            .await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError(format!("sqlite: {e}"))
}
