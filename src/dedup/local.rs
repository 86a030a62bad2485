//! The embedded dedup store: the `dedup_claims` table of the embedded store
//! (`crate::store`, where the schema is documented).
//!
//! A single gateway owns a data directory. Sync routes keep in-flight claims
//! in memory (a claim never outlives its process) and write only committed
//! events, one group-commit job each; the async path claims and spools in
//! one transaction with [`claim_in`]. In-flight rows an older version left
//! on disk are cleared on open. Expired rows are pruned in small batches by
//! [`LocalStore::prune_expired`], which the server calls periodically.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension, Transaction};

use std::future::Future;
use std::pin::Pin;

use super::{
    Claim, ClaimToken, DedupFuture, DedupStore, EventKey, OnCommitFailure, SharedDedupStore,
    StoreError,
};
use crate::health::Healthcheck;
use crate::store::{now_ms, Db, Durability};

const STATE_IN_FLIGHT: i64 = 0;
const STATE_COMMITTED: i64 = 1;
const PRUNE_BATCH: i64 = 1000;
/// Writes a claim row (new, taken over from an expired holder, or committed).
const UPSERT: &str = "INSERT OR REPLACE INTO dedup_claims (key, route, state, token, expires_at)
                      VALUES (?1, ?2, ?3, ?4, ?5)";

#[derive(Clone)]
pub struct LocalStore {
    db: Db,
    /// Claims being processed, by key: memory only (see `claim`).
    in_flight: Arc<Mutex<HashMap<EventKey, Holder>>>,
}

/// Who holds an in-flight claim, and until when.
struct Holder {
    token: ClaimToken,
    until: Instant,
    /// Committed, its row not yet written: copies are duplicates already,
    /// whatever `until` says. The entry goes when the row is written.
    committed: bool,
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
        Ok(LocalStore {
            db,
            in_flight: Arc::default(),
        })
    }

    /// Opens its own store in `data_dir` (fsync on): for tests and tools.
    pub async fn open(data_dir: &Path) -> Result<LocalStore, StoreError> {
        let db = Db::open(data_dir, true, Box::new(|_, _, _| {})).map_err(store)?;
        LocalStore::new(db).await
    }

    pub fn path(&self) -> &Path {
        self.db.path()
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
        .prepare_cached("SELECT state, expires_at FROM dedup_claims WHERE key = ?1")?
        .query_row([&key.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(match existing {
        Some((STATE_COMMITTED, expires)) if expires > now => Claim::Duplicate,
        Some((_, expires)) if expires > now => Claim::InFlight,
        _ => {
            let (state, until) = match committed_ttl {
                Some(ttl) => (STATE_COMMITTED, now + ttl.as_millis() as i64),
                None => (STATE_IN_FLIGHT, now + lease.as_millis() as i64),
            };
            tx.prepare_cached(UPSERT)?.execute(params![
                &key.0[..],
                route,
                state,
                token.0 as i64,
                until
            ])?;
            Claim::New(token)
        }
    })
}

impl LocalStore {
    /// Whether `key` was committed and its window has not passed: one
    /// primary-key lookup, run on the calling thread (see [`Db::read_now`]).
    fn committed(&self, key: &EventKey) -> Result<bool, StoreError> {
        let now = now_ms();
        self.db
            .read_now(|c| {
                c.prepare_cached(
                    "SELECT expires_at FROM dedup_claims WHERE key = ?1 AND state = ?2",
                )?
                .query_row(params![&key.0[..], STATE_COMMITTED], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()
                .map(|expires| expires.is_some_and(|e| e > now))
            })
            .map_err(store)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<EventKey, Holder>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets `key`'s in-flight entry if `token` still holds it.
    fn forget(&self, key: &EventKey, token: ClaimToken) {
        let mut map = self.in_flight();
        if map.get(key).is_some_and(|h| h.token == token) {
            map.remove(key);
        }
    }
}

impl LocalStore {
    /// Commits the caller's claim at once for this process: from the moment
    /// this returns, claims of `key` are answered as duplicates from memory.
    /// The row is queued for the writer (in order with every other write),
    /// and nobody waits for it: once it is written, the writer thread drops
    /// the in-memory entry, or calls `on_failure` if it could not be written.
    /// Returns false if another live claim holds `key` (left alone).
    pub fn commit_detached(
        &self,
        route: &str,
        key: &EventKey,
        token: ClaimToken,
        ttl: Duration,
        on_failure: impl FnOnce(StoreError) + Send + 'static,
    ) -> bool {
        // Ours, or nobody's (our lease ran out and nobody took over): record
        // the event, and from now on answer copies as duplicates.
        {
            let mut map = self.in_flight();
            let now = Instant::now();
            let ours_or_free = match map.get(key) {
                Some(h) if h.token == token => true,
                Some(h) => !h.committed && h.until <= now,
                None => true,
            };
            if !ours_or_free {
                return false;
            }
            map.insert(
                *key,
                Holder {
                    token,
                    until: now,
                    committed: true,
                },
            );
        }
        let (row_key, route) = (*key, route.to_string());
        let ttl = ttl.as_millis() as i64;
        let (this, key) = (self.clone(), *key);
        // Relaxed: a committed key lost with the machine can only let a
        // duplicate through later, never lose an event.
        self.db.write_then(
            Durability::Relaxed,
            move |tx| {
                tx.prepare_cached(UPSERT)?
                    .execute(params![
                        &row_key.0[..],
                        route,
                        STATE_COMMITTED,
                        token.0 as i64,
                        now_ms() + ttl
                    ])
                    .map(|_| ())
            },
            move |written| {
                // Written or not, the entry goes: if the write failed, a
                // later copy may be forwarded again (at least once, never
                // lost).
                this.forget(&key, token);
                if let Err(error) = written {
                    on_failure(store(error));
                }
            },
        );
        true
    }
}

impl DedupStore for LocalStore {
    /// In-flight claims live in memory (one process owns a data directory,
    /// and a claim does not outlive its process); only committed events are
    /// written.
    fn claim<'a>(
        &'a self,
        _route: &'a str,
        key: &'a EventKey,
        lease: Duration,
    ) -> DedupFuture<'a, Claim> {
        Box::pin(async move { self.claim_in_memory(key, lease) })
    }

    fn commit<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let (reply, outcome) = tokio::sync::oneshot::channel();
            let failure = move |error| {
                let _ = reply.send(error);
            };
            if !self.commit_detached(route, key, token, ttl, failure) {
                return Ok(());
            }
            // The sender is dropped without a message when the row is written.
            match outcome.await {
                Ok(error) => Err(error),
                Err(_) => Ok(()),
            }
        })
    }

    fn release<'a>(
        &'a self,
        _route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
    ) -> DedupFuture<'a, ()> {
        self.forget(key, token);
        Box::pin(async { Ok(()) })
    }

    fn check(&self) -> DedupFuture<'_, ()> {
        Box::pin(async move {
            self.db
                .read(|c| c.query_row("SELECT count(*) FROM dedup_claims WHERE 0", [], |_| Ok(())))
                .await
                .map_err(store)
        })
    }

    /// Records the commit in memory at once and queues its row (see
    /// [`LocalStore::commit_detached`]).
    fn commit_early<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
        on_failure: OnCommitFailure,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        self.commit_detached(route, key, token, ttl, on_failure);
        Box::pin(async {})
    }

    /// Deletes expired rows, a batch at a time so requests are never blocked
    /// for long.
    fn prune_expired(&self) -> DedupFuture<'_, usize> {
        Box::pin(async move {
            let now = Instant::now();
            self.in_flight().retain(|_, h| h.committed || h.until > now);
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
        })
    }

    /// Waits until every committed key handed to the writer is written.
    fn flush(&self) -> DedupFuture<'_, ()> {
        Box::pin(async move { self.db.flush().await.map_err(store) })
    }
}

impl LocalStore {
    fn claim_in_memory(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        let token = ClaimToken::random();
        {
            let mut map = self.in_flight();
            let now = Instant::now();
            match map.get(key) {
                Some(h) if h.committed => return Ok(Claim::Duplicate),
                Some(h) if h.until > now => return Ok(Claim::InFlight),
                _ => {}
            }
            map.insert(
                *key,
                Holder {
                    token,
                    until: now + lease,
                    committed: false,
                },
            );
        }
        // Checked after the entry went in: a commit writes its row before it
        // drops its entry, so any commit that let us in is visible here.
        match self.committed(key) {
            Ok(false) => Ok(Claim::New(token)),
            Ok(true) => {
                self.forget(key, token);
                Ok(Claim::Duplicate)
            }
            Err(error) => {
                self.forget(key, token);
                Err(error)
            }
        }
    }

    /// Builds the local backend on `db` with its readiness probe.
    pub async fn build(db: Db) -> Result<(SharedDedupStore, Healthcheck), StoreError> {
        let store: SharedDedupStore = Arc::new(LocalStore::new(db).await?);
        let check = super::healthcheck("local_store", &store);
        Ok((store, check))
    }
}

fn store(e: crate::store::StoreError) -> StoreError {
    StoreError::Local(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detached_commit_answers_copies_before_and_after_its_row_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        let key = EventKey([7; 32]);
        let lease = Duration::from_secs(30);
        let Claim::New(token) = store.claim("r", &key, lease).await.unwrap() else {
            panic!("first claim must be new");
        };
        let (failed, failure) = tokio::sync::oneshot::channel();
        let committed = store.commit_detached("r", &key, token, Duration::from_secs(3600), |e| {
            let _ = failed.send(e);
        });
        assert!(committed, "our own claim commits");
        // Not written yet as far as this caller knows: memory answers.
        assert!(matches!(
            store.claim("r", &key, lease).await.unwrap(),
            Claim::Duplicate
        ));
        store.flush().await.unwrap();
        assert!(failure.await.is_err(), "written: on_failure is not called");
        assert!(store.in_flight().is_empty(), "the entry goes once written");
        // A new process on the same file knows it from the row alone.
        let reopened = LocalStore::new(store.db.clone()).await.unwrap();
        assert!(matches!(
            reopened.claim("r", &key, lease).await.unwrap(),
            Claim::Duplicate
        ));
    }

    #[tokio::test]
    async fn a_detached_commit_leaves_another_live_claim_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        let key = EventKey([8; 32]);
        let Claim::New(_) = store
            .claim("r", &key, Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("first claim must be new");
        };
        let committed = store.commit_detached(
            "r",
            &key,
            ClaimToken::random(),
            Duration::from_secs(60),
            |_| unreachable!("nothing is written"),
        );
        assert!(!committed);
        assert!(matches!(
            store
                .claim("r", &key, Duration::from_secs(30))
                .await
                .unwrap(),
            Claim::InFlight
        ));
    }
}
