//! Fan-out end to end: a real gateway delivering each accepted event to
//! several destinations at once — HTTP services, and the real NATS
//! JetStream, RabbitMQ and Redis this machine runs — each delivered,
//! retried, dead-lettered and replayed on its own; FIFO per ordering key;
//! a `Retry-After` honoured; `retry.on` deciding what is retried.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::brokers::{amqp_url, nats_url, redis_url, AmqpQueue, Held, NatsStream, RedisStream};
use support::proxy::Proxy;
use support::*;

const TOKEN: &str = "admin-token-0123456789";
/// Fast retries, so a test waits for hookgate's decisions, not backoff.
const RETRY: &str = "{ max_attempts: 100, initial_backoff: 20ms, max_backoff: 200ms }";

fn config(route: &str) -> String {
    format!(
        "admin: {{ listen: \"127.0.0.1:0\", token: \"{TOKEN}\" }}\nroutes:\n  - name: stripe\n    path: /hooks/stripe\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    dedup: {{ key: \"{{header:X-Event-Id}}\" }}\n    events: {{ from: \"json:/type\" }}\n{route}"
    )
}

async fn send(gateway: &Gateway, id: &str, body: &str) -> Answer {
    post(
        &gateway.url("/hooks/stripe"),
        &[
            ("X-Secret", "s3cret"),
            ("X-Event-Id", id),
            ("Content-Type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

async fn admin(gateway: &Gateway, method: http::Method, path: &str) -> Answer {
    admin_call(gateway, TOKEN, method, path).await
}

/// The bodies a destination holds, by the event id it was sent with.
fn by_delivery_id(held: &[Held]) -> HashMap<String, Vec<u8>> {
    let mut seen = HashMap::new();
    for m in held {
        let id = m.headers["hookgate-delivery-id"].clone();
        assert!(
            seen.insert(id.clone(), m.body.clone()).is_none(),
            "{id} delivered twice"
        );
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_every_destination_kind_once_exactly() {
    let billing = Upstream::start().await;
    let nats = NatsStream::create().await;
    let amqp = AmqpQueue::create().await;
    let redis = RedisStream::create().await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", retry: {RETRY} }}\n      - {{ name: bus, url: \"{}\", nats: {{ subject: \"{}\" }}, retry: {RETRY} }}\n      - {{ name: audit, url: \"{}\", amqp: {{ exchange: \"{}\", routing_key: \"{}\" }}, retry: {RETRY} }}\n      - {{ name: feed, url: \"{}\", redis: {{ stream: \"{}\", maxlen: 1000 }}, retry: {RETRY} }}\n",
        billing.url("/billing"),
        nats_url(),
        nats.subject,
        amqp_url(),
        amqp.exchange,
        amqp.routing_key,
        redis_url(),
        redis.key,
    );
    let gateway = Gateway::start(&config(&route)).await;
    let mut sent = HashMap::new();
    for i in 0..12 {
        // Bytes a re-encoding would change: spacing, escapes, non-ASCII.
        let body =
            format!("{{ \"type\":\"invoice.paid\", \"n\": {i}, \"note\":\"Zoë \\u00e9 ✓\" }}");
        let answer = send(&gateway, &format!("evt_{i}"), &body).await;
        assert_eq!(answer.status, StatusCode::OK);
        let id = answer.json()["id"].as_str().unwrap().to_string();
        sent.insert(id, body.into_bytes());
    }
    // A copy is deduplicated once for the event, not per destination.
    let copy = send(&gateway, "evt_0", "{\"type\":\"invoice.paid\",\"n\":0}").await;
    assert_eq!(copy.headers["hookgate-duplicate"], "true");

    wait_until(
        "all four destinations hold all twelve",
        Duration::from_secs(30),
        || async {
            billing.received().len() >= 12
                && nats.messages().await.len() >= 12
                && amqp.messages().await.len() >= 12
                && redis.messages().await.len() >= 12
        },
    )
    .await;
    let http_held: Vec<Held> = billing
        .received()
        .iter()
        .map(|r| Held {
            body: r.body.to_vec(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect(),
        })
        .collect();
    for (kind, held) in [
        ("http", http_held),
        ("nats", nats.messages().await),
        ("amqp", amqp.messages().await),
        ("redis", redis.messages().await),
    ] {
        assert_eq!(
            by_delivery_id(&held),
            sent,
            "{kind}: every event once, bytes exact"
        );
        for m in &held {
            assert_eq!(m.headers["hookgate-route"], "stripe", "{kind}");
            assert_eq!(m.headers["hookgate-event-type"], "invoice.paid", "{kind}");
            assert_eq!(m.headers["content-type"], "application/json", "{kind}");
            assert!(m.headers["x-event-id"].starts_with("evt_"), "{kind}");
            // The sender's credential is never passed on.
            assert!(
                !m.headers.contains_key("x-secret"),
                "{kind}: {:?}",
                m.headers
            );
            assert!(!m.headers.contains_key("hookgate-trace-context"), "{kind}");
        }
    }
    let deliveries = admin(
        &gateway,
        http::Method::GET,
        "/admin/deliveries?route=stripe&limit=100",
    )
    .await;
    let items = deliveries.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 48, "one delivery per event and destination");
    let destinations: HashSet<&str> = items
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        HashSet::from(["billing", "bus", "audit", "feed"])
    );
    assert!(items.iter().all(|d| d["state"] == "delivered"));
    assert!(items
        .iter()
        .all(|d| d["dedup_key"].as_str().unwrap().starts_with("evt_")));
    for name in ["billing", "bus", "audit", "feed"] {
        let series = format!(
            "hookgate_deliveries_total{{route=\"stripe\",destination=\"{name}\",result=\"delivered\"}}"
        );
        assert_eq!(gateway.metric(&series).await, 12.0, "{series}");
    }
    nats.remove().await;
    amqp.remove().await;
    redis.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destination_holds_back_no_other_and_catches_up_when_back() {
    let billing = Upstream::start().await;
    let down = closed_port().await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", retry: {RETRY} }}\n      - {{ name: audit, url: \"http://{down}/audit\", retry: {RETRY} }}\n",
        billing.url("/billing")
    );
    let gateway = Gateway::start(&config(&route)).await;
    let mut ids = HashSet::new();
    for i in 0..8 {
        let answer = send(&gateway, &format!("evt_{i}"), "{\"type\":\"a\"}").await;
        assert_eq!(answer.status, StatusCode::OK);
        ids.insert(answer.json()["id"].as_str().unwrap().to_string());
    }
    eventually("billing gets every event while audit is down", || {
        billing.received().len() == 8
    })
    .await;
    let audit_retries =
        r#"hookgate_deliveries_total{route="stripe",destination="audit",result="retry"}"#;
    wait_until(
        "audit is being retried",
        Duration::from_secs(20),
        || async { gateway.metric(audit_retries).await >= 8.0 },
    )
    .await;
    let pending = admin(
        &gateway,
        http::Method::GET,
        "/admin/deliveries?route=stripe&destination=audit&state=pending",
    )
    .await;
    assert_eq!(pending.json()["items"].as_array().unwrap().len(), 8);
    // Back on the same address: it gets every event, once.
    let audit = Upstream::at(down, Duration::ZERO, |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    eventually("audit catches up", || audit.received().len() >= 8).await;
    let got: HashSet<String> = audit.delivery_ids().into_iter().collect();
    assert_eq!(got, ids);
    assert_eq!(audit.delivery_ids().len(), 8, "each once");
    assert_eq!(
        billing.delivery_ids().len(),
        8,
        "billing was not sent anything again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_gone_mid_load_gets_every_acknowledged_event_when_it_returns() {
    let nats = NatsStream::create().await;
    let billing = Upstream::start().await;
    let nats_addr: std::net::SocketAddr = nats_url().trim_start_matches("nats://").parse().unwrap();
    let proxy = Proxy::start(nats_addr).await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", retry: {RETRY} }}\n      - {{ name: bus, url: \"nats://{}\", timeout: 2s, nats: {{ subject: \"{}\" }}, retry: {RETRY} }}\n",
        billing.url("/billing"),
        proxy.addr,
        nats.subject
    );
    let gateway = Gateway::start(&config(&route)).await;
    let mut ids = HashSet::new();
    for i in 0..30 {
        if i == 10 {
            proxy.cut();
        }
        let answer = send(&gateway, &format!("evt_{i}"), "{\"type\":\"a\"}").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "acknowledged whatever the broker does"
        );
        ids.insert(answer.json()["id"].as_str().unwrap().to_string());
    }
    eventually("billing is not held back by the broker", || {
        billing.received().len() == 30
    })
    .await;
    proxy.restore();
    wait_until(
        "the stream gets every event",
        Duration::from_secs(40),
        || async { nats.messages().await.len() >= 30 },
    )
    .await;
    let held = nats.messages().await;
    let got: HashSet<String> = held
        .iter()
        .map(|m| m.headers["hookgate-delivery-id"].clone())
        .collect();
    assert_eq!(got, ids, "no acknowledged event lost");
    assert_eq!(
        held.len(),
        30,
        "JetStream dropped any republish (Nats-Msg-Id)"
    );
    nats.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_later_event_waits_for_its_first_while_other_keys_go_on() {
    // The first event of customer c1 fails twice before it is taken.
    let failures = Arc::new(AtomicUsize::new(0));
    let log: Arc<Mutex<Vec<(String, StatusCode)>>> = Arc::default();
    let (fails, seen) = (failures.clone(), log.clone());
    let upstream = Upstream::with(Duration::ZERO, move |r| {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let name = body["name"].as_str().unwrap().to_string();
        let status = if name == "c1-first" && fails.fetch_add(1, Ordering::SeqCst) < 2 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        seen.lock().unwrap().push((name, status));
        json_response(status, "{}")
    })
    .await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", ordering: {{ key: \"{{json:/customer}}\" }}, retry: {{ max_attempts: 10, initial_backoff: 300ms, max_backoff: 300ms }} }}\n",
        upstream.url("/billing")
    );
    let gateway = Gateway::start(&config(&route)).await;
    for (id, customer, name) in [
        ("e1", "c1", "c1-first"),
        ("e2", "c1", "c1-second"),
        ("e3", "c2", "c2-only"),
    ] {
        let body = format!("{{\"type\":\"a\",\"customer\":\"{customer}\",\"name\":\"{name}\"}}");
        assert_eq!(send(&gateway, id, &body).await.status, StatusCode::OK);
    }
    eventually("all three delivered", || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.is_success())
            .count()
            == 3
    })
    .await;
    let log = log.lock().unwrap().clone();
    let names: Vec<&str> = log.iter().map(|(n, _)| n.as_str()).collect();
    let position = |name: &str, nth: usize| {
        names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == name)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{name} #{nth} in {names:?}"))
    };
    // c1's second event only after its first was taken (third attempt).
    assert!(
        position("c1-second", 0) > position("c1-first", 2),
        "{names:?}"
    );
    // c2 did not wait for c1's retries.
    assert!(
        position("c2-only", 0) < position("c1-first", 2),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "c1-second").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_the_whole_destination_until_the_time_it_gave() {
    let times: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let seen = times.clone();
    let upstream = Upstream::with(Duration::ZERO, move |r| {
        let id = r.headers["x-event-id"].to_str().unwrap().to_string();
        let mut times = seen.lock().unwrap();
        times.push((Instant::now(), id));
        if times.len() == 1 {
            let mut answer = json_response(StatusCode::TOO_MANY_REQUESTS, "{}");
            answer
                .headers_mut()
                .insert("retry-after", "3".parse().unwrap());
            answer
        } else {
            json_response(StatusCode::OK, "{}")
        }
    })
    .await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", retry: {{ max_attempts: 10, initial_backoff: 20ms, max_backoff: 1m }} }}\n",
        upstream.url("/billing")
    );
    let gateway = Gateway::start(&config(&route)).await;
    assert_eq!(
        send(&gateway, "e1", "{\"type\":\"a\"}").await.status,
        StatusCode::OK
    );
    eventually("the first attempt was answered 429", || {
        times.lock().unwrap().len() == 1
    })
    .await;
    let paused = r#"hookgate_destination_paused{route="stripe",destination="billing"}"#;
    wait_until(
        "the destination shows as paused",
        Duration::from_secs(20),
        || async { gateway.metric(paused).await == 1.0 },
    )
    .await;
    // Another event during the pause waits too: the whole destination pauses.
    assert_eq!(
        send(&gateway, "e2", "{\"type\":\"a\"}").await.status,
        StatusCode::OK
    );
    eventually("both delivered after the pause", || {
        times.lock().unwrap().len() == 3
    })
    .await;
    let times = times.lock().unwrap().clone();
    let first = times[0].0;
    for (at, id) in &times[1..] {
        assert!(
            at.duration_since(first) >= Duration::from_millis(2900),
            "{id} attempted {:?} after the 429 that asked for 3 s",
            at.duration_since(first)
        );
    }
    assert_eq!(gateway.metric(paused).await, 0.0, "resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_retry_on_does_not_list_is_a_dead_letter_after_one_attempt() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::BAD_REQUEST, r#"{"error":"bad"}"#)
    })
    .await;
    let other = Upstream::start().await;
    let route = format!(
        "    destinations:\n      - {{ name: billing, url: \"{}\", retry: {{ on: [5xx, 429, 408], max_attempts: 10, initial_backoff: 20ms, max_backoff: 100ms }} }}\n      - {{ name: audit, url: \"{}\" }}\n",
        upstream.url("/billing"),
        other.url("/audit")
    );
    let gateway = Gateway::start(&config(&route)).await;
    assert_eq!(
        send(&gateway, "e1", "{\"type\":\"a\"}").await.status,
        StatusCode::OK
    );
    let dead =
        r#"hookgate_deliveries_total{route="stripe",destination="billing",result="dead_letter"}"#;
    wait_until(
        "billing dead-letters the 400",
        Duration::from_secs(20),
        || async { gateway.metric(dead).await == 1.0 },
    )
    .await;
    assert_eq!(upstream.received().len(), 1, "never retried");
    eventually("audit delivered", || other.received().len() == 1).await;
    let letters = admin(
        &gateway,
        http::Method::GET,
        "/admin/dead-letters?route=stripe",
    )
    .await;
    let items = letters.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["destination"], "billing");
    assert_eq!(items[0]["attempts"], 1);
    assert!(items[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("permanent_status"));
    // Replayed at that destination only: audit is not sent it again.
    let replay = admin(
        &gateway,
        http::Method::POST,
        "/admin/dead-letters/replay?route=stripe&destination=billing",
    )
    .await;
    assert_eq!(replay.json()["replayed"], 1);
    eventually("the replay was attempted", || {
        upstream.received().len() == 2
    })
    .await;
    assert_eq!(other.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_route_relays_its_first_destination_and_spools_the_others() {
    let first = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::CREATED, r#"{"booked":true}"#)
    })
    .await;
    let redis = RedisStream::create().await;
    let route = format!(
        "    ack: sync\n    destinations:\n      - {{ name: booking, url: \"{}\" }}\n      - {{ name: feed, url: \"{}\", redis: {{ stream: \"{}\" }}, retry: {RETRY} }}\n",
        first.url("/book"),
        redis_url(),
        redis.key
    );
    let gateway = Gateway::start(&config(&route)).await;
    let answer = send(&gateway, "e1", "{\"type\":\"booking.created\"}").await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "the first destination's answer"
    );
    assert_eq!(&answer.body[..], br#"{"booked":true}"#);
    wait_until(
        "the feed gets the event",
        Duration::from_secs(20),
        || async { redis.messages().await.len() == 1 },
    )
    .await;
    assert_eq!(
        redis.messages().await[0].body,
        b"{\"type\":\"booking.created\"}"
    );
    // A copy is a duplicate for both.
    let copy = send(&gateway, "e1", "{\"type\":\"booking.created\"}").await;
    assert_eq!(copy.headers["hookgate-duplicate"], "true");
    assert_eq!(first.received().len(), 1);
    redis.remove().await;
}

#[test]
fn check_prints_every_destination_and_no_broker_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        config(
            "    destinations:\n      - { name: billing, url: \"http://127.0.0.1:1/b\", ordering: { key: \"{json:/customer}\" }, retry: { on: [5xx, 429] }, rate_limit: { per_second: 50 } }\n      - { name: audit, url: \"amqp://hookgate:Pw-s3cret-9@127.0.0.1:5672/%2f\", amqp: { exchange: webhooks, routing_key: stripe } }\n      - { name: bus, url: \"nats://tok-s3cret@127.0.0.1:4222\", nats: { subject: webhooks.stripe } }\n",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for want in [
        "destination billing http://127.0.0.1:1/b",
        "retried on [5xx, 429] only",
        "at most 50/s",
        "in order per {json:/customer}",
        "destination audit amqp amqp://127.0.0.1:5672/%2f exchange \"webhooks\"",
        "destination bus nats nats://127.0.0.1:4222 subject webhooks.stripe",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destinations_rate_limit_spaces_its_deliveries() {
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = starts.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        seen.lock().unwrap().push(Instant::now());
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let fast = Upstream::start().await;
    let route = format!(
        "    destinations:\n      - {{ name: slow, url: \"{}\", rate_limit: {{ per_second: 10, burst: 1 }} }}\n      - {{ name: fast, url: \"{}\" }}\n",
        upstream.url("/slow"),
        fast.url("/fast")
    );
    let gateway = Gateway::start(&config(&route)).await;
    for i in 0..6 {
        let answer = send(&gateway, &format!("e{i}"), "{\"type\":\"a\"}").await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    eventually("all six at the limited destination", || {
        starts.lock().unwrap().len() == 6
    })
    .await;
    let starts = starts.lock().unwrap().clone();
    // Ten per second with no burst: five gaps of at least ~100 ms.
    let spread = starts[5].duration_since(starts[0]);
    assert!(
        spread >= Duration::from_millis(450),
        "six deliveries within {spread:?}"
    );
    assert_eq!(
        fast.received().len(),
        6,
        "the other destination is not limited"
    );
}
