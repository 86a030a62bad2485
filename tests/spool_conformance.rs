//! One conformance suite for every spool store: the invariants documented
//! in `src/spool/mod.rs`, checked by [`conformance`] against each backend:
//! the SQLite store on a real file in a temporary directory, and PostgreSQL
//! (a schema of its own on the test server, see `support::postgres`). A new
//! backend implements [`Backend`] and gets one `#[tokio::test]` below.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookgate::dedup::EventKey;
use hookgate::spool::{
    Appended, AttemptOutcome, DeliveryState, Due, Lease, ListFilter, LocalClaim, NewDelivery,
    NewEvent, NextState, PostgresSpoolStore, Recorded, Replay, SpoolCounts, SpoolStore,
    SqliteSpoolStore, UPSTREAM,
};
use hookgate::store::postgres::PgStore;
use hookgate::store::{now_ms, Db};
use http::{HeaderMap, HeaderValue};
use support::postgres::TestSchema;

/// Long enough never to expire during a test.
const LONG: Duration = Duration::from_secs(600);
/// Short enough to wait out.
const SHORT: Duration = Duration::from_millis(200);
const HOUR_MS: i64 = 3_600_000;

/// What the suite needs from a backend beyond the trait.
trait Backend {
    type Store: SpoolStore;
    /// A store on a database of its own, empty.
    async fn open(&self) -> Arc<Self::Store>;
    /// The process holding `store` dies without closing anything; a new
    /// store opens the same database.
    async fn crash_and_reopen(&self, store: Arc<Self::Store>) -> Arc<Self::Store>;
    /// From now on (or no longer), inserting a delivery fails inside its
    /// transaction, after the dedup claim was made.
    async fn fail_inserts(&self, store: &Self::Store, fail: bool);
}

async fn conformance<B: Backend>(backend: &B) {
    let store = backend.open().await;
    store.check().await.unwrap();
    append_and_claim(backend, &store).await;
    due_order_and_next_attempt_times(&*store).await;
    attempts_are_recorded_once(&*store).await;
    leases_expire_and_renew(&*store).await;
    dead_letters(&*store).await;
    counts_and_oldest_pending(&*store).await;
    destinations_are_delivered_apart(&*store).await;
    an_ordering_key_is_delivered_first_in_first_out(&*store).await;
    // Pruning is store-wide: on a store of its own.
    retention_prunes_only_delivered(&*backend.open().await).await;
    committed_state_survives_a_crash(backend).await;
}

// ---------------------------------------------------------------------------
// Helpers

fn key(n: u8) -> EventKey {
    let mut k = [0u8; 32];
    k[0] = n;
    k[1..9].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    EventKey(k)
}

fn claim(key: EventKey) -> Option<LocalClaim> {
    Some(LocalClaim {
        key,
        ttl: Duration::from_secs(3600),
    })
}

fn event(route: &str, body: &str) -> NewEvent {
    let mut headers = HeaderMap::new();
    headers.append("x-event", HeaderValue::from_static("order.paid"));
    headers.append("x-event", HeaderValue::from_static("second"));
    NewEvent {
        route: route.to_string(),
        headers,
        query: Some("a=1".into()),
        body: Bytes::from(body.to_string()),
        deliveries: vec![NewDelivery::to(UPSTREAM)],
        dedup_key: None,
    }
}

async fn append<S: SpoolStore>(s: &S, route: &str, body: &str) -> String {
    match s.append(event(route, body), None).await.unwrap() {
        Appended::Spooled(id) => id,
        other => panic!("expected a spooled event, got {other:?}"),
    }
}

fn outcome(next: NextState) -> AttemptOutcome {
    AttemptOutcome {
        started_at: now_ms(),
        duration: Duration::from_millis(7),
        status: Some(503),
        error: None,
        next,
    }
}

fn ids(due: &[Due]) -> Vec<String> {
    due.iter().map(|d| d.lease.id.clone()).collect()
}

async fn state<S: SpoolStore>(s: &S, id: &str) -> DeliveryState {
    s.get(id)
        .await
        .unwrap()
        .expect("delivery exists")
        .summary
        .state
}

async fn record<S: SpoolStore>(s: &S, lease: &Lease, next: NextState) {
    assert_eq!(
        s.record(lease, outcome(next)).await.unwrap(),
        Recorded::Written
    );
}

/// Claims until `want` is handed out (a lease expired), for at most 10 s.
async fn claim_when_due<S: SpoolStore>(s: &S, route: &str, want: &str) -> Due {
    claim_when_due_at(s, route, UPSTREAM, want).await
}

/// [`claim_when_due`] at one destination of the route.
async fn claim_when_due_at<S: SpoolStore>(
    s: &S,
    route: &str,
    destination: &str,
    want: &str,
) -> Due {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let due = s.claim_due(route, destination, 10, LONG).await.unwrap();
        if let Some(d) = due.into_iter().find(|d| d.lease.id == want) {
            return d;
        }
        assert!(Instant::now() < deadline, "{want} never became due again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// The invariants

/// The event and its dedup claim are one transaction.
async fn append_and_claim<B: Backend>(backend: &B, s: &Arc<B::Store>) {
    let route = "append";
    let k = key(1);
    let Appended::Spooled(id) = s.append(event(route, "{\"n\":1}"), claim(k)).await.unwrap() else {
        panic!("the first copy is spooled");
    };
    let detail = s.get(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.route, route);
    assert_eq!(detail.summary.state, DeliveryState::Pending);
    assert_eq!(detail.summary.attempts, 0);
    assert_eq!(detail.body_bytes, 7);
    assert_eq!(
        &detail.body[..],
        b"{\"n\":1}",
        "get returns the body as received"
    );
    assert_eq!(
        detail.headers,
        [("x-event", "order.paid"), ("x-event", "second")].map(|(k, v)| (k.into(), v.into()))
    );
    assert!(detail.attempt_history.is_empty());
    // A copy is a duplicate, and nothing is spooled for it.
    assert_eq!(
        s.append(event(route, "{\"n\":1}"), claim(k)).await.unwrap(),
        Appended::Duplicate
    );
    assert_eq!(s.counts(route).await.unwrap().pending, 1);

    // Of concurrent copies, exactly one is spooled.
    let k = key(2);
    let copies: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.append(event(route, "{}"), claim(k)).await.unwrap() })
        })
        .collect();
    let mut spooled = 0;
    for copy in copies {
        match copy.await.unwrap() {
            Appended::Spooled(_) => spooled += 1,
            Appended::Duplicate => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spooled, 1);
    assert_eq!(s.counts(route).await.unwrap().pending, 2);

    // A failed append leaves no claim: the sender's retry is spooled.
    let k = key(3);
    backend.fail_inserts(s, true).await;
    assert!(s.append(event(route, "{}"), claim(k)).await.is_err());
    backend.fail_inserts(s, false).await;
    assert!(matches!(
        s.append(event(route, "{}"), claim(k)).await.unwrap(),
        Appended::Spooled(_)
    ));
    let listed = s.list(of_route(route, None, 100)).await.unwrap();
    assert_eq!(listed.len(), 3, "the failed append left no event");
}

/// Due deliveries come earliest `next_attempt_at` first, each leased once,
/// and become due again at the time their record says.
async fn due_order_and_next_attempt_times<S: SpoolStore>(s: &S) {
    let route = "due";
    assert_eq!(s.next_due_at(route, UPSTREAM).await.unwrap(), None);
    let (a, b, c) = (
        append(s, route, "a").await,
        append(s, route, "b").await,
        append(s, route, "c").await,
    );
    assert!(s.next_due_at(route, UPSTREAM).await.unwrap().unwrap() <= now_ms());
    let due = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    let mut got = ids(&due);
    got.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(got, want);
    assert!(due
        .iter()
        .all(|d| d.lease.attempt == 1 && d.lease.route == route));
    assert!(due.iter().all(|d| d.query.as_deref() == Some("a=1")));
    assert!(due
        .iter()
        .all(|d| d.headers.get_all("x-event").iter().count() == 2));
    // Leased: not handed out again.
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());

    // Retries due in the past, in the order b, c, a.
    let now = now_ms();
    let by_id = |id: &str| due.iter().find(|d| d.lease.id == id).unwrap().lease.clone();
    record(s, &by_id(&a), NextState::RetryAt(now - 1000)).await;
    record(s, &by_id(&b), NextState::RetryAt(now - 3000)).await;
    record(s, &by_id(&c), NextState::RetryAt(now - 2000)).await;
    let due = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    assert_eq!(ids(&due), [b.clone(), c.clone(), a.clone()]);
    assert!(due.iter().all(|d| d.lease.attempt == 2));

    // One retries later, one is delivered, one is dead: nothing is due, and
    // the next due time is the retry's.
    let later = now + HOUR_MS;
    record(s, &due[0].lease, NextState::RetryAt(later)).await;
    record(s, &due[1].lease, NextState::Delivered).await;
    record(s, &due[2].lease, NextState::Dead("max_attempts")).await;
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.next_due_at(route, UPSTREAM).await.unwrap(), Some(later));
    let retried = s.get(&b).await.unwrap().unwrap().summary;
    assert_eq!(retried.next_attempt_at, Some(later));
    assert_eq!(retried.attempts, 2);
    assert_eq!(retried.last_status, Some(503));
    assert_eq!(
        s.get(&c).await.unwrap().unwrap().summary.next_attempt_at,
        None
    );
    assert_eq!(
        s.counts(route).await.unwrap(),
        SpoolCounts {
            pending: 1,
            dead: 1
        }
    );

    // `limit` bounds a claim; the rest wait for the next one.
    let route = "limit";
    for n in 0..3 {
        append(s, route, &n.to_string()).await;
    }
    let first = s.claim_due(route, UPSTREAM, 2, LONG).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = s.claim_due(route, UPSTREAM, 5, LONG).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(!ids(&first).contains(&rest[0].lease.id));
    // Other routes are not handed out.
    assert!(s
        .claim_due("nobody", UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
}

/// Recording is keyed by delivery id and attempt: at most once.
async fn attempts_are_recorded_once<S: SpoolStore>(s: &S) {
    let route = "once";
    let id = append(s, route, "x").await;
    let first = s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .remove(0)
        .lease;
    let retry = outcome(NextState::RetryAt(now_ms() - 1));
    assert_eq!(
        s.record(&first, retry.clone()).await.unwrap(),
        Recorded::Written
    );
    assert_eq!(s.record(&first, retry).await.unwrap(), Recorded::Stale);
    let detail = s.get(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.attempts, 1);
    assert_eq!(detail.attempt_history.len(), 1);
    assert_eq!(detail.attempt_history[0].attempt, 1);
    assert_eq!(detail.attempt_history[0].duration_ms, 7);

    let second = s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .remove(0)
        .lease;
    assert_eq!(second.attempt, 2);
    // The first attempt's lease cannot record over the second.
    assert_eq!(
        s.record(&first, outcome(NextState::Delivered))
            .await
            .unwrap(),
        Recorded::Stale
    );
    assert_eq!(state(s, &id).await, DeliveryState::Pending);
    record(s, &second, NextState::Delivered).await;
    assert_eq!(
        s.record(&second, outcome(NextState::Dead("max_age")))
            .await
            .unwrap(),
        Recorded::Stale
    );
    let detail = s.get(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.state, DeliveryState::Delivered);
    assert_eq!(detail.summary.attempts, 2);
    assert_eq!(detail.attempt_history.len(), 2);
    // Delivered: never due again.
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.next_due_at(route, UPSTREAM).await.unwrap(), None);
    assert_eq!(s.counts(route).await.unwrap(), SpoolCounts::default());
}

/// A lease expiry makes a delivery due again, for the same attempt; of two
/// holders of one attempt only the first record counts; renewing keeps it.
async fn leases_expire_and_renew<S: SpoolStore>(s: &S) {
    let route = "lease";
    let id = append(s, route, "y").await;
    let old = s
        .claim_due(route, UPSTREAM, 10, SHORT)
        .await
        .unwrap()
        .remove(0)
        .lease;
    let new = claim_when_due(s, route, &id).await.lease;
    assert_eq!(
        new.attempt, old.attempt,
        "an expired lease is the same attempt"
    );
    assert_ne!(new.token, old.token);
    assert!(
        !s.renew(&old, LONG).await.unwrap(),
        "the old holder lost it"
    );
    assert!(s.renew(&new, LONG).await.unwrap());
    record(s, &new, NextState::Delivered).await;
    assert_eq!(
        s.record(&old, outcome(NextState::RetryAt(now_ms())))
            .await
            .unwrap(),
        Recorded::Stale
    );
    let detail = s.get(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.state, DeliveryState::Delivered);
    assert_eq!(detail.attempt_history.len(), 1);
    // A recorded lease is over.
    assert!(!s.renew(&new, LONG).await.unwrap());

    // A renewed lease outlives its first term.
    let id = append(s, route, "z").await;
    let lease = s
        .claim_due(route, UPSTREAM, 10, SHORT)
        .await
        .unwrap()
        .remove(0)
        .lease;
    assert!(s.renew(&lease, LONG).await.unwrap());
    tokio::time::sleep(SHORT * 3).await;
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
    let next = s.next_due_at(route, UPSTREAM).await.unwrap().unwrap();
    assert!(next > now_ms(), "the renewed lease ends in the future");
    record(s, &lease, NextState::Delivered).await;
    assert_eq!(state(s, &id).await, DeliveryState::Delivered);
}

/// Dead letters are listed, replayed (only they) and dropped.
async fn dead_letters<S: SpoolStore>(s: &S) {
    let route = "dead";
    for body in ["1", "2", "3"] {
        append(s, route, body).await;
    }
    let first_leases = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    for d in &first_leases {
        let mut failed = outcome(NextState::Dead("max_attempts"));
        failed.status = Some(500);
        failed.error = Some("HTTP 500".into());
        assert_eq!(s.record(&d.lease, failed).await.unwrap(), Recorded::Written);
    }
    let dead = s
        .list(of_route(route, Some(DeliveryState::Dead), 10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert_eq!(d.state, DeliveryState::Dead);
        assert_eq!(d.next_attempt_at, None);
        assert_eq!(d.last_status, Some(500));
        assert_eq!(
            d.last_error.as_deref(),
            Some("HTTP 500 (dead letter: max_attempts)")
        );
    }
    let pending = s.list(of_route(route, Some(DeliveryState::Pending), 10));
    assert!(pending.await.unwrap().is_empty());
    assert_eq!(
        s.counts(route).await.unwrap(),
        SpoolCounts {
            pending: 0,
            dead: 3
        }
    );
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());

    // One replayed: pending, due now, its attempts counted afresh.
    let one = dead[0].id.clone();
    let moved = s.replay(Replay::One(one.clone())).await.unwrap();
    assert_eq!(moved, [(route.to_string(), 1)]);
    let replayed = s.get(&one).await.unwrap().unwrap().summary;
    assert_eq!(replayed.state, DeliveryState::Pending);
    assert_eq!(replayed.attempts, 0);
    // The lease of the attempt that made it dead cannot record over it.
    let old = first_leases.iter().find(|d| d.lease.id == one).unwrap();
    let late = s.record(&old.lease, outcome(NextState::Delivered));
    assert_eq!(late.await.unwrap(), Recorded::Stale);
    assert_eq!(state(s, &one).await, DeliveryState::Pending);
    let due = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    assert_eq!(ids(&due), std::slice::from_ref(&one));
    assert_eq!(due[0].lease.attempt, 1);
    record(s, &due[0].lease, NextState::Delivered).await;
    let delivered = s.get(&one).await.unwrap().unwrap().summary;
    assert_eq!(
        (delivered.state, delivered.attempts),
        (DeliveryState::Delivered, 1)
    );

    // A delivered event is not a dead letter: not replayed, not dropped.
    assert!(s.replay(Replay::One(one.clone())).await.unwrap().is_empty());
    assert_eq!(s.drop_dead(&one).await.unwrap(), None);
    assert_eq!(state(s, &one).await, DeliveryState::Delivered);
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .replay(Replay::One("no-such-id".into()))
        .await
        .unwrap()
        .is_empty());

    // The rest of the route replayed together.
    let moved = s.replay(Replay::Route(route.into())).await.unwrap();
    assert_eq!(moved, [(route.to_string(), 2)]);
    assert_eq!(
        s.counts(route).await.unwrap(),
        SpoolCounts {
            pending: 2,
            dead: 0
        }
    );
    assert!(s
        .replay(Replay::Route(route.into()))
        .await
        .unwrap()
        .is_empty());

    // Dropped: gone with its attempts; only once.
    let due = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    assert_eq!(due.len(), 2);
    record(s, &due[0].lease, NextState::Dead("max_age")).await;
    let gone = &due[0].lease.id;
    assert_eq!(s.drop_dead(gone).await.unwrap().as_deref(), Some(route));
    assert!(s.get(gone).await.unwrap().is_none());
    assert_eq!(s.drop_dead(gone).await.unwrap(), None);
    // A pending delivery is not dropped either.
    assert_eq!(s.drop_dead(&due[1].lease.id).await.unwrap(), None);
    assert_eq!(
        s.counts(route).await.unwrap(),
        SpoolCounts {
            pending: 1,
            dead: 0
        }
    );
}

/// Counts by state, and the oldest pending event per route.
/// A listing of `route`'s deliveries.
fn of_route(route: &str, state: Option<DeliveryState>, limit: usize) -> ListFilter {
    ListFilter {
        route: Some(route.into()),
        state,
        limit,
        ..ListFilter::default()
    }
}

/// One event for `destinations`, each delivery with its ordering key.
fn fanned_out(route: &str, body: &str, destinations: &[(&str, Option<&str>)]) -> NewEvent {
    NewEvent {
        deliveries: destinations
            .iter()
            .map(|(name, key)| NewDelivery {
                destination: name.to_string(),
                order_key: key.map(str::to_string),
            })
            .collect(),
        dedup_key: Some(format!("key-{body}")),
        ..event(route, body)
    }
}

/// Each destination's delivery of an event is claimed, recorded, listed
/// and replayed on its own; the event's id is the same for all of them.
async fn destinations_are_delivered_apart<S: SpoolStore>(s: &S) {
    let route = "fanout";
    let both = [("billing", None), ("audit", None)];
    let Appended::Spooled(event_id) = s.append(fanned_out(route, "1", &both), None).await.unwrap()
    else {
        panic!("spooled");
    };
    assert_eq!(
        s.counts(route).await.unwrap().pending,
        2,
        "one delivery each"
    );
    let billing = s.claim_due(route, "billing", 10, LONG).await.unwrap();
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0].event_id, event_id);
    assert_eq!(billing[0].lease.destination, "billing");
    assert_eq!(&billing[0].body[..], b"1");
    assert!(
        s.claim_due(route, "billing", 10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert!(s
        .claim_due(route, UPSTREAM, 10, LONG)
        .await
        .unwrap()
        .is_empty());
    // The other destination's delivery is its own.
    let audit = s.claim_due(route, "audit", 10, LONG).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event_id, event_id);
    assert_ne!(audit[0].lease.id, billing[0].lease.id);
    record(s, &billing[0].lease, NextState::Delivered).await;
    record(s, &audit[0].lease, NextState::Dead("max_attempts")).await;
    let listed = s
        .list(ListFilter {
            route: Some(route.into()),
            destination: Some("audit".into()),
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].destination, "audit");
    assert_eq!(listed[0].event_id, event_id);
    assert_eq!(listed[0].dedup_key.as_deref(), Some("key-1"));
    assert_eq!(listed[0].state, DeliveryState::Dead);
    // Replaying another destination's dead letters moves none of audit's.
    let other = Replay::Destination {
        route: route.into(),
        destination: "billing".into(),
    };
    assert!(s.replay(other).await.unwrap().is_empty());
    let audit_only = Replay::Destination {
        route: route.into(),
        destination: "audit".into(),
    };
    assert_eq!(
        s.replay(audit_only).await.unwrap(),
        vec![(route.to_string(), 1)]
    );
    let again = s.claim_due(route, "audit", 10, LONG).await.unwrap();
    assert_eq!(ids(&again), vec![audit[0].lease.id.clone()]);
    assert_eq!(
        state(s, &billing[0].lease.id).await,
        DeliveryState::Delivered
    );
    record(s, &again[0].lease, NextState::Delivered).await;
}

/// While an earlier event's delivery with key K is pending at a
/// destination (leased, or waiting for its retry), later ones with K are
/// not due there; other keys and unkeyed events are; other destinations
/// are not held back.
async fn an_ordering_key_is_delivered_first_in_first_out<S: SpoolStore>(s: &S) {
    let route = "ordered";
    let mut ids_of = Vec::new();
    for (body, key) in [
        ("k1-a", Some("k1")),
        ("k1-b", Some("k1")),
        ("k2-a", Some("k2")),
        ("none", None),
    ] {
        let Appended::Spooled(id) = s
            .append(
                fanned_out(route, body, &[("billing", key), ("audit", None)]),
                None,
            )
            .await
            .unwrap()
        else {
            panic!("spooled");
        };
        ids_of.push(id);
        // Distinct receipt times, so "earlier" is unambiguous.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let bodies = |due: &[Due]| {
        let mut b: Vec<String> = due
            .iter()
            .map(|d| String::from_utf8(d.body.to_vec()).unwrap())
            .collect();
        b.sort();
        b
    };
    let first = s.claim_due(route, "billing", 10, LONG).await.unwrap();
    assert_eq!(
        bodies(&first),
        ["k1-a", "k2-a", "none"],
        "k1-b waits for k1-a"
    );
    let audit = s.claim_due(route, "audit", 10, LONG).await.unwrap();
    assert_eq!(audit.len(), 4, "another destination is not held back");
    // k1-a fails and waits for its retry: k1-b still waits.
    let k1a = first.iter().find(|d| &d.body[..] == b"k1-a").unwrap();
    record(s, &k1a.lease, NextState::RetryAt(now_ms() + 300)).await;
    assert!(s
        .claim_due(route, "billing", 10, LONG)
        .await
        .unwrap()
        .is_empty());
    let next = s.next_due_at(route, "billing").await.unwrap().unwrap();
    assert!(next > now_ms() + 100, "the held-back event is not due now");
    // Once k1-a is delivered, k1-b is due (a k1-b handed out meanwhile
    // would stay leased, and the last claim below would not get it).
    let retried = claim_when_due_at(s, route, "billing", &k1a.lease.id).await;
    assert_eq!(retried.event_id, ids_of[0]);
    record(s, &retried.lease, NextState::Delivered).await;
    let released = s.claim_due(route, "billing", 10, LONG).await.unwrap();
    assert_eq!(bodies(&released), ["k1-b"]);
}

async fn counts_and_oldest_pending<S: SpoolStore>(s: &S) {
    let route = "count";
    assert_eq!(s.counts(route).await.unwrap(), SpoolCounts::default());
    let oldest = |all: Vec<(String, i64)>| all.into_iter().find(|(r, _)| r == route);
    assert_eq!(oldest(s.oldest_pending().await.unwrap()), None);
    let first = append(s, route, "1").await;
    append(s, route, "2").await;
    let received = s.get(&first).await.unwrap().unwrap().summary.received_at;
    assert!(received <= now_ms());
    let (_, at) = oldest(s.oldest_pending().await.unwrap()).unwrap();
    assert!(at <= received, "the oldest is no younger than the first");
    assert_eq!(s.counts(route).await.unwrap().pending, 2);
    for d in s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap() {
        record(s, &d.lease, NextState::Delivered).await;
    }
    assert_eq!(s.counts(route).await.unwrap(), SpoolCounts::default());
    assert_eq!(oldest(s.oldest_pending().await.unwrap()), None);
}

/// Retention deletes delivered deliveries finished before the cutoff, with
/// their attempts; dead letters and pending deliveries stay.
async fn retention_prunes_only_delivered<S: SpoolStore>(s: &S) {
    let route = "prune";
    for body in ["delivered", "dead", "retrying", "new"] {
        append(s, route, body).await;
    }
    let due = s.claim_due(route, UPSTREAM, 3, LONG).await.unwrap();
    record(s, &due[0].lease, NextState::Delivered).await;
    record(s, &due[1].lease, NextState::Dead("max_attempts")).await;
    record(s, &due[2].lease, NextState::RetryAt(now_ms() + HOUR_MS)).await;
    let all = s.list(of_route(route, None, 10)).await.unwrap();
    assert_eq!(all.len(), 4);

    // Finished after the cutoff: kept.
    assert_eq!(s.prune_delivered(now_ms() - HOUR_MS).await.unwrap(), 0);
    assert!(s.get(&due[0].lease.id).await.unwrap().is_some());
    // Before it: only the delivered one goes.
    assert_eq!(s.prune_delivered(now_ms() + HOUR_MS).await.unwrap(), 1);
    assert!(s.get(&due[0].lease.id).await.unwrap().is_none());
    let kept = s.list(of_route(route, None, 10)).await.unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|d| d.state != DeliveryState::Delivered));
    let dead = s.get(&due[1].lease.id).await.unwrap().unwrap();
    assert_eq!(
        dead.attempt_history.len(),
        1,
        "a dead letter keeps its attempts"
    );
    assert_eq!(s.prune_delivered(now_ms() + HOUR_MS).await.unwrap(), 0);
}

/// Everything committed survives a crash; leases do not outlive it.
async fn committed_state_survives_a_crash<B: Backend>(backend: &B) {
    let route = "crash";
    let s = backend.open().await;
    let k = key(9);
    let Appended::Spooled(delivered) = s.append(event(route, "d"), claim(k)).await.unwrap() else {
        panic!("spooled");
    };
    let dead = append(&*s, route, "x").await;
    let due = s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap();
    let by_id = |id: &str| due.iter().find(|d| d.lease.id == id).unwrap().lease.clone();
    record(&*s, &by_id(&delivered), NextState::Delivered).await;
    record(&*s, &by_id(&dead), NextState::Dead("max_attempts")).await;
    // In flight at the crash, and not yet attempted.
    let in_flight = append(&*s, route, "f").await;
    let lease = s
        .claim_due(route, UPSTREAM, 10, SHORT)
        .await
        .unwrap()
        .remove(0)
        .lease;
    assert_eq!(lease.id, in_flight);
    let waiting = append(&*s, route, "w").await;

    let s = backend.crash_and_reopen(s).await;
    assert_eq!(state(&*s, &delivered).await, DeliveryState::Delivered);
    assert_eq!(
        s.get(&delivered)
            .await
            .unwrap()
            .unwrap()
            .attempt_history
            .len(),
        1
    );
    assert_eq!(state(&*s, &dead).await, DeliveryState::Dead);
    assert_eq!(state(&*s, &in_flight).await, DeliveryState::Pending);
    assert_eq!(
        s.counts(route).await.unwrap(),
        SpoolCounts {
            pending: 2,
            dead: 1
        }
    );
    assert_eq!(
        s.append(event(route, "d"), claim(k)).await.unwrap(),
        Appended::Duplicate,
        "the dedup claim survived"
    );
    // Both pending deliveries are handed out again (the interrupted one
    // once its lease is gone), each for its first attempt.
    let mut handed_out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while handed_out.len() < 2 {
        assert!(Instant::now() < deadline, "handed out only {handed_out:?}");
        handed_out.extend(s.claim_due(route, UPSTREAM, 10, LONG).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = ids(&handed_out);
    got.sort();
    let mut want = vec![in_flight, waiting];
    want.sort();
    assert_eq!(got, want);
    assert!(handed_out.iter().all(|d| d.lease.attempt == 1));
}

// ---------------------------------------------------------------------------
// A model: random operations, each checked against a few lines of plain
// bookkeeping. Seeded by `fastrand` (no new dependency); a failure prints
// its seed, and `SPOOL_MODEL_SEED=<seed>` replays it.

/// What the store should hold for one delivery.
#[derive(Debug, Clone)]
struct Modelled {
    state: DeliveryState,
    attempts: u32,
    /// Due now (false: retrying in an hour).
    due: bool,
    lease: Option<Lease>,
}

#[derive(Default)]
struct Model {
    deliveries: std::collections::BTreeMap<String, Modelled>,
    claimed_keys: Vec<EventKey>,
    /// Leases that were recorded already: recording them again is stale.
    spent: Vec<Lease>,
}

impl Model {
    fn ids(&self, f: impl Fn(&Modelled) -> bool) -> Vec<String> {
        let all = self.deliveries.iter();
        all.filter(|(_, d)| f(d))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn counts(&self) -> SpoolCounts {
        let n = |state| self.ids(|d| d.state == state).len() as i64;
        SpoolCounts {
            pending: n(DeliveryState::Pending),
            dead: n(DeliveryState::Dead),
        }
    }
}

fn pick<T: Clone>(rng: &mut fastrand::Rng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.usize(..items.len())].clone())
}

async fn model_run<S: SpoolStore>(s: &S, seed: u64, steps: usize) {
    let route = "model";
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut m = Model::default();
    let keys: Vec<EventKey> = (0..4).map(|n| key(100 + n)).collect();
    for step in 0..steps {
        let op = rng.u8(..100);
        let what = match op {
            0..=29 => model_append(s, &mut m, &mut rng, &keys).await,
            30..=49 => model_claim(s, &mut m, &mut rng).await,
            50..=74 => model_record(s, &mut m, &mut rng).await,
            75..=84 => model_replay(s, &mut m, &mut rng).await,
            85..=94 => model_drop(s, &mut m, &mut rng).await,
            _ => model_prune(s, &mut m).await,
        };
        let ctx = format!("seed {seed}, step {step} ({what})");
        assert_eq!(s.counts(route).await.unwrap(), m.counts(), "{ctx}");
        let listed = s.list(of_route(route, None, 1000)).await.unwrap();
        assert_eq!(listed.len(), m.deliveries.len(), "{ctx}");
        for d in listed {
            let want = &m.deliveries[&d.id];
            assert_eq!(
                (d.state, d.attempts),
                (want.state, want.attempts),
                "{ctx}: {}",
                d.id
            );
        }
    }
}

async fn model_append<S: SpoolStore>(
    s: &S,
    m: &mut Model,
    rng: &mut fastrand::Rng,
    keys: &[EventKey],
) -> &'static str {
    let k = if rng.bool() { pick(rng, keys) } else { None };
    let appended = s
        .append(event("model", "m"), k.and_then(claim))
        .await
        .unwrap();
    match (k, appended) {
        (Some(k), Appended::Duplicate) if m.claimed_keys.contains(&k) => {}
        (k, Appended::Spooled(id)) if !k.is_some_and(|k| m.claimed_keys.contains(&k)) => {
            m.claimed_keys.extend(k);
            let fresh = Modelled {
                state: DeliveryState::Pending,
                attempts: 0,
                due: true,
                lease: None,
            };
            m.deliveries.insert(id, fresh);
        }
        (k, other) => panic!("append with {k:?} answered {other:?}"),
    }
    "append"
}

async fn model_claim<S: SpoolStore>(s: &S, m: &mut Model, rng: &mut fastrand::Rng) -> &'static str {
    let limit = rng.usize(1..5);
    let due = m.ids(|d| d.state == DeliveryState::Pending && d.due && d.lease.is_none());
    let got = s.claim_due("model", UPSTREAM, limit, LONG).await.unwrap();
    assert_eq!(
        got.len(),
        limit.min(due.len()),
        "claim of {limit} with {due:?} due"
    );
    for d in got {
        assert!(due.contains(&d.lease.id), "{} was not due", d.lease.id);
        let modelled = m.deliveries.get_mut(&d.lease.id).unwrap();
        assert_eq!(d.lease.attempt, modelled.attempts + 1);
        modelled.lease = Some(d.lease);
    }
    "claim"
}

async fn model_record<S: SpoolStore>(
    s: &S,
    m: &mut Model,
    rng: &mut fastrand::Rng,
) -> &'static str {
    if rng.u8(..5) == 0 {
        if let Some(spent) = pick(rng, &m.spent) {
            let again = s.record(&spent, outcome(NextState::Delivered)).await;
            assert_eq!(again.unwrap(), Recorded::Stale, "{spent:?} recorded twice");
            return "record a spent lease";
        }
    }
    let leased = m.ids(|d| d.lease.is_some());
    let Some(id) = pick(rng, &leased) else {
        return "record (nothing leased)";
    };
    let (next, state, due) = match rng.u8(..4) {
        0 => (NextState::Delivered, DeliveryState::Delivered, false),
        1 => (NextState::Dead("max_attempts"), DeliveryState::Dead, false),
        2 => (
            NextState::RetryAt(now_ms() - 1),
            DeliveryState::Pending,
            true,
        ),
        _ => (
            NextState::RetryAt(now_ms() + HOUR_MS),
            DeliveryState::Pending,
            false,
        ),
    };
    let d = m.deliveries.get_mut(&id).unwrap();
    let lease = d.lease.take().unwrap();
    assert_eq!(
        s.record(&lease, outcome(next)).await.unwrap(),
        Recorded::Written
    );
    (d.state, d.attempts, d.due) = (state, lease.attempt, due);
    m.spent.push(lease);
    "record"
}

async fn model_replay<S: SpoolStore>(
    s: &S,
    m: &mut Model,
    rng: &mut fastrand::Rng,
) -> &'static str {
    let dead = m.ids(|d| d.state == DeliveryState::Dead);
    let which = match pick(rng, &m.ids(|_| true)) {
        Some(id) if rng.bool() => Replay::One(id),
        _ => Replay::Route("model".into()),
    };
    let replayed = match &which {
        Replay::One(id) => dead.iter().filter(|d| *d == id).cloned().collect(),
        Replay::Route(_) | Replay::Destination { .. } => dead,
    };
    let moved = s.replay(which).await.unwrap();
    let n: i64 = moved.iter().map(|(_, n)| n).sum();
    assert_eq!(n, replayed.len() as i64);
    for id in replayed {
        let d = m.deliveries.get_mut(&id).unwrap();
        (d.state, d.attempts, d.due) = (DeliveryState::Pending, 0, true);
    }
    "replay"
}

async fn model_drop<S: SpoolStore>(s: &S, m: &mut Model, rng: &mut fastrand::Rng) -> &'static str {
    let Some(id) = pick(rng, &m.ids(|_| true)) else {
        return "drop (nothing spooled)";
    };
    let dropped = s.drop_dead(&id).await.unwrap();
    if m.deliveries[&id].state == DeliveryState::Dead {
        assert_eq!(dropped.as_deref(), Some("model"));
        m.deliveries.remove(&id);
    } else {
        assert_eq!(dropped, None, "{id} is not a dead letter");
    }
    "drop"
}

async fn model_prune<S: SpoolStore>(s: &S, m: &mut Model) -> &'static str {
    let delivered = m.ids(|d| d.state == DeliveryState::Delivered);
    let pruned = s.prune_delivered(now_ms() + HOUR_MS).await.unwrap();
    assert_eq!(pruned, delivered.len());
    for id in delivered {
        m.deliveries.remove(&id);
    }
    "prune"
}

/// Seeds that once failed, run every time.
const REGRESSIONS: &[u64] = &[
    // A lease spent on the attempt that dead-lettered an event recorded
    // over the event once it was replayed (fixed: only the latest lease of
    // a delivery records).
    17953412979494054481,
];

async fn model<B: Backend>(backend: &B) {
    let seeds: Vec<u64> = match std::env::var("SPOOL_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("SPOOL_MODEL_SEED is a number")],
        Err(_) => REGRESSIONS
            .iter()
            .copied()
            .chain((0..4).map(|_| fastrand::u64(..)))
            .collect(),
    };
    for seed in seeds {
        // Shown with a failure: SPOOL_MODEL_SEED=<seed> replays it.
        eprintln!("model seed {seed}");
        model_run(&*backend.open().await, seed, 150).await;
    }
}

// ---------------------------------------------------------------------------
// Backends

/// The SQLite store on a file in a temporary directory.
struct Sqlite {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite {
            dirs: Mutex::default(),
        }
    }

    fn open_in(dir: &std::path::Path) -> Arc<SqliteSpoolStore> {
        let db = Db::open(dir, true, Box::new(|_, _, _| {})).unwrap();
        Arc::new(SqliteSpoolStore::new(db))
    }
}

impl Backend for Sqlite {
    type Store = SqliteSpoolStore;

    async fn open(&self) -> Arc<SqliteSpoolStore> {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_in(dir.path());
        self.dirs.lock().unwrap().push(dir);
        store
    }

    async fn crash_and_reopen(&self, store: Arc<SqliteSpoolStore>) -> Arc<SqliteSpoolStore> {
        let dir = store.db().path().parent().unwrap().to_path_buf();
        // Leaked, not closed: its connections stay open and nothing is
        // checkpointed, as when the process is killed. What was committed
        // is in the write-ahead log, which the new store must read.
        std::mem::forget(store);
        assert!(dir.join("hookgate.db-wal").exists());
        Sqlite::open_in(&dir)
    }

    async fn fail_inserts(&self, store: &SqliteSpoolStore, fail: bool) {
        // A trigger on the writer's connection: the claim is made, then the
        // insert fails in the same transaction.
        let sql = if fail {
            "CREATE TEMP TRIGGER fail_inserts BEFORE INSERT ON deliveries
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        } else {
            "DROP TRIGGER temp.fail_inserts"
        };
        store
            .db()
            .write(move |tx| tx.execute_batch(sql))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    conformance(&Sqlite::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_follows_the_model() {
    model(&Sqlite::new()).await;
}

/// PostgreSQL: each store on a schema of its own on the test server,
/// dropped when the backend goes.
struct Postgres {
    schemas: Mutex<Vec<TestSchema>>,
}

impl Postgres {
    fn new() -> Postgres {
        Postgres {
            schemas: Mutex::default(),
        }
    }

    async fn open_on(schema: &TestSchema) -> Arc<PostgresSpoolStore> {
        let db = PgStore::open(&schema.config(), Box::new(|_, _, _| {}))
            .await
            .expect("open the PostgreSQL store");
        Arc::new(PostgresSpoolStore::new(db))
    }

    fn schema_of(&self, store: &PostgresSpoolStore) -> TestSchema {
        let schemas = self.schemas.lock().unwrap();
        let schema = schemas
            .iter()
            .find(|s| s.name == store.db().schema())
            .expect("a schema this backend made");
        // A second handle on the same schema, not dropped by the caller.
        TestSchema {
            name: schema.name.clone(),
            url: schema.url.clone(),
        }
    }
}

impl Backend for Postgres {
    type Store = PostgresSpoolStore;

    async fn open(&self) -> Arc<PostgresSpoolStore> {
        let schema = TestSchema::new();
        let store = Postgres::open_on(&schema).await;
        self.schemas.lock().unwrap().push(schema);
        store
    }

    async fn crash_and_reopen(&self, store: Arc<PostgresSpoolStore>) -> Arc<PostgresSpoolStore> {
        let schema = self.schema_of(&store);
        // The process goes away: its connections close with nothing
        // finished for it; its leases are rows, and expire there.
        store.db().close();
        drop(store);
        let reopened = Postgres::open_on(&schema).await;
        std::mem::forget(schema);
        reopened
    }

    async fn fail_inserts(&self, store: &PostgresSpoolStore, fail: bool) {
        let schema = self.schema_of(store);
        let client = schema.connect().await;
        let name = &schema.name;
        // A trigger: the claim is made, then the insert fails in the same
        // transaction.
        let sql = if fail {
            format!(
                "CREATE FUNCTION {name}.fail_inserts() RETURNS trigger LANGUAGE plpgsql
                     AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
                 CREATE TRIGGER fail_inserts BEFORE INSERT ON {name}.deliveries
                     FOR EACH ROW EXECUTE FUNCTION {name}.fail_inserts();"
            )
        } else {
            format!(
                "DROP TRIGGER fail_inserts ON {name}.deliveries;
                 DROP FUNCTION {name}.fail_inserts();"
            )
        };
        client.batch_execute(&sql).await.unwrap();
        std::mem::forget(schema);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    conformance(&Postgres::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_follows_the_model() {
    model(&Postgres::new()).await;
}
