//! The backends the routes depend on, opened once at start-up and kept
//! across reloads: the dedup backends by name, the async spool, and the
//! readiness probe of each one that `/readyz` must wait for.
//!
//! Adding a dedup backend: a file in `src/dedup/` implementing
//! [`crate::dedup::DedupStore`] with a `build` returning `(SharedDedupStore, Healthcheck)`,
//! one arm in [`Stores::open`], and a run of `tests/dedup_conformance.rs`.
//! A spool store is a [`crate::spool::SpoolStore`] plus its run of
//! `tests/spool_conformance.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::{Config, DedupBackend, DedupMode, Route, StoreBackend, StoreErrorPolicy};
use crate::dedup::{self, SharedDedupStore, StoreError};
use crate::health::Healthcheck;
use crate::spool::{self, Spool};
use crate::store;
use crate::telemetry::Metrics;

/// Every backend a configuration uses.
#[derive(Clone, Default)]
pub struct Stores {
    dedup: HashMap<DedupBackend, SharedDedupStore>,
    /// The async spool (when a route is async).
    spool: Option<Spool>,
    /// What `/readyz` checks, in order.
    health: Vec<Healthcheck>,
}

impl Stores {
    /// Opens the backends `config`'s routes use: the store (`store.backend`:
    /// the SQLite file or PostgreSQL, for `backend: store` dedup and the
    /// spool of async routes) and Redis.
    ///
    /// Readiness waits for the local database (every request that uses it
    /// fails without it) but for Redis only when a route rejects requests
    /// while Redis is down (`on_store_error: reject`): with `accept`, an
    /// outage only degrades dedup, and pulling every replica out of the
    /// load balancer would turn it into an outage.
    pub async fn open(config: &Config, metrics: &Metrics) -> Result<Stores, StoreError> {
        let mut stores = Stores::default();
        let any_async = config.routes.iter().any(Route::spools);
        if any_async || uses(config, DedupBackend::Local) {
            match config.store.backend {
                StoreBackend::Sqlite => stores.open_sqlite(config, metrics, any_async).await?,
                StoreBackend::Postgres => stores.open_postgres(config, metrics, any_async).await?,
            }
        }
        if uses(config, DedupBackend::Redis) {
            let redis = config
                .redis
                .as_ref()
                .expect("validated: routes using redis have a redis block");
            let (store, check) = dedup::RedisStore::build(
                redis.url.expose_secret(),
                &redis.key_prefix,
                redis.timeout,
            )?;
            let required = config.routes.iter().any(|r| {
                matches!(&r.dedup, DedupMode::On(d)
                    if d.backend == DedupBackend::Redis && d.on_store_error == StoreErrorPolicy::Reject)
            });
            stores.add_dedup(DedupBackend::Redis, store, required.then_some(check));
        }
        Ok(stores)
    }

    /// The SQLite file in `data_dir`: `backend: store` dedup and the spool.
    async fn open_sqlite(
        &mut self,
        config: &Config,
        metrics: &Metrics,
        any_async: bool,
    ) -> Result<(), StoreError> {
        let db = open_db(config, metrics)?;
        if uses(config, DedupBackend::Local) {
            let (store, check) = dedup::LocalStore::build(db.clone()).await?;
            self.add_dedup(DedupBackend::Local, store, Some(check));
        }
        if any_async {
            let spool =
                open_spool(config, metrics, Arc::new(spool::SqliteSpoolStore::new(db))).await?;
            let probe = spool.clone();
            self.health.push(Healthcheck::new("local_store", move || {
                let spool = probe.clone();
                async move { spool.check().await }
            }));
            self.spool = Some(spool);
        }
        Ok(())
    }

    /// PostgreSQL, shared by the replicas: `backend: store` dedup and the
    /// spool, on one pool. Readiness waits for it whatever the routes'
    /// `on_store_error` (the spool cannot acknowledge without it, and a
    /// sync route's dedup is as shared as the spool).
    async fn open_postgres(
        &mut self,
        config: &Config,
        metrics: &Metrics,
        any_async: bool,
    ) -> Result<(), StoreError> {
        let settings = config
            .store
            .postgres
            .as_ref()
            .expect("validated: backend postgres has a postgres block");
        let observer = metrics.clone();
        let db = store::postgres::PgStore::open(
            settings,
            Box::new(move |took, _jobs, committed| {
                observer.store_commit(took.as_secs_f64(), committed)
            }),
        )
        .await
        .map_err(StoreError::Local)?;
        let (store, check) = dedup::PostgresStore::build(db.clone());
        if uses(config, DedupBackend::Local) {
            self.add_dedup(DedupBackend::Local, store, None);
        }
        self.health.push(check);
        if any_async {
            let spool = open_spool(
                config,
                metrics,
                Arc::new(spool::PostgresSpoolStore::new(db)),
            )
            .await?;
            self.spool = Some(spool.shared());
        }
        Ok(())
    }

    fn add_dedup(
        &mut self,
        backend: DedupBackend,
        store: SharedDedupStore,
        check: Option<Healthcheck>,
    ) {
        self.dedup.insert(backend, store);
        self.health.extend(check);
    }

    /// The dedup backend named `backend`, if a route of the start-up
    /// configuration used it.
    pub fn dedup(&self, backend: DedupBackend) -> Option<&SharedDedupStore> {
        self.dedup.get(&backend)
    }

    pub fn spool(&self) -> Option<&Spool> {
        self.spool.as_ref()
    }

    /// The readiness probes, in the order `/readyz` runs them.
    pub fn healthchecks(&self) -> &[Healthcheck] {
        &self.health
    }

    /// Every dedup backend (for pruning and the shutdown flush).
    pub fn dedup_backends(&self) -> impl Iterator<Item = &SharedDedupStore> {
        self.dedup.values()
    }

    /// Builds stores from parts, for tests of the components that use them.
    pub fn from_parts(
        dedup: impl IntoIterator<Item = (DedupBackend, SharedDedupStore)>,
        spool: Option<Spool>,
    ) -> Stores {
        Stores {
            dedup: dedup.into_iter().collect(),
            spool,
            health: Vec::new(),
        }
    }
}

fn uses(config: &Config, backend: DedupBackend) -> bool {
    config
        .routes
        .iter()
        .any(|r| matches!(&r.dedup, DedupMode::On(d) if d.backend == backend))
}

fn open_db(config: &Config, metrics: &Metrics) -> Result<store::Db, StoreError> {
    let observer = metrics.clone();
    store::Db::open(
        &config.data_dir,
        config.store.fsync,
        Box::new(move |took, _jobs, committed| {
            observer.store_commit(took.as_secs_f64(), committed)
        }),
    )
    .map_err(StoreError::Local)
}

async fn open_spool(
    config: &Config,
    metrics: &Metrics,
    store: Arc<dyn spool::SpoolStore>,
) -> Result<Spool, StoreError> {
    let routes = config
        .routes
        .iter()
        .filter(|r| r.spools())
        .map(|r| {
            (
                r.name.clone(),
                metrics.route(&r.name, r.verify.secret_count()),
            )
        })
        .collect();
    Spool::open(store, routes).await.map_err(StoreError::Local)
}
