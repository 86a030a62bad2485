//! Config errors never print a value: a secret-looking value in a wrongly
//! typed or malformed field, brought in by `${VAR}` or `${file:}`, must not
//! reach `check`'s output, the start-up error, the log or the
//! `/admin/reload` answer, while the error still names the field. The real
//! binary, since its output is the point.

mod support;

use std::process::Command;

use http::StatusCode;
use support::*;

const HOOKGATE: &str = env!("CARGO_BIN_EXE_hookgate");

/// A secret-looking value, put where it does not belong.
const LEAKED: &str = "sk_live_TOPSECRET_7f3a9c";

/// Configs with the secret in a wrongly typed or malformed field, by
/// `${VAR}` (HG_TEST_SECRET) or `${file:}`, and the field each error names.
fn bad_configs(dir: &std::path::Path) -> Vec<(String, &'static str)> {
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{LEAKED}\n")).unwrap();
    let route = |upstream_extra: &str| {
        format!("routes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"http://127.0.0.1:1/\"{upstream_extra} }} }}\n")
    };
    vec![
        (
            format!(
                "limits: {{ max_body_bytes: \"${{HG_TEST_SECRET}}\" }}\n{}",
                route("")
            ),
            "limits.max_body_bytes",
        ),
        (
            format!(
                "limits: {{ max_headers: \"${{file:{}}}\" }}\n{}",
                secret_file.display(),
                route("")
            ),
            "limits.max_headers",
        ),
        (
            route(", timeout: \"${HG_TEST_SECRET}\""),
            "routes[0].upstream.timeout",
        ),
        (
            route(", concurrency: \"Bearer ${HG_TEST_SECRET}\""),
            "routes[0].upstream.concurrency",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_name_the_field_and_never_print_the_value() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (yaml, field)) in bad_configs(dir.path()).into_iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        for command in ["check", "serve"] {
            let out = Command::new(HOOKGATE)
                .args([command, "-c"])
                .arg(&file)
                .env("HG_TEST_SECRET", LEAKED)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{command} accepted {field}");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains(field), "{command}: {text}");
            assert!(!text.contains("TOPSECRET"), "{command} printed it: {text}");
        }
    }
    // The serde error still says what was expected.
    let file = dir.path().join("bad-0.yaml");
    let check = Command::new(HOOKGATE)
        .args(["check", "-c"])
        .arg(&file)
        .env("HG_TEST_SECRET", LEAKED)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("expected u64, found a string"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_names_the_field_in_its_answer_and_log_and_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let good = "routes:\n  - { name: r, path: /r, ack: sync, dedup: off, verify: { scheme: none }, upstream: { url: \"http://127.0.0.1:1/\" } }\n";
    let config = process_config(dir.path(), good);
    let process = GatewayProcess::spawn(&config.file);
    let admin = format!("http://127.0.0.1:{}", config.admin);
    // The binary's environment is this test's: only `${file:}` configs.
    let bad: Vec<(String, &str)> = bad_configs(dir.path())
        .into_iter()
        .filter(|(yaml, _)| yaml.contains("${file:"))
        .collect();
    assert!(!bad.is_empty());
    let head = std::fs::read_to_string(&config.file)
        .unwrap()
        .replace(good, "");
    for (yaml, field) in bad {
        std::fs::write(&config.file, format!("{head}{yaml}")).unwrap();
        let answer = post(&format!("{admin}/admin/reload"), &[], "").await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        let reason = answer.json()["reason"].as_str().unwrap().to_string();
        assert!(reason.contains(field), "{reason}");
        assert!(!reason.contains("TOPSECRET"), "{reason}");
    }
    eventually("the refused reload is logged", || {
        process.log().iter().any(|l| l.contains("reload refused"))
    })
    .await;
    let log = process.log().join("\n");
    assert!(!log.contains("TOPSECRET"), "{log}");
    process.terminate();
}
