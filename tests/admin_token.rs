//! The admin API on an address other machines can reach, without a token:
//! `/admin/*` is refused while the probes and `/metrics` answer, and
//! `check` and start-up warn. Real gateways, and the real binary where its
//! output is the point.

mod support;

use std::process::Command;

use http::StatusCode;
use support::*;

/// A gateway whose admin listener is on every address, with `admin`
/// (more of the `admin:` block) and one async route.
async fn public_admin(admin: &str) -> (Gateway, String) {
    let yaml = format!(
        "admin: {{ listen: \"0.0.0.0:0\"{admin} }}\nroutes:\n  - {{ name: r, path: /r, verify: {{ scheme: none }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n"
    );
    let gateway = Gateway::start(&yaml).await;
    let base = format!("http://127.0.0.1:{}", gateway.admin.port());
    (gateway, base)
}

async fn call(method: http::Method, url: &str, token: Option<&str>) -> Answer {
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    send(
        request
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_non_loopback_admin_api_without_a_token_is_refused_and_probes_answer() {
    let (_gateway, base) = public_admin("").await;
    for (method, path) in [
        (http::Method::GET, "/admin/deliveries"),
        (http::Method::GET, "/admin/dead-letters"),
        (http::Method::POST, "/admin/dead-letters/replay?route=r"),
        (http::Method::DELETE, "/admin/dead-letters/x"),
        (http::Method::POST, "/admin/reload"),
    ] {
        let answer = call(method, &format!("{base}{path}"), None).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            answer.json(),
            serde_json::json!({"error": "admin_token_required"})
        );
    }
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&format!("{base}{probe}")).await.status, StatusCode::OK);
    }

    // With a token, the same listener serves the API to whoever holds it.
    let token = "admin-token-0123456789";
    let (_gateway, base) = public_admin(&format!(", token: \"{token}\"")).await;
    let url = format!("{base}/admin/deliveries");
    assert_eq!(
        call(http::Method::GET, &url, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(http::Method::GET, &url, Some(token)).await.status,
        StatusCode::OK
    );
}

const HOOKGATE: &str = env!("CARGO_BIN_EXE_hookgate");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_start_up_warn_about_an_admin_api_without_a_token_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    let (ingress, admin) = (free_port(), free_port());
    std::fs::write(
        &file,
        format!(
            "listen: \"127.0.0.1:{ingress}\"\nadmin: {{ listen: \"0.0.0.0:{admin}\" }}\ndata_dir: \"{}\"\nroutes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let check = Command::new(HOOKGATE)
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("admin_token_required"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("403 admin_token_required"), "{stdout}");

    let process = GatewayProcess::spawn(&file);
    let log = process.log().join("\n");
    assert!(
        log.contains("WARN") && log.contains("admin.token is not set"),
        "{log}"
    );
    process.terminate();

    // On loopback, no warning.
    let loopback = process_config(dir.path(), "routes:\n  - { name: r, path: /r, ack: sync, dedup: off, verify: { scheme: none }, upstream: { url: \"http://127.0.0.1:1/\" } }\n");
    let check = Command::new(HOOKGATE)
        .args(["check", "-c"])
        .arg(&loopback.file)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(!String::from_utf8_lossy(&check.stderr).contains("warning"));
}
