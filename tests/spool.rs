//! Async acknowledgement end to end: real gateways, real upstreams, the
//! spool in SQLite files on disk, and the built binary killed with SIGKILL.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::*;

const TOKEN: &str = "admin-token-0123456789";

/// An async route with fast retries, forwarding to `upstream`.
fn async_route(name: &str, upstream: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    path: /hooks/{name}\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    ack: async\n    dedup: off\n{extra}    upstream:\n      url: \"{upstream}\"\n      timeout: 2s\n      retry: {{ max_attempts: 50, initial_backoff: 20ms, max_backoff: 100ms }}\n"
    )
}

fn config(routes: &str) -> String {
    format!("admin: {{ listen: \"127.0.0.1:0\", token: \"{TOKEN}\" }}\nroutes:\n{routes}")
}

async fn send(gateway: &Gateway, route: &str, body: &str) -> Answer {
    post(
        &gateway.url(&format!("/hooks/{route}")),
        &[("X-Secret", "s3cret")],
        body.to_string(),
    )
    .await
}

async fn admin_get(gateway: &Gateway, path: &str) -> Answer {
    support::admin_call(gateway, TOKEN, http::Method::GET, path).await
}

async fn admin_call(gateway: &Gateway, method: http::Method, path: &str) -> Answer {
    support::admin_call(gateway, TOKEN, method, path).await
}

#[tokio::test]
async fn events_acked_while_the_upstream_is_down_are_all_delivered_when_it_returns() {
    let down = closed_port().await;
    let gateway = Gateway::start(&config(&async_route(
        "timekit",
        &format!("http://{down}/timekit"),
        "",
    )))
    .await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let body = format!("{{\"booking\":{i},\"note\":\"Zoë ✓\"}}");
        let answer = send(&gateway, "timekit", &body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "Timekit accepts only 200, 201, 204"
        );
        let id = answer.json()["id"].as_str().unwrap().to_string();
        assert_eq!(answer.headers["hookgate-delivery-id"], id.as_str());
        acked.push((id, body));
    }
    assert_eq!(
        gateway
            .metric(r#"hookgate_spool_pending{route="timekit"}"#)
            .await,
        20.0
    );
    // Deliveries are being tried, and failing, while the upstream is down.
    let retries =
        r#"hookgate_deliveries_total{route="timekit",destination="upstream",result="retry"}"#;
    let g = &gateway;
    wait_until(
        "a delivery attempt",
        Duration::from_secs(20),
        || async move { g.metric(retries).await >= 1.0 },
    )
    .await;

    let upstream = Upstream::at(down, Duration::ZERO, |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    eventually("all 20 delivered", || {
        let ids: std::collections::HashSet<String> = upstream.delivery_ids().into_iter().collect();
        ids.len() == 20
    })
    .await;
    for (id, body) in &acked {
        let got = upstream
            .received()
            .into_iter()
            .find(|r| r.headers["hookgate-delivery-id"] == id.as_str())
            .unwrap();
        assert_eq!(got.body, body.as_bytes(), "delivered exactly as sent");
        assert_eq!(got.uri.path(), "/timekit");
        assert_eq!(got.headers["hookgate-route"], "timekit");
        assert!(
            got.headers.get("x-secret").is_none(),
            "credential forwarded"
        );
        assert!(
            got.headers["hookgate-attempt"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap()
                >= 1
        );
    }
    eventually_metric(&gateway, r#"hookgate_spool_pending{route="timekit"}"#, 0.0).await;
    let delivered = admin_get(
        &gateway,
        "/admin/deliveries?route=timekit&state=delivered&limit=100",
    )
    .await;
    assert_eq!(delivered.json()["items"].as_array().unwrap().len(), 20);
    // The delivery metrics: one lag sample per delivered event, one
    // duration sample per attempt, and group commits observed.
    let m = gateway.metrics().await;
    let value = |series: &str| metric_value(&m, series).unwrap_or_else(|| panic!("{series}"));
    assert_eq!(
        value(r#"hookgate_delivery_lag_seconds_count{route="timekit",destination="upstream"}"#),
        20.0
    );
    assert_eq!(
        value(
            r#"hookgate_deliveries_total{route="timekit",destination="upstream",result="delivered"}"#
        ),
        20.0
    );
    let attempts = value(
        r#"hookgate_deliveries_total{route="timekit",destination="upstream",result="retry"}"#,
    ) + 20.0;
    assert_eq!(
        value(
            r#"hookgate_delivery_attempt_duration_seconds_count{route="timekit",destination="upstream"}"#
        ),
        attempts
    );
    assert!(value("hookgate_store_commit_duration_seconds_count") >= 1.0);
}

async fn eventually_metric(gateway: &Gateway, series: &str, value: f64) {
    let what = format!("{series} to reach {value}");
    wait_until(&what, Duration::from_secs(20), || async move {
        gateway.metric(series).await == value
    })
    .await;
}

#[tokio::test]
async fn failing_deliveries_become_dead_letters_after_max_attempts_and_replay_delivers_them() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if flag.load(Ordering::SeqCst) {
            json_response(StatusCode::OK, "{}")
        } else {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"db down"}"#)
        }
    })
    .await;
    let route = async_route("orders", &upstream.url("/orders"), "")
        .replace("max_attempts: 50", "max_attempts: 3");
    let gateway = Gateway::start(&config(&route)).await;
    let id = send(&gateway, "orders", r#"{"order":1}"#).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    eventually_metric(&gateway, r#"hookgate_dead_letters{route="orders"}"#, 1.0).await;
    let attempts: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.headers["hookgate-attempt"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"], "exactly max_attempts attempts");
    let m = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            r#"hookgate_deliveries_total{route="orders",destination="upstream",result="retry"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &m,
            r#"hookgate_deliveries_total{route="orders",destination="upstream",result="dead_letter"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, r#"hookgate_spool_pending{route="orders"}"#),
        Some(0.0)
    );

    // The attempt history, as the admin API shows it.
    let dead = admin_get(&gateway, "/admin/dead-letters?route=orders")
        .await
        .json();
    assert_eq!(dead["items"][0]["id"], id.as_str());
    assert_eq!(dead["items"][0]["state"], "dead");
    assert_eq!(dead["items"][0]["last_status"], 500);
    let detail = admin_get(&gateway, &format!("/admin/deliveries/{id}"))
        .await
        .json();
    let history = detail["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|a| a["status"] == 500));
    assert!(detail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h[0] != "x-secret"));

    // Upstream recovers; replay delivers it, attempts counted afresh.
    healthy.store(true, Ordering::SeqCst);
    let replay = admin_call(
        &gateway,
        http::Method::POST,
        &format!("/admin/dead-letters/{id}/replay"),
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK);
    eventually("replayed delivery", || upstream.received().len() == 4).await;
    assert_eq!(upstream.received()[3].headers["hookgate-attempt"], "1");
    eventually_metric(&gateway, r#"hookgate_dead_letters{route="orders"}"#, 0.0).await;
    let detail = loop {
        let d = admin_get(&gateway, &format!("/admin/deliveries/{id}"))
            .await
            .json();
        if d["state"] == "delivered" {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(detail["attempts"], 1);
    // Replaying something that is not a dead letter is a 404.
    let again = admin_call(
        &gateway,
        http::Method::POST,
        &format!("/admin/dead-letters/{id}/replay"),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dead_letters_of_a_route_can_be_replayed_together_or_dropped() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::BAD_REQUEST, "{}")
    })
    .await;
    let route =
        async_route("crm", &upstream.url("/"), "").replace("max_attempts: 50", "max_attempts: 1");
    let gateway = Gateway::start(&config(&route)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            send(&gateway, "crm", &format!("{{\"n\":{i}}}"))
                .await
                .json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    eventually_metric(&gateway, r#"hookgate_dead_letters{route="crm"}"#, 3.0).await;
    let dropped = admin_call(
        &gateway,
        http::Method::DELETE,
        &format!("/admin/dead-letters/{}", ids[0]),
    )
    .await;
    assert_eq!(dropped.status, StatusCode::OK);
    assert_eq!(
        admin_get(&gateway, &format!("/admin/deliveries/{}", ids[0]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let all = admin_call(
        &gateway,
        http::Method::POST,
        "/admin/dead-letters/replay?route=crm",
    )
    .await;
    assert_eq!(all.json()["replayed"], 2);
    // Each is attempted once more (and fails again: the upstream says 400).
    eventually("replayed attempts", || upstream.received().len() == 5).await;
    eventually_metric(&gateway, r#"hookgate_dead_letters{route="crm"}"#, 2.0).await;
    let without_route =
        admin_call(&gateway, http::Method::POST, "/admin/dead-letters/replay").await;
    assert_eq!(without_route.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn acks_do_not_wait_for_a_slow_upstream() {
    // The upstream holds every request until released.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = release.clone();
    let slow = SlowUpstream::start(gate).await;
    let gateway = Gateway::start(&config(&async_route("slow", &slow.url, ""))).await;
    for i in 0..5 {
        let a = send(&gateway, "slow", &format!("{{\"i\":{i}}}")).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    // Every ack came back while the upstream had answered nothing.
    assert_eq!(slow.answered(), 0);
    eventually("deliveries reached the upstream", || slow.arrived() >= 1).await;
    release.add_permits(1000);
    eventually("all answered", || slow.answered() == 5).await;
}

/// An upstream that answers only when `gate` has permits.
struct SlowUpstream {
    url: String,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    answered: Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowUpstream {
    async fn start(gate: Arc<tokio::sync::Semaphore>) -> SlowUpstream {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, b) = (arrived.clone(), answered.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (a, b, gate) = (a.clone(), b.clone(), gate.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |_req: http::Request<hyper::body::Incoming>| {
                            let (a, b, gate) = (a.clone(), b.clone(), gate.clone());
                            async move {
                                a.fetch_add(1, Ordering::SeqCst);
                                gate.acquire().await.unwrap().forget();
                                b.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, std::convert::Infallible>(json_response(
                                    StatusCode::OK,
                                    "{}",
                                ))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        SlowUpstream {
            url,
            arrived,
            answered,
        }
    }
    fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }
    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_full_spool_answers_503_and_keeps_what_it_has() {
    let down = closed_port().await;
    let gateway = Gateway::start(&config(&async_route(
        "capped",
        &format!("http://{down}/"),
        "    max_pending: 2\n",
    )))
    .await;
    assert_eq!(
        send(&gateway, "capped", "{\"n\":1}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&gateway, "capped", "{\"n\":2}").await.status,
        StatusCode::OK
    );
    let full = send(&gateway, "capped", "{\"n\":3}").await;
    assert_eq!(
        (full.status, full.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "spool_full")
    );
    assert!(full.headers.contains_key("retry-after"));
    let upstream = Upstream::at(down, Duration::ZERO, |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    eventually("both earlier events delivered", || {
        upstream.received().len() == 2
    })
    .await;
    let bodies: Vec<_> = upstream.received().iter().map(|r| r.body.clone()).collect();
    assert!(bodies.contains(&bytes::Bytes::from_static(b"{\"n\":1}")));
    assert!(bodies.contains(&bytes::Bytes::from_static(b"{\"n\":2}")));
    // Room again: accepted.
    eventually_metric(&gateway, r#"hookgate_spool_pending{route="capped"}"#, 0.0).await;
    assert_eq!(
        send(&gateway, "capped", "{\"n\":3}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway
            .metric(r#"hookgate_requests_total{route="capped",outcome="spool_full"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn async_routes_dedup_in_the_same_transaction_and_use_the_ack_status() {
    let upstream = Upstream::start().await;
    let route = async_route("bookings", &upstream.url("/"), "    ack_status: 202\n")
        .replace("dedup: off", "dedup: { key: \"{json:/id}\" }");
    let gateway = Gateway::start(&config(&route)).await;
    let first = send(&gateway, "bookings", r#"{"id":"b-1","v":1}"#).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let copy = send(&gateway, "bookings", r#"{"id":"b-1","v":2}"#).await;
    assert_eq!(copy.status, StatusCode::ACCEPTED);
    assert_eq!(copy.headers["hookgate-duplicate"], "true");
    eventually("delivered", || upstream.received().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.received().len(), 1, "the duplicate was delivered");
    assert_eq!(
        gateway
            .metric(r#"hookgate_dedup_total{route="bookings",result="duplicate"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn ack_status_204_has_no_body() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&async_route(
        "t",
        &upstream.url("/"),
        "    ack_status: 204\n",
    )))
    .await;
    let a = send(&gateway, "t", "{}").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(a.body.is_empty());
    assert!(a.headers.contains_key("hookgate-delivery-id"));
}

#[tokio::test]
async fn admin_api_requires_the_token_and_probes_stay_open() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&async_route("t", &upstream.url("/"), ""))).await;
    let url = gateway.admin_url("/admin/deliveries");
    assert_eq!(get(&url).await.status, StatusCode::UNAUTHORIZED);
    for wrong in [
        "Bearer nope",
        "Bearer admin-token-012345678",
        "admin-token-0123456789",
        "Basic YWRtaW4=",
    ] {
        let req = http::Request::get(&url)
            .header("Authorization", wrong)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = support::send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }
    assert_eq!(
        admin_get(&gateway, "/admin/deliveries").await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin_get(&gateway, "/admin/deliveries?state=lost")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin_get(&gateway, "/admin/deliveries/nope").await.status,
        StatusCode::NOT_FOUND
    );
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(&gateway.admin_url(open)).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_and_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_addr = closed_port().await;
    let ProcessConfig { file, ingress, .. } = process_config(
        dir.path(),
        &format!(
            "routes:\n{}",
            async_route("timekit", &format!("http://{upstream_addr}/"), "")
        ),
    );

    let mut gateway = GatewayProcess::spawn(&file);
    let url = format!("http://127.0.0.1:{ingress}/hooks/timekit");
    let mut acked = Vec::new();
    for i in 0..30 {
        let a = post(
            &url,
            &[("X-Secret", "s3cret")],
            format!("{{\"event\":{i}}}"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        acked.push(a.json()["id"].as_str().unwrap().to_string());
    }
    // kill -9: no graceful shutdown, no flush.
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();

    let upstream = Upstream::at(upstream_addr, Duration::ZERO, |_| {
        json_response(StatusCode::OK, "{}")
    })
    .await;
    let gateway = GatewayProcess::spawn(&file);
    eventually("every acked event delivered after restart", || {
        let got: std::collections::HashSet<String> = upstream.delivery_ids().into_iter().collect();
        acked.iter().all(|id| got.contains(id))
    })
    .await;
    gateway.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_wrappers_list_replay_and_drop_dead_letters() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::BAD_GATEWAY, "{}")
    })
    .await;
    let route =
        async_route("erp", &upstream.url("/"), "").replace("max_attempts: 50", "max_attempts: 1");
    let gateway = Gateway::start(&config(&route)).await;
    let a = send(&gateway, "erp", "{\"a\":1}").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = send(&gateway, "erp", "{\"b\":2}").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually_metric(&gateway, r#"hookgate_dead_letters{route="erp"}"#, 2.0).await;
    let admin = format!("http://{}", gateway.admin);
    let cli = move |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
        cmd.args(args)
            .args(["--admin", &admin])
            .env_remove("HOOKGATE_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("HOOKGATE_ADMIN_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let run = |args: Vec<String>, token: Option<&'static str>| {
        let cli = cli.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cli(&args, token)
            })
            .await
            .unwrap()
        }
    };
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let denied = run(argv(&["dead-letters", "list"]), None).await;
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));

    let listed = run(
        argv(&["dead-letters", "list", "--route", "erp"]),
        Some(TOKEN),
    )
    .await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));

    let shown = run(argv(&["deliveries", "show", &a]), Some(TOKEN)).await;
    let detail: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(detail["attempt_history"][0]["status"], 502);

    let dropped = run(argv(&["dead-letters", "drop", &a]), Some(TOKEN)).await;
    assert!(dropped.status.success());
    let replayed = run(
        argv(&["dead-letters", "replay", "--route", "erp"]),
        Some(TOKEN),
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(json["replayed"], 1);
    eventually("the replayed one was attempted again", || {
        upstream.received().len() == 3
    })
    .await;
    let missing = run(argv(&["deliveries", "show", &a]), Some(TOKEN)).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
}

#[tokio::test]
async fn configured_upstream_credentials_are_sent_but_never_stored_or_shown() {
    let upstream = Upstream::start().await;
    let route = async_route("crm", &upstream.url("/"), "").replace(
        "      timeout: 2s\n",
        "      timeout: 2s\n      headers: { Authorization: \"Bearer upstream-cred-77\" }\n",
    );
    let gateway = Gateway::start(&config(&route)).await;
    let id = send(&gateway, "crm", "{}").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("delivered", || upstream.received().len() == 1).await;
    assert_eq!(
        upstream.received()[0].headers["authorization"],
        "Bearer upstream-cred-77"
    );
    let detail = admin_get(&gateway, &format!("/admin/deliveries/{id}")).await;
    assert!(!String::from_utf8_lossy(&detail.body).contains("upstream-cred-77"));
    let db = std::fs::read(
        gateway
            .data_dir
            .as_ref()
            .unwrap()
            .path()
            .join("hookgate.db"),
    )
    .unwrap();
    let wal = std::fs::read(
        gateway
            .data_dir
            .as_ref()
            .unwrap()
            .path()
            .join("hookgate.db-wal"),
    )
    .unwrap_or_default();
    // Neither the upstream's credential nor the sender's (stripped) is on disk.
    for bytes in [db, wal] {
        for secret in [&b"upstream-cred-77"[..], &b"s3cret"[..]] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{:?} stored",
                String::from_utf8_lossy(secret)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_rounds_of_sigkill_under_load_lose_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_addr = closed_port().await;
    let ProcessConfig { file, ingress, .. } = process_config(
        dir.path(),
        &format!(
            "routes:\n{}",
            async_route("timekit", &format!("http://{upstream_addr}/"), "")
        ),
    );
    let url = format!("http://127.0.0.1:{ingress}/hooks/timekit");
    let mut acked: Vec<String> = Vec::new();
    let mut upstream: Option<Upstream> = None;
    for round in 0..5u32 {
        // The upstream alternates between down and up across rounds.
        if round % 2 == 1 && upstream.is_none() {
            upstream = Some(
                Upstream::at(upstream_addr, Duration::ZERO, |_| {
                    json_response(StatusCode::OK, "{}")
                })
                .await,
            );
        }
        let mut gateway = GatewayProcess::spawn(&file);
        // Four senders; the process is killed while they are sending.
        let round_acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let senders: Vec<_> = (0..4)
            .map(|sender| {
                let url = url.clone();
                let round_acks = round_acks.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..1000 {
                        let body = format!("{{\"round\":{round},\"sender\":{sender},\"i\":{i}}}");
                        let req = http::Request::post(&url)
                            .header("X-Secret", "s3cret")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .unwrap();
                        let client = hyper_util::client::legacy::Client::builder(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .build_http::<http_body_util::Full<bytes::Bytes>>();
                        let Ok(response) = client.request(req).await else {
                            break;
                        };
                        let status = response.status();
                        let Ok(body) = http_body_util::BodyExt::collect(response.into_body()).await
                        else {
                            break;
                        };
                        if status == StatusCode::OK {
                            let json: serde_json::Value =
                                serde_json::from_slice(&body.to_bytes()).unwrap();
                            mine.push(json["id"].as_str().unwrap().to_string());
                            round_acks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    mine
                })
            })
            .collect();
        // Kill once the round has acknowledged something (however slow the
        // machine), at a point that moves from round to round.
        eventually("the round acknowledges 20 events", || {
            round_acks.load(Ordering::SeqCst) >= 20
        })
        .await;
        tokio::time::sleep(Duration::from_millis(20 + 70 * round as u64)).await;
        gateway.child.kill().unwrap();
        gateway.child.wait().unwrap();
        for s in senders {
            acked.extend(s.await.unwrap());
        }
    }
    assert!(
        acked.len() > 50,
        "too few events were acknowledged to mean anything: {}",
        acked.len()
    );
    let upstream = match upstream {
        Some(u) => u,
        None => {
            Upstream::at(upstream_addr, Duration::ZERO, |_| {
                json_response(StatusCode::OK, "{}")
            })
            .await
        }
    };
    let gateway = GatewayProcess::spawn(&file);
    eventually("every acked event delivered after five crashes", || {
        let got: std::collections::HashSet<String> = upstream.delivery_ids().into_iter().collect();
        acked.iter().all(|id| got.contains(id))
    })
    .await;
    gateway.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_running_deliveries_and_leaves_the_rest_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let slow = SlowUpstream::start(gate.clone()).await;
    let yaml = |url: &str| {
        format!(
            "admin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nshutdown_timeout: 5s\nroutes:\n{}",
            dir.path().join("data").display(),
            async_route("orders", url, "").replace("      timeout: 2s\n", "      timeout: 10s\n      concurrency: 1\n")
        )
    };
    let mut gateway = Gateway::start(&yaml(&slow.url)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            send(&gateway, "orders", &format!("{{\"n\":{i}}}"))
                .await
                .json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // One delivery is running (concurrency 1), held by the upstream.
    eventually("a delivery is in flight", || slow.arrived() == 1).await;
    let done = gateway.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The running attempt is allowed to finish...
    gate.add_permits(10);
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        slow.answered(),
        1,
        "no new attempt started after shutdown began"
    );

    // ...and the other two wait on disk for the next start.
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&yaml(&upstream.url("/"))).await;
    eventually("the rest delivered after restart", || {
        upstream.received().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let redelivered = upstream.delivery_ids();
    assert_eq!(
        redelivered.len(),
        2,
        "the finished delivery was sent again: {redelivered:?}"
    );
    assert!(redelivered.iter().all(|id| ids.contains(id)));
    drop(gateway);
}
