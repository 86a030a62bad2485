//! No secret in logs, metrics, error bodies, admin answers, console pages
//! or CLI output:
//! the real binary, configured with distinctive secrets of every kind, is
//! driven through success and failure paths at debug log level, and
//! everything it printed or answered is searched for them.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const SECRETS: &[&str] = &[
    "hdr-SECRET-a1b2c3",
    "api-SECRET-d4e5f6",
    "hmac-SECRET-g7h8i9",
    "admin-SECRET-j0k1l2m3n4",
    "redis-SECRET-o5p6",
    "upstream-SECRET-q7r8",
    "meta-VERIFY-s9t0u1",
    "graph-STATE-v2w3x4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let closed = closed_port().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret_file = dir.path().join("hmac");
    std::fs::write(&secret_file, format!("{}\n", SECRETS[2])).unwrap();
    let u = upstream.url("/");
    let config = format!(
        r#"listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin_port}", token: "${{ADMIN_TOKEN}}" }}
data_dir: "{data}"
log: {{ format: json, level: debug }}
redis: {{ url: "redis://:${{REDIS_PASSWORD}}@{closed}/0", timeout: 200ms }}
routes:
  - name: timify
    path: /timify
    ack: sync
    verify: {{ scheme: header, header: X-Timify-Secret, secrets: ["${{HEADER_SECRET}}"] }}
    dedup: {{ backend: redis }}
    upstream: {{ url: "{u}", headers: {{ Authorization: "Bearer ${{UPSTREAM_TOKEN}}" }} }}
  - name: partner
    path: /partner
    ack: async
    verify: {{ scheme: api_key, header: Authorization, secrets: ["${{API_KEY}}"] }}
    upstream: {{ url: "{u}", headers: {{ X-Upstream-Key: "${{UPSTREAM_TOKEN}}" }} }}
  - name: trutac
    path: /trutac
    ack: sync
    verify: {{ scheme: trutac, secrets: ["${{file:{secret_file}}}"] }}
    upstream: {{ url: "http://{closed}/" }}
  - name: meta
    path: /meta
    ack: sync
    verify: {{ scheme: meta, secrets: ["meta-app-secret"], verify_token: "${{META_VERIFY_TOKEN}}" }}
    upstream: {{ url: "{u}" }}
  - name: graph
    path: /graph
    ack: sync
    verify: {{ scheme: microsoft_graph, secrets: ["${{GRAPH_CLIENT_STATE}}"] }}
    upstream: {{ url: "http://{closed}/" }}
"#,
        data = dir.path().join("data").display(),
        secret_file = secret_file.display(),
    );
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(&file, config).unwrap();
    let env = [
        ("HEADER_SECRET", SECRETS[0]),
        ("API_KEY", SECRETS[1]),
        ("ADMIN_TOKEN", SECRETS[3]),
        ("REDIS_PASSWORD", SECRETS[4]),
        ("UPSTREAM_TOKEN", SECRETS[5]),
        ("META_VERIFY_TOKEN", SECRETS[6]),
        ("GRAPH_CLIENT_STATE", SECRETS[7]),
    ];
    let binary = env!("CARGO_BIN_EXE_hookgate");
    let mut outputs: Vec<(String, String)> = Vec::new();

    let check = Command::new(binary)
        .args(["check", "-c"])
        .arg(&file)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    outputs.push((
        "check".into(),
        String::from_utf8_lossy(&check.stdout).into(),
    ));

    let mut child = Command::new(binary)
        .args(["serve", "-c"])
        .arg(&file)
        .envs(env)
        .env("HOOKGATE_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut ready = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "the gateway did not start");

    let body = r#"{"event":"ping"}"#;
    let sig = trutac_signature(SECRETS[2], body.as_bytes());
    let near_miss = |s: &str| format!("{}x", &s[..s.len() - 1]);
    let requests: Vec<(String, Vec<(String, String)>)> = vec![
        (
            "/timify".into(),
            vec![("X-Timify-Secret".into(), SECRETS[0].into())],
        ),
        (
            "/timify".into(),
            vec![("X-Timify-Secret".into(), near_miss(SECRETS[0]))],
        ),
        (
            "/partner".into(),
            vec![("Authorization".into(), format!("Bearer {}", SECRETS[1]))],
        ),
        (
            "/partner".into(),
            vec![(
                "Authorization".into(),
                format!("Bearer {}", near_miss(SECRETS[1])),
            )],
        ),
        (
            "/trutac".into(),
            vec![("TT-Hook-Signature".into(), sig.clone())],
        ),
        (
            "/trutac".into(),
            vec![("TT-Hook-Signature".into(), "sha1=00".into())],
        ),
    ];
    for (path, headers) in &requests {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = post(&format!("{base}{path}"), &headers, body).await;
        outputs.push((
            format!("answer {path}"),
            format!("{:?} {}", a.headers, String::from_utf8_lossy(&a.body)),
        ));
    }
    // Meta's subscription GET carries its verify token in the query
    // string; Graph's notifications carry the client state in the body.
    for (token, status) in [
        (SECRETS[6].to_string(), http::StatusCode::OK),
        (near_miss(SECRETS[6]), http::StatusCode::FORBIDDEN),
    ] {
        let a = get(&format!(
            "{base}/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42"
        ))
        .await;
        assert_eq!(a.status, status);
        outputs.push((
            "answer /meta".into(),
            format!("{:?} {}", a.headers, String::from_utf8_lossy(&a.body)),
        ));
    }
    for (state, status) in [
        (SECRETS[7].to_string(), http::StatusCode::BAD_GATEWAY),
        (near_miss(SECRETS[7]), http::StatusCode::UNAUTHORIZED),
    ] {
        let notification = format!(r#"{{"value":[{{"clientState":"{state}"}}]}}"#);
        let a = post(&format!("{base}/graph"), &[], notification).await;
        assert_eq!(a.status, status);
        outputs.push((
            "answer /graph".into(),
            format!("{:?} {}", a.headers, String::from_utf8_lossy(&a.body)),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = get(&format!("{admin}/metrics")).await;
    outputs.push((
        "metrics".into(),
        String::from_utf8_lossy(&metrics.body).into(),
    ));
    let denied = get(&format!("{admin}/admin/deliveries")).await;
    outputs.push((
        "admin 401".into(),
        String::from_utf8_lossy(&denied.body).into(),
    ));
    let listing = send(
        http::Request::get(format!("{admin}/admin/deliveries?route=partner"))
            .header("Authorization", format!("Bearer {}", SECRETS[3]))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    let listing_text = String::from_utf8_lossy(&listing.body).to_string();
    assert!(listing_text.contains("partner"), "{listing_text}");
    // The accepted `/partner` request is listed: the detail below is
    // always fetched and searched.
    let items = listing.json()["items"].clone();
    assert!(
        items.as_array().is_some_and(|items| !items.is_empty()),
        "no delivery listed: {listing_text}"
    );
    {
        let id = items[0]["id"].as_str().expect("a delivery id");
        let detail = send(
            http::Request::get(format!("{admin}/admin/deliveries/{id}"))
                .header("Authorization", format!("Bearer {}", SECRETS[3]))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        outputs.push((
            "delivery detail".into(),
            String::from_utf8_lossy(&detail.body).into(),
        ));
    }
    outputs.push(("deliveries".into(), listing_text));

    // The console: a near-miss login, then every page and a test event.
    let wrong = form_post(
        &format!("{admin}/ui/login"),
        None,
        &[("token", &near_miss(SECRETS[3]))],
    )
    .await;
    assert_eq!(wrong.status, http::StatusCode::UNAUTHORIZED);
    outputs.push((
        "console wrong login".into(),
        format!(
            "{:?} {}",
            wrong.headers,
            String::from_utf8_lossy(&wrong.body)
        ),
    ));
    let login = form_post(&format!("{admin}/ui/login"), None, &[("token", SECRETS[3])]).await;
    assert_eq!(login.status, http::StatusCode::SEE_OTHER);
    let cookie = login.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let id = items[0]["id"].as_str().unwrap();
    let mut csrf = String::new();
    for path in [
        "/ui/",
        "/ui/routes/partner",
        "/ui/routes/timify",
        "/ui/routes/trutac",
        "/ui/routes/meta",
        "/ui/routes/graph",
        &format!("/ui/events/{id}"),
        "/ui/dead-letters",
    ] {
        let page = send(
            http::Request::get(format!("{admin}{path}"))
                .header("cookie", &cookie)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, http::StatusCode::OK, "{path}");
        let text = String::from_utf8_lossy(&page.body).to_string();
        if let Some(at) = text.find(r#"name="csrf" value=""#) {
            csrf = text[at + 19..at + 83].to_string();
        }
        outputs.push((
            format!("console {path}"),
            format!("{:?} {text}", page.headers),
        ));
    }
    let test = form_post(
        &format!("{admin}/ui/routes/trutac/test"),
        Some(&cookie),
        &[("csrf", &csrf), ("body", body)],
    )
    .await;
    assert_eq!(test.status, http::StatusCode::OK);
    let test_text = String::from_utf8_lossy(&test.body).to_string();
    assert!(
        test_text.contains("502"),
        "the closed upstream's answer: {test_text}"
    );
    outputs.push(("console test event".into(), test_text));
    for route in ["partner", "timify", "graph"] {
        let refused = form_post(
            &format!("{admin}/ui/routes/{route}/test"),
            Some(&cookie),
            &[("csrf", &csrf), ("body", body)],
        )
        .await;
        assert_eq!(
            refused.status,
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "{route}"
        );
        outputs.push((
            format!("console test event {route}"),
            String::from_utf8_lossy(&refused.body).into(),
        ));
    }

    // A reload that fails reports without values: the new file names a
    // variable that is not set, in a value right after a secret.
    let config_text = std::fs::read_to_string(&file).unwrap();
    let broken = config_text.replace(
        "X-Upstream-Key: \"${UPSTREAM_TOKEN}\"",
        "X-Upstream-Key: \"${UPSTREAM_TOKEN}${HOOKGATE_TEST_UNSET_VARIABLE}\"",
    );
    assert_ne!(broken, config_text);
    std::fs::write(&file, broken).unwrap();
    let reload = send(
        http::Request::post(format!("{admin}/admin/reload"))
            .header("Authorization", format!("Bearer {}", SECRETS[3]))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        reload.status,
        http::StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reload.body
    );
    let refused = reload.json();
    assert_eq!(refused["error"], "reload_refused", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HOOKGATE_TEST_UNSET_VARIABLE")),
        "{refused}"
    );
    outputs.push((
        "reload".into(),
        String::from_utf8_lossy(&reload.body).into(),
    ));

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    assert!(
        log.contains("hookgate::access"),
        "the log has no access lines: {log}"
    );
    outputs.push(("log".into(), log));

    for (what, text) in &outputs {
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} appears in {what}:\n{text}"
            );
        }
    }
    // The upstream did get its credential.
    assert!(upstream.received().iter().any(|r| r
        .headers
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {}", SECRETS[5]).as_str())));
}

/// POSTs a form, with a cookie when given.
async fn form_post(url: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        body.append_pair(k, v);
    }
    let mut request =
        http::Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(
        request
            .body(http_body_util::Full::new(bytes::Bytes::from(body.finish())))
            .unwrap(),
    )
    .await
}
