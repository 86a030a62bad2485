//! `hookgate verify`: a captured request checked offline against a route,
//! each failing step named, and never a secret or an expected MAC printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::Mac;

const STRIPE_SECRET: &str = "whsec_verify_cli_secret_0123456789";
const GITHUB_SECRET: &str = "github-verify-cli-secret";
const TS: u64 = 1_700_000_000;
const BODY: &str = r#"{"id":"evt_1","type":"invoice.paid"}"#;

fn hex_mac(secret: &str, payload: &[u8]) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(payload);
    hex::encode(m.finalize().into_bytes())
}

fn stripe_sig(body: &str, ts: u64) -> String {
    format!(
        "t={ts},v1={}",
        hex_mac(STRIPE_SECRET, format!("{ts}.{body}").as_bytes())
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    dir: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.yaml");
    std::fs::write(
        &config,
        format!(
            "routes:\n  - {{ name: stripe, path: /stripe, ack: sync, verify: {{ scheme: stripe, secrets: [\"{STRIPE_SECRET}\"] }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n  - {{ name: github, path: /github, ack: sync, verify: {{ scheme: github, secrets: [\"{GITHUB_SECRET}\"] }}, events: {{ allow: [\"push\"], ack_only: [] }}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n"
        ),
    )
    .unwrap();
    Setup {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        config,
    }
}

/// Runs `hookgate verify` on a request file; exit code and stdout.
fn verify(s: &Setup, route: &str, request: &str, extra: &[&str]) -> (i32, String) {
    let file = s.dir.join("request.http");
    std::fs::write(&file, request).unwrap();
    run(s, route, &file, extra)
}

fn run(s: &Setup, route: &str, file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["verify", "--config"])
        .arg(&s.config)
        .args(["--route", route, "--request"])
        .arg(file)
        .args(extra)
        .env_remove("HOOKGATE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(STRIPE_SECRET) && !text.contains(GITHUB_SECRET),
            "{text}"
        );
    }
    (out.status.code().unwrap(), stdout + &stderr)
}

fn stripe_request(sig: Option<&str>, body: &str) -> String {
    let mut r = String::from(
        "POST /stripe HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: application/json\r\n",
    );
    if let Some(sig) = sig {
        r.push_str(&format!("Stripe-Signature: {sig}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r
}

const AT: &str = "1700000010";

#[test]
fn a_genuine_request_is_forwarded() {
    let s = setup();
    let (code, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some(&stripe_sig(BODY, TS)), BODY),
        &["--at", AT],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   signature: matches secret or key #0"),
        "{out}"
    );
    assert!(out.contains("ok   events: forwarded"), "{out}");
}

#[test]
fn each_failing_step_is_named() {
    let s = setup();
    let (code, out) = verify(&s, "nope", &stripe_request(None, BODY), &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL no route: the config has no route \"nope\" (routes: stripe, github)"),
        "{out}"
    );

    let (code, out) = verify(&s, "stripe", &stripe_request(None, BODY), &["--at", AT]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL missing: the request lacks header stripe-signature"),
        "{out}"
    );

    let (code, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some("t=1700000000,v1=zz"), BODY),
        &["--at", AT],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL malformed: header stripe-signature"),
        "{out}"
    );

    let get = "GET /stripe HTTP/1.1\nHost: x\n\n";
    let (code, out) = verify(&s, "stripe", get, &[]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL method: GET"), "{out}");
}

/// A bad signature shows what should have been signed, with the request's
/// own values, and neither the secret nor the MAC hookgate computed.
#[test]
fn a_bad_signature_shows_the_expected_payload_shape_only() {
    let s = setup();
    let tampered = BODY.replace("evt_1", "evt_2");
    let (code, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some(&stripe_sig(BODY, TS)), &tampered),
        &["--at", AT],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL bad signature: none of the 1 secret(s) signs this request"),
        "{out}"
    );
    assert!(
        out.contains(
            "expected signature: v1=<hex sha256 of {timestamp}.{body}> in stripe-signature"
        ),
        "{out}"
    );
    assert!(
        out.contains("{timestamp} = \"1700000000\" (from signature:t)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{{body}} = the {} bytes received", tampered.len())),
        "{out}"
    );
    let expected_mac = hex_mac(STRIPE_SECRET, format!("{TS}.{tampered}").as_bytes());
    assert!(!out.contains(&expected_mac), "{out}");
}

#[test]
fn a_stale_timestamp_gives_the_clock_difference() {
    let s = setup();
    let (code, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some(&stripe_sig(BODY, TS)), BODY),
        &["--at", "1700003600"],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL stale timestamp: signed at 2023-11-14T22:13:20Z (unix 1700000000), 1h old at unix 1700003600; the route accepts 5m either way"),
        "{out}"
    );
    let (_, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some(&stripe_sig(BODY, TS)), BODY),
        &["--at", "1699999000"],
    );
    assert!(out.contains("16m 40s in the future"), "{out}");
    // A forged request with an old timestamp: the signature step fails
    // first, and the timestamp is mentioned too.
    let (code, out) = verify(
        &s,
        "stripe",
        &stripe_request(Some(&stripe_sig(BODY, TS)), "{}"),
        &["--at", "1700003600"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("FAIL bad signature"), "{out}");
    assert!(
        out.contains("and once signed right: stale timestamp: signed at 2023-11-14T22:13:20Z (unix 1700000000), 1h old"),
        "{out}"
    );
}

#[test]
fn a_filtered_event_is_named() {
    let s = setup();
    let sig = format!("sha256={}", hex_mac(GITHUB_SECRET, BODY.as_bytes()));
    let request = |event: &str| {
        format!(
            "POST /github HTTP/1.1\nX-GitHub-Event: {event}\nX-Hub-Signature-256: {sig}\n\n{BODY}"
        )
    };
    let (code, out) = verify(&s, "github", &request("issues"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL event: answered by hookgate and not forwarded (outcome filtered"),
        "{out}"
    );
    let (code, out) = verify(&s, "github", &request("push"), &[]);
    assert_eq!(code, 0, "{out}");
}

/// `curl -v` output shows the request's `> ` lines and no body: the body
/// comes from `--body`.
#[test]
fn curl_verbose_output_with_the_body_apart() {
    let s = setup();
    let curl = format!(
        "*   Trying 127.0.0.1:8080...\n* Connected to localhost\n> POST /stripe HTTP/1.1\n> Host: localhost:8080\n> User-Agent: curl/8.5.0\n> Stripe-Signature: {}\n> Content-Type: application/json\n> Content-Length: {}\n>\n< HTTP/1.1 200 OK\n< content-length: 0\n",
        stripe_sig(BODY, TS),
        BODY.len()
    );
    let body = s.dir.join("body.json");
    std::fs::write(&body, BODY).unwrap();
    let (code, out) = verify(
        &s,
        "stripe",
        &curl,
        &["--at", AT, "--body", body.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    // Bad input is an error (exit 2), never a panic.
    for bad in [
        "",
        "garbage",
        "POST\n",
        "POST /x HTTP/1.1\nno colon here\n\n",
    ] {
        let (code, out) = verify(&s, "stripe", bad, &[]);
        assert_eq!(code, 2, "{bad:?}: {out}");
        assert!(out.starts_with("error: "), "{out}");
    }
}

/// A HAR file (as browsers and proxies export it): the first entry's
/// request, its body from `postData.text`.
#[test]
fn har_input() {
    let s = setup();
    let har = serde_json::json!({
        "log": {"version": "1.2", "entries": [{"request": {
            "method": "POST",
            "url": "https://hooks.example.com/stripe?x=1",
            "httpVersion": "HTTP/2",
            "headers": [
                {"name": ":authority", "value": "hooks.example.com"},
                {"name": "stripe-signature", "value": stripe_sig(BODY, TS)},
                {"name": "content-type", "value": "application/json"}
            ],
            "postData": {"mimeType": "application/json", "text": BODY}
        }}]}
    });
    let (code, out) = verify(&s, "stripe", &har.to_string(), &["--at", AT]);
    assert_eq!(code, 0, "{out}");
    let tampered = har.to_string().replace("evt_1", "evt_9");
    let (code, out) = verify(&s, "stripe", &tampered, &["--at", AT]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL bad signature"), "{out}");
    let (code, out) = verify(&s, "stripe", r#"{"log":{"entries":[]}}"#, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no log.entries[0].request"), "{out}");
}
