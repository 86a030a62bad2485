//! The shared store: PostgreSQL (`store.backend: postgres`), for several
//! gateway replicas on one database. The same tables as the embedded store
//! (`crate::store`), in the configured schema, plus the columns a shared
//! store needs: a delivery's lease lives in its row (`lease_token`,
//! `lease_until`), so any replica can take over a delivery whose holder
//! died.
//!
//! - **Connections** come from a pool (deadpool-postgres over
//!   tokio-postgres) that reconnects by itself: when PostgreSQL is down a
//!   call fails within [`WAIT_TIMEOUT`] with a [`StoreError`], and the
//!   next call after it is back gets a fresh connection. Every connection
//!   sets `search_path` to the schema, so statements name bare tables.
//! - **Migrations** are versioned (`schema_migrations`) and run at start-up
//!   under a session advisory lock ([`migrate`]): replicas starting at once
//!   wait for each other, and the second finds nothing left to do.
//! - **Appends** (the request path) go through writer tasks that group
//!   them into one transaction ([`writer`]), as the SQLite writer does;
//!   delivery outcomes are grouped the same way ([`records`]).
//! - **Times**: a row's times are unix ms from the database's clock
//!   (`now_ms()`, a function in the schema), so the clocks of the replicas
//!   cannot disagree about whether a lease ended or a delivery is due.
//!   Times handed in by the caller (a retry's due time, the retention
//!   cutoff) are the caller's, as the trait says.
//! - **Durability** is PostgreSQL's (`synchronous_commit`, replication):
//!   `store.fsync` does not apply. Start-up warns when
//!   `synchronous_commit` is `off`, since a commit could then be lost with
//!   the server after hookgate acknowledged it.
//! - **Secrets**: the URL may hold a password. It is never logged, and
//!   errors carry the driver's messages, which do not include it.
//!
//! Schema (in the configured schema; `\d hookgate.deliveries` in psql):
//!
//! ```sql
//! CREATE TABLE deliveries (
//!   id text PRIMARY KEY, route text NOT NULL,
//!   state text NOT NULL,                -- pending | delivered | dead
//!   received_at bigint NOT NULL, attempts integer NOT NULL,
//!   next_attempt_at bigint NOT NULL,
//!   last_status integer, last_error text, finished_at bigint,
//!   query text, headers text NOT NULL, body bytea NOT NULL,
//!   lease_token bigint,                 -- the holder of the current lease
//!   lease_until bigint,                 -- unix ms, database clock
//!   destination text NOT NULL,          -- migration 2: one row per destination
//!   event_id text NOT NULL,             -- the event (= id for 'upstream')
//!   order_key text,                     -- FIFO per key at the destination
//!   dedup_key text                      -- the dedup key's values, for operators
//! );
//! CREATE TABLE attempts (delivery_id text, attempt integer, started_at bigint,
//!   duration_ms bigint, status integer, error text, PRIMARY KEY (delivery_id, attempt));
//! CREATE TABLE dedup_claims (key bytea PRIMARY KEY, route text, state smallint,
//!   token bigint, expires_at bigint);
//! ```

pub mod migrate;
pub mod records;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use secrecy::SecretString;

use super::StoreError;

/// `store.postgres` (the config module re-exports it).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:5432/db`: holds a password.
    pub url: SecretString,
    /// Where hookgate's tables are (created and migrated at start-up).
    pub schema: String,
    /// Connections per replica.
    pub pool_size: usize,
}

/// Compared by a reload (a change needs a restart), the URL included.
impl PartialEq for PostgresConfig {
    fn eq(&self, other: &Self) -> bool {
        self.url.expose_secret() == other.url.expose_secret()
            && self.schema == other.schema
            && self.pool_size == other.pool_size
    }
}

impl Eq for PostgresConfig {}

/// How long a call waits for a pooled connection (or for a new one to be
/// made) before it fails: a request waits this long at most when
/// PostgreSQL is down.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on making one TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the connection is
/// dropped (the caller gets an error; an append is not acknowledged).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory lock ids (the second half of the key; the first is the hash of
/// the schema name, so two schemas in one database do not share locks).
pub(crate) mod locks {
    pub const MIGRATE: i32 = 1;
    pub const PRUNE_DELIVERED: i32 = 2;
    pub const PRUNE_CLAIMS: i32 = 3;
}

/// A handle to the PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: Arc<str>,
    writer: writer::Writer,
    records: records::RecordWriter,
}

/// Observes each group commit of appends (for the store metrics): how long
/// its commit took, how many appends it carried, and whether it committed.
pub type CommitObserver = Box<dyn Fn(Duration, usize, bool) + Send + Sync>;

impl PgStore {
    /// Connects, migrates the schema (creating it if needed), warns when
    /// `synchronous_commit` is off, and starts the append writer. Fails if
    /// PostgreSQL cannot be reached: start-up stops with a clear error
    /// rather than serving without a store (see docs/configuration.md).
    pub async fn open(
        config: &PostgresConfig,
        observe: CommitObserver,
    ) -> Result<PgStore, StoreError> {
        let pg = connection_config(config)?;
        migrate::run(&pg, &config.schema).await?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(WAIT_TIMEOUT))
            .recycle_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::PostgresSetup {
                detail: e.to_string(),
            })?;
        let store = PgStore {
            writer: writer::Writer::start(pool.clone(), observe),
            records: records::RecordWriter::start(pool.clone()),
            pool,
            schema: config.schema.as_str().into(),
        };
        store.warn_if_not_durable().await?;
        Ok(store)
    }

    /// A pooled connection, its `search_path` on the schema.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The writer that groups appends into one commit.
    pub(crate) fn writer(&self) -> &writer::Writer {
        &self.writer
    }

    /// The writer that groups delivery outcomes into one commit.
    pub(crate) fn records(&self) -> &records::RecordWriter {
        &self.records
    }

    /// Closes the pool: calls from now on fail. For shutdown and tests
    /// (a replica that goes away).
    pub fn close(&self) {
        self.pool.close();
    }

    async fn warn_if_not_durable(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SHOW synchronous_commit", &[]).await?;
        let setting: String = row.get(0);
        if setting == "off" {
            tracing::warn!(
                synchronous_commit = %setting,
                "PostgreSQL's synchronous_commit is off: an event hookgate acknowledged may be lost if the server crashes; set it to on (or remote_apply with replicas) for durable acknowledgements"
            );
        }
        Ok(())
    }

    /// Takes this schema's advisory lock `lock` for the rest of `tx`, if no
    /// other session holds it; false if one does (another replica is doing
    /// the same job).
    pub(crate) async fn try_lock(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        lock: i32,
    ) -> Result<bool, StoreError> {
        let row = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtext($1), $2)",
                &[&&*self.schema, &lock],
            )
            .await?;
        Ok(row.get(0))
    }
}

/// The driver's settings from the URL, plus hookgate's: the schema on the
/// `search_path`, timeouts, keepalives (a dead server is noticed on idle
/// connections too), and an application name for `pg_stat_activity`.
fn connection_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config =
        config
            .url
            .expose_secret()
            .parse()
            .map_err(|_| StoreError::PostgresSetup {
                detail: "store.postgres.url is not a valid PostgreSQL URL".into(),
            })?;
    let search_path = format!("-c search_path={}", config.schema);
    let options = match pg.get_options() {
        Some(theirs) if !theirs.is_empty() => format!("{theirs} {search_path}"),
        _ => search_path,
    };
    pg.options(options);
    if pg.get_application_name().is_none() {
        pg.application_name("hookgate");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    // A server that vanishes without closing its connections (a network
    // partition, a failed-over primary) is noticed within seconds rather
    // than when the kernel gives up (minutes): unacknowledged writes time
    // out after TCP_USER_TIMEOUT, idle connections after the keepalives.
    pg.tcp_user_timeout(TCP_USER_TIMEOUT);
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(10));
    pg.keepalives_interval(Duration::from_secs(2));
    pg.keepalives_retries(3);
    Ok(pg)
}

/// An error and its causes on one line (`db error: ERROR: relation … does
/// not exist`): tokio-postgres's own message names only the kind. Neither
/// the driver's nor the pool's messages include the connection URL.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}
