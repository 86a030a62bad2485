//! What the deployment files rely on at run time, against the real
//! gateway: a config mounted the way the kubelet mounts a ConfigMap or a
//! Secret (files behind a `..data` symlink that is swapped atomically) is
//! picked up by `reload.watch`, and the two gauges the alerts are built on
//! (`hookgate_config_last_reload_successful`,
//! `hookgate_spool_oldest_pending_age_seconds`) say what the alerts need.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use support::*;

/// Writes one "generation" of a mounted volume the way the kubelet's
/// atomic writer does: the files go into a new timestamped directory, then
/// a new symlink to it is renamed over `..data` (one atomic step), and the
/// old directory is removed. The visible names (`hookgate.yaml`, `secret`)
/// are symlinks through `..data`, created once.
fn kubelet_write(mount: &Path, generation: u32, files: &[(&str, String)]) {
    let stamp = format!("..2026_12_02_05_00_00.{generation:09}");
    std::fs::create_dir(mount.join(&stamp)).unwrap();
    for (name, text) in files {
        std::fs::write(mount.join(&stamp).join(name), text).unwrap();
    }
    let previous = std::fs::read_link(mount.join("..data")).ok();
    std::os::unix::fs::symlink(&stamp, mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    for (name, _) in files {
        let visible = mount.join(name);
        if visible.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), visible).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(mount.join(previous)).unwrap();
    }
}

/// A kubelet-style swap of the mounted config and secret reaches the
/// running process with `reload.watch: true` and no signal: the new secret
/// verifies, the old one no longer does, and the config edit is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_symlink_swap_of_config_and_secret_is_picked_up_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("config");
    std::fs::create_dir(&mount).unwrap();
    let upstream = Upstream::start().await;
    let (ingress, admin) = (free_port(), free_port());
    let config = |generation: u32| {
        format!(
            "listen: \"127.0.0.1:{ingress}\"\nadmin: {{ listen: \"127.0.0.1:{admin}\" }}\ndata_dir: \"{}\"\nreload: {{ watch: true, interval: 100ms }}\nroutes:\n  - name: r\n    path: /r\n    ack: sync\n    dedup: off\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"${{file:{}}}\"] }}\n    upstream: {{ url: \"{}\", headers: {{ X-Generation: \"{generation}\" }} }}\n",
            dir.path().join("data").display(),
            mount.join("secret").display(),
            upstream.url("/"),
        )
    };
    kubelet_write(
        &mount,
        1,
        &[
            ("hookgate.yaml", config(1)),
            ("secret", "first-secret".into()),
        ],
    );
    let process = GatewayProcess::spawn(&mount.join("hookgate.yaml"));
    let url = format!("http://127.0.0.1:{ingress}/r");
    let status = |secret: &'static str| {
        let url = url.clone();
        async move { post(&url, &[("X-Secret", secret)], "{}").await.status }
    };
    assert_eq!(status("first-secret").await, StatusCode::OK);

    kubelet_write(
        &mount,
        2,
        &[
            ("hookgate.yaml", config(2)),
            ("secret", "second-secret".into()),
        ],
    );
    wait_until(
        "the swapped secret to verify",
        Duration::from_secs(20),
        || async { status("second-secret").await == StatusCode::OK },
    )
    .await;
    assert_eq!(status("first-secret").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.received().last().unwrap().headers["x-generation"],
        "2",
        "the swapped config is in force"
    );
    let admin = format!("http://127.0.0.1:{admin}");
    assert_eq!(
        scrape_metric(&admin, r#"hookgate_config_reloads_total{result="success"}"#).await,
        1.0
    );
    assert_eq!(
        scrape_metric(&admin, "hookgate_config_last_reload_successful").await,
        1.0
    );
    assert!(
        !process.log().iter().any(|l| l.contains("second-secret")),
        "a secret reached the log"
    );
    process.terminate();
}

/// `hookgate_config_last_reload_successful` is 1 after start-up, 0 after a
/// refused reload and stays 0 (the counter's increase would fade while the
/// bad file stays in place), and 1 again once a good file is reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_success_gauge_stays_down_while_a_refused_config_is_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    let good = format!(
        "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nroutes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n",
        dir.path().join("data").display()
    );
    std::fs::write(&file, &good).unwrap();
    let gateway = Gateway::start_file(&file, &[]).await;
    let gauge = "hookgate_config_last_reload_successful";
    assert_eq!(gateway.metric(gauge).await, 1.0);

    std::fs::write(
        &file,
        good.replace("scheme: none", "scheme: no-such-scheme"),
    )
    .unwrap();
    let reload = || async {
        post(&gateway.admin_url("/admin/reload"), &[], "")
            .await
            .status
    };
    assert_eq!(reload().await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(gateway.metric(gauge).await, 0.0);
    // Still 0 on the next scrape: nothing resets it but a good reload.
    assert_eq!(gateway.metric(gauge).await, 0.0);

    std::fs::write(&file, &good).unwrap();
    assert_eq!(reload().await, StatusCode::OK);
    assert_eq!(gateway.metric(gauge).await, 1.0);
}

/// `hookgate_spool_oldest_pending_age_seconds{route}` is 0 with nothing
/// pending, grows while one event waits for a consumer that keeps failing
/// (a single event, so no volume threshold would notice), and drops back
/// to 0 once the consumer takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oldest_pending_age_grows_while_the_consumer_is_down_and_clears_after() {
    let up = Arc::new(AtomicBool::new(false));
    let consumer = up.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if consumer.load(Ordering::SeqCst) {
            json_response(StatusCode::OK, "{}")
        } else {
            json_response(StatusCode::SERVICE_UNAVAILABLE, "{}")
        }
    })
    .await;
    let gateway = Gateway::start(&format!(
        "routes:\n  - name: low\n    path: /low\n    ack: async\n    verify: {{ scheme: none }}\n    upstream: {{ url: \"{}\", retry: {{ initial_backoff: 50ms, max_backoff: 100ms, max_attempts: 1000 }} }}\n",
        upstream.url("/")
    ))
    .await;
    let age = r#"hookgate_spool_oldest_pending_age_seconds{route="low"}"#;
    assert_eq!(gateway.metric(age).await, 0.0);

    let answer = post(&gateway.url("/low"), &[], r#"{"id":"evt_1"}"#).await;
    assert!(answer.status.is_success(), "{answer:?}");
    wait_until("a failed attempt", Duration::from_secs(20), || async {
        upstream.received().len() >= 2
    })
    .await;
    // Ages only go up while it stays undelivered.
    let first = gateway.metric(age).await;
    assert!(first > 0.0, "age {first}");
    wait_until("the age to grow", Duration::from_secs(20), || async {
        gateway.metric(age).await > first
    })
    .await;
    assert_eq!(
        gateway
            .metric(r#"hookgate_spool_pending{route="low"}"#)
            .await,
        1.0
    );

    up.store(true, Ordering::SeqCst);
    wait_until("the delivery", Duration::from_secs(20), || async {
        gateway
            .metric(r#"hookgate_spool_pending{route="low"}"#)
            .await
            == 0.0
    })
    .await;
    assert_eq!(gateway.metric(age).await, 0.0);
}
