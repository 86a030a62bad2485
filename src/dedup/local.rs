//! The embedded dedup store: the `dedup_claims` table of the embedded store
//! (`crate::store`, where the schema is documented).
//!
//! A single gateway owns a data directory. Sync routes keep in-flight claims
//! in memory (a claim never outlives its process) and write only committed
//! events, one group-commit job each; the async path claims and spools in
//! one transaction with [`claim_in`]. In-flight rows an older version left
//! on disk are cleared on open. Expired rows are pruned in small batches by
//! [`LocalStore::prune_expired`], which the server calls periodically.
//!
//! The keys with a live row are also in an in-memory filter
//! (`crate::dedup::filter`, held by the [`Db`]), so a claim of a new key
//! reads nothing: every write of a row puts its key in the filter first,
//! and the filter is loaded from the rows on disk in the background when
//! the store opens (until then, every claim reads the row as before).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension, Transaction};

use std::future::Future;
use std::pin::Pin;

use super::filter::KeyFilter;
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
    /// Rows read by claims (those the filter could not rule out).
    reads: Arc<AtomicU64>,
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
        load_filter(&db);
        Ok(LocalStore {
            db,
            in_flight: Arc::default(),
            reads: Arc::default(),
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

/// Starts loading the rows on disk into the [`Db`]'s filter of dedup keys,
/// once per `Db`, on a thread of its own: claims read the store until it is
/// done, so the gateway need not wait for it.
fn load_filter(db: &Db) {
    if !db.dedup_keys().start_loading() {
        return;
    }
    let db = db.clone();
    let spawned = std::thread::Builder::new()
        .name("hookgate-dedup-keys".into())
        .spawn(move || {
            let started = Instant::now();
            match db.read_now(|c| db.dedup_keys().load(c, now_ms())) {
                Ok(keys) => tracing::info!(
                    keys,
                    took_ms = started.elapsed().as_millis() as u64,
                    bytes = db.dedup_keys().bytes(),
                    "dedup keys loaded into memory"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot load the dedup keys into memory; every claim reads the store"
                ),
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start loading the dedup keys into memory; every claim reads the store");
    }
}

/// Claims `key` inside `tx`; shared by the sync path and the async
/// claim-and-spool transaction. `keys` is the filter of the store `tx`
/// writes to. `lease` is how long the claim may stay in flight;
/// `committed_ttl` set means the claim is committed at once (the caller
/// spools the event in the same transaction).
pub(crate) fn claim_in(
    tx: &Transaction<'_>,
    keys: &KeyFilter,
    route: &str,
    key: &EventKey,
    token: ClaimToken,
    lease: Duration,
    committed_ttl: Option<Duration>,
) -> rusqlite::Result<Claim> {
    let now = now_ms();
    // A key the filter rules out has no live row to read.
    let existing: Option<(i64, i64)> = if keys.may_contain(key) {
        tx.prepare_cached("SELECT state, expires_at FROM dedup_claims WHERE key = ?1")?
            .query_row([&key.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
    } else {
        None
    };
    Ok(match existing {
        Some((STATE_COMMITTED, expires)) if expires > now => Claim::Duplicate,
        Some((_, expires)) if expires > now => Claim::InFlight,
        _ => {
            let (state, ttl) = match committed_ttl {
                Some(ttl) => (STATE_COMMITTED, ttl.as_millis() as i64),
                None => (STATE_IN_FLIGHT, lease.as_millis() as i64),
            };
            let until = now + ttl;
            // In the filter before the row commits, so no claim that could
            // see the row misses the key.
            keys.insert(key, until, ttl);
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
        self.reads.fetch_add(1, Ordering::Relaxed);
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
        let ttl = ttl.as_millis() as i64;
        let expires_at = now_ms() + ttl;
        // In the filter before the entry can go (once the row is written),
        // and with the row's own expiry, so that no claim misses the key
        // while the row is live.
        self.db.dedup_keys().insert(key, expires_at, ttl);
        let (row_key, route) = (*key, route.to_string());
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
                        expires_at
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
            self.db.dedup_keys().drop_expired(now_ms());
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
        // Checked after the entry went in: a commit puts its key in the
        // filter and writes its row before it drops its entry, so any commit
        // that let us in is visible here.
        if !self.db.dedup_keys().may_contain(key) {
            return Ok(Claim::New(token));
        }
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

    const LEASE: Duration = Duration::from_secs(30);
    const HOUR: Duration = Duration::from_secs(3600);

    /// A key as the store's are: a SHA-256 digest.
    fn key(i: u64) -> EventKey {
        use sha2::Digest;
        EventKey(sha2::Sha256::digest(i.to_le_bytes()).into())
    }

    /// A store whose filter has loaded what `dir` holds.
    async fn loaded(dir: &Path) -> LocalStore {
        let store = LocalStore::open(dir).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), store.db.dedup_keys().wait_loaded())
            .await
            .expect("the filter loads");
        store
    }

    fn reads(store: &LocalStore) -> u64 {
        store.reads.load(Ordering::Relaxed)
    }

    async fn claim_and_commit(store: &LocalStore, key: &EventKey, ttl: Duration) {
        let Claim::New(token) = store.claim("r", key, LEASE).await.unwrap() else {
            panic!("first claim must be new");
        };
        store.commit("r", key, token, ttl).await.unwrap();
    }

    #[tokio::test]
    async fn new_keys_are_claimed_without_a_read_and_committed_ones_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = loaded(dir.path()).await;
        for i in 0..100 {
            claim_and_commit(&store, &key(i), HOUR).await;
        }
        for i in 100..200 {
            assert!(matches!(
                store.claim("r", &key(i), LEASE).await.unwrap(),
                Claim::New(_)
            ));
        }
        assert_eq!(reads(&store), 0, "the filter rules out every new key");
        assert_eq!(store.db.dedup_keys().ruled_out(), 200);
        // Rows written and entries gone: the filter says "maybe", the row
        // says "duplicate".
        assert!(store.in_flight().values().all(|h| !h.committed));
        for i in 0..100 {
            assert_eq!(
                store.claim("r", &key(i), LEASE).await.unwrap(),
                Claim::Duplicate
            );
        }
        assert_eq!(reads(&store), 100);
    }

    #[tokio::test]
    async fn committed_keys_are_duplicates_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = loaded(dir.path()).await;
            claim_and_commit(&store, &key(1), HOUR).await;
            claim_and_commit(&store, &key(2), HOUR).await;
        }
        let store = loaded(dir.path()).await;
        assert_eq!(store.db.dedup_keys().keys(), 2, "loaded from the rows");
        for i in [1, 2] {
            assert_eq!(
                store.claim("r", &key(i), LEASE).await.unwrap(),
                Claim::Duplicate
            );
        }
        assert!(matches!(
            store.claim("r", &key(3), LEASE).await.unwrap(),
            Claim::New(_)
        ));
        assert_eq!(reads(&store), 2, "the new key was not read");
    }

    #[tokio::test]
    async fn an_expired_key_is_new_again_and_leaves_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = loaded(dir.path()).await;
        claim_and_commit(&store, &key(1), Duration::from_millis(1)).await;
        let keys = store.db.dedup_keys();
        assert_eq!(keys.keys(), 1);
        // The filter still has it: the read finds the row expired.
        let wait = async {
            while store.claim("r", &key(1), LEASE).await.unwrap() == Claim::Duplicate {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the key expires");
        assert!(reads(&store) >= 1);
        // Its bucket goes with the pruning once its span has passed.
        let pruned = async {
            while keys.keys() > 0 {
                store.prune_expired().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), pruned)
            .await
            .expect("the bucket is dropped");
    }

    #[tokio::test]
    async fn a_key_the_async_path_committed_is_a_duplicate_for_claims() {
        let dir = tempfile::tempdir().unwrap();
        let store = loaded(dir.path()).await;
        let spool = |key: EventKey| {
            let keys = store.db.dedup_keys().clone();
            let token = ClaimToken::random();
            store
                .db
                .write(move |tx| claim_in(tx, &keys, "r", &key, token, LEASE, Some(HOUR)))
        };
        assert!(matches!(spool(key(1)).await.unwrap(), Claim::New(_)));
        assert_eq!(
            store.db.dedup_keys().ruled_out(),
            1,
            "the writer did not read the new key"
        );
        assert_eq!(spool(key(1)).await.unwrap(), Claim::Duplicate);
        assert_eq!(
            store.claim("r", &key(1), LEASE).await.unwrap(),
            Claim::Duplicate
        );
        assert_eq!(reads(&store), 1);
    }

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
