//! One conformance suite for every dedup backend: the invariants documented
//! in `src/dedup/mod.rs`, checked against the embedded store (a SQLite file
//! on disk), a real Redis server and a real PostgreSQL server.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::dedup::{
    Claim, ClaimToken, DedupStore, EventKey, LocalStore, PostgresStore, RedisStore,
    SharedDedupStore,
};
use hookgate::health::Healthcheck;
use hookgate::store::postgres::PgStore;
use support::postgres::{PgCluster, TestSchema};
use support::redis::{shared_redis, unique_prefix};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
/// A window long enough that a loaded machine cannot let it pass between a
/// commit and the next claim, short enough to wait out in a test.
const WINDOW: Duration = Duration::from_secs(3);

fn key(n: u8) -> EventKey {
    let mut k = [0u8; 32];
    k[0] = n;
    k[31] = fastrand::u8(..);
    k[1..9].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    EventKey(k)
}

fn token(claim: Claim) -> ClaimToken {
    match claim {
        Claim::New(t) => t,
        other => panic!("expected a new claim, got {other:?}"),
    }
}

/// Claims until the store hands out a new claim (an expiry happened), for
/// at most 10 s.
async fn wait_until_new<S: DedupStore + ?Sized>(store: &S, k: &EventKey) -> ClaimToken {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Claim::New(t) = store.claim("r", k, LONG).await.unwrap() {
            return t;
        }
        assert!(Instant::now() < deadline, "the claim never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The suite, on a backend as the gateway holds it: a trait object built
/// by the backend's `build`, with its readiness probe.
async fn conformance((store, health): (SharedDedupStore, Healthcheck), component: &str) {
    let s = &*store;
    store.check().await.unwrap();
    assert_eq!(health.component(), component);
    health.run().await.unwrap();

    // First copy claims; a second copy meanwhile is in flight; after the
    // commit, copies are duplicates.
    let k = key(1);
    let t = token(s.claim("r", &k, LONG).await.unwrap());
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::InFlight);
    s.commit("r", &k, t, LONG).await.unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);

    // A released claim lets the retry in.
    let k = key(2);
    let t = token(s.claim("r", &k, LONG).await.unwrap());
    s.release("r", &k, t).await.unwrap();
    let t2 = token(s.claim("r", &k, LONG).await.unwrap());
    assert_ne!(t, t2);

    // Release with someone else's token changes nothing.
    let k = key(3);
    let t = token(s.claim("r", &k, LONG).await.unwrap());
    s.release("r", &k, ClaimToken(t.0.wrapping_add(1)))
        .await
        .unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::InFlight);
    // Releasing a committed event does not forget it.
    s.commit("r", &k, t, LONG).await.unwrap();
    s.release("r", &k, t).await.unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);

    // An in-flight claim expires with its lease; the old holder can then
    // neither release nor overwrite the new holder's claim.
    let k = key(4);
    let old = token(s.claim("r", &k, SHORT).await.unwrap());
    let new = wait_until_new(s, &k).await;
    assert_ne!(old, new);
    s.release("r", &k, old).await.unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::InFlight);
    s.commit("r", &k, old, LONG).await.unwrap();
    s.release("r", &k, new).await.unwrap();
    assert!(
        matches!(s.claim("r", &k, LONG).await.unwrap(), Claim::New(_)),
        "the stale holder's commit overwrote the new holder's claim"
    );

    // A committed event is forgotten after its window.
    let k = key(5);
    let t = token(s.claim("r", &k, LONG).await.unwrap());
    s.commit("r", &k, t, WINDOW).await.unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);
    wait_until_new(s, &k).await;

    // A commit after the lease ran out, with nobody else holding the key,
    // still records the event (it was delivered).
    let k = key(6);
    let t = token(s.claim("r", &k, Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.commit("r", &k, t, LONG).await.unwrap();
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);

    // Exactly one winner among 50 concurrent claims.
    let k = key(7);
    let claims = futures_join_all((0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim("r", &k, LONG).await.unwrap() })
    }))
    .await;
    let winners = claims.iter().filter(|c| matches!(c, Claim::New(_))).count();
    assert_eq!(winners, 1, "{claims:?}");
    assert!(claims
        .iter()
        .all(|c| matches!(c, Claim::New(_) | Claim::InFlight)));

    // An early commit answers copies as duplicates once it returns, and a
    // successful one never reports a failure.
    let k = key(40);
    let t = token(s.claim("r", &k, LONG).await.unwrap());
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failed.clone();
    s.commit_early(
        "r",
        &k,
        t,
        LONG,
        Box::new(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst)),
    )
    .await;
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);
    s.flush().await.unwrap();
    assert!(!failed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(s.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);
}

async fn futures_join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let db = hookgate::store::Db::open(dir.path(), true, Box::new(|_, _, _| {})).unwrap();
    conformance(LocalStore::build(db).await.unwrap(), "local_store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let (url, _server) = shared_redis();
    let built = RedisStore::build(&url, &unique_prefix(), Duration::from_secs(1)).unwrap();
    conformance(built, "redis").await;
}

#[tokio::test]
async fn local_store_survives_reopen_and_drops_stale_in_flight_claims() {
    let dir = tempfile::tempdir().unwrap();
    let (committed, in_flight) = (key(8), key(9));
    {
        let s = LocalStore::open(dir.path()).await.unwrap();
        let t = token(s.claim("r", &committed, LONG).await.unwrap());
        s.commit("r", &committed, t, LONG).await.unwrap();
        token(s.claim("r", &in_flight, LONG).await.unwrap());
        assert!(s.path().exists());
    }
    // As after a crash: a new process on the same data_dir.
    let s = LocalStore::open(dir.path()).await.unwrap();
    assert_eq!(
        s.claim("r", &committed, LONG).await.unwrap(),
        Claim::Duplicate
    );
    assert!(matches!(
        s.claim("r", &in_flight, LONG).await.unwrap(),
        Claim::New(_)
    ));
}

#[tokio::test]
async fn local_store_prunes_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path()).await.unwrap();
    for n in 0..5 {
        let k = key(10 + n);
        let t = token(s.claim("r", &k, LONG).await.unwrap());
        s.commit("r", &k, t, Duration::from_millis(1))
            .await
            .unwrap();
    }
    let kept = key(20);
    let t = token(s.claim("r", &kept, LONG).await.unwrap());
    s.commit("r", &kept, t, LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.prune_expired().await.unwrap(), 5);
    assert_eq!(s.prune_expired().await.unwrap(), 0);
    assert_eq!(s.claim("r", &kept, LONG).await.unwrap(), Claim::Duplicate);
}

#[tokio::test]
async fn redis_store_fails_cleanly_while_redis_is_down_and_recovers() {
    let mut server = support::redis::RedisServer::start();
    let store = RedisStore::new(&server.url, &unique_prefix(), Duration::from_millis(300)).unwrap();
    let k = key(30);
    assert!(matches!(
        store.claim("r", &k, LONG).await.unwrap(),
        Claim::New(_)
    ));
    server.stop();
    assert!(store.claim("r", &key(31), LONG).await.is_err());
    assert!(store.check().await.is_err());
    server.restart();
    // The connection manager reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.check().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        store.claim("r", &key(32), LONG).await.unwrap(),
        Claim::New(_)
    ));
}

async fn pg_store(schema: &TestSchema) -> PgStore {
    PgStore::open(&schema.config(), Box::new(|_, _, _| {}))
        .await
        .expect("open the PostgreSQL store")
}

async fn postgres_store(schema: &TestSchema) -> SharedDedupStore {
    PostgresStore::build(pg_store(schema).await).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let schema = TestSchema::new();
    let built = PostgresStore::build(pg_store(&schema).await);
    conformance(built, "postgres_store").await;
}

/// Two replicas on one database see each other's claims, in flight and
/// committed, and of concurrent claims from both exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_claims_are_shared_by_replicas() {
    let schema = TestSchema::new();
    let (a, b) = (postgres_store(&schema).await, postgres_store(&schema).await);
    let k = key(40);
    let t = token(a.claim("r", &k, LONG).await.unwrap());
    assert_eq!(b.claim("r", &k, LONG).await.unwrap(), Claim::InFlight);
    a.commit("r", &k, t, LONG).await.unwrap();
    assert_eq!(b.claim("r", &k, LONG).await.unwrap(), Claim::Duplicate);

    let k = key(41);
    let handles = (0..40).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move { store.claim("r", &k, LONG).await.unwrap() })
    });
    let claims = futures_join_all(handles).await;
    let winners = claims.iter().filter(|c| matches!(c, Claim::New(_))).count();
    assert_eq!(winners, 1, "{claims:?}");
}

#[tokio::test]
async fn postgres_store_prunes_expired_keys() {
    let schema = TestSchema::new();
    let s = postgres_store(&schema).await;
    for n in 0..5 {
        let k = key(50 + n);
        let t = token(s.claim("r", &k, LONG).await.unwrap());
        s.commit("r", &k, t, Duration::from_millis(1))
            .await
            .unwrap();
    }
    let kept = key(60);
    let t = token(s.claim("r", &kept, LONG).await.unwrap());
    s.commit("r", &kept, t, LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.prune_expired().await.unwrap(), 5);
    assert_eq!(s.prune_expired().await.unwrap(), 0);
    assert_eq!(s.claim("r", &kept, LONG).await.unwrap(), Claim::Duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_fails_cleanly_while_postgres_is_down_and_recovers() {
    let cluster = PgCluster::start();
    let schema = TestSchema::on(&cluster.url());
    let store = postgres_store(&schema).await;
    let k = key(70);
    let t = token(store.claim("r", &k, LONG).await.unwrap());
    store.commit("r", &k, t, LONG).await.unwrap();
    cluster.kill();
    assert!(store.claim("r", &key(71), LONG).await.is_err());
    let error = store.check().await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("dedup store unavailable: postgres"),
        "{error}"
    );
    cluster.up();
    // The pool makes new connections by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.check().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.claim("r", &k, LONG).await.unwrap(),
        Claim::Duplicate,
        "the committed key survived the restart"
    );
    assert!(matches!(
        store.claim("r", &key(72), LONG).await.unwrap(),
        Claim::New(_)
    ));
}
