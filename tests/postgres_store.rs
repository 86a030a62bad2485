//! The PostgreSQL store beyond the conformance suite: what sharing one
//! database between replicas needs (migrations run once whoever starts
//! first, a due delivery goes to one replica however many claim at once),
//! and a group commit whose one failing append does not fail the others.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookgate::dedup::EventKey;
use hookgate::spool::{
    Appended, LocalClaim, NewDelivery, NewEvent, PostgresSpoolStore, SpoolStore, UPSTREAM,
};
use hookgate::store::postgres::PgStore;
use http::HeaderMap;
use support::postgres::TestSchema;

const LONG: Duration = Duration::from_secs(600);

async fn open(schema: &TestSchema) -> Arc<PostgresSpoolStore> {
    let db = PgStore::open(&schema.config(), Box::new(|_, _, _| {}))
        .await
        .expect("open the PostgreSQL store");
    Arc::new(PostgresSpoolStore::new(db))
}

fn event(body: String) -> NewEvent {
    NewEvent {
        route: "r".into(),
        headers: HeaderMap::new(),
        query: None,
        body: Bytes::from(body),
        deliveries: vec![NewDelivery::to(UPSTREAM)],
        dedup_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_migrate_the_schema_once() {
    let schema = TestSchema::new();
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let config = schema.config();
            tokio::spawn(async move { PgStore::open(&config, Box::new(|_, _, _| {})).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every replica starts");
    }
    let client = schema.connect().await;
    let versions: Vec<i32> = client
        .query(
            &format!(
                "SELECT version FROM {}.schema_migrations ORDER BY version",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i32> = hookgate::store::postgres::migrate::MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(versions, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_claiming_at_once_never_share_a_delivery() {
    let schema = TestSchema::new();
    let replicas = [
        open(&schema).await,
        open(&schema).await,
        open(&schema).await,
    ];
    let mut appended = HashSet::new();
    for n in 0..60 {
        match replicas[n % 3]
            .append(event(n.to_string()), None)
            .await
            .unwrap()
        {
            Appended::Spooled(id) => assert!(appended.insert(id)),
            other => panic!("{other:?}"),
        }
    }
    let claims: Vec<_> = (0..12)
        .map(|n| {
            let store = replicas[n % 3].clone();
            tokio::spawn(async move { store.claim_due("r", UPSTREAM, 7, LONG).await.unwrap() })
        })
        .collect();
    let mut handed_out = Vec::new();
    for claim in claims {
        handed_out.extend(claim.await.unwrap().into_iter().map(|d| d.lease.id));
    }
    let unique: HashSet<_> = handed_out.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        handed_out.len(),
        "a delivery went to two holders"
    );
    assert_eq!(unique, appended, "12 claims of 7 take all 60");
}

/// Appends made at once share commits; one that fails (its insert refused
/// by a trigger, for one body) fails alone, and the others are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_failing_append_does_not_fail_its_group() {
    let schema = TestSchema::new();
    let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = groups.clone();
    let db = PgStore::open(
        &schema.config(),
        Box::new(move |_, size, committed| seen.lock().unwrap().push((size, committed))),
    )
    .await
    .unwrap();
    let store = Arc::new(PostgresSpoolStore::new(db));
    let client = schema.connect().await;
    let name = &schema.name;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {name}.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.body = convert_to('poison', 'UTF8') THEN RAISE EXCEPTION 'poison'; END IF;
             RETURN NEW; END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON {name}.deliveries
                 FOR EACH ROW EXECUTE FUNCTION {name}.refuse_poison();"
        ))
        .await
        .unwrap();
    let appends: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            let body = if n == 100 {
                "poison".to_string()
            } else {
                n.to_string()
            };
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(n as u64).to_be_bytes());
            tokio::spawn(async move {
                let claim = LocalClaim {
                    key: EventKey(key),
                    ttl: LONG,
                };
                (n, store.append(event(body), Some(claim)).await)
            })
        })
        .collect();
    let mut spooled = 0;
    for append in appends {
        match append.await.unwrap() {
            (100, result) => assert!(result.is_err(), "the poisoned append failed"),
            (_, Ok(Appended::Spooled(_))) => spooled += 1,
            (n, other) => panic!("append {n}: {other:?}"),
        }
    }
    assert_eq!(spooled, 199);
    let groups = groups.lock().unwrap().clone();
    assert!(
        groups.iter().any(|(size, _)| *size > 1),
        "appends made at once share a commit: {groups:?}"
    );
    assert_eq!(store.counts("r").await.unwrap().pending, 199);
    // The failed append left no claim: its key is free.
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {name}.dedup_claims"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 199);
}

/// Records are grouped too: two holders of one delivery recording at once
/// (the one whose lease expired, and the one that took over) are written
/// at most once, and only the latest holder's counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_of_one_delivery_apply_once() {
    use hookgate::spool::{AttemptOutcome, NextState, Recorded};
    let schema = TestSchema::new();
    let store = open(&schema).await;
    for round in 0..5 {
        let Appended::Spooled(id) = store
            .append(event(format!("r{round}")), None)
            .await
            .unwrap()
        else {
            panic!("spooled");
        };
        let old = store
            .claim_due("r", UPSTREAM, 1, Duration::from_millis(50))
            .await
            .unwrap()
            .remove(0)
            .lease;
        let new = loop {
            let mut due = store.claim_due("r", UPSTREAM, 1, LONG).await.unwrap();
            if let Some(d) = due.pop() {
                break d.lease;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(old.id, id);
        assert_eq!(new.id, id);
        let outcome = || AttemptOutcome {
            started_at: hookgate::store::now_ms(),
            duration: Duration::from_millis(3),
            status: Some(200),
            error: None,
            next: NextState::Delivered,
        };
        let (a, b) = tokio::join!(store.record(&old, outcome()), store.record(&new, outcome()));
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (Recorded::Stale, Recorded::Written),
            "round {round}"
        );
        let detail = store.get(&id).await.unwrap().unwrap();
        assert_eq!(detail.attempt_history.len(), 1);
    }
}

/// A database written before fan-out (migration 1 only) keeps its
/// deliveries: each becomes the `upstream` delivery of its own event, and
/// is claimed, with its body, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_before_fan_out_is_migrated_with_its_deliveries() {
    let schema = TestSchema::new();
    let client = schema.connect().await;
    let (version, first) = hookgate::store::postgres::migrate::MIGRATIONS[0];
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {s}; SET search_path TO {s};
             CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             {first}
             INSERT INTO schema_migrations (version) VALUES ({version});
             INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, headers, body)
                 VALUES ('0193-old', 'r', 'pending', 1, 0, 1, '[]', '\\x7b7d');",
            s = schema.name
        ))
        .await
        .unwrap();
    let store = open(&schema).await;
    let due = store.claim_due("r", UPSTREAM, 10, LONG).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].lease.id, "0193-old");
    assert_eq!(due[0].event_id, "0193-old");
    assert_eq!(&due[0].body[..], b"{}");
}
