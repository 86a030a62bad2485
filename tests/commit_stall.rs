//! No acknowledgement for an uncommitted event, shown deterministically:
//! the store's group commit is held at its test seam
//! (`hookgate::store::commit_gate`) while an event is sent; the sender
//! must get no answer and the upstream nothing until the commit happens,
//! then the answer and the delivery follow; on SQLite and on PostgreSQL.
//! The gate is process-wide, so this file is its own test binary and its
//! tests run one at a time.

mod support;

use std::time::Duration;

use hookgate::store::commit_gate::CommitGate;
use http::StatusCode;
use support::*;

/// Closes the gate for the length of one test; tests in this binary take
/// turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(upstream: &str, dedup: &str, store: &str) -> String {
    format!(
        "{store}routes:\n  - name: orders\n    path: /hooks/orders\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    ack: async\n    dedup: {dedup}\n    upstream:\n      url: \"{upstream}\"\n      timeout: 2s\n      retry: {{ max_attempts: 50, initial_backoff: 20ms, max_backoff: 100ms }}\n"
    )
}

async fn send(gateway: &Gateway, body: &'static str) -> Answer {
    post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", "s3cret")],
        body,
    )
    .await
}

/// Waits (off the runtime's threads) until a writer is held at the gate.
async fn held(gate: CommitGate) -> CommitGate {
    tokio::task::spawn_blocking(move || {
        assert!(
            gate.wait_for_held(Duration::from_secs(30)),
            "no commit reached the gate"
        );
        gate
    })
    .await
    .unwrap()
}

async fn no_ack_until_the_commit(dedup: &str, store: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url("/orders"), dedup, store)).await;
    // Start-up's own writes are done, and the path works.
    let first = send(&gateway, r#"{"id":"first"}"#).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    eventually("the first event is delivered", || {
        upstream.received().len() == 1
    })
    .await;

    let gate = CommitGate::close();
    let url = gateway.url("/hooks/orders");
    let pending =
        tokio::spawn(
            async move { post(&url, &[("X-Secret", "s3cret")], r#"{"id":"second"}"#).await },
        );
    let gate = held(gate).await;
    // The event's commit is held. Whatever the gateway does meanwhile, it
    // must not answer the sender, nor deliver the event. (A build that
    // answers before its commit answers within microseconds of reaching
    // the store; this gives it far longer than that to show it.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "the sender was answered while the event's commit was held"
    );
    assert_eq!(upstream.received().len(), 1, "delivered before the commit");

    drop(gate);
    let answer = pending.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    eventually("the second event is delivered after its commit", || {
        upstream.delivery_ids().contains(&id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_ack_until_the_commit() {
    no_ack_until_the_commit("off", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_ack_until_the_commit_with_dedup_in_the_same_transaction() {
    no_ack_until_the_commit("{ key: \"{body_sha256}\" }", "").await;
}

fn postgres(schema: &support::postgres::TestSchema) -> String {
    format!(
        "store:\n  backend: postgres\n  postgres: {{ url: \"{}\", schema: {}, pool_size: 4 }}\n",
        schema.url, schema.name
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_ack_until_the_commit() {
    let schema = support::postgres::TestSchema::new();
    no_ack_until_the_commit("off", &postgres(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_ack_until_the_commit_with_dedup_in_the_same_transaction() {
    let schema = support::postgres::TestSchema::new();
    no_ack_until_the_commit(
        "{ key: \"{body_sha256}\", backend: store }",
        &postgres(&schema),
    )
    .await;
}

/// A sender that hangs up while its event's commit is held: the event is
/// committed all the same (the sender was never answered, so it will send
/// it again, and the copy is a duplicate or delivered twice, never lost).
/// Once committed, it must be counted and delivered like any other, at
/// once: without a poll to find it, and with the pending count back at 0
/// afterwards (not -1, as when the count was left to the hung-up request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_event_whose_sender_hung_up_before_the_commit_is_counted_and_delivered() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url("/orders"), "off", "")).await;
    let first = send(&gateway, r#"{"id":"first"}"#).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    eventually("the first event is delivered", || {
        upstream.received().len() == 1
    })
    .await;
    // And its delivery recorded (the count drops after the record's
    // commit), so that the commit the gate holds next is the new event's.
    let pending = r#"hookgate_spool_pending{route="orders"}"#;
    while gateway.metric(pending).await != 0.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let gate = CommitGate::close();
    let url = gateway.url("/hooks/orders");
    let sender =
        tokio::spawn(
            async move { post(&url, &[("X-Secret", "s3cret")], r#"{"id":"hung-up"}"#).await },
        );
    let gate = held(gate).await;
    // The sender goes away (its connection closes) while the commit waits.
    sender.abort();
    assert!(sender.await.unwrap_err().is_cancelled());
    drop(gate);
    eventually("the hung-up sender's event is delivered", || {
        upstream.received().len() == 2
    })
    .await;
    let mut value = gateway.metric(pending).await;
    while value > 0.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        value = gateway.metric(pending).await;
    }
    assert_eq!(value, 0.0, "pending after every event was delivered");
}
