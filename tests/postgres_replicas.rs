//! Several gateway processes (the built binary) on one PostgreSQL store:
//! any replica acknowledges, any replica delivers, and losing replicas or
//! the database for a while loses no acknowledged event.
//!
//! The shared test server holds each test's own schema; the test that
//! restarts PostgreSQL runs a private cluster (`support::postgres`).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::postgres::{PgCluster, TestSchema};
use support::{
    closed_port, get, json_response, post, process_config, wait_until, GatewayProcess,
    ProcessConfig, Upstream,
};

/// Generous: a delivery whose holder died waits for its lease (the
/// upstream timeout plus the worker's 30 s margin) before another replica
/// takes it.
const PATIENCE: Duration = Duration::from_secs(120);

/// A replica's config: its own ports and data_dir, the shared schema, one
/// async route with dedup in the store.
fn replica(schema: &TestSchema, upstream: &str) -> (tempfile::TempDir, ProcessConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(
        dir.path(),
        &format!(
            "store:\n  backend: postgres\n  postgres: {{ url: \"{}\", schema: {}, pool_size: 4 }}\nroutes:\n  - name: orders\n    path: /hooks/orders\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    ack: async\n    dedup: {{ key: \"{{json:/id}}\", backend: store }}\n    upstream:\n      url: \"{upstream}\"\n      timeout: 1s\n      retry: {{ max_attempts: 1000, initial_backoff: 20ms, max_backoff: 200ms }}\n",
            schema.url, schema.name
        ),
    );
    (dir, config)
}

fn hook(config: &ProcessConfig) -> String {
    format!("http://127.0.0.1:{}/hooks/orders", config.ingress)
}

fn admin(config: &ProcessConfig, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", config.admin)
}

async fn send(config: &ProcessConfig, id: &str) -> support::Answer {
    post(
        &hook(config),
        &[("X-Secret", "s3cret")],
        format!("{{\"id\":\"{id}\"}}"),
    )
    .await
}

fn text(answer: &support::Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

/// How many times the upstream received each delivery id.
fn received_counts(upstream: &Upstream) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in upstream.delivery_ids() {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

async fn pending(config: &ProcessConfig) -> usize {
    let answer = get(&admin(config, "/admin/deliveries?state=pending")).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.json()["items"]
        .as_array()
        .map_or(usize::MAX, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_acks_dedup_and_delivery_and_a_survivor_delivers_everything() {
    let schema = TestSchema::new();
    let upstream_addr = closed_port().await;
    let upstream_url = format!("http://{upstream_addr}/");
    let configs: Vec<_> = (0..3).map(|_| replica(&schema, &upstream_url)).collect();
    let mut replicas: Vec<GatewayProcess> = configs
        .iter()
        .map(|(_, c)| GatewayProcess::spawn(&c.file))
        .collect();

    // The upstream is down: every replica acknowledges (the events are in
    // the database), and a copy sent to another replica is a duplicate.
    let mut acked = Vec::new();
    for n in 0..30 {
        let id = format!("evt-{n}");
        let first = &configs[n % 3].1;
        let answer = send(first, &id).await;
        assert_eq!(answer.status, StatusCode::OK, "{id}: {}", text(&answer));
        acked.push(answer.json()["id"].as_str().unwrap().to_string());
        let other = &configs[(n + 1) % 3].1;
        let copy = send(other, &id).await;
        assert_eq!(copy.status, StatusCode::OK, "{id}");
        assert_eq!(
            copy.headers["hookgate-duplicate"], "true",
            "{id}: a copy at another replica"
        );
    }
    // Each replica lists every event, whoever acknowledged it.
    for (_, config) in &configs {
        assert_eq!(pending(config).await, acked.len());
    }

    // Two replicas die without a word.
    for mut gone in replicas.drain(1..) {
        gone.child.kill().unwrap();
        gone.child.wait().unwrap();
    }
    let survivor = &configs[0].1;

    let upstream = Upstream::at(upstream_addr, Duration::ZERO, |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    wait_until(
        "the survivor delivered every acknowledged event",
        PATIENCE,
        || async {
            let got = received_counts(&upstream);
            acked.iter().all(|id| got.contains_key(id)) && pending(survivor).await == 0
        },
    )
    .await;
    let got = received_counts(&upstream);
    for id in &acked {
        assert_eq!(got[id], 1, "{id} was delivered {} times", got[id]);
    }
    assert_eq!(
        got.len(),
        acked.len(),
        "only acknowledged events reached the upstream: {got:?}"
    );
    replicas.remove(0).terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_replica_died_in_flight_is_delivered_by_another_after_its_lease() {
    let schema = TestSchema::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let upstream = Upstream::gated(gate.clone()).await;
    let (_a_dir, a_config) = replica(&schema, &upstream.url("/"));
    let (_b_dir, b_config) = replica(&schema, &upstream.url("/"));

    // Only A runs: it takes the delivery, and the upstream holds it open.
    let mut a = GatewayProcess::spawn(&a_config.file);
    let answer = send(&a_config, "in-flight").await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    wait_until("A is delivering", PATIENCE, || {
        std::future::ready(upstream.delivery_ids() == [id.clone()])
    })
    .await;
    let b = GatewayProcess::spawn(&b_config.file);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // From now on the upstream answers (A's held request is gone with A).
    gate.add_permits(100);

    wait_until(
        "B delivered it after A's lease ran out",
        PATIENCE,
        || async {
            let detail = get(&admin(&b_config, &format!("/admin/deliveries/{id}"))).await;
            detail.status == StatusCode::OK && detail.json()["state"] == "delivered"
        },
    )
    .await;
    let ids = upstream.delivery_ids();
    assert_eq!(ids, [id.clone(), id.clone()], "sent by A, then once by B");
    let attempts: Vec<_> = upstream
        .received()
        .iter()
        .map(|r| r.headers["hookgate-attempt"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(attempts, ["1", "1"], "A never recorded its attempt");
    let detail = get(&admin(&b_config, &format!("/admin/deliveries/{id}"))).await;
    assert_eq!(detail.json()["attempts"], 1);
    b.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_loses_no_acknowledged_event_and_service_resumes() {
    let cluster = PgCluster::start();
    let schema = TestSchema::on(&cluster.url());
    let upstream = Upstream::start().await;
    let (_dir, config) = replica(&schema, &upstream.url("/"));
    let gateway = GatewayProcess::spawn(&config.file);

    // Senders keep posting while the database goes away and comes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (stop, answers, url) = (stop.clone(), answers.clone(), hook(&config));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let body = format!("{{\"id\":\"s{sender}-{n}\"}}");
                    let a = post(&url, &[("X-Secret", "s3cret")], body).await;
                    answers.lock().unwrap().push(a);
                    n += 1;
                }
            })
        })
        .collect();
    let count = |ok: bool| {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.status.is_success() == ok)
            .count()
    };
    wait_until("acknowledgements before the restart", PATIENCE, || {
        std::future::ready(count(true) >= 50)
    })
    .await;

    cluster.kill();
    wait_until(
        "store_unavailable answers while it is down",
        PATIENCE,
        || std::future::ready(count(false) >= 20),
    )
    .await;
    let ready = get(&admin(&config, "/readyz")).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        text(&ready)
    );
    assert!(text(&ready).contains("postgres_store"), "{}", text(&ready));
    let acked_before_up = count(true);

    cluster.up();
    wait_until(
        "acknowledgements again, without a restart of hookgate",
        PATIENCE,
        || std::future::ready(count(true) >= acked_before_up + 50),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    wait_until("ready again", PATIENCE, || async {
        get(&admin(&config, "/readyz")).await.status == StatusCode::OK
    })
    .await;

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let mut acked = HashSet::new();
    for a in &answers {
        if a.status.is_success() {
            acked.insert(a.json()["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", text(a));
            assert_eq!(a.error_code(), "store_unavailable");
            assert!(a.headers.contains_key("retry-after"));
        }
    }
    // Nothing acknowledged was lost: every one is in the store and reaches
    // the upstream.
    for id in &acked {
        let detail = get(&admin(&config, &format!("/admin/deliveries/{id}"))).await;
        assert_eq!(
            detail.status,
            StatusCode::OK,
            "acknowledged {id} is not in the store"
        );
    }
    wait_until("every acknowledged event delivered", PATIENCE, || {
        let got: HashSet<String> = upstream.delivery_ids().into_iter().collect();
        std::future::ready(acked.iter().all(|id| got.contains(id)))
    })
    .await;
    assert!(
        !gateway.log().iter().any(|l| l.contains("postgres://")),
        "the URL appears in the log"
    );
    gateway.terminate();
}

/// Sync routes with `dedup.backend: store` on PostgreSQL: copies at another
/// replica are duplicates; while the database is down each route follows
/// its `on_store_error`; then dedup works again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_routes_dedup_in_postgres_and_follow_on_store_error_while_it_is_down() {
    let cluster = PgCluster::start();
    let schema = TestSchema::on(&cluster.url());
    let upstream = Upstream::start().await;
    let route = |name: &str, policy: &str| {
        format!(
            "  - name: {name}\n    path: /hooks/{name}\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    ack: sync\n    dedup: {{ key: \"{{json:/id}}\", backend: store, on_store_error: {policy} }}\n    upstream: {{ url: \"{}\", timeout: 2s }}\n",
            upstream.url("/")
        )
    };
    let yaml = format!(
        "store:\n  backend: postgres\n  postgres: {{ url: \"{}\", schema: {} }}\nroutes:\n{}{}",
        schema.url,
        schema.name,
        route("strict", "reject"),
        route("lenient", "accept")
    );
    let a = support::Gateway::start(&yaml).await;
    let b = support::Gateway::start(&yaml).await;
    let send_to = |gateway: &support::Gateway, route: &str, id: &str| {
        let (url, body) = (
            gateway.url(&format!("/hooks/{route}")),
            format!("{{\"id\":\"{id}\"}}"),
        );
        async move { post(&url, &[("X-Secret", "s3cret")], body).await }
    };
    assert_eq!(send_to(&a, "strict", "s-1").await.status, StatusCode::OK);
    let copy = send_to(&b, "strict", "s-1").await;
    assert_eq!(
        copy.headers["hookgate-duplicate"],
        "true",
        "{}",
        text(&copy)
    );
    assert_eq!(upstream.received().len(), 1);

    cluster.kill();
    let refused = send_to(&a, "strict", "s-2").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.error_code(), "store_unavailable");
    assert!(refused.headers.contains_key("retry-after"));
    let forwarded = send_to(&a, "lenient", "l-1").await;
    assert_eq!(
        forwarded.status,
        StatusCode::OK,
        "accept: forwarded without dedup"
    );
    assert_eq!(upstream.received().len(), 2);
    assert_eq!(
        get(&a.admin_url("/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    cluster.up();
    wait_until("dedup works again", PATIENCE, || async {
        send_to(&a, "strict", "s-2").await.status == StatusCode::OK
    })
    .await;
    let copy = send_to(&b, "strict", "s-2").await;
    assert_eq!(copy.headers["hookgate-duplicate"], "true");
    assert_eq!(get(&a.admin_url("/readyz")).await.status, StatusCode::OK);
}

/// With PostgreSQL unreachable at start-up the gateway stops at once with
/// a clear error that does not show the password.
#[tokio::test]
async fn start_up_fails_fast_and_clearly_when_postgres_is_unreachable() {
    let port = closed_port().await.port();
    let schema = TestSchema::on(&format!(
        "postgres://hookgate:hunter2-secret@127.0.0.1:{port}/db"
    ));
    let (_dir, config) = replica(&schema, "http://127.0.0.1:9/");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve", "--config"])
        .arg(&config.file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot open the store"), "{stderr}");
    assert!(stderr.contains("postgres"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
    std::mem::forget(schema);
}

/// `hookgate check` names the store and shows the URL without its password.
#[test]
fn check_shows_the_postgres_store_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        "store:\n  backend: postgres\n  postgres: { url: \"${PG_URL}\", schema: edge }\nroutes:\n  - name: orders\n    path: /hooks/orders\n    verify: { scheme: header, header: X-Secret, secrets: [\"s3cret\"] }\n    dedup: { key: \"{json:/id}\", backend: store }\n    upstream: { url: \"http://127.0.0.1:3000/\" }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&file)
        .env("PG_URL", "postgres://hookgate:hunter2-secret@db:5432/hooks")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("store    postgres postgres://hookgate:***@db:5432/hooks schema edge"),
        "{stdout}"
    );
    assert!(
        stdout.contains(", store,"),
        "the route's dedup backend: {stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}
