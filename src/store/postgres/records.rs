//! Group commit of delivery outcomes ([`crate::spool::SpoolStore::record`]).
//!
//! Every delivery ends in a record, so one transaction each would cost the
//! server a statement and a durable commit per event. As for appends
//! ([`super::writer`]), a few tasks share a queue and each writes every
//! record queued at that moment in one statement ([`RECORD_MANY`], from
//! arrays) and one commit, then answers each caller with whether its
//! record applied (`Written`) or was stale.
//!
//! These commits are made with `synchronous_commit = off`: a record lost
//! with the server (its last few hundred milliseconds of commits) leaves
//! the delivery pending, so it is attempted again: at-least-once, never a
//! lost event, the same trade as the SQLite store's relaxed records.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::store::Recorded;

/// How many queued records one commit may carry.
const MAX_GROUP: usize = 512;
/// Groups committing at once.
const WRITERS: usize = 2;

/// [`crate::spool`]'s record for many deliveries at once (ids unique
/// within the statement): each applies only where the row still carries
/// the holder's token, is pending and has `attempt - 1` attempts; the
/// attempt row and the next state go together. Rows: the ids written.
///
/// Parameters (arrays): id, token, state, attempt, next_attempt_at,
/// status, last_error, started_at, duration_ms, error.
pub const RECORD_MANY: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int4[], $5::int8[], $6::int4[],
                         $7::text[], $8::int8[], $9::int8[], $10::text[])
        AS t(id, token, state, attempt, next_at, status, last_error, started_at, duration_ms, error)
),
recorded AS (
    UPDATE deliveries d SET
        state = i.state, attempts = i.attempt, next_attempt_at = coalesce(i.next_at, d.next_attempt_at),
        last_status = i.status, last_error = i.last_error,
        finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now_ms() END,
        lease_token = NULL, lease_until = NULL
    FROM input i
    WHERE d.id = i.id AND d.lease_token = i.token AND d.state = 'pending' AND d.attempts = i.attempt - 1
    RETURNING d.id
),
attempt_rows AS (
    INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status, error)
    SELECT i.id, i.attempt, i.started_at, i.duration_ms, i.status, i.error
    FROM input i WHERE i.id IN (SELECT id FROM recorded)
    ON CONFLICT (delivery_id, attempt) DO UPDATE SET
        started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
        status = EXCLUDED.status, error = EXCLUDED.error
)
SELECT id FROM recorded";

/// One outcome waiting for its group.
pub struct RecordJob {
    pub id: String,
    pub token: i64,
    pub state: &'static str,
    pub attempt: i32,
    pub next_at: Option<i64>,
    pub status: Option<i32>,
    pub last_error: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Queues records for the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct RecordWriter {
    jobs: mpsc::UnboundedSender<RecordJob>,
}

impl RecordWriter {
    pub fn start(pool: deadpool_postgres::Pool) -> RecordWriter {
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(run(pool.clone(), queue.clone()));
        }
        RecordWriter { jobs }
    }

    /// Queues `job`; its `reply` gets the outcome after the commit (dropped
    /// unanswered only if the writers are gone: nothing written).
    pub fn record(&self, job: RecordJob) {
        let _ = self.jobs.send(job);
    }
}

async fn run(
    pool: deadpool_postgres::Pool,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<RecordJob>>>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        if queue.lock().await.recv_many(&mut group, MAX_GROUP).await == 0 {
            return;
        }
        let jobs = std::mem::take(&mut group);
        match write(&pool, &jobs).await {
            Ok(written) => {
                for job in jobs {
                    let recorded = if written.contains(&job.id_token()) {
                        Recorded::Written
                    } else {
                        Recorded::Stale
                    };
                    let _ = job.reply.send(Ok(recorded));
                }
            }
            // Nothing of the group was written; each holder tries again
            // (the delivery worker retries a record until the store takes
            // it).
            Err(error) => {
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

impl RecordJob {
    fn id_token(&self) -> (String, i64) {
        (self.id.clone(), self.token)
    }
}

/// Writes the group in one transaction (one statement per round of
/// distinct ids); returns the (id, token) of each record that applied.
async fn write(
    pool: &deadpool_postgres::Pool,
    jobs: &[RecordJob],
) -> Result<HashSet<(String, i64)>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let stmt = tx.prepare_cached(RECORD_MANY).await?;
    // Two records of one delivery (an old holder's and a new one's) go in
    // separate statements: at most one of them applies.
    let mut rounds: Vec<Vec<&RecordJob>> = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for job in jobs {
        let round = seen.entry(job.id.as_str()).or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push(job);
        *round += 1;
    }
    let mut written = HashSet::new();
    for round in rounds {
        let ids: Vec<&str> = round.iter().map(|j| j.id.as_str()).collect();
        let tokens: Vec<i64> = round.iter().map(|j| j.token).collect();
        let states: Vec<&str> = round.iter().map(|j| j.state).collect();
        let attempts: Vec<i32> = round.iter().map(|j| j.attempt).collect();
        let next_at: Vec<Option<i64>> = round.iter().map(|j| j.next_at).collect();
        let statuses: Vec<Option<i32>> = round.iter().map(|j| j.status).collect();
        let last_errors: Vec<Option<&str>> =
            round.iter().map(|j| j.last_error.as_deref()).collect();
        let started: Vec<i64> = round.iter().map(|j| j.started_at).collect();
        let durations: Vec<i64> = round.iter().map(|j| j.duration_ms).collect();
        let errors: Vec<Option<&str>> = round.iter().map(|j| j.error.as_deref()).collect();
        let rows = tx
            .query(
                &stmt,
                &[
                    &ids,
                    &tokens,
                    &states,
                    &attempts,
                    &next_at,
                    &statuses,
                    &last_errors,
                    &started,
                    &durations,
                    &errors,
                ],
            )
            .await?;
        let applied: HashSet<String> = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?;
        for job in round {
            if applied.contains(&job.id) {
                written.insert(job.id_token());
            }
        }
    }
    tx.commit().await?;
    Ok(written)
}
