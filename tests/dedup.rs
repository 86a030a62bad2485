//! Dedup end to end: real gateways, a real upstream, SQLite files on disk
//! and a real Redis server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::redis::{shared_redis, unique_prefix, RedisServer};
use support::*;

const SECRET: &str = "dedup-secret";
/// TruTac signs only the body, so its key uses only the body.
const TRUTAC_KEY: &str = "{json:/action}:{json:/clocking/id}";

fn route(name: &str, upstream: &Upstream, dedup: &str) -> String {
    format!(
        "  - name: {name}\n    path: /hooks/{name}\n    ack: sync\n    verify: {{ scheme: trutac, secrets: [\"{SECRET}\"] }}\n    dedup: {dedup}\n    upstream: {{ url: \"{}\", timeout: 5s }}\n",
        upstream.url("/")
    )
}

async fn send_event(gateway: &Gateway, route: &str, body: &str) -> Answer {
    let sig = trutac_signature(SECRET, body.as_bytes());
    post(
        &gateway.url(&format!("/hooks/{route}")),
        &[("TT-Hook-Signature", &sig), ("TT-Hook-Event", "clocking")],
        body.to_string(),
    )
    .await
}

fn clocking(id: u32, sent_at: &str) -> String {
    format!(r#"{{"action":"created","clocking":{{"id":{id}}},"sent_at":"{sent_at}"}}"#)
}

#[tokio::test]
async fn a_retried_event_is_forwarded_once_and_later_copies_are_duplicates() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n{}",
        route("trutac", &upstream, &format!("{{ key: \"{TRUTAC_KEY}\" }}"))
    );
    let gateway = Gateway::start(&yaml).await;

    let first = send_event(&gateway, "trutac", &clocking(1, "10:00")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.get("hookgate-duplicate").is_none());
    // The sender's retry: same event, re-sent later (different body bytes).
    let retry = send_event(&gateway, "trutac", &clocking(1, "10:05")).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.headers["hookgate-duplicate"], "true");
    // A different event goes through.
    assert!(send_event(&gateway, "trutac", &clocking(2, "10:06"))
        .await
        .headers
        .get("hookgate-duplicate")
        .is_none());

    assert_eq!(upstream.received().len(), 2);
    let m = gateway.metrics().await;
    assert_eq!(
        metric_value(&m, r#"hookgate_dedup_total{route="trutac",result="new"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &m,
            r#"hookgate_dedup_total{route="trutac",result="duplicate"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            r#"hookgate_requests_total{route="trutac",outcome="duplicate"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn unverified_requests_never_touch_the_store() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&format!("routes:\n{}", route("trutac", &upstream, "{}"))).await;
    let body = clocking(3, "x");
    let forged = post(
        &gateway.url("/hooks/trutac"),
        &[(
            "TT-Hook-Signature",
            &trutac_signature("wrong", body.as_bytes()),
        )],
        body.clone(),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    // The forged copy did not claim the event: the real one is forwarded.
    let real = send_event(&gateway, "trutac", &body).await;
    assert_eq!(real.status, StatusCode::OK);
    assert!(real.headers.get("hookgate-duplicate").is_none());
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(
        gateway
            .metric(r#"hookgate_dedup_total{route="trutac",result="new"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn fifty_concurrent_copies_reach_the_upstream_once() {
    let upstream = Upstream::with(Duration::from_millis(300), |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let gateway = Gateway::start(&format!("routes:\n{}", route("trutac", &upstream, "{}"))).await;
    let gateway = Arc::new(gateway);
    let body = clocking(4, "x");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (gateway, body) = (gateway.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            send_event(&gateway, "trutac", &body).await
        }));
    }
    let mut forwarded = 0;
    for t in tasks {
        let answer = t.await.unwrap();
        match answer.status {
            StatusCode::OK if answer.headers.get("hookgate-duplicate").is_none() => forwarded += 1,
            StatusCode::OK => {}
            StatusCode::CONFLICT => {
                assert_eq!(answer.error_code(), "in_flight");
                assert!(answer.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(forwarded, 1);
    assert_eq!(upstream.received().len(), 1);
    // Once the first copy is done, a late copy is a plain duplicate.
    let late = send_event(&gateway, "trutac", &body).await;
    assert_eq!(
        (late.status, &late.headers["hookgate-duplicate"]),
        (StatusCode::OK, &"true".parse().unwrap())
    );
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn an_upstream_failure_releases_the_claim_so_the_retry_is_forwarded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"db down"}"#)
        } else {
            json_response(StatusCode::OK, r#"{"ok":true}"#)
        }
    })
    .await;
    let gateway = Gateway::start(&format!("routes:\n{}", route("trutac", &upstream, "{}"))).await;
    let body = clocking(5, "x");
    assert_eq!(
        send_event(&gateway, "trutac", &body).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let retry = send_event(&gateway, "trutac", &body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.headers.get("hookgate-duplicate").is_none());
    let third = send_event(&gateway, "trutac", &body).await;
    assert_eq!(third.headers["hookgate-duplicate"], "true");
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn unreachable_upstream_releases_the_claim_too() {
    let closed = closed_port().await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, verify: {{ scheme: none }}, upstream: {{ url: \"http://{closed}/\" }} }}\n"
    );
    let gateway = Gateway::start(&yaml).await;
    for _ in 0..2 {
        // Both copies were tried (502), neither was told "duplicate".
        let a = post(&gateway.url("/r"), &[], "{\"id\":1}").await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(
        gateway
            .metric(r#"hookgate_dedup_total{route="r",result="new"}"#)
            .await,
        2.0
    );
}

#[tokio::test]
async fn accepted_events_stay_duplicates_across_a_restart() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "data_dir: \"{}\"\nroutes:\n{}",
        dir.path().display(),
        route("trutac", &upstream, "{}")
    );
    let body = clocking(6, "x");
    {
        let mut gateway = Gateway::start(&yaml).await;
        assert_eq!(
            send_event(&gateway, "trutac", &body).await.status,
            StatusCode::OK
        );
        gateway.begin_shutdown().await.unwrap();
    }
    assert!(dir.path().join("hookgate.db").exists());
    let gateway = Gateway::start(&yaml).await;
    let copy = send_event(&gateway, "trutac", &body).await;
    assert_eq!(copy.headers["hookgate-duplicate"], "true");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn missing_key_parts_fall_back_to_the_body_digest_and_are_counted() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n{}",
        route("trutac", &upstream, &format!("{{ key: \"{TRUTAC_KEY}\" }}"))
    );
    let gateway = Gateway::start(&yaml).await;
    // A TruTac ping has no clocking id: keyed by its body instead.
    let ping = r#"{"event":"ping"}"#;
    assert!(send_event(&gateway, "trutac", ping)
        .await
        .headers
        .get("hookgate-duplicate")
        .is_none());
    assert_eq!(
        send_event(&gateway, "trutac", ping).await.headers["hookgate-duplicate"],
        "true"
    );
    assert!(send_event(&gateway, "trutac", r#"{"event":"ping","n":2}"#)
        .await
        .headers
        .get("hookgate-duplicate")
        .is_none());
    assert_eq!(
        gateway
            .metric(r#"hookgate_dedup_key_fallbacks_total{route="trutac"}"#)
            .await,
        3.0
    );
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn a_sender_with_a_signed_event_id_header_is_deduped_by_it() {
    let upstream = Upstream::start().await;
    // Standard Webhooks signs `webhook-id`: it is the natural key, with no
    // dedup block.
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let yaml = format!(
        "routes:\n  - {{ name: sw, path: /sw, ack: sync, verify: {{ scheme: standard_webhooks, secrets: [\"{WHSEC}\"] }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    let send = |id: &'static str, body: &'static str| {
        let url = gateway.url("/sw");
        async move {
            use base64::Engine;
            use hmac::Mac;
            let b64 = base64::engine::general_purpose::STANDARD;
            let key = b64.decode(&WHSEC["whsec_".len()..]).unwrap();
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string();
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.{body}").as_bytes());
            let sig = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
            post(
                &url,
                &[
                    ("webhook-id", id),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &sig),
                ],
                body,
            )
            .await
        }
    };
    assert!(send("msg_1", r#"{"a":1}"#)
        .await
        .headers
        .get("hookgate-duplicate")
        .is_none());
    // Redelivery of msg_1, even with a different body, is a duplicate.
    assert_eq!(
        send("msg_1", r#"{"a":1,"redelivered":true}"#).await.headers["hookgate-duplicate"],
        "true"
    );
    assert!(send("msg_2", r#"{"a":1}"#)
        .await
        .headers
        .get("hookgate-duplicate")
        .is_none());
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn dedup_off_forwards_every_copy() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&format!("routes:\n{}", route("trutac", &upstream, "off"))).await;
    for _ in 0..3 {
        assert_eq!(
            send_event(&gateway, "trutac", &clocking(7, "x"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_forward_each_event_once() {
    let (url, _server) = shared_redis();
    let upstream = Upstream::with(Duration::from_millis(200), |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let yaml = format!(
        "redis: {{ url: \"{url}\", key_prefix: \"{}\" }}\nroutes:\n{}",
        unique_prefix(),
        route("trutac", &upstream, "{ backend: redis }")
    );
    let a = Arc::new(Gateway::start(&yaml).await);
    let b = Arc::new(Gateway::start(&yaml).await);
    let body = clocking(8, "x");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let gateway = if i % 2 == 0 { a.clone() } else { b.clone() };
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            send_event(&gateway, "trutac", &body).await.status
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(upstream.received().len(), 1);
    // Later copies on either replica are duplicates.
    for g in [&a, &b] {
        assert_eq!(
            send_event(g, "trutac", &body).await.headers["hookgate-duplicate"],
            "true"
        );
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_accept_forwards_and_counts_reject_answers_503() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = format!(
        "redis: {{ url: \"{}\", key_prefix: \"{}\", timeout: 300ms }}\nroutes:\n{}{}",
        redis.url,
        unique_prefix(),
        route(
            "lenient",
            &upstream,
            "{ backend: redis, on_store_error: accept }"
        ),
        route(
            "strict",
            &upstream,
            "{ backend: redis, on_store_error: reject }"
        ),
    );
    let gateway = Gateway::start(&yaml).await;
    assert_eq!(
        send_event(&gateway, "lenient", &clocking(9, "x"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&gateway.admin_url("/readyz")).await.status,
        StatusCode::OK
    );

    redis.stop();
    // accept: still forwarded (a duplicate is possible, nothing is lost).
    for id in [10, 11] {
        let a = send_event(&gateway, "lenient", &clocking(id, "x")).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    // reject: 503 with Retry-After, not forwarded.
    let r = send_event(&gateway, "strict", &clocking(12, "x")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(upstream.received().len(), 3);
    let m = gateway.metrics().await;
    assert_eq!(
        metric_value(&m, r#"hookgate_dedup_errors_total{route="lenient"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&m, r#"hookgate_dedup_errors_total{route="strict"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            r#"hookgate_requests_total{route="strict",outcome="store_unavailable"}"#
        ),
        Some(1.0)
    );
    // A route requires Redis (reject), so the instance is not ready.
    let ready = get(&gateway.admin_url("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["failing"], "redis");

    redis.restart();
    let mut recovered = false;
    for _ in 0..100 {
        if send_event(&gateway, "strict", &clocking(13, "x"))
            .await
            .status
            == StatusCode::OK
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "never reconnected to Redis");
    assert_eq!(
        get(&gateway.admin_url("/readyz")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn gateway_starts_while_redis_is_down() {
    let closed = closed_port().await;
    let upstream = Upstream::start().await;
    let yaml = format!(
        "redis: {{ url: \"redis://{closed}/0\", timeout: 200ms }}\nroutes:\n{}",
        route("trutac", &upstream, "{ backend: redis }")
    );
    let gateway = Gateway::start(&yaml).await;
    // accept (default) keeps the instance ready and the events flowing.
    assert_eq!(
        get(&gateway.admin_url("/readyz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send_event(&gateway, "trutac", &clocking(14, "x"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flapping_under_load_causes_no_5xx_and_is_counted() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = format!(
        "redis: {{ url: \"{}\", key_prefix: \"{}\", timeout: 200ms }}\nroutes:\n{}",
        redis.url,
        unique_prefix(),
        route("trutac", &upstream, "{ backend: redis }")
    );
    let gateway = Arc::new(Gateway::start(&yaml).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..4u32 {
        let (gateway, stop) = (gateway.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) && i < 5000 {
                i += 1;
                let body = clocking(sender * 100_000 + i, "x");
                statuses.push(send_event(&gateway, "trutac", &body).await.status);
            }
            statuses
        }));
    }
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.restart();
    }
    // Dedup works again once Redis is back (the connection manager
    // reconnects by itself).
    let before = gateway
        .metric(r#"hookgate_dedup_total{route="trutac",result="new"}"#)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gateway
        .metric(r#"hookgate_dedup_total{route="trutac",result="new"}"#)
        .await
        <= before
    {
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for s in senders {
        let statuses = s.await.unwrap();
        total += statuses.len();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "a request failed while Redis flapped"
        );
    }
    assert!(total > 0);
    assert!(
        gateway
            .metric(r#"hookgate_dedup_errors_total{route="trutac"}"#)
            .await
            >= 1.0
    );
    // Every request was forwarded exactly once (distinct events).
    assert_eq!(upstream.received().len(), total);
}
