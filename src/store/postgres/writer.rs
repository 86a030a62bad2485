//! Group commit of appends: the request path's one write.
//!
//! One task per process takes every append queued at that moment (up to
//! [`MAX_GROUP`]) and runs them in one transaction on one connection, each
//! as one statement (the dedup claim and the insert together, see
//! [`APPEND`]), sent pipelined: the group costs about one round trip per
//! statement batch plus one commit, however many appends it carries. Each
//! caller is answered only after the commit returned; if it fails, every
//! append of the group gets the error and none is acknowledged.
//!
//! A statement that fails aborts a PostgreSQL transaction, and with it the
//! rest of the group. So when one does, the group is rolled back and run
//! again with a savepoint around each append: the failing one gets its own
//! error, the others commit.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Statement;

use super::{CommitObserver, StoreError};
use crate::spool::Appended;

/// How many queued appends one commit may carry.
const MAX_GROUP: usize = 512;

/// Claims the event's dedup key (when `$1` is set) and inserts the
/// delivery, in one statement: the insert happens only if the claim was
/// won, and a failing insert takes the claim with it.
///
/// The claim row is always written (`DO UPDATE`) so that `RETURNING` shows
/// its state whether or not this append won it: a key whose earlier claim
/// has expired is taken over (committed at once: the event is spooled in
/// the same transaction), a live one is returned as it is. An async
/// route's claims are committed at once, so a live claim held by someone
/// else is a duplicate (`state` 1) unless a sync route's in-flight claim
/// (`state` 0) shares the key.
///
/// Parameters: key, route, token, ttl (ms), id, query, headers, body.
pub const APPEND: &str = "
WITH clock AS (SELECT now_ms() AS now),
claim AS (
    INSERT INTO dedup_claims AS c (key, route, state, token, expires_at)
    SELECT $1::bytea, $2, 1, $3, now + $4 FROM clock WHERE $1::bytea IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET
        route = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.route ELSE c.route END,
        state = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.state ELSE c.state END,
        token = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.token ELSE c.token END,
        expires_at = CASE WHEN c.expires_at <= EXCLUDED.expires_at - $4 THEN EXCLUDED.expires_at ELSE c.expires_at END
    RETURNING c.state, c.token
),
spooled AS (
    INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body)
    SELECT $5, $2, 'pending', now, 0, now, $6, $7, $8 FROM clock
    WHERE $1::bytea IS NULL OR (SELECT token FROM claim) = $3
    RETURNING id
)
SELECT (SELECT id FROM spooled), (SELECT state FROM claim)";

/// One append waiting for its group.
pub struct AppendJob {
    pub id: String,
    pub route: String,
    pub query: Option<String>,
    pub headers: String,
    pub body: bytes::Bytes,
    /// The dedup key, the claim's token and its window in ms.
    pub claim: Option<([u8; 32], i64, i64)>,
    pub reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// Queues appends for the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<AppendJob>,
}

impl Writer {
    /// Starts the writer task on the current runtime; it ends when every
    /// handle is gone.
    pub fn start(pool: deadpool_postgres::Pool, observe: CommitObserver) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queue, observe));
        Writer { jobs }
    }

    /// Queues `job`; its `reply` gets the outcome after the group's commit
    /// (dropped unanswered only if the writer is gone: nothing written).
    pub fn append(&self, job: AppendJob) {
        let _ = self.jobs.send(job);
    }
}

async fn run(
    pool: deadpool_postgres::Pool,
    mut queue: mpsc::UnboundedReceiver<AppendJob>,
    observe: CommitObserver,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let size = group.len();
        let started = Instant::now();
        let mut jobs = std::mem::take(&mut group);
        // Claims lock their rows in key order in every replica's groups, so
        // two groups with the same keys wait for each other, never deadlock.
        jobs.sort_by(|a, b| a.claim.map(|c| c.0).cmp(&b.claim.map(|c| c.0)));
        let committed = commit_group(&pool, jobs).await;
        observe(started.elapsed(), size, committed);
    }
}

/// Runs one group; answers every job. Returns whether it committed.
async fn commit_group(pool: &deadpool_postgres::Pool, jobs: Vec<AppendJob>) -> bool {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => {
            let error = StoreError::from(error);
            tracing::error!(%error, jobs = jobs.len(), "store unavailable; nothing in the group is acknowledged");
            fail_all(jobs, &error);
            return false;
        }
    };
    match pipelined(&mut client, &jobs).await {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
            true
        }
        Err(Failed::Commit(error)) => {
            tracing::error!(%error, jobs = jobs.len(), "store commit failed; nothing in the group is acknowledged");
            fail_all(jobs, &error);
            false
        }
        Err(Failed::Statement(error)) if jobs.len() == 1 => {
            fail_all(jobs, &error);
            false
        }
        // One statement failed: run the group again, one savepoint each.
        Err(Failed::Statement(_)) => match one_by_one(&mut client, &jobs).await {
            Ok(outcomes) => {
                let mut any = false;
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    any |= outcome.is_ok();
                    let _ = job.reply.send(outcome);
                }
                any
            }
            Err(error) => {
                tracing::error!(%error, jobs = jobs.len(), "store commit failed; nothing in the group is acknowledged");
                fail_all(jobs, &error);
                false
            }
        },
    }
}

fn fail_all(jobs: Vec<AppendJob>, error: &StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(error.clone()));
    }
}

enum Failed {
    /// A statement failed: the transaction is rolled back.
    Statement(StoreError),
    /// Beginning or committing failed (the connection broke, the server
    /// refused the commit): nothing is acknowledged.
    Commit(StoreError),
}

/// Every job's statement sent at once, in one transaction.
async fn pipelined(
    client: &mut deadpool_postgres::Object,
    jobs: &[AppendJob],
) -> Result<Vec<Appended>, Failed> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Failed::Commit(e.into()))?;
    let stmt = tx
        .prepare_cached(APPEND)
        .await
        .map_err(|e| Failed::Commit(e.into()))?;
    let results =
        futures_util::future::join_all(jobs.iter().map(|job| run_one(&tx, &stmt, job))).await;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for result in results {
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => {
                // Dropping `tx` rolls it back.
                return Err(Failed::Statement(error));
            }
        }
    }
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    Ok(outcomes)
}

/// Each job in a savepoint of one transaction: a failing job rolls back
/// only itself.
async fn one_by_one(
    client: &mut deadpool_postgres::Object,
    jobs: &[AppendJob],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let mut tx = client.transaction().await?;
    let stmt = tx.prepare_cached(APPEND).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let savepoint = tx.savepoint("job").await?;
        match run_one(&savepoint, &stmt, job).await {
            Ok(outcome) => {
                savepoint.commit().await?;
                outcomes.push(Ok(outcome));
            }
            Err(error) => {
                savepoint.rollback().await?;
                outcomes.push(Err(error));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn run_one(
    tx: &deadpool_postgres::Transaction<'_>,
    stmt: &Statement,
    job: &AppendJob,
) -> Result<Appended, StoreError> {
    let (key, token, ttl) = match &job.claim {
        Some((key, token, ttl)) => (Some(&key[..]), *token, *ttl),
        None => (None, 0, 0),
    };
    let row = tx
        .query_one(
            stmt,
            &[
                &key,
                &job.route,
                &token,
                &ttl,
                &job.id,
                &job.query,
                &job.headers,
                &&job.body[..],
            ],
        )
        .await?;
    let spooled: Option<String> = row.get(0);
    let state: Option<i16> = row.get(1);
    Ok(match (spooled, state) {
        (Some(id), _) => Appended::Spooled(id),
        (None, Some(0)) => Appended::InFlight,
        (None, _) => Appended::Duplicate,
    })
}
