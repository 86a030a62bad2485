//! The stores: this file is the embedded one; [`postgres`] is the shared
//! one (`store.backend: postgres`), with the same tables.
//!
//! The embedded store: one SQLite file, `data_dir/hookgate.db`, in WAL mode.
//! It holds the dedup claims of `local` routes and the async spool, so that
//! claiming an event and spooling it is one transaction.
//!
//! Writes go to one writer thread that groups them (group commit): it takes
//! every job queued at that moment, runs each in its own savepoint inside one
//! transaction, commits once (one fsync for all of them when `fsync` is on)
//! and only then answers each caller. A caller is told "committed" only
//! after the commit returned; if the commit fails, every job in the group
//! gets the error and nothing of the group is acknowledged.
//!
//! Reads use other connections (WAL lets them read while the writer writes),
//! from a small pool: [`Db::read_now`] runs a point lookup on the calling
//! thread (the dedup check on the request path: microseconds, so no thread
//! hand-off), [`Db::read`] runs longer reads on tokio's blocking pool.
//!
//! Schema (inspect with `sqlite3 data/hookgate.db`):
//!
//! ```sql
//! -- dedup claims (see crate::dedup::local)
//! CREATE TABLE dedup_claims (
//!   key BLOB PRIMARY KEY,            -- SHA-256 of route + key parts
//!   route TEXT NOT NULL,
//!   state INTEGER NOT NULL,          -- 0 in flight, 1 committed
//!   token INTEGER NOT NULL,          -- the holder's claim token
//!   expires_at INTEGER NOT NULL      -- unix ms
//! ) WITHOUT ROWID;
//! -- the async spool (see crate::spool; its statements are in crate::spool::sqlite)
//! CREATE TABLE deliveries (
//!   id TEXT PRIMARY KEY,             -- UUIDv7, sent as Hookgate-Delivery-Id
//!   route TEXT NOT NULL,
//!   state TEXT NOT NULL,             -- pending | delivered | dead
//!   received_at INTEGER NOT NULL,    -- unix ms
//!   attempts INTEGER NOT NULL,
//!   next_attempt_at INTEGER NOT NULL,
//!   last_status INTEGER,             -- upstream status of the last attempt
//!   last_error TEXT,                 -- or why it had none
//!   finished_at INTEGER,             -- delivered or dead-lettered at
//!   query TEXT,                      -- the sender's query string
//!   headers TEXT NOT NULL,           -- JSON [[name, value]], credentials already removed
//!   body BLOB NOT NULL,              -- exactly as received
//!   -- added by migration 2 (fan-out; see MIGRATIONS):
//!   destination TEXT NOT NULL,       -- the route's destination ('upstream' for `upstream:`)
//!   event_id TEXT,                   -- the event (one per destination); = id for 'upstream'
//!   order_key TEXT,                  -- FIFO per key at the destination (NULL: unordered)
//!   dedup_key TEXT                   -- the dedup key's values, for operators
//! );
//! CREATE TABLE attempts (
//!   delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL,
//!   started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
//!   status INTEGER, error TEXT,
//!   PRIMARY KEY (delivery_id, attempt)
//! ) WITHOUT ROWID;
//! ```

#[doc(hidden)]
pub mod commit_gate;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::dedup::filter::KeyFilter;

pub mod postgres;

/// The store could not do what was asked (I/O error, disk full, closed).
///
/// Each message names what failed and, for the variants with a cause, ends
/// with the cause's own message (logs print the message alone); the cause
/// is also kept as the [`std::error::Error::source`], so a caller can tell
/// a full disk from a closed store without parsing text. Causes are behind
/// an `Arc` because one group commit's outcome goes to every job in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A statement or the commit failed in SQLite.
    #[error("store: sqlite: {source}")]
    Sqlite {
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The store file could not be opened.
    #[error("store: cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The data directory could not be created.
    #[error("store: cannot create data_dir {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store file could not be created.
    #[error("store: cannot create {}: {source}", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The writer thread could not be started.
    #[error("store: cannot start the store writer: {source}")]
    StartWriter {
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store was written by a newer hookgate.
    #[error("store: the schema is at version {found}, this hookgate knows up to {supported}: run the newer hookgate, or restore a backup made before the upgrade")]
    Schema { found: i64, supported: i64 },
    /// A read on the blocking pool did not finish (panicked or cancelled).
    #[error("store: store read failed: {source}")]
    ReadTask {
        #[source]
        source: Arc<tokio::task::JoinError>,
    },
    /// The task that appends an event ended without an answer (it panicked).
    #[error("store: the append did not finish: {source}")]
    AppendTask {
        #[source]
        source: Arc<tokio::task::JoinError>,
    },
    /// SQLite rolled the group's transaction back by itself (disk full, I/O
    /// error): nothing of the group was written.
    #[error("store: the transaction was rolled back by SQLite (disk full or I/O error)")]
    RolledBack,
    /// An earlier job's error rolled the group's transaction back, so this
    /// job did not run.
    #[error("store: the group's transaction was rolled back by an earlier error")]
    GroupRolledBack,
    /// The write was dropped unrun (the writer stopped, or failed its group
    /// before running it): nothing was written.
    #[error("store: the write could not be committed")]
    NotCommitted,
    /// A statement, the commit or the connection failed in PostgreSQL
    /// (see `postgres`). `detail` is the driver's message with its causes
    /// (the driver's own `Display` stops at "db error"); never the URL.
    #[error("store: postgres: {detail}")]
    Postgres {
        detail: String,
        #[source]
        source: Arc<tokio_postgres::Error>,
    },
    /// The PostgreSQL connection settings or pool could not be set up.
    #[error("store: postgres: {detail}")]
    PostgresSetup { detail: String },
    /// No PostgreSQL connection could be had from the pool (the server is
    /// down or every connection is busy past the wait timeout).
    #[error("store: postgres: no connection: {detail}")]
    PostgresPool {
        detail: String,
        #[source]
        source: Arc<deadpool_postgres::PoolError>,
    },
}

impl StoreError {
    /// The message without its `store: ` prefix, for an error type that
    /// says "store" in its own words (the dedup store's, start-up's).
    pub fn detail(&self) -> String {
        let message = self.to_string();
        match message.strip_prefix("store: ") {
            Some(rest) => rest.to_string(),
            None => message,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            source: Arc::new(e),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres {
            detail: postgres::describe(&e),
            source: Arc::new(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::PostgresPool {
            detail: postgres::describe(&e),
            source: Arc::new(e),
        }
    }
}

/// How many queued jobs one commit may carry.
const MAX_GROUP: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedup_claims (
    key BLOB PRIMARY KEY,
    route TEXT NOT NULL,
    state INTEGER NOT NULL,
    token INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_claims_expiry ON dedup_claims (expires_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    finished_at INTEGER,
    query TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, route, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (state, finished_at);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
";

/// Schema changes after [`SCHEMA`], by `PRAGMA user_version`: entry `i`
/// moves a store from version `i + 1` to `i + 2` (a store [`SCHEMA`]
/// just created starts at 1). Never edited once released.
const MIGRATIONS: &[&str] = &[
    // 2: one delivery per destination of an event (fan-out), FIFO per
    // ordering key, and the dedup key kept for operators.
    "ALTER TABLE deliveries ADD COLUMN destination TEXT NOT NULL DEFAULT 'upstream';
     ALTER TABLE deliveries ADD COLUMN event_id TEXT;
     ALTER TABLE deliveries ADD COLUMN order_key TEXT;
     ALTER TABLE deliveries ADD COLUMN dedup_key TEXT;
     UPDATE deliveries SET event_id = id;
     DROP INDEX IF EXISTS deliveries_due;
     CREATE INDEX deliveries_due ON deliveries (state, route, destination, next_attempt_at);
     CREATE INDEX deliveries_order ON deliveries (route, destination, order_key, received_at)
         WHERE order_key IS NOT NULL AND state = 'pending';
     CREATE INDEX deliveries_event ON deliveries (event_id);",
];

/// Brings the schema up to date, each step in its own transaction with
/// its version; a store newer than this binary is refused.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        version = 1;
    }
    let latest = MIGRATIONS.len() as i64 + 1;
    if version > latest {
        return Err(StoreError::Schema {
            found: version,
            supported: latest,
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            step + 2
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    }
    Ok(())
}

/// A job for the writer: runs inside the group's transaction and returns
/// the callback that reports the group's commit outcome to its caller.
struct Job {
    /// Must survive power loss (when the store's `fsync` is on): spooled
    /// events. Dedup keys of sync routes need not: losing one after a power
    /// failure can only let a duplicate through, never lose an event.
    durable: bool,
    run: Box<dyn FnOnce(&Transaction<'_>) -> Callback + Send>,
}

/// Reports the group's commit outcome to one job's caller.
type Callback = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Readers>,
    path: PathBuf,
    /// The keys with a live row in `dedup_claims`, in memory: kept with the
    /// handle so that every writer of that table through it (the dedup
    /// store and the spool's claim-and-spool) feeds the one filter.
    dedup_keys: Arc<KeyFilter>,
}

/// Idle reader connections. A read takes one (opening one when none is
/// idle) and puts it back, so concurrent reads never wait on each other;
/// at most [`IDLE_READERS`] are kept.
struct Readers {
    idle: Mutex<Vec<Connection>>,
}

const IDLE_READERS: usize = 8;

impl Readers {
    fn take(&self, path: &Path) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_connection(path),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// One connection to the store file, WAL mode, statements cached.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        source: Arc::new(e),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Every hot statement is prepared once and reused.
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: a commit survives a crash of the process, and the last ones
    // may be lost with the machine. The writer switches to FULL (the WAL
    // synced on every commit) for groups holding a durable job when `fsync`
    // is on.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Creates `data_dir` (0700) and the store file (0600) so that only the
/// gateway's user can read them: they hold event bodies and signature
/// headers. SQLite gives its `-wal` and `-shm` files the mode of the store
/// file. Files left by an older version are narrowed to 0600; an existing
/// `data_dir` is not changed (it may be shared), but a warning says when
/// others can read it.
#[cfg(unix)]
fn owner_only(data_dir: &Path, db: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let existed = data_dir.is_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| StoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source: Arc::new(e),
        })?;
    if existed {
        let mode = std::fs::metadata(data_dir).map(|m| m.permissions().mode());
        if mode.is_ok_and(|mode| mode & 0o077 != 0) {
            tracing::warn!(data_dir = %data_dir.display(), "data_dir is readable by other users; the store files in it are not (0600), but consider `chmod 700` on it");
        }
    }
    let cannot = |e: std::io::Error| StoreError::CreateFile {
        path: db.to_path_buf(),
        source: Arc::new(e),
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)
        .map_err(cannot)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Another user's file (an old deployment): still usable.
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "cannot make the store file readable by its owner only")
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(data_dir: &Path, _db: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source: Arc::new(e),
    })
}

/// How a write must be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk before the caller hears "committed" (with `fsync` on).
    Durable,
    /// Survives a crash of the process; may be lost with the machine.
    Relaxed,
}

/// Observes each group (for the store metrics): how long its commit took,
/// how many jobs it carried, and whether it committed.
pub type CommitObserver = Box<dyn Fn(Duration, usize, bool) + Send>;

impl Db {
    /// Opens (creating if needed) `data_dir/hookgate.db` and starts the writer.
    pub fn open(data_dir: &Path, fsync: bool, observe: CommitObserver) -> Result<Db, StoreError> {
        let path = data_dir.join("hookgate.db");
        owner_only(data_dir, &path)?;
        let writer = open_connection(&path)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer)?;
        let readers = Readers {
            idle: Mutex::new(vec![open_connection(&path)?]),
        };

        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookgate-store".into())
            .spawn(move || run_writer(writer, queue, observe, fsync))
            .map_err(|e| StoreError::StartWriter {
                source: Arc::new(e),
            })?;
        Ok(Db {
            jobs,
            readers: Arc::new(readers),
            path,
            dedup_keys: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The in-memory filter of `dedup_claims` (see `crate::dedup::filter`).
    pub fn dedup_keys(&self) -> &Arc<KeyFilter> {
        &self.dedup_keys
    }

    /// Runs `f` in the next group transaction; resolves once that group is
    /// committed (or failed). An error from `f` rolls back only `f`'s own
    /// statements.
    pub fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        self.write_with(Durability::Durable, f)
    }

    /// [`Db::write`] with a chosen durability. The job is queued when this
    /// is called, not when the future is first polled, so writes are
    /// committed in the order they were made.
    pub fn write_with<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        self.write_then(durability, f, move |outcome| {
            let _ = reply.send(outcome);
        });
        async move { answer.await.map_err(|_| StoreError::NotCommitted)? }
    }

    /// Queues `f` for the next group transaction and calls `then` with the
    /// outcome on the writer thread once the group is committed (or failed),
    /// so nobody has to wait for it. `then` must be quick: the writer's next
    /// group waits for it. It is called exactly once, with an error if the
    /// writer has stopped or dropped the job.
    pub fn write_then<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        then: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let then = Once(Some(then), std::marker::PhantomData);
        let run = Box::new(move |tx: &Transaction<'_>| {
            let result = in_savepoint(tx, f);
            Box::new(move |committed: Result<(), StoreError>| {
                // The job's own error first (it says what went wrong), then
                // the group's: nothing is reported as written unless the
                // commit succeeded.
                then.call(match (result, committed) {
                    (Err(own), _) => Err(own),
                    (Ok(_), Err(group)) => Err(group),
                    (Ok(value), Ok(())) => Ok(value),
                });
            }) as Callback
        });
        let job = Job {
            durable: durability == Durability::Durable,
            run,
        };
        // A job the writer never ran is dropped, and `Once` reports it.
        let _ = self.jobs.send(job);
    }

    /// Resolves once every write queued before this call is committed (or
    /// failed): writes commit in the order they were made. For shutdown, so
    /// writes nobody waits for (dedup keys) are not left in the queue.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write_with(Durability::Relaxed, |_| Ok(())).await
    }

    /// Runs a read on a reader connection in a blocking thread: for reads
    /// that may touch many rows (listings, the delivery worker's queries).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_now(f))
            .await
            .map_err(|e| StoreError::ReadTask {
                source: Arc::new(e),
            })?
    }

    /// Runs a read on a reader connection on the calling thread. For point
    /// lookups by primary key on the request path, which take microseconds
    /// when the pages are cached: cheaper than the two thread switches of
    /// [`Db::read`]. A cold page costs the caller one disk read.
    pub fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take(&self.path)?;
        let result = f(&conn).map_err(StoreError::from);
        self.readers.give_back(conn);
        result
    }
}

fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    // SQLite rolls the whole transaction back by itself on some errors (disk
    // full, I/O error). Running a job outside the group's transaction would
    // commit it on its own, so such a group runs no further job.
    if tx.is_autocommit() {
        return Err(StoreError::GroupRolledBack);
    }
    // Prepared once per connection: these run for every job.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            if !tx.is_autocommit() {
                tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
            Err(e.into())
        }
    }
}

/// The writer thread: group, commit, answer; until every handle is gone.
fn run_writer(
    mut conn: Connection,
    queue: mpsc::Receiver<Job>,
    observe: CommitObserver,
    fsync: bool,
) {
    let mut synced = false;
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Sync this group's commit to disk only if a job needs it.
        let want_sync = fsync && group.iter().any(|job| job.durable);
        if want_sync != synced {
            let mode = if want_sync { "FULL" } else { "NORMAL" };
            match conn.pragma_update(None, "synchronous", mode) {
                Ok(()) => synced = want_sync,
                Err(error) => tracing::error!(%error, "cannot set synchronous={mode}"),
            }
        }
        let size = group.len();
        if want_sync && !synced {
            // Durability cannot be promised: fail the group rather than lie.
            // Dropping the jobs drops their reply channels, which their
            // callers see as a failed write.
            drop(group);
            observe(Duration::ZERO, size, false);
            continue;
        }
        let started = Instant::now();
        let (outcome, callbacks) = commit_group(&mut conn, group);
        // Observed before anyone is answered: a caller that heard
        // "committed" finds the commit in the metrics.
        observe(started.elapsed(), size, outcome.is_ok());
        if let Err(error) = &outcome {
            tracing::error!(%error, jobs = size, "store commit failed; nothing in the group is acknowledged");
        }
        for callback in callbacks {
            callback(outcome.clone());
        }
    }
}

type Callbacks = Vec<Callback>;

/// Runs the group in one transaction and commits it; returns the outcome
/// and the callbacks that report it to each job's caller.
fn commit_group(conn: &mut Connection, group: Vec<Job>) -> (Result<(), StoreError>, Callbacks) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        // Nothing ran. Dropping the jobs drops their reply channels, which
        // their callers see as a failed write.
        Err(e) => return (Err(StoreError::from(e)), Vec::new()),
    };
    let callbacks: Callbacks = group.into_iter().map(|job| (job.run)(&tx)).collect();
    if tx.is_autocommit() {
        // SQLite already rolled the transaction back: nothing was written.
        return (Err(StoreError::RolledBack), callbacks);
    }
    commit_gate::before_commit();
    (tx.commit().map_err(StoreError::from), callbacks)
}

/// A write's outcome callback that is called exactly once: if the job is
/// dropped unrun (the writer stopped, or failed the group before running
/// it), it reports that nothing was written.
struct Once<T, F: FnOnce(Result<T, StoreError>)>(Option<F>, std::marker::PhantomData<fn(T)>);

impl<T, F: FnOnce(Result<T, StoreError>)> Once<T, F> {
    fn call(mut self, outcome: Result<T, StoreError>) {
        if let Some(then) = self.0.take() {
            then(outcome);
        }
    }
}

impl<T, F: FnOnce(Result<T, StoreError>)> Drop for Once<T, F> {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(StoreError::NotCommitted));
        }
    }
}

/// What appending an event to the spool did (see `crate::spool`, which
/// re-exports it; it lives here so the stores' writers need not import the
/// spool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Committed; the delivery id.
    Spooled(String),
    Duplicate,
    InFlight,
}

/// What recording a delivery attempt did (`crate::spool::SpoolStore::record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt and the next state are committed.
    Written,
    /// Nothing changed: this attempt was recorded already, or the delivery
    /// is no longer pending at that attempt.
    Stale,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store written before fan-out (schema 1, no `user_version`) opens
    /// with its deliveries intact: each the `upstream` delivery of its own
    /// event. Reopening does not migrate again; a newer store is refused.
    #[test]
    fn a_store_from_before_fan_out_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookgate.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(SCHEMA).unwrap();
            old.execute(
                "INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, headers, body)
                 VALUES ('0193-old', 'r', 'pending', 1, 0, 1, '[]', x'7b7d')",
                [],
            )
            .unwrap();
        }
        for _ in 0..2 {
            let db = Db::open(dir.path(), false, Box::new(|_, _, _| {})).unwrap();
            let row: (String, String, Option<String>, i64) = db
                .read_now(|c| {
                    c.query_row(
                        "SELECT destination, event_id, order_key, (SELECT user_version FROM pragma_user_version)
                         FROM deliveries WHERE id = '0193-old'",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                })
                .unwrap();
            assert_eq!(row, ("upstream".into(), "0193-old".into(), None, 2));
        }
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let Err(error) = Db::open(dir.path(), false, Box::new(|_, _, _| {})) else {
            panic!("a newer store must be refused");
        };
        assert!(error.to_string().contains("version 99"), "{error}");
    }

    fn observed() -> (CommitObserver, Arc<Mutex<Vec<usize>>>) {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let sink = groups.clone();
        (
            Box::new(move |_, size, _| sink.lock().unwrap().push(size)),
            groups,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (observer, groups) = observed();
        let db = Db::open(dir.path(), true, observer).unwrap();
        db.write(|tx| tx.execute_batch("CREATE TABLE t (n INTEGER)"))
            .await
            .unwrap();
        // Hold the writer busy so the next 50 writes queue up behind it.
        let (started_tx, started) = std::sync::mpsc::channel();
        let blocker = {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |_| {
                    started_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        // Each write is queued behind the blocker as it is made.
        let writes: Vec<_> = (0..50)
            .map(|n| tokio::spawn(db.write(move |tx| tx.execute("INSERT INTO t VALUES (?1)", [n]))))
            .collect();
        blocker.await.unwrap().unwrap();
        for w in writes {
            assert_eq!(w.await.unwrap().unwrap(), 1);
        }
        let groups = groups.lock().unwrap().clone();
        // The schema write, the blocker, then the 50 in one group.
        assert_eq!(groups, vec![1, 1, 50], "{groups:?}");
        let count: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(count, 50);
    }

    #[tokio::test]
    async fn a_failed_job_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), false, Box::new(|_, _, _| {})).unwrap();
        db.write(|tx| tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
            .await
            .unwrap();
        let bad = db.write(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            tx.execute("INSERT INTO t VALUES (1)", []) // constraint violation
        });
        let good = db.write(|tx| tx.execute("INSERT INTO t VALUES (2)", []));
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        assert_eq!(good.unwrap(), 1);
        let rows: Vec<i64> = db
            .read(|c| {
                c.prepare("SELECT n FROM t")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![2],
            "the failed job's first insert was rolled back"
        );
    }

    #[tokio::test]
    async fn when_the_disk_is_full_nothing_is_acknowledged_and_service_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let db = Db::open(
            dir.path(),
            true,
            Box::new(move |_, _, _| {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        db.write(|tx| tx.execute_batch("CREATE TABLE t (b BLOB)"))
            .await
            .unwrap();
        // SQLite's own "database or disk is full" path: cap the file size.
        let pages: i64 = db
            .write(|tx| tx.query_row("PRAGMA page_count", [], |r| r.get(0)))
            .await
            .unwrap();
        db.write(move |tx| {
            tx.query_row(
                &format!("PRAGMA max_page_count = {}", pages + 2),
                [],
                |_| Ok(()),
            )
        })
        .await
        .unwrap();
        let big = vec![7u8; 64 * 1024];
        let full = db
            .write(move |tx| tx.execute("INSERT INTO t VALUES (?1)", [big]))
            .await;
        let error = full.unwrap_err();
        assert!(error.to_string().contains("full"), "{error}");
        assert!(
            matches!(&error, StoreError::Sqlite { source } if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)),
            "the cause is kept: {error:?}"
        );
        let count: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(count, 0);
        // The fault clears: writes succeed again without a restart.
        db.write(|tx| tx.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(())))
            .await
            .unwrap();
        let big = vec![7u8; 64 * 1024];
        assert_eq!(
            db.write(move |tx| tx.execute("INSERT INTO t VALUES (?1)", [big]))
                .await
                .unwrap(),
            1
        );
        assert!(calls.load(Ordering::SeqCst) >= 5);
    }
}
