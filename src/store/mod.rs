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
//! Reads use a second connection (WAL lets it read while the writer writes).
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
//! -- the async spool (see crate::spool)
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
//!   body BLOB NOT NULL               -- exactly as received
//! );
//! CREATE TABLE attempts (
//!   delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL,
//!   started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
//!   status INTEGER, error TEXT,
//!   PRIMARY KEY (delivery_id, attempt)
//! ) WITHOUT ROWID;
//! ```

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

/// The store could not do what was asked (I/O error, disk full, closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("sqlite: {e}"))
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

/// A job for the writer: runs inside the group's transaction and returns
/// the callback that reports the group's commit outcome to its caller.
type Job =
    Box<dyn FnOnce(&Transaction<'_>) -> Box<dyn FnOnce(Result<(), StoreError>) + Send> + Send>;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Observes each group commit (for the commit-duration metric).
pub type CommitObserver = Box<dyn Fn(Duration, usize) + Send>;

impl Db {
    /// Opens (creating if needed) `data_dir/hookgate.db` and starts the writer.
    pub fn open(data_dir: &Path, fsync: bool, observe: CommitObserver) -> Result<Db, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError(format!(
                "cannot create data_dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("hookgate.db");
        let open = || -> Result<Connection, StoreError> {
            let conn = Connection::open(&path)
                .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // FULL: the WAL is synced on every commit, so an acknowledged
            // event survives power loss. NORMAL: it survives a crash of the
            // process, and the last commits may be lost with the machine.
            conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
            Ok(conn)
        };
        let writer = open()?;
        writer.execute_batch(SCHEMA)?;
        let reader = open()?;

        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookgate-store".into())
            .spawn(move || run_writer(writer, queue, observe))
            .map_err(|e| StoreError(format!("cannot start the store writer: {e}")))?;
        Ok(Db {
            jobs,
            reader: Arc::new(Mutex::new(reader)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the next group transaction; resolves once that group is
    /// committed (or failed). An error from `f` rolls back only `f`'s own
    /// statements.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx: &Transaction<'_>| {
            let result = in_savepoint(tx, f);
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = reply.send(committed.and(result));
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError("the store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the write could not be committed".into()))?
    }

    /// Runs a read on the reader connection in a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError(format!("store read failed: {e}")))?
    }
}

fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    tx.execute_batch("SAVEPOINT job")?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e.into())
        }
    }
}

/// The writer thread: group, commit, answer; until every handle is gone.
fn run_writer(mut conn: Connection, queue: mpsc::Receiver<Job>, observe: CommitObserver) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = group.len();
        let outcome = commit_group(&mut conn, group);
        observe(started.elapsed(), size);
        if let Err((error, callbacks)) = outcome {
            tracing::error!(%error, jobs = size, "store commit failed; nothing in the group is acknowledged");
            for callback in callbacks {
                callback(Err(error.clone()));
            }
        }
    }
}

type Callbacks = Vec<Box<dyn FnOnce(Result<(), StoreError>) + Send>>;

fn commit_group(conn: &mut Connection, group: Vec<Job>) -> Result<(), (StoreError, Callbacks)> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        // Nothing ran. Dropping the jobs drops their reply channels, which
        // their callers see as a failed write.
        Err(e) => return Err((StoreError::from(e), Vec::new())),
    };
    let callbacks: Callbacks = group.into_iter().map(|job| job(&tx)).collect();
    match tx.commit() {
        Ok(()) => {
            for callback in callbacks {
                callback(Ok(()));
            }
            Ok(())
        }
        Err(e) => Err((StoreError::from(e), callbacks)),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
