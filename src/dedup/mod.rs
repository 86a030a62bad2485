//! Deduplication by event ID.
//!
//! Invariants (every backend keeps them; `tests/dedup_conformance.rs` checks
//! them against each):
//! - A claim is atomic: of any number of concurrent claims of one key, in
//!   this process or across replicas sharing a backend, exactly one gets
//!   [`Claim::New`].
//! - A claim starts *in flight* with a lease; only [`DedupStore::commit`]
//!   makes it a committed event for the window `ttl`. Until then other
//!   copies get [`Claim::InFlight`] (the sender is told to retry), never a
//!   false "duplicate".
//! - [`DedupStore::release`] and `commit` act only on the caller's own claim
//!   (its token): a claim that expired and was taken over by another copy
//!   is never released or overwritten by the first.
//! - An in-flight claim whose holder died expires with its lease, so a
//!   crash never blocks an event for the whole window.
//!
//! Dedup runs after verification: unverified requests never reach a store.

pub mod filter;
pub mod key;
pub mod local;
pub mod postgres;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use key::{EventKey, KeyTemplate};
pub use local::LocalStore;
pub use postgres::PostgresStore;
pub use redis::RedisStore;

use crate::health::Healthcheck;
use crate::telemetry::DedupResult;

/// Identifies one claim, so its holder alone can commit or release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimToken(pub u64);

impl ClaimToken {
    pub fn random() -> ClaimToken {
        // Never 0, which backends may use as "no token".
        ClaimToken(fastrand::u64(1..))
    }
}

/// The result of claiming an event key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First copy: the caller holds the claim and must commit or release it.
    New(ClaimToken),
    /// The event was already accepted within the window.
    Duplicate,
    /// Another copy holds an uncommitted claim.
    InFlight,
}

impl Claim {
    /// The `result` label of `hookgate_dedup_total`.
    pub fn result(&self) -> DedupResult {
        match self {
            Claim::New(_) => DedupResult::New,
            Claim::Duplicate => DedupResult::Duplicate,
            Claim::InFlight => DedupResult::InFlight,
        }
    }
}

/// The store could not answer; the route's `on_store_error` decides.
///
/// Each variant keeps its cause as `source()`, so a caller can tell a
/// timeout from a refused connection; the message repeats the cause's text
/// so that log lines read as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded store (SQLite) failed.
    #[error("dedup store unavailable: {}", .0.detail())]
    Local(#[source] crate::store::StoreError),
    /// `redis.url` is not a Redis URL.
    #[error("dedup store unavailable: redis url: {0}")]
    RedisUrl(#[source] ::redis::RedisError),
    /// Redis refused or failed the command, or the connection broke.
    #[error("dedup store unavailable: redis: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// Redis did not answer within twice `redis.timeout`.
    #[error("dedup store unavailable: redis: timed out")]
    RedisTimeout,
}

/// One call to a [`DedupStore`], in progress.
pub type DedupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Called when a commit that nobody waited for could not be recorded.
pub type OnCommitFailure = Box<dyn FnOnce(StoreError) + Send + 'static>;

/// A backend that remembers event keys.
///
/// Routes hold their backend as a [`SharedDedupStore`]: the backend is
/// chosen by the configuration at start-up, so a trait object keeps the
/// ingress free of a type parameter and of a hand-written dispatch enum
/// (the price is one boxed future per call, next to a store round trip).
/// A new backend is a file implementing this trait, a `build` function
/// returning it with its [`Healthcheck`], one line in `open_stores`, and
/// a run of `tests/dedup_conformance.rs`.
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key` for `lease` (the longest the caller may hold it uncommitted).
    fn claim<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        lease: Duration,
    ) -> DedupFuture<'a, Claim>;
    /// Marks the caller's claim as an accepted event for `ttl`.
    fn commit<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> DedupFuture<'a, ()>;
    /// Forgets the caller's claim so the sender's retry is processed again.
    fn release<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
    ) -> DedupFuture<'a, ()>;
    /// Cheap health check for readiness.
    fn check(&self) -> DedupFuture<'_, ()>;

    /// Commits the caller's claim, returning as soon as copies of the event
    /// are answered as duplicates; a failure to record it goes to
    /// `on_failure`. By default this is [`DedupStore::commit`], awaited. The
    /// local store answers copies from memory until its row is written, so
    /// the sender's answer need not wait for the write: if that write
    /// fails, `on_failure` is called later, on the store's writer thread.
    fn commit_early<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
        on_failure: OnCommitFailure,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Err(error) = self.commit(route, key, token, ttl).await {
                on_failure(error);
            }
        })
    }

    /// Deletes expired keys; returns how many. Backends whose keys expire
    /// by themselves (Redis) keep this default.
    fn prune_expired(&self) -> DedupFuture<'_, usize> {
        Box::pin(async { Ok(0) })
    }

    /// Waits until every commit handed over so far is recorded (shutdown).
    fn flush(&self) -> DedupFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// A route's dedup backend, shared by every request and the pruner.
pub type SharedDedupStore = Arc<dyn DedupStore>;

/// Readiness probe for a dedup backend: the store's own [`DedupStore::check`],
/// under the component name `/readyz` reports when it fails.
pub fn healthcheck(component: &'static str, store: &SharedDedupStore) -> Healthcheck {
    let store = store.clone();
    Healthcheck::new(component, move || {
        let store = store.clone();
        async move { store.check().await }
    })
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// The messages read as before the causes were kept; each cause is
    /// reachable through `source()`.
    #[test]
    fn store_errors_keep_their_cause_and_their_message() {
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("disk I/O error".into()),
        );
        let local = StoreError::Local(crate::store::StoreError::from(io));
        assert_eq!(
            local.to_string(),
            "dedup store unavailable: sqlite: disk I/O error"
        );
        assert!(local
            .source()
            .and_then(|s| s.downcast_ref::<crate::store::StoreError>())
            .is_some());
        let Err(url) = RedisStore::new("nope://x", "p:", Duration::from_secs(1)) else {
            panic!("not a Redis URL");
        };
        let cause = url.source().expect("the Redis error").to_string();
        assert_eq!(
            url.to_string(),
            format!("dedup store unavailable: redis url: {cause}")
        );
        assert!(matches!(url, StoreError::RedisUrl(_)));
        assert_eq!(
            StoreError::RedisTimeout.to_string(),
            "dedup store unavailable: redis: timed out"
        );
    }
}
