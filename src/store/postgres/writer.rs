//! Group commit of appends: the request path's one write.
//!
//! [`WRITERS`] tasks per process share the queue: each takes every append
//! queued at that moment (up to [`MAX_GROUP`]) and runs them in one
//! transaction on one connection, as one statement ([`APPEND_MANY`]: the
//! dedup claims and the inserts of the whole group, from arrays), so a
//! group costs a few round trips and one commit however many appends it
//! carries; while one writer waits for its commit, the next gathers the
//! following group. Each caller is answered only after the commit
//! returned; if it fails, every append of the group gets the error and none
//! is acknowledged.
//!
//! One statement cannot claim a key twice, so appends of a key already in
//! the group go into a second statement of the same transaction (and find
//! the first one's claim). A statement that fails aborts a PostgreSQL
//! transaction, and with it the rest of the group. So when one does, the
//! group is rolled back and run again one append at a time ([`APPEND`]),
//! each in a savepoint: the failing one gets its own error, the others
//! commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Statement;

use super::{CommitObserver, StoreError};
use crate::store::Appended;

/// How many queued appends one commit may carry.
const MAX_GROUP: usize = 512;
/// Groups committing at once (each on its own connection of the pool).
pub const WRITERS: usize = 4;

/// [`APPEND`] for a whole group, from arrays (one element per append; keys
/// unique within the statement). A key whose claim is live is left as it
/// is (`WHERE` of `DO UPDATE`): its state before the statement answers
/// (none visible means another transaction just committed it: an async
/// claim is committed at once, so a duplicate).
///
/// Parameters: keys, routes, tokens, ttls (ms), ids, queries, headers,
/// bodies, deliveries (JSON `[{"id", "destination", "order_key"}]`),
/// dedup keys. Rows: id, spooled, state of the key's live claim.
pub const APPEND_MANY: &str = "
WITH clock AS (SELECT now_ms() AS now),
input AS (
    SELECT * FROM unnest($1::bytea[], $2::text[], $3::int8[], $4::int8[], $5::text[],
                         $6::text[], $7::text[], $8::bytea[], $9::text[], $10::text[])
        AS t(key, route, token, ttl, id, query, headers, body, deliveries, dedup_key)
),
claim AS (
    INSERT INTO dedup_claims AS c (key, route, state, token, expires_at)
    SELECT key, route, 1, token, now + ttl FROM input CROSS JOIN clock WHERE key IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET
        route = EXCLUDED.route, state = EXCLUDED.state, token = EXCLUDED.token,
        expires_at = EXCLUDED.expires_at
    WHERE c.expires_at <= now_ms()
    RETURNING c.key
),
spooled AS (
    INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body,
                            destination, event_id, order_key, dedup_key)
    SELECT x.id, i.route, 'pending', clock.now, 0, clock.now, i.query, i.headers, i.body,
           x.destination, i.id, x.order_key, i.dedup_key
    FROM input i CROSS JOIN clock
         CROSS JOIN LATERAL jsonb_to_recordset(i.deliveries::jsonb) AS x(id text, destination text, order_key text)
    WHERE i.key IS NULL OR i.key IN (SELECT key FROM claim)
    RETURNING event_id
)
SELECT i.id, i.id IN (SELECT event_id FROM spooled), old.state
FROM input i LEFT JOIN dedup_claims old ON old.key = i.key";

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
    INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body,
                            destination, event_id, order_key, dedup_key)
    SELECT x.id, $2, 'pending', now, 0, now, $6, $7, $8, x.destination, $5, x.order_key, $10
    FROM clock CROSS JOIN LATERAL jsonb_to_recordset($9::text::jsonb) AS x(id text, destination text, order_key text)
    WHERE $1::bytea IS NULL OR (SELECT token FROM claim) = $3
    RETURNING event_id
)
SELECT (SELECT event_id FROM spooled LIMIT 1), (SELECT state FROM claim)";

/// One append waiting for its group.
pub struct AppendJob {
    pub id: String,
    pub route: String,
    pub query: Option<String>,
    pub headers: String,
    pub body: bytes::Bytes,
    /// JSON `[{"id", "destination", "order_key"}]`: one row each.
    pub deliveries: String,
    pub dedup_key: Option<String>,
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
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let observe = Arc::new(observe);
        for _ in 0..WRITERS {
            tokio::spawn(run(pool.clone(), queue.clone(), observe.clone()));
        }
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
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<AppendJob>>>,
    observe: Arc<CommitObserver>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        // The queue is held only while gathering: the next writer gathers
        // while this one commits.
        if queue.lock().await.recv_many(&mut group, MAX_GROUP).await == 0 {
            return;
        }
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

/// The group in one transaction: one statement per round of distinct keys.
async fn pipelined(
    client: &mut deadpool_postgres::Object,
    jobs: &[AppendJob],
) -> Result<Vec<Appended>, Failed> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Failed::Commit(e.into()))?;
    let stmt = tx
        .prepare_cached(APPEND_MANY)
        .await
        .map_err(|e| Failed::Commit(e.into()))?;
    let mut outcomes: HashMap<String, Appended> = HashMap::with_capacity(jobs.len());
    for round in rounds_of_distinct_keys(jobs) {
        let members: Vec<&AppendJob> = round.iter().map(|&i| &jobs[i]).collect();
        let keys: Vec<Option<&[u8]>> = members
            .iter()
            .map(|j| j.claim.as_ref().map(|c| &c.0[..]))
            .collect();
        let routes: Vec<&str> = members.iter().map(|j| j.route.as_str()).collect();
        let tokens: Vec<i64> = members.iter().map(|j| j.claim.map_or(0, |c| c.1)).collect();
        let ttls: Vec<i64> = members.iter().map(|j| j.claim.map_or(0, |c| c.2)).collect();
        let ids: Vec<&str> = members.iter().map(|j| j.id.as_str()).collect();
        let queries: Vec<Option<&str>> = members.iter().map(|j| j.query.as_deref()).collect();
        let headers: Vec<&str> = members.iter().map(|j| j.headers.as_str()).collect();
        let bodies: Vec<&[u8]> = members.iter().map(|j| &j.body[..]).collect();
        let deliveries: Vec<&str> = members.iter().map(|j| j.deliveries.as_str()).collect();
        let dedup_keys: Vec<Option<&str>> =
            members.iter().map(|j| j.dedup_key.as_deref()).collect();
        let rows = tx
            .query(
                &stmt,
                &[
                    &keys,
                    &routes,
                    &tokens,
                    &ttls,
                    &ids,
                    &queries,
                    &headers,
                    &bodies,
                    &deliveries,
                    &dedup_keys,
                ],
            )
            .await
            // Dropping `tx` rolls it back.
            .map_err(|e| Failed::Statement(e.into()))?;
        for row in rows {
            let outcome = outcome(&row).map_err(Failed::Statement)?;
            outcomes.insert(outcome.0, outcome.1);
        }
    }
    crate::store::commit_gate::before_commit_async().await;
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    jobs.iter()
        .map(|job| {
            outcomes.remove(&job.id).ok_or_else(|| {
                Failed::Commit(StoreError::PostgresSetup {
                    detail: "an append of the group got no answer".into(),
                })
            })
        })
        .collect()
}

/// The jobs (sorted by key) in rounds in which no key repeats: round r
/// holds the (r+1)-th append of each key, as indexes into `jobs`.
fn rounds_of_distinct_keys(jobs: &[AppendJob]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut previous: Option<[u8; 32]> = None;
    let mut repeat = 0;
    for (i, job) in jobs.iter().enumerate() {
        let key = job.claim.map(|c| c.0);
        repeat = match (key, previous) {
            (Some(k), Some(p)) if k == p => repeat + 1,
            _ => 0,
        };
        previous = key;
        if rounds.len() <= repeat {
            rounds.push(Vec::new());
        }
        rounds[repeat].push(i);
    }
    rounds
}

/// One row of [`APPEND_MANY`]: the append's id and what became of it.
fn outcome(row: &tokio_postgres::Row) -> Result<(String, Appended), StoreError> {
    let id: String = row.try_get(0)?;
    let spooled: bool = row.try_get(1)?;
    let state: Option<i16> = row.try_get(2)?;
    let appended = match (spooled, state) {
        (true, _) => Appended::Spooled(id.clone()),
        (false, Some(0)) => Appended::InFlight,
        (false, _) => Appended::Duplicate,
    };
    Ok((id, appended))
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
    crate::store::commit_gate::before_commit_async().await;
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
                &job.deliveries,
                &job.dedup_key,
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
