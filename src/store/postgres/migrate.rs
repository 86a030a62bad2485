//! Versioned schema migrations, run at start-up.
//!
//! Each entry of [`MIGRATIONS`] runs once, in its own transaction with the
//! row that records it in `schema_migrations`. The whole run holds a
//! session advisory lock of the schema on a connection of its own (not a
//! pooled one, so the lock cannot outlive the run on a reused connection):
//! replicas starting at once take turns, and the later ones find every
//! version applied. A migration is never edited once released; a change is
//! a new version.

use tokio_postgres::NoTls;

use super::locks;
use crate::store::StoreError;

/// `(version, SQL)`, in order. The schema is on the `search_path`.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
    "
CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE TABLE dedup_claims (
    key bytea PRIMARY KEY,
    route text NOT NULL,
    state smallint NOT NULL,
    token bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX dedup_claims_expiry ON dedup_claims (expires_at);
CREATE TABLE deliveries (
    id text PRIMARY KEY,
    route text NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    received_at bigint NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at bigint NOT NULL,
    last_status integer,
    last_error text,
    finished_at bigint,
    query text,
    headers text NOT NULL,
    body bytea NOT NULL,
    lease_token bigint,
    lease_until bigint
);
CREATE INDEX deliveries_due ON deliveries (route, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE state = 'delivered';
CREATE INDEX deliveries_dead ON deliveries (route) WHERE state = 'dead';
CREATE INDEX deliveries_pending_age ON deliveries (route, received_at) WHERE state = 'pending';
CREATE INDEX deliveries_received ON deliveries (received_at DESC, id DESC);
CREATE TABLE attempts (
    delivery_id text NOT NULL,
    attempt integer NOT NULL,
    started_at bigint NOT NULL,
    duration_ms bigint NOT NULL,
    status integer,
    error text,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE SEQUENCE lease_tokens;
",
    ),
    (
        2,
        // One delivery per destination of an event (fan-out), FIFO per
        // ordering key, and the dedup key kept for operators.
        "
ALTER TABLE deliveries ADD COLUMN destination text NOT NULL DEFAULT 'upstream';
ALTER TABLE deliveries ADD COLUMN event_id text;
UPDATE deliveries SET event_id = id;
ALTER TABLE deliveries ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE deliveries ADD COLUMN order_key text;
ALTER TABLE deliveries ADD COLUMN dedup_key text;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (route, destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_order ON deliveries (route, destination, order_key, received_at)
    WHERE order_key IS NOT NULL AND state = 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);
",
    ),
];

/// Creates the schema if needed and applies the migrations it lacks.
/// Returns the versions applied by this call.
pub async fn run(pg: &tokio_postgres::Config, schema: &str) -> Result<Vec<i32>, StoreError> {
    let (mut client, connection) = pg.connect(NoTls).await?;
    // Ends when `client` is dropped at the end of this function, which
    // closes the session and so releases its advisory lock whatever happened.
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %super::describe(&error), "migration connection ended");
        }
    });
    client
        .execute(
            "SELECT pg_advisory_lock(hashtext($1), $2)",
            &[&schema, &locks::MIGRATE],
        )
        .await?;
    // The schema name is validated as an identifier (config::leaf).
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
    let current: i32 = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .await?
        .get(0);
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(schema, version, "store schema migrated");
        applied.push(*version);
    }
    drop(client);
    let _ = connection.await;
    Ok(applied)
}
