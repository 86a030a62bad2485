//! Store faults at the HTTP level: the built binary, a real upstream, and a
//! file-size limit (`RLIMIT_FSIZE`, set on the running process with
//! util-linux `prlimit`) that makes every write to the store fail with
//! EFBIG, the way a full disk would. It applies to root too, needs no
//! mount, and is lifted again without a restart.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::*;

/// Smaller than one WAL frame (a 24-byte header and a 4096-byte page after
/// the WAL's own 32-byte header): with this limit no commit can reach the
/// write-ahead log, whatever its size or where SQLite writes next in it.
const FAULT_LIMIT: u64 = 4096;

/// Sets the soft file-size limit of a running process. The hard limit is
/// left alone: raising it back would need CAP_SYS_RESOURCE, which root in a
/// container may not have.
fn limit_file_size(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}:")])
        .status()
        .expect("prlimit (util-linux) is installed");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

async fn metric(admin: &str, series: &str) -> f64 {
    scrape_metric(admin, series).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_failing_with_efbig_get_503_and_service_resumes_when_the_limit_is_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The upstream holds its answers until released, so deliveries can be
    // in flight when the fault begins.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let upstream = Upstream::gated(gate.clone()).await;
    let route = |name: &str, ack: &str| {
        format!(
            "  - name: {name}\n    path: /hooks/{name}\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"s3cret\"] }}\n    ack: {ack}\n    ack_status: 202\n    dedup: {{ key: \"{{json:/id}}\", backend: local }}\n    upstream:\n      url: \"{}\"\n      timeout: 30s\n      concurrency: 4\n      retry: {{ max_attempts: 50, initial_backoff: 20ms, max_backoff: 100ms }}\n",
            upstream.url(&format!("/{name}"))
        )
    };
    let ProcessConfig {
        file,
        ingress,
        admin,
    } = process_config(
        dir.path(),
        &format!(
            "store: {{ fsync: true }}\nroutes:\n{}{}",
            route("orders", "async"),
            route("quotes", "sync"),
        ),
    );
    let mut gateway = GatewayProcess::spawn(&file);
    let admin = format!("http://127.0.0.1:{admin}");
    let send = |route: &'static str, id: String| {
        let url = format!("http://127.0.0.1:{ingress}/hooks/{route}");
        async move {
            let body = format!("{{\"id\":\"{id}\"}}");
            (id, post(&url, &[("X-Secret", "s3cret")], body).await)
        }
    };
    // Which event (by its body's id) got which delivery id.
    let mut acked: HashMap<String, String> = HashMap::new();

    // Before the fault: acknowledged once committed, and delivered (held
    // by the upstream for now).
    for n in 0..4 {
        let (id, a) = send("orders", format!("before-{n}")).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
        acked.insert(id, a.json()["id"].as_str().unwrap().to_string());
    }
    eventually("four deliveries in flight", || {
        upstream.received().len() == 4
    })
    .await;
    let size = |name: &str| std::fs::metadata(data.join(name)).map_or(0, |m| m.len());
    assert!(
        size("hookgate.db") >= FAULT_LIMIT && size("hookgate.db-wal") >= FAULT_LIMIT,
        "FAULT_LIMIT must be at or below the size of the store's files"
    );

    // The fault: no file of the process may grow past FAULT_LIMIT bytes.
    limit_file_size(gateway.pid(), &FAULT_LIMIT.to_string());
    // The upstream now answers the four: delivered, but the outcome cannot
    // be recorded.
    gate.add_permits(1_000_000);
    let in_flight: Vec<String> = acked.values().cloned().collect();
    eventually("the four outcomes failed to be recorded", || {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            panic!("the gateway died ({status}) instead of failing the write");
        }
        let log = gateway.log();
        in_flight.iter().all(|id| {
            log.iter()
                .any(|l| l.contains(id) && l.contains("recording a delivery attempt failed"))
        })
    })
    .await;
    let mut refused = Vec::new();
    for n in 0..10 {
        let (id, a) = send("orders", format!("during-{n}")).await;
        assert_eq!(
            a.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{id} acknowledged while no write can commit: {:?}",
            a.body
        );
        assert_eq!(a.headers["retry-after"], "5");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(
            a.json(),
            serde_json::json!({ "error": "store_unavailable" })
        );
        refused.push(id);
    }
    assert_eq!(
        metric(
            &admin,
            r#"hookgate_requests_total{route="orders",outcome="store_unavailable"}"#
        )
        .await,
        10.0
    );
    assert!(metric(&admin, "hookgate_store_commit_failures_total").await >= 10.0);
    // Readiness answers from reads, which still work: the alert on
    // failing commits is what pages (see deploy/kubernetes/edge).
    assert_eq!(get(&format!("{admin}/readyz")).await.status, StatusCode::OK);
    // A sync route forwards (its dedup claim is a read, which still works)
    // and relays the upstream's answer: a 2xx here means the upstream has
    // the event. Recording the claim fails and is counted: after the
    // answer, since the answer does not wait for the record.
    let (sync_id, a) = send("quotes", "during-sync".into()).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert!(upstream
        .received()
        .iter()
        .any(|r| r.body == format!("{{\"id\":\"{sync_id}\"}}").as_bytes()));
    let series = r#"hookgate_dedup_errors_total{route="quotes"}"#;
    let admin_url = admin.as_str();
    wait_until(
        "the failed dedup record to be counted",
        Duration::from_secs(10),
        || async move { metric(admin_url, series).await >= 1.0 },
    )
    .await;
    assert_eq!(metric(&admin, series).await, 1.0);

    // The fault clears; no restart.
    limit_file_size(gateway.pid(), "unlimited");
    for n in 0..10 {
        let (id, a) = send("orders", format!("after-{n}")).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{id}: {:?}", a.body);
        acked.insert(id, a.json()["id"].as_str().unwrap().to_string());
    }
    let delivered = || -> HashSet<String> { upstream.delivery_ids().into_iter().collect() };
    eventually("every acknowledged event delivered", || {
        acked.values().all(|id| delivered().contains(id))
    })
    .await;
    wait_until("nothing pending", Duration::from_secs(20), || async move {
        metric(admin_url, r#"hookgate_spool_pending{route="orders"}"#).await == 0.0
    })
    .await;
    // Delivered while the store was down and recorded once it was back:
    // not sent again in between.
    let ids = upstream.delivery_ids();
    for id in &in_flight {
        assert_eq!(
            ids.iter().filter(|d| *d == id).count(),
            1,
            "{id} was delivered again while its outcome could not be recorded"
        );
    }
    // Nothing that was refused reached the upstream.
    let bodies: Vec<_> = upstream.received().iter().map(|r| r.body.clone()).collect();
    for id in &refused {
        let body = format!("{{\"id\":\"{id}\"}}");
        assert!(
            !bodies.iter().any(|b| b == body.as_bytes()),
            "{id} got a 503 and was delivered"
        );
    }
    // And the senders' retries of the refused events are accepted now.
    for id in &refused {
        let (_, a) = send("orders", id.clone()).await;
        assert_eq!(a.status, StatusCode::ACCEPTED);
        assert!(a.headers.get("hookgate-duplicate").is_none(), "{id}");
    }
    gateway.terminate();
}
