//! Edge features on real sockets: TLS with HTTP/2 and HTTP/1.1, config
//! reload under traffic, address allowlists behind trusted proxies, rate
//! limits, and the access log of the real binary.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio_rustls::rustls;

/// A self-signed certificate for localhost/127.0.0.1, as PEM files.
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// Connects with TLS trusting `trusted` (DER), offering `alpn`; returns the
/// stream and the server certificate it presented.
async fn tls_connect(
    addr: std::net::SocketAddr,
    trusted: &[u8],
    alpn: &[&[u8]],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(trusted.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, presented)
}

fn signed_request(path: &str, body: &'static str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://localhost{path}"))
        .header("X-Secret", "s3cret")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn tls_config(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    upstream: &Upstream,
) -> String {
    format!(
        "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\ntls: {{ cert_file: \"{}\", key_file: \"{}\" }}\nroutes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: header, header: X-Secret, secrets: [s3cret] }}, upstream: {{ url: \"{}\" }} }}\n",
        dir.join("data").display(),
        cert.display(),
        key.display(),
        upstream.url("/")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_and_http1_and_reload_swaps_the_certificate_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let (cert, key, first_der) = certificate(dir.path(), "first");
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(&file, tls_config(dir.path(), &cert, &key, &upstream)).unwrap();
    let gateway = Gateway::start_file(&file, &[]).await;

    // HTTP/2 negotiated by ALPN.
    let (stream, presented) = tls_connect(gateway.addr, &first_der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(presented, first_der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = h2
        .send_request(signed_request("/r", "{\"h2\":1}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), http::Version::HTTP_2);

    // HTTP/1.1 when that is all the client offers.
    let (stream, _) = tls_connect(gateway.addr, &first_der, &[b"http/1.1"]).await;
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = h1
        .send_request(signed_request("/r", "{\"h1\":1}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), http::Version::HTTP_11);
    r.into_body().collect().await.unwrap();
    h1.ready().await.unwrap();
    let unsigned = http::Request::post("https://localhost/r")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        h1.send_request(unsigned).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Rotate the certificate files and reload.
    let (_, _, second_der) = {
        let (c, k, der) = certificate(dir.path(), "second");
        std::fs::rename(&c, &cert).unwrap();
        std::fs::rename(&k, &key).unwrap();
        (cert.clone(), key.clone(), der)
    };
    let reload = post(&gateway.admin_url("/admin/reload"), &[], "").await;
    assert_eq!(reload.status, StatusCode::OK, "{:?}", reload.body);
    // New connections get the new certificate...
    let (_, presented) = tls_connect(gateway.addr, &second_der, &[b"h2"]).await;
    assert_eq!(presented, second_der);
    // ...and the connection opened before the reload still works.
    let r = h2
        .send_request(signed_request("/r", "{\"h2\":2}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test]
async fn a_tls_config_with_a_bad_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let (cert, key, _) = certificate(dir.path(), "c");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let text = tls_config(dir.path(), &cert, &key, &upstream);
    let config = hookgate::Config::from_yaml(&text, &Default::default()).unwrap();
    let error = match hookgate::Server::bind(config).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started with a bad key"),
    };
    assert!(error.contains("tls"), "{error}");
    assert!(
        !error.contains("AAAA"),
        "key material in the error: {error}"
    );
}

fn reload_config(
    dir: &std::path::Path,
    upstream: &Upstream,
    generation: u32,
    secret_file: &std::path::Path,
) -> String {
    format!(
        // One serving thread: one upstream pool, whichever connection a
        // request comes on (the pool-keeping test counts its connections).
        "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nruntime: {{ threads: 1 }}\nroutes:\n  - name: r\n    path: /r\n    ack: sync\n    dedup: off\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"${{file:{}}}\"] }}\n    upstream: {{ url: \"{}\", headers: {{ X-Generation: \"{generation}\" }} }}\n",
        dir.join("data").display(),
        secret_file.display(),
        upstream.url("/")
    )
}

/// A temp dir with a secret file and a generation-1 reload config beside
/// an upstream: what the reload tests start from.
async fn reload_fixture() -> (
    tempfile::TempDir,
    Upstream,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(&file, reload_config(dir.path(), &upstream, 1, &secret)).unwrap();
    (dir, upstream, secret, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_traffic_fails_no_request_and_refuses_bad_configs() {
    let (dir, upstream, secret, file) = reload_fixture().await;
    let gateway = Arc::new(Gateway::start_file(&file, &[]).await);

    // Traffic: four senders, bounded, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (gateway, stop) = (gateway.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) && statuses.len() < 2000 {
                statuses.push(
                    post(&gateway.url("/r"), &[("X-Secret", "s3cret")], "{}")
                        .await
                        .status,
                );
            }
            statuses
        }));
    }
    for generation in 2..=6 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(
            &file,
            reload_config(dir.path(), &upstream, generation, &secret),
        )
        .unwrap();
        let r = post(&gateway.admin_url("/admin/reload"), &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for s in senders {
        let statuses = s.await.unwrap();
        total += statuses.len();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "a request failed during reloads"
        );
    }
    assert!(total > 0);
    // Requests that started before the last reload may still land after
    // it, so the probe is a request sent once the senders have stopped.
    let probe = post(&gateway.url("/r"), &[("X-Secret", "s3cret")], "{}").await;
    assert_eq!(probe.status, StatusCode::OK);
    let last = upstream.received().last().unwrap().headers["x-generation"].clone();
    assert_eq!(last, "6", "the last reload is in force");
    assert_eq!(
        gateway
            .metric(r#"hookgate_config_reloads_total{result="success"}"#)
            .await,
        5.0
    );

    // An invalid file is refused; the old routes keep serving.
    std::fs::write(&file, "routes: [ {").unwrap();
    let refused = post(&gateway.admin_url("/admin/reload"), &[], "").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.json()["reason"]
        .as_str()
        .unwrap()
        .contains("hookgate.yaml"));
    // So is a change that needs a restart.
    std::fs::write(
        &file,
        reload_config(dir.path(), &upstream, 7, &secret).replace(
            "listen: \"127.0.0.1:0\"\nadmin",
            "listen: \"127.0.0.1:1\"\nadmin",
        ),
    )
    .unwrap();
    let refused = post(&gateway.admin_url("/admin/reload"), &[], "").await;
    assert!(
        refused.json()["reason"]
            .as_str()
            .unwrap()
            .contains("restart"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        gateway
            .metric(r#"hookgate_config_reloads_total{result="failure"}"#)
            .await,
        2.0
    );
    assert_eq!(
        post(&gateway.url("/r"), &[("X-Secret", "s3cret")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        upstream.received().last().unwrap().headers["x-generation"],
        "6"
    );

    // A rotated secret file takes effect on reload; the refused reloads
    // did not change anything meanwhile.
    std::fs::write(&file, reload_config(dir.path(), &upstream, 8, &secret)).unwrap();
    std::fs::write(&secret, "rotated\n").unwrap();
    assert_eq!(
        post(&gateway.admin_url("/admin/reload"), &[], "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&gateway.url("/r"), &[("X-Secret", "s3cret")], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&gateway.url("/r"), &[("X-Secret", "rotated")], "{}")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_reload_keeps_the_upstream_connection_pool() {
    let (dir, upstream, secret, file) = reload_fixture().await;
    let gateway = Gateway::start_file(&file, &[]).await;
    let url = gateway.url("/r");
    let forward = || post(&url, &[("X-Secret", "s3cret")], "{}");

    assert_eq!(forward().await.status, StatusCode::OK);
    assert_eq!(upstream.connections(), 1);
    std::fs::write(&file, reload_config(dir.path(), &upstream, 2, &secret)).unwrap();
    let r = post(&gateway.admin_url("/admin/reload"), &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(forward().await.status, StatusCode::OK);
    assert_eq!(
        upstream.received().last().unwrap().headers["x-generation"],
        "2"
    );
    // The new routes send through the pool built at start-up: the
    // keep-alive connection opened before the reload carries them.
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_secret_files_reload_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "first").unwrap();
    let file = dir.path().join("hookgate.yaml");
    let text = format!(
        "reload: {{ watch: true, interval: 50ms }}\n{}",
        reload_config(dir.path(), &upstream, 1, &secret)
    );
    std::fs::write(&file, text).unwrap();
    let gateway = Gateway::start_file(&file, &[]).await;
    assert_eq!(
        post(&gateway.url("/r"), &[("X-Secret", "first")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    // Kubernetes replaces a mounted Secret's file; no signal is sent.
    std::fs::write(&secret, "second").unwrap();
    let url = gateway.url("/r");
    let url = url.as_str();
    wait_until(
        "the watcher to reload",
        Duration::from_secs(10),
        || async move { post(url, &[("X-Secret", "second")], "{}").await.status == StatusCode::OK },
    )
    .await;
    assert_eq!(
        post(&gateway.url("/r"), &[("X-Secret", "first")], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn allow_ips_believes_forwarded_for_only_from_trusted_proxies() {
    let upstream = Upstream::start().await;
    let route = |trusted: &str| {
        format!(
            "{trusted}routes:\n  - {{ name: gh, path: /gh, ack: sync, dedup: off, allow_ips: [\"192.30.252.0/22\", \"10.9.9.9\"], verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n",
            upstream.url("/")
        )
    };
    // No trusted proxies: the peer (127.0.0.1) is the sender, and is refused.
    let direct = Gateway::start(&route("")).await;
    let r = post(
        &direct.url("/gh"),
        &[("X-Forwarded-For", "192.30.252.10")],
        "{}",
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        direct
            .metric(r#"hookgate_requests_total{route="gh",outcome="forbidden"}"#)
            .await,
        1.0
    );

    // Behind a trusted proxy (this host), the forwarded address decides.
    let proxied = Gateway::start(&route("trusted_proxies: [\"127.0.0.1/32\"]\n")).await;
    let ok = post(
        &proxied.url("/gh"),
        &[("X-Forwarded-For", "192.30.252.10")],
        "{}",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let single = post(
        &proxied.url("/gh"),
        &[("X-Forwarded-For", "10.9.9.9")],
        "{}",
    )
    .await;
    assert_eq!(single.status, StatusCode::OK);
    // A sender cannot prepend an allowed address: the right-most untrusted one counts.
    let forged = post(
        &proxied.url("/gh"),
        &[("X-Forwarded-For", "192.30.252.10, 203.0.113.5")],
        "{}",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn rate_limited_routes_answer_429_with_retry_after() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, rate_limit: {{ per_second: 1, burst: 2 }}, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n  - {{ name: free, path: /free, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/"),
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    // Burst 2, one token a second: send until the first 429. The bucket
    // may refill while a loaded machine runs the loop, so the test does not
    // count on the third request being the one refused, only on the burst
    // being honoured and a refusal coming well before the loop ends.
    let mut statuses = Vec::new();
    while statuses.len() < 50 {
        let answer = post(&gateway.url("/r"), &[], "{}").await;
        let refused = answer.status == StatusCode::TOO_MANY_REQUESTS;
        statuses.push(answer);
        if refused {
            break;
        }
    }
    let refusal = statuses.pop().unwrap();
    assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.error_code(), "rate_limited");
    assert!(statuses.len() >= 2, "the burst of 2 was not honoured");
    assert!(statuses.iter().all(|a| a.status == StatusCode::OK));
    let retry_after: u64 = refusal.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));
    // Limits are per route.
    assert_eq!(
        post(&gateway.url("/free"), &[], "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway
            .metric(r#"hookgate_requests_total{route="r",outcome="rate_limited"}"#)
            .await,
        1.0
    );
    assert_eq!(upstream.received().len(), statuses.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_json_line_per_request_and_no_secret() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(
        &file,
        format!(
            "listen: \"127.0.0.1:{port}\"\nadmin: {{ listen: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nlog: {{ format: json, level: info }}\nroutes:\n  - {{ name: timify, path: /t, ack: sync, dedup: off, verify: {{ scheme: header, header: X-Timify-Secret, secrets: [\"very-secret-value\"] }}, upstream: {{ url: \"{}\" }} }}\n",
            dir.path().join("data").display(),
            upstream.url("/")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve", "-c"])
        .arg(&file)
        .env_remove("HOOKGATE_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Every line read, including those `next` passes over, is kept and
    // searched for secrets at the end.
    let mut lines: Vec<String> = Vec::new();
    let mut next = |want: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no such log line");
        lines.push(line.clone());
        if line.contains(want) {
            return line;
        }
    };
    next("hookgate is serving");
    let url = format!("http://127.0.0.1:{port}/t");
    post(
        &url,
        &[("X-Timify-Secret", "very-secret-value")],
        "{\"body\":\"private\"}",
    )
    .await;
    post(&url, &[("X-Timify-Secret", "wrong-guess")], "{}").await;
    let ok: serde_json::Value = serde_json::from_str(&next("hookgate::access")).unwrap();
    assert_eq!(ok["fields"]["route"], "timify");
    assert_eq!(ok["fields"]["outcome"], "accepted");
    assert_eq!(ok["fields"]["status"], 200);
    assert_eq!(ok["fields"]["remote"], "127.0.0.1");
    assert!(ok["fields"]["duration_ms"].as_f64().is_some());
    let denied = next("hookgate::access");
    assert!(denied.contains("\"unauthorized\""), "{denied}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(line);
    }
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        for secret in ["very-secret-value", "wrong-guess", "private"] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}

/// A client that puts an IP address in SNI (OpenSSL does when told to, as
/// wrk and some senders' stacks do) is served without a log line: rustls's
/// own logging, which warned on every such handshake, is not compiled in,
/// so no sender can make the log grow by a line per connection.
// Multi-threaded: the upstream answers while the test waits for curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_address_in_sni_leaves_no_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let (cert, key, _) = certificate(dir.path(), "edge");
    let rest = format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\" }}\nroutes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: header, header: X-Secret, secrets: [s3cret] }}, upstream: {{ url: \"{}\" }} }}\n",
        cert.display(),
        key.display(),
        upstream.url("/")
    );
    let ProcessConfig { file, ingress, .. } = process_config(dir.path(), &rest);
    let process = GatewayProcess::spawn(&file);
    let served_before = process.log().len();
    for _ in 0..3 {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-brief", "-connect"])
            .arg(format!("127.0.0.1:{ingress}"))
            .args(["-servername", "127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("CONNECTION ESTABLISHED"), "{said}");
    }
    // One request after them: its access line is written after anything
    // the handshakes wrote, so once it is read, so is everything before it.
    let status = std::process::Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-H",
            "X-Secret: s3cret",
            "-d",
            "{}",
        ])
        .arg(format!("https://127.0.0.1:{ingress}/r"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut log = process.log();
    while !log.iter().any(|line| line.contains("hookgate::access")) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = process.log();
    }
    let other: Vec<&String> = log[served_before..]
        .iter()
        .filter(|line| !line.contains("hookgate::access"))
        .collect();
    assert!(
        other.is_empty(),
        "log lines from handshakes with an IP address in SNI: {other:?}"
    );
    process.terminate();
}
