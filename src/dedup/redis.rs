//! The shared dedup store: Redis, for several gateway replicas.
//!
//! A key `<key_prefix>dedup:<route>:<hex digest>` holds `p:<token>` while a
//! claim is in flight (expiring with its lease) and `d` once committed
//! (expiring after the window). Claim, commit and release are Lua scripts,
//! so each is one atomic round trip. The connection manager reconnects by
//! itself; every call is bounded by the configured timeout, and a failure
//! is a [`StoreError`] for the route's `on_store_error` policy.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Claim, ClaimToken, DedupFuture, DedupStore, EventKey, SharedDedupStore, StoreError};
use crate::health::Healthcheck;

const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == 'd' then return 2 end
return 3";

const COMMIT: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
  return 1
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    scripts: Arc<[Script; 3]>,
}

impl RedisStore {
    /// Prepares a connection; it is made on first use, so the gateway starts
    /// (and serves routes that do not need Redis) while Redis is down.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::RedisUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(StoreError::Redis)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.into(),
            timeout,
            scripts: Arc::new([
                Script::new(CLAIM),
                Script::new(COMMIT),
                Script::new(RELEASE),
            ]),
        })
    }

    fn key(&self, route: &str, key: &EventKey) -> String {
        format!("{}dedup:{route}:{}", self.prefix, key.hex())
    }

    async fn run(
        &self,
        script: usize,
        key: String,
        args: (String, u64),
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts[script].key(key);
        invocation.arg(args.0).arg(args.1);
        // The connection manager bounds each call too; this also bounds
        // reconnect attempts.
        match tokio::time::timeout(self.timeout * 2, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::RedisTimeout),
        }
    }
}

fn token_value(token: ClaimToken) -> String {
    format!("p:{:x}", token.0)
}

impl RedisStore {
    /// Builds the Redis backend from `redis:` with its readiness probe.
    pub fn build(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(SharedDedupStore, Healthcheck), StoreError> {
        let store: SharedDedupStore = Arc::new(RedisStore::new(url, prefix, timeout)?);
        let check = super::healthcheck("redis", &store);
        Ok((store, check))
    }
}

impl DedupStore for RedisStore {
    fn claim<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        lease: Duration,
    ) -> DedupFuture<'a, Claim> {
        Box::pin(async move {
            let token = ClaimToken::random();
            let lease = lease.as_millis().max(1) as u64;
            match self
                .run(0, self.key(route, key), (token_value(token), lease))
                .await?
            {
                1 => Ok(Claim::New(token)),
                2 => Ok(Claim::Duplicate),
                _ => Ok(Claim::InFlight),
            }
        })
    }

    fn commit<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let ttl = ttl.as_millis().max(1) as u64;
            self.run(1, self.key(route, key), (token_value(token), ttl))
                .await
                .map(|_| ())
        })
    }

    fn release<'a>(
        &'a self,
        route: &'a str,
        key: &'a EventKey,
        token: ClaimToken,
    ) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            self.run(2, self.key(route, key), (token_value(token), 0))
                .await
                .map(|_| ())
        })
    }

    fn check(&self) -> DedupFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(self.timeout * 2, ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(StoreError::Redis(e)),
                Err(_) => Err(StoreError::RedisTimeout),
            }
        })
    }
}
