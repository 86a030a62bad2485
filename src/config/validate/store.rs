//! `store:`: which store, and the settings that apply to it.

use super::super::leaf::Parsed;
use super::super::raw::{RawPostgres, RawStore};
use super::super::{ConfigError, PostgresConfig, StoreBackend, StoreConfig};
use super::At;

/// `backend: postgres` needs its `postgres:` block, and a `postgres:` block
/// needs `backend: postgres` (a forgotten line would otherwise keep events
/// on local disk while the operator believes they are shared). `fsync` is
/// the SQLite file's setting: PostgreSQL's durability is its own
/// (`synchronous_commit`), so `fsync` with `postgres` is refused rather
/// than silently ignored.
pub fn store(raw: RawStore) -> Result<StoreConfig, ConfigError> {
    let at = At::new("store");
    let d = StoreConfig::default();
    let backend = raw.backend.map_or(d.backend, Parsed::into_inner);
    let postgres = match (backend, raw.postgres) {
        (StoreBackend::Postgres, Some(pg)) => Some(postgres(pg)),
        (StoreBackend::Postgres, None) => {
            return Err(at.field("postgres").error(
                "`backend: postgres` needs a `postgres:` block with the database's `url`",
            ))
        }
        (StoreBackend::Sqlite, Some(_)) => {
            return Err(at.field("postgres").error(
                "applies only with `backend: postgres` (the store is the SQLite file in data_dir): set `store.backend: postgres` or remove this block",
            ))
        }
        (StoreBackend::Sqlite, None) => None,
    };
    if backend == StoreBackend::Postgres && raw.fsync.is_some() {
        return Err(at.field("fsync").error(
            "does not apply to PostgreSQL, whose own settings (synchronous_commit, replication) make commits durable: remove it",
        ));
    }
    Ok(StoreConfig {
        backend,
        fsync: raw.fsync.unwrap_or(d.fsync),
        retention: raw.retention.map_or(d.retention, Parsed::into_inner),
        postgres,
    })
}

fn postgres(raw: RawPostgres) -> PostgresConfig {
    PostgresConfig {
        url: raw.url.0 .0,
        schema: raw
            .schema
            .map_or_else(|| PostgresConfig::DEFAULT_SCHEMA.to_string(), |s| s.0 .0),
        pool_size: raw
            .pool_size
            .map_or(PostgresConfig::DEFAULT_POOL_SIZE, |n| n.get() as usize),
    }
}
