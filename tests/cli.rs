//! The `hookgate` binary: `check` output and exit codes, `serve` shutdown
//! on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hookgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    // Never inherit a developer's own settings.
    for var in [
        "HOOKGATE_CONFIG",
        "TRUTAC_SECRET",
        "TIMIFY_SECRET",
        "PARTNER_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");

#[test]
fn check_passes_on_the_example_and_prints_routes_without_secrets() {
    let out = hookgate()
        .args(["check", "--config", EXAMPLE])
        .env("TRUTAC_SECRET", "prod-trutac-Zx81")
        .env("TIMIFY_SECRET", "prod-timify-Qq02")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "trutac POST /hooks/trutac",
        "timify POST /hooks/timify",
        "partner POST /hooks/partner",
        "pubsub POST /hooks/pubsub",
        "RS256 token in authorization, keys from https://www.googleapis.com/oauth2/v3/certs",
        "TT-Hook-Signature",
        "x-timify-secret",
        // The example leaves `runtime` out: a serving thread per CPU.
        "serving threads, each with its own listener and upstream pool",
    ] {
        assert!(
            stdout.to_lowercase().contains(&expected.to_lowercase()),
            "{expected} not in\n{stdout}"
        );
    }
    for secret in [
        "prod-trutac-Zx81",
        "prod-timify-Qq02",
        "dev-partner-key-change-me",
    ] {
        assert!(!stdout.contains(secret), "secret printed:\n{stdout}");
    }
}

#[test]
fn check_reads_the_config_path_from_the_environment() {
    let out = hookgate()
        .arg("check")
        .env("HOOKGATE_CONFIG", EXAMPLE)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn check_fails_with_file_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "routes:\n  - name: t\n    path: /t\n    verify: { scheme: trutac, secrets: [\"${MISSING_SECRET}\"] }\n    upstream: { url: \"http://127.0.0.1:1/\" }\n",
    )
    .unwrap();
    let out = hookgate()
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert!(stderr.contains("routes[0].verify.secrets[0]"), "{stderr}");
    assert!(stderr.contains("MISSING_SECRET"), "{stderr}");

    let out = hookgate()
        .args(["check", "-c", "/nonexistent/hookgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hookgate.yaml"));
}

#[test]
fn serve_exits_zero_on_sigterm() {
    serve_and_signal("-TERM");
}

#[test]
fn serve_exits_zero_on_sigint() {
    serve_and_signal("-INT");
}

fn serve_and_signal(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        format!("data_dir: \"{}\"\n", dir.path().join("data").display())
            + "listen: \"127.0.0.1:0\"\nadmin: { listen: \"127.0.0.1:0\" }\nroutes:\n  - name: t\n    path: /t\n    ack: sync\n    verify: { scheme: none }\n    upstream: { url: \"http://127.0.0.1:1/\" }\n",
    )
    .unwrap();
    let mut child = hookgate()
        .args(["serve", "--config"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("log ended before the gateway served")
            .unwrap();
        if line.contains("hookgate is serving") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no start-up line"
        );
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap();
    assert!(code.success(), "exit {code:?}; log: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("hookgate stopped")),
        "{rest:?}"
    );
}

#[test]
fn serve_with_a_bad_config_exits_one() {
    let out = hookgate()
        .args(["serve", "-c", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sighup_reloads_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = |secret: &str| {
        format!(
            "listen: \"127.0.0.1:{port}\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nroutes:\n  - {{ name: t, path: /t, ack: sync, dedup: off, verify: {{ scheme: header, header: X-Secret, secrets: [\"{secret}\"] }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n",
            dir.path().join("data").display()
        )
    };
    std::fs::write(&file, config("before")).unwrap();
    let mut child = hookgate()
        .args(["serve", "--config"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut wait_for = |want: &str| loop {
        let line = lines.next().expect("log ended").unwrap();
        if line.contains(want) {
            return;
        }
    };
    wait_for("hookgate is serving");
    // The status of an unsigned-by-`secret` request: 401 when the secret is
    // wrong, 502 when it verifies (the upstream port is closed).
    let status = |secret: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", &format!("X-Secret: {secret}")])
            .arg(format!("http://127.0.0.1:{port}/t"))
            .output()
            .expect("curl is installed");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(status("before"), "502");
    std::fs::write(&file, config("after")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("configuration reloaded");
    assert_eq!(status("after"), "502");
    assert_eq!(status("before"), "401");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        child.wait().unwrap().success(),
        "SIGHUP must not kill the process"
    );
}
