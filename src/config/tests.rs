//! Config parsing and validation: every rule, with the field path it names.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::verify::SpecKind;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const MINIMAL: &str = r#"
routes:
  - name: trutac
    path: /hooks/trutac
    verify: { scheme: trutac, secrets: ["${TRUTAC_SECRET}"] }
    ack: sync
    dedup: off
    upstream:
      url: "http://127.0.0.1:3000/trutac"
      timeout: 10s
      headers: { X-Source: trutac }
"#;

fn load(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, &env(&[("TRUTAC_SECRET", "t-secret")]))
}

/// Replaces `from` with `to` in MINIMAL and expects an error at `path`.
fn expect_error(from: &str, to: &str, path: &str, needle: &str) {
    assert!(MINIMAL.contains(from), "{from}");
    let err = load(&MINIMAL.replace(from, to)).unwrap_err();
    assert_eq!(err.path, path, "{err}");
    assert!(err.message.contains(needle), "{err}");
}

#[test]
fn the_issue_example_parses_with_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.data_dir, std::path::PathBuf::from("./data"));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    let r = &c.routes[0];
    assert_eq!(r.name, "trutac");
    assert_eq!(r.ack, AckMode::Sync);
    assert_eq!(r.dedup, DedupMode::Off);
    let upstream = r.sync_upstream().expect("an http upstream");
    assert_eq!(upstream.timeout, Duration::from_secs(10));
    assert_eq!(upstream.headers["x-source"], "trutac");
    assert_eq!(r.destinations.len(), 1);
    assert_eq!(r.first().name, "upstream");
    match &r.verify.kind {
        SpecKind::Hmac { secrets, .. } => assert_eq!(secrets[0].expose_secret(), "t-secret"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shipped_example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap();
    let c = Config::from_yaml(&text, &HashMap::new()).unwrap();
    let names: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["trutac", "timify", "timekit", "partner", "stripe", "pubsub"]
    );
    assert_eq!(c.route("timekit").unwrap().ack, AckMode::Async);
    // It passes without giving up replay protection, and warns of nothing.
    for route in &c.routes {
        if let DedupMode::On(d) = &route.dedup {
            assert!(!d.unsigned_key_allowed, "{}", route.name);
        }
    }
    assert_eq!(c.trust_warnings(), Vec::<String>::new());
    assert_eq!(c.route("timify").unwrap().ack, AckMode::Sync);
    assert!(matches!(
        c.route("timify").unwrap().verify.kind,
        SpecKind::Header { .. }
    ));
    assert!(matches!(
        c.route("partner").unwrap().verify.kind,
        SpecKind::ApiKey { .. }
    ));
}

#[test]
fn durations_and_limits() {
    let c = load(&format!(
        "limits: {{ max_body_bytes: 10, header_read_timeout: 250ms, body_read_timeout: 5m, idle_timeout: 90s }}\nshutdown_timeout: 7d\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(c.limits.max_body_bytes, 10);
    assert_eq!(c.limits.header_read_timeout, Duration::from_millis(250));
    assert_eq!(c.limits.body_read_timeout, Duration::from_secs(300));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
    assert_eq!(Limits::default().idle_timeout, Duration::from_secs(60));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(7 * 86400));
    let err = load(&format!("limits: {{ body_read_timeout: soon }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "limits.body_read_timeout");
    let err = load(&format!("limits: {{ max_body_bytes: 0 }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "limits.max_body_bytes");
    let err = load(&format!("limits: {{ idle_timeout: 0s }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(
        (err.path.as_str(), err.message.as_str()),
        ("limits.idle_timeout", "must be greater than zero")
    );
    expect_error(
        "timeout: 10s",
        "timeout: 0s",
        "routes[0].upstream.timeout",
        "greater than zero",
    );
}

#[test]
fn runtime_ingress_threads() {
    use crate::config::{IngressThreads, RuntimeConfig};
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.runtime, RuntimeConfig::default());
    assert_eq!(c.runtime.ingress, IngressThreads::PerCore);
    assert!(c.runtime.serving_threads() >= 1);
    let c = load(&format!(
        "runtime: {{ ingress: per_core, threads: 3 }}\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(
        (c.runtime.ingress, c.runtime.serving_threads()),
        (IngressThreads::PerCore, 3)
    );
    let c = load(&format!("runtime: {{ ingress: shared }}\n{MINIMAL}")).unwrap();
    assert_eq!(c.runtime.ingress, IngressThreads::Shared);
    let err = load(&format!("runtime: {{ ingress: threads }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "runtime.ingress");
    assert!(
        err.message.contains("`per_core` or `shared`"),
        "{}",
        err.message
    );
    let err = load(&format!("runtime: {{ threads: 0 }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "runtime.threads");
    let err = load(&format!("runtime: {{ cores: 2 }}\n{MINIMAL}")).unwrap_err();
    assert!(err.message.contains("cores"), "{}", err.message);
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let err = load(&format!("lisen: x\n{MINIMAL}")).unwrap_err();
    assert!(err.message.contains("lisen"), "{err}");
    expect_error(
        "ack: sync",
        "ack: sync\n    retries: 3",
        "routes[0].retries",
        "unknown field",
    );
    expect_error(
        "timeout: 10s",
        "timeout: 10s\n      tls: true",
        "routes[0].upstream.tls",
        "unknown field",
    );
    expect_error(
        "scheme: trutac,",
        "scheme: trutac, algo: sha1,",
        "routes[0].verify.algo",
        "unknown field",
    );
}

#[test]
fn env_expansion_errors_name_the_variable_and_field() {
    let err = Config::from_yaml(MINIMAL, &HashMap::new()).unwrap_err();
    assert_eq!(err.path, "routes[0].verify.secrets[0]");
    assert!(err.message.contains("TRUTAC_SECRET"), "{err}");
    // The default form works without the variable.
    let c = Config::from_yaml(
        &MINIMAL.replace("${TRUTAC_SECRET}", "${TRUTAC_SECRET:-dev}"),
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(c.routes[0].verify.secret_count(), 1);
}

#[test]
fn secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trutac");
    std::fs::write(&file, "from-file\n").unwrap();
    let c = load(&MINIMAL.replace("${TRUTAC_SECRET}", &format!("${{file:{}}}", file.display())))
        .unwrap();
    match &c.routes[0].verify.kind {
        SpecKind::Hmac { secrets, .. } => assert_eq!(secrets[0].expose_secret(), "from-file"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_route_without_verify_is_an_error_and_none_is_explicit() {
    let without = MINIMAL.replace(
        "    verify: { scheme: trutac, secrets: [\"${TRUTAC_SECRET}\"] }\n",
        "",
    );
    let err = load(&without).unwrap_err();
    assert_eq!(err.path, "routes[0].verify");
    assert!(err.message.contains("scheme: none"), "{err}");
    let none = MINIMAL.replace(
        "{ scheme: trutac, secrets: [\"${TRUTAC_SECRET}\"] }",
        "{ scheme: none }",
    );
    assert!(matches!(
        load(&none).unwrap().routes[0].verify.kind,
        SpecKind::None
    ));
}

#[test]
fn scheme_rules() {
    let v = "{ scheme: trutac, secrets: [\"${TRUTAC_SECRET}\"] }";
    let cases = [
        (
            "{ scheme: md5, secrets: [a] }",
            "routes[0].verify.scheme",
            "unknown scheme",
        ),
        (
            "{ scheme: trutac }",
            "routes[0].verify.secrets",
            "at least one secret",
        ),
        (
            "{ scheme: trutac, secrets: [] }",
            "routes[0].verify.secrets",
            "at least one secret",
        ),
        (
            "{ scheme: trutac, secrets: [a, \"\"] }",
            "routes[0].verify.secrets[1]",
            "empty",
        ),
        (
            "{ scheme: trutac, header: X, secrets: [a] }",
            "routes[0].verify.header",
            "fixed by the `trutac` preset",
        ),
        (
            "{ scheme: header, secrets: [a] }",
            "routes[0].verify.header",
            "required",
        ),
        (
            "{ scheme: header, header: X, prefix: p, secrets: [a] }",
            "routes[0].verify.prefix",
            "does not apply",
        ),
        (
            "{ scheme: none, secrets: [a] }",
            "routes[0].verify.secrets",
            "does not apply",
        ),
        (
            "{ scheme: hmac, header: X, secrets: [a] }",
            "routes[0].verify.algorithm",
            "required",
        ),
        (
            "{ scheme: hmac, header: X, algorithm: md5, secrets: [a] }",
            "routes[0].verify.algorithm",
            "md5",
        ),
        (
            "{ scheme: hmac, header: X, algorithm: sha1, encoding: b32, secrets: [a] }",
            "routes[0].verify.encoding",
            "b32",
        ),
        (
            "{ scheme: hmac, header: \"bad header\", algorithm: sha1, secrets: [a] }",
            "routes[0].verify.header",
            "not a valid header",
        ),
    ];
    for (replacement, path, needle) in cases {
        let err = load(&MINIMAL.replace(v, replacement)).unwrap_err();
        assert_eq!(err.path, path, "{replacement}: {err}");
        assert!(err.message.contains(needle), "{replacement}: {err}");
    }
    let ok = [
        "{ scheme: hmac, header: X-Sig, algorithm: sha256, encoding: base64, prefix: 'v1=', secrets: [a] }",
        "{ scheme: api_key, secrets: [a] }",
        "{ scheme: api_key, header: Authorization, secrets: [a] }",
        "{ scheme: github, secrets: [a, b] }",
    ];
    for replacement in ok {
        load(&MINIMAL.replace(v, replacement)).unwrap_or_else(|e| panic!("{replacement}: {e}"));
    }
}

#[test]
fn route_rules() {
    expect_error(
        "name: trutac",
        "name: TruTac",
        "routes[0].name",
        "not a valid route name",
    );
    expect_error(
        "name: trutac",
        "name: _unmatched",
        "routes[0].name",
        "reserved",
    );
    expect_error(
        "path: /hooks/trutac",
        "path: hooks",
        "routes[0].path",
        "start with `/`",
    );
    expect_error(
        "path: /hooks/trutac",
        "path: /hooks?x=1",
        "routes[0].path",
        "query",
    );
    expect_error(
        "ack: sync",
        "ack: later",
        "routes[0].ack",
        "unknown ack mode",
    );
    expect_error(
        "http://127.0.0.1:3000/trutac",
        "https://x/y",
        "routes[0].upstream.url",
        "https",
    );
    expect_error(
        "http://127.0.0.1:3000/trutac",
        "/relative",
        "routes[0].upstream.url",
        "absolute",
    );
    expect_error(
        "http://127.0.0.1:3000/trutac",
        "http://u:p@h/",
        "routes[0].upstream.url",
        "credentials",
    );
    expect_error(
        "X-Source: trutac",
        "Connection: close",
        "routes[0].upstream.headers.Connection",
        "managed by hookgate",
    );
    let err = load(&format!("listen: \"localhost:80\"\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "listen");
    let err = load(&format!(
        "listen: \"127.0.0.1:80\"\nadmin: {{ listen: \"127.0.0.1:80\" }}\n{MINIMAL}"
    ))
    .unwrap_err();
    assert_eq!(err.path, "admin.listen");
    assert_eq!(load("routes: []").unwrap_err().path, "routes");
    assert!(load("").unwrap_err().message.contains("empty"));
    assert!(load("routes: [")
        .unwrap_err()
        .message
        .contains("invalid YAML"));
}

#[test]
fn dedup_settings_defaults_and_errors() {
    let on = |yaml: &str| match load(yaml).unwrap().routes[0].dedup.clone() {
        DedupMode::On(d) => d,
        DedupMode::Off => panic!("dedup is off"),
    };
    // The original example, whose header part TruTac does not sign, is
    // accepted only when the route gives up replay protection.
    let d = on(&MINIMAL.replace(
        "dedup: off",
        "dedup:\n      key: \"{header:TT-Hook-Event}:{json:/action}:{json:/clocking/id}\"\n      ttl: 24h\n      backend: local\n      on_store_error: accept\n      unsigned_key: allow",
    ));
    assert_eq!(
        d.key.as_str(),
        "{header:TT-Hook-Event}:{json:/action}:{json:/clocking/id}"
    );
    assert!(d.unsigned_key_allowed);
    assert_eq!(d.ttl, Duration::from_secs(86400));
    assert_eq!(
        (d.backend, d.on_store_error),
        (DedupBackend::Local, StoreErrorPolicy::Accept)
    );
    // No block: on, with the body digest for a preset without an event ID...
    let d = on(&MINIMAL.replace("    dedup: off\n", ""));
    assert_eq!(d.key.as_str(), "{body_sha256}");
    assert_eq!(d.ttl, Duration::from_secs(86400));
    // ...and the natural ID for one that has it.
    let d = on(&MINIMAL
        .replace("    dedup: off\n", "")
        .replace("scheme: trutac", "scheme: stripe"));
    assert_eq!(d.key.as_str(), "{json:/id}");
    // GitHub's delivery ID is outside its signature: the body digest.
    let d = on(&MINIMAL
        .replace("    dedup: off\n", "")
        .replace("scheme: trutac", "scheme: github"));
    assert_eq!(d.key.as_str(), "{body_sha256}");
    assert!(!d.unsigned_key_allowed);
    // A partial block keeps the other defaults.
    let d = on(&MINIMAL.replace("dedup: off", "dedup: { ttl: 1h, on_store_error: reject }"));
    assert_eq!(
        (d.key.as_str(), d.ttl),
        ("{body_sha256}", Duration::from_secs(3600))
    );
    assert_eq!(d.on_store_error, StoreErrorPolicy::Reject);

    expect_error(
        "dedup: off",
        "dedup: { key: x }",
        "routes[0].dedup.key",
        "has no part",
    );
    expect_error(
        "dedup: off",
        "dedup: { key: \"{json:id}\" }",
        "routes[0].dedup.key",
        "JSON pointer",
    );
    expect_error(
        "dedup: off",
        "dedup: { ttl: forever }",
        "routes[0].dedup.ttl",
        "not a duration",
    );
    expect_error(
        "dedup: off",
        "dedup: { backend: memcached }",
        "routes[0].dedup.backend",
        "memcached",
    );
    expect_error(
        "dedup: off",
        "dedup: { on_store_error: ignore }",
        "routes[0].dedup.on_store_error",
        "ignore",
    );
    expect_error(
        "dedup: off",
        "dedup: { window: 1h }",
        "routes[0].dedup.window",
        "unknown field",
    );
    expect_error(
        "dedup: off",
        "dedup: on",
        "routes[0].dedup",
        "expected `off` or a map",
    );
    expect_error(
        "dedup: off",
        "dedup: { backend: redis }",
        "routes[0].dedup.backend",
        "top-level `redis:`",
    );
}

#[test]
fn async_acknowledgement_settings() {
    // The issue's example, and the defaults.
    let c = load(&format!(
        "store: {{ fsync: false, retention: 3d }}\n{}",
        MINIMAL.replace(
            "ack: sync",
            "ack: async\n    ack_status: 204\n    max_pending: 50",
        )
        .replace(
            "timeout: 10s",
            "timeout: 10s\n      concurrency: 4\n      retry: { max_attempts: 3, initial_backoff: 2s, max_backoff: 1m, max_age: 1h }",
        )
    ))
    .unwrap();
    assert!(!c.store.fsync);
    assert_eq!(c.store.retention, Duration::from_secs(3 * 86400));
    let r = &c.routes[0];
    assert_eq!(r.ack, AckMode::Async);
    assert_eq!(r.ack_status, http::StatusCode::NO_CONTENT);
    assert_eq!(r.max_pending, 50);
    assert_eq!(r.first().concurrency, 4);
    assert_eq!(r.first().retry.max_attempts, 3);
    assert_eq!(r.first().retry.initial_backoff, Duration::from_secs(2));
    assert_eq!(r.first().retry.max_backoff, Duration::from_secs(60));
    assert_eq!(r.first().retry.max_age, Duration::from_secs(3600));

    let d = load(&MINIMAL.replace("    ack: sync\n", "")).unwrap();
    assert!(d.store.fsync, "fsync is on by default");
    assert_eq!(d.store.retention, Duration::from_secs(7 * 86400));
    let r = &d.routes[0];
    assert_eq!(r.ack, AckMode::Async, "async is the default");
    assert_eq!(
        (r.ack_status, r.max_pending),
        (http::StatusCode::OK, 100_000)
    );
    assert_eq!(r.first().concurrency, 16);
    assert_eq!(r.first().retry.max_attempts, 15);
    assert_eq!(r.first().retry.max_backoff, Duration::from_secs(600));
    assert_eq!(r.first().retry.max_age, Duration::from_secs(72 * 3600));

    expect_error(
        "ack: sync",
        "ack: later",
        "routes[0].ack",
        "expected `async` or `sync`",
    );
    expect_error(
        "ack: sync",
        "ack_status: 302",
        "routes[0].ack_status",
        "not a 2xx",
    );
    expect_error(
        "ack: sync",
        "max_pending: 0",
        "routes[0].max_pending",
        "greater than zero",
    );
    expect_error(
        "timeout: 10s",
        "concurrency: 0",
        "routes[0].upstream.concurrency",
        "greater than zero",
    );
    expect_error(
        "timeout: 10s",
        "retry: { max_attempts: 0 }",
        "routes[0].upstream.retry.max_attempts",
        "at least 1",
    );
    expect_error(
        "timeout: 10s",
        "retry: { initial_backoff: 1m, max_backoff: 1s }",
        "routes[0].upstream.retry.max_backoff",
        "not be shorter",
    );
    expect_error(
        "timeout: 10s",
        "retry: { jitter: none }",
        "routes[0].upstream.retry.jitter",
        "unknown field",
    );
    let err = load(&format!("store: {{ fsync: maybe }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "store.fsync");
    let err = load(&format!("admin: {{ token: tok3n }}\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "admin.token");
    assert!(!err.to_string().contains("tok3n"), "{err}");
    let c = load(&format!(
        "admin: {{ token: \"0123456789abcdef-admin\" }}\n{MINIMAL}"
    ))
    .unwrap();
    assert!(c.admin_token.is_some());
    assert!(!format!("{c:?}").contains("0123456789abcdef-admin"));
}

#[test]
fn redis_block() {
    let yaml = format!(
        "redis: {{ url: \"redis://:hunter2@10.0.0.5:6379/0\" }}\n{}",
        MINIMAL.replace("dedup: off", "dedup: { backend: redis }")
    );
    let c = load(&yaml).unwrap();
    let redis = c.redis.as_ref().unwrap();
    assert_eq!(redis.key_prefix, "hookgate:");
    assert_eq!(redis.timeout, Duration::from_secs(1));
    assert_eq!(redis.redacted_url(), "redis://***@10.0.0.5:6379/0");
    assert!(!format!("{c:?}").contains("hunter2"));
    let err = load(&format!(
        "redis: {{ url: \"http://:hunter2@x\" }}\n{MINIMAL}"
    ))
    .unwrap_err();
    assert_eq!(err.path, "redis.url");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = load(&format!(
        "redis: {{ url: \"redis://x\", prefix: a }}\n{MINIMAL}"
    ))
    .unwrap_err();
    assert_eq!(err.path, "redis.prefix");
}

#[test]
fn duplicate_names_and_paths_are_errors() {
    let route = MINIMAL.split_once("routes:\n").unwrap().1;
    let twice = format!("{MINIMAL}{route}");
    let err = load(&twice).unwrap_err();
    assert_eq!(err.path, "routes[1].name");
    let other_name = format!("{MINIMAL}{}", route.replace("name: trutac", "name: other"));
    assert_eq!(load(&other_name).unwrap_err().path, "routes[1].path");
}

#[test]
fn errors_and_debug_output_never_show_secrets() {
    let c = load(MINIMAL).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("t-secret"), "{debug}");
    // A type error in a secret list names the field, not a neighbouring secret.
    let err = load(&MINIMAL.replace("[\"${TRUTAC_SECRET}\"]", "[\"${TRUTAC_SECRET}\", {a: 1}]"))
        .unwrap_err();
    assert_eq!(err.path, "routes[0].verify.secrets[1]");
    assert!(!err.to_string().contains("t-secret"), "{err}");
    // Upstream header values may be credentials too.
    let c =
        load(&MINIMAL.replace("X-Source: trutac", "Authorization: Bearer upstream-token")).unwrap();
    assert!(!format!("{c:?}").contains("upstream-token"));
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    std::fs::write(&file, MINIMAL.replace("ack: sync", "ack: never")).unwrap();
    let err = Config::load(&file, &env(&[("TRUTAC_SECRET", "x")])).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: routes[0].ack: ", file.display())),
        "{text}"
    );
    let missing = Config::load(&dir.path().join("nope.yaml"), &HashMap::new()).unwrap_err();
    assert!(missing.to_string().contains("nope.yaml"));
}

/// The three worked examples of the generic description in the docs.
const GENERIC: &str = r#"
routes:
  - name: stdwh
    path: /hooks/stdwh
    verify:
      scheme: hmac
      header: webhook-signature
      separator: " "
      prefix: "v1,"
      algorithm: sha256
      encoding: base64
      secret_encoding: whsec
      payload: "{header:webhook-id}.{timestamp}.{body}"
      timestamp: { from: "header:webhook-timestamp", unit: seconds }
      tolerance: 5m
      secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    events: { from: "json:/type", allow: ["invoice.*"] }
    upstream: { url: "http://127.0.0.1:3000/a" }
  - name: stripe-like
    path: /hooks/stripe
    verify:
      scheme: hmac
      header: Stripe-Signature
      separator: ","
      prefix: "v1="
      algorithm: sha256
      payload: "{timestamp}.{body}"
      timestamp: { from: "signature:t" }
      secrets: ["whsec_verbatim"]
    upstream: { url: "http://127.0.0.1:3000/b" }
  - name: url-signed
    path: /hooks/url
    verify:
      scheme: hmac
      header: X-Signature
      algorithm: sha512
      encoding: base64url
      payload: "{method} {url}\n{body}"
      public_url: "https://hooks.example.com/hooks/url"
      timestamp: { from: "json:/sent_at", unit: rfc3339 }
      tolerance: 90s
      secrets: ["k"]
    upstream: { url: "http://127.0.0.1:3000/c" }
"#;

#[test]
fn generic_hmac_descriptions_parse() {
    use crate::verify::{Encoding, SecretEncoding, TimeUnit, TimestampSource};
    let c = Config::from_yaml(GENERIC, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let source = |name: &str| match &c.route(name).unwrap().verify.kind {
        SpecKind::Hmac { spec, .. } => spec.sources[0].clone(),
        other => panic!("{other:?}"),
    };
    let s = source("stdwh");
    assert_eq!(s.separator.as_deref(), Some(" "));
    assert_eq!(s.secret_encoding, SecretEncoding::Whsec);
    assert_eq!(
        s.payload.describe(),
        "{header:webhook-id}.{timestamp}.{body}"
    );
    let ts = s.timestamp.unwrap();
    assert_eq!(ts.tolerance, Duration::from_secs(300));
    assert_eq!(
        c.route("stdwh").unwrap().events.allow,
        vec!["invoice.*".to_string()]
    );
    let s = source("stripe-like");
    let ts = s.timestamp.unwrap();
    assert_eq!(ts.source, TimestampSource::SignatureKey("t".into()));
    assert_eq!(ts.unit, TimeUnit::Seconds);
    assert_eq!(ts.tolerance, Duration::from_secs(300), "the default window");
    let s = source("url-signed");
    assert_eq!(s.encoding, Encoding::Base64Url);
    assert_eq!(s.timestamp.unwrap().unit, TimeUnit::Rfc3339);
    assert_eq!(
        s.public_url.as_deref(),
        Some("https://hooks.example.com/hooks/url")
    );
    // The summary names the shape, never a secret.
    let summary = c.route("stdwh").unwrap().verify.summary();
    assert!(summary.contains("webhook-signature"), "{summary}");
    assert!(summary.contains("5m"), "{summary}");
    assert!(!summary.contains("MfKQ9r8"), "{summary}");
}

#[test]
fn generic_hmac_errors_name_the_field() {
    let cases = [
        ("tolerance: 5m", "tolerance: 5m\n      unknown_knob: 1", "routes[0].verify.unknown_knob"),
        ("secret_encoding: whsec", "secret_encoding: hex", "routes[0].verify.secret_encoding"),
        ("encoding: base64\n", "encoding: base32\n", "routes[0].verify.encoding"),
        ("separator: \" \"", "separator: \"\"", "routes[0].verify.separator"),
        (
            "payload: \"{header:webhook-id}.{timestamp}.{body}\"",
            "payload: \"{header:webhook-id}.{stamp}.{body}\"",
            "routes[0].verify.payload",
        ),
        (
            "timestamp: { from: \"header:webhook-timestamp\", unit: seconds }",
            "timestamp: { from: \"header:webhook-timestamp\", unit: fortnights }",
            "routes[0].verify.timestamp.unit",
        ),
        (
            "timestamp: { from: \"header:webhook-timestamp\", unit: seconds }",
            "timestamp: { from: \"query:ts\" }",
            "routes[0].verify.timestamp.from",
        ),
        (
            "timestamp: { from: \"header:webhook-timestamp\", unit: seconds }",
            "timestamp: { from: \"header:webhook-timestamp\", zone: utc }",
            "routes[0].verify.timestamp.zone",
        ),
        (
            "secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]",
            "secrets: [\"whsec_not base64!\"]",
            "routes[0].verify.secrets[0]",
        ),
        // {timestamp} without a timestamp source.
        (
            "      timestamp: { from: \"header:webhook-timestamp\", unit: seconds }\n      tolerance: 5m\n",
            "",
            "routes[0].verify.payload",
        ),
        // `signature:KEY` needs a list.
        ("separator: \",\"", "", "routes[1].verify.timestamp.from"),
        // {url} needs public_url.
        (
            "      public_url: \"https://hooks.example.com/hooks/url\"\n",
            "",
            "routes[2].verify.public_url",
        ),
    ];
    for (from, to, path) in cases {
        assert!(GENERIC.contains(from), "{from}");
        let err = Config::from_yaml(&GENERIC.replacen(from, to, 1), &HashMap::new()).unwrap_err();
        assert_eq!(err.path, path, "{err}");
        assert!(!err.to_string().contains("MfKQ9r8"), "{err}");
    }
}

#[test]
fn typed_leaves_name_the_field_and_never_the_value() {
    // Written in the file, not expanded: the scrub would not catch these.
    let value = "sk_live_LITERAL 7f3a";
    let cases = [
        (
            "timeout: 10s",
            "timeout: \"{v}\"",
            "routes[0].upstream.timeout",
            "not a duration",
        ),
        (
            "http://127.0.0.1:3000/trutac",
            "{v}",
            "routes[0].upstream.url",
            "not a valid URL",
        ),
        (
            "X-Source: trutac",
            "\"{v}\": trutac",
            "routes[0].upstream.headers.{v}",
            "not a valid header name",
        ),
        (
            "X-Source: trutac",
            "X-Source: \"{v}\\n\"",
            "routes[0].upstream.headers.X-Source",
            "not a valid header value",
        ),
        (
            "ack: sync",
            "ack: \"{v}\"",
            "routes[0].ack",
            "unknown ack mode: expected `async` or `sync`",
        ),
        (
            "name: trutac",
            "name: \"{v}\"",
            "routes[0].name",
            "not a valid route name",
        ),
        (
            "ack: sync",
            "ack: sync\n    allow_ips: [\"{v}\"]",
            "routes[0].allow_ips[0]",
            "not an address or CIDR",
        ),
    ];
    for (from, to, path, needle) in cases {
        let to = to.replace("{v}", value);
        assert!(MINIMAL.contains(from), "{from}");
        let err = load(&MINIMAL.replace(from, &to)).unwrap_err();
        let path = path.replace("{v}", value);
        if !path.contains(value) {
            assert_eq!(err.path, path, "{err}");
        }
        assert!(err.message.contains(needle), "{err}");
        assert!(!err.message.contains("LITERAL"), "{err}");
    }
    let err = load(&format!("listen: \"{value}\"\n{MINIMAL}")).unwrap_err();
    assert_eq!(err.path, "listen");
    assert!(!err.message.contains("LITERAL"), "{err}");
    // A wrong YAML type says what the field takes.
    let err = load(&MINIMAL.replace("timeout: 10s", "timeout: [10]")).unwrap_err();
    assert_eq!(
        (err.path.as_str(), err.message.as_str()),
        (
            "routes[0].upstream.timeout",
            "expected a duration like 10s, found a sequence"
        )
    );
    // A plain word in a field of fixed words is shown: it is a typo.
    expect_error("ack: sync", "ack: later", "routes[0].ack", "\"later\"");
}

/// `store.backend: postgres` with its block, the defaults, `backend: store`
/// (and `local`, its alias) on routes, and the rules between the fields.
#[test]
fn store_section_postgres() {
    let pg_env = env(&[
        ("TRUTAC_SECRET", "t-secret"),
        (
            "PG_URL",
            "postgres://hookgate:hunter2@db.internal:5432/hooks",
        ),
    ]);
    let with_store = |store: &str| {
        Config::from_yaml(
            &format!(
                "store:\n{store}\n{}",
                MINIMAL.replace("dedup: off", "dedup: { backend: store }")
            ),
            &pg_env,
        )
    };
    let c = with_store("  backend: postgres\n  postgres: { url: \"${PG_URL}\" }").unwrap();
    assert_eq!(c.store.backend, StoreBackend::Postgres);
    let pg = c.store.postgres.as_ref().unwrap();
    assert_eq!(pg.schema, "hookgate");
    assert_eq!(pg.pool_size, 16);
    assert_eq!(
        pg.redacted_url(),
        "postgres://hookgate:***@db.internal:5432/hooks"
    );
    assert!(!format!("{c:?}").contains("hunter2"));
    let DedupMode::On(d) = &c.routes[0].dedup else {
        panic!("dedup on");
    };
    assert_eq!(d.backend, DedupBackend::Local);
    assert_eq!(d.backend.as_str(), "store");

    let c = with_store(
        "  backend: postgres\n  postgres: { url: \"${PG_URL}\", schema: edge_1, pool_size: 4 }",
    )
    .unwrap();
    let pg = c.store.postgres.as_ref().unwrap();
    assert_eq!((pg.schema.as_str(), pg.pool_size), ("edge_1", 4));

    // The default stays SQLite, and `local` still means the store.
    let c = load(&MINIMAL.replace("dedup: off", "dedup: { backend: local }")).unwrap();
    assert_eq!(c.store.backend, StoreBackend::Sqlite);
    assert!(c.store.postgres.is_none());
    assert!(matches!(&c.routes[0].dedup, DedupMode::On(d) if d.backend == DedupBackend::Local));

    for (store, path, needle) in [
        ("  backend: postgres", "store.postgres", "needs a `postgres:` block"),
        (
            "  postgres: { url: \"${PG_URL}\" }",
            "store.postgres",
            "only with `backend: postgres`",
        ),
        (
            "  backend: postgres\n  fsync: true\n  postgres: { url: \"${PG_URL}\" }",
            "store.fsync",
            "does not apply to PostgreSQL",
        ),
        ("  backend: mysql", "store.backend", "`sqlite` or `postgres`"),
        (
            "  backend: postgres\n  postgres: { url: \"mysql://u:hunter2@h/db\" }",
            "store.postgres.url",
            "postgres://",
        ),
        (
            "  backend: postgres\n  postgres: { url: \"postgres://u:hunter2@h:notaport/db\" }",
            "store.postgres.url",
            "not a valid PostgreSQL URL",
        ),
        (
            "  backend: postgres\n  postgres: { url: \"postgres://u:hunter2@h/db?sslmode=require\" }",
            "store.postgres.url",
            "sslmode=require is not supported",
        ),
        (
            "  backend: postgres\n  postgres: { url: \"${PG_URL}\", schema: \"a; DROP TABLE x\" }",
            "store.postgres.schema",
            "not a valid schema name",
        ),
        (
            "  backend: postgres\n  postgres: { url: \"${PG_URL}\", schema: pg_catalog }",
            "store.postgres.schema",
            "reserved",
        ),
        (
            "  backend: postgres\n  postgres: { url: \"${PG_URL}\", pool_size: 0 }",
            "store.postgres.pool_size",
            "greater than zero",
        ),
    ] {
        let err = with_store(store).unwrap_err();
        assert_eq!(err.path, path, "{store}: {err}");
        assert!(err.message.contains(needle), "{store}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn postgres_urls_are_shown_without_their_password() {
    let url = |u: &str| PostgresConfig {
        url: SecretString::from(u.to_string()),
        schema: "hookgate".into(),
        pool_size: 1,
    };
    for (given, shown) in [
        ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=disable",
            "postgresql://h/db",
        ),
        ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
    ] {
        assert_eq!(url(given).redacted_url(), shown);
    }
}

const FAN_OUT: &str = r#"
routes:
  - name: stripe
    path: /hooks/stripe
    verify: { scheme: stripe, secrets: ["whsec_x"] }
    ack: async
    destinations:
      - name: billing
        url: "http://billing.internal:8080/stripe"
        timeout: 10s
        rate_limit: { per_second: 50, burst: 100 }
        ordering: { key: "{json:/data/object/customer}" }
        retry:
          on: [5xx, 429, 408]
      - name: bus
        url: "nats://127.0.0.1:4222"
        nats: { subject: "webhooks.stripe" }
      - name: audit
        url: "amqp://guest:guest@127.0.0.1:5672/%2f"
        amqp: { exchange: "webhooks", routing_key: "stripe" }
      - name: feed
        url: "redis://127.0.0.1:6379/0"
        redis: { stream: "webhooks:stripe", maxlen: 1000000 }
"#;

#[test]
fn the_fan_out_example_parses_into_four_destinations() {
    let c = load(FAN_OUT).unwrap();
    let r = &c.routes[0];
    let names: Vec<&str> = r.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["billing", "bus", "audit", "feed"]);
    let kinds: Vec<&str> = r.destinations.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["http", "nats", "amqp", "redis"]);
    let billing = &r.destinations[0];
    assert_eq!(
        billing.retry_on,
        RetryOn::Only {
            classes: vec![5],
            statuses: vec![429, 408]
        }
    );
    assert!(billing.retry_on.retries(503) && billing.retry_on.retries(429));
    assert!(!billing.retry_on.retries(400) && !billing.retry_on.retries(404));
    assert_eq!(
        billing.rate_limit,
        Some(RateLimit {
            per_second: 50,
            burst: 100
        })
    );
    assert!(billing.ordering.is_some());
    assert_eq!(r.destinations[1].retry_on, RetryOn::AnyFailure);
    assert!(r.spools());
    assert_eq!(r.spooled_destinations().len(), 4);
    // The broker's password is in no description.
    for d in &r.destinations {
        assert!(
            !d.kind.describe().contains("guest:"),
            "{}",
            d.kind.describe()
        );
        assert!(!format!("{:?}", d.kind).contains("guest:guest"));
    }
}

#[test]
fn destination_mistakes_name_the_field() {
    let route = |destinations: &str, extra: &str| {
        format!(
            "routes:\n  - name: r\n    path: /r\n    verify: {{ scheme: stripe, secrets: [\"whsec_x\"] }}\n{extra}    destinations:\n{destinations}"
        )
    };
    let http = "      - { name: a, url: \"http://127.0.0.1:1/\" }\n";
    let cases = [
        (
            route(http, "    upstream: { url: \"http://127.0.0.1:1/\" }\n"),
            "routes[0].destinations",
            "not both",
        ),
        (
            route(&format!("{http}{http}"), ""),
            "routes[0].destinations[1].name",
            "used by an earlier destination",
        ),
        (
            route("      - { name: q, url: \"nats://127.0.0.1:4222\" }\n", ""),
            "routes[0].destinations[0]",
            "nats: { subject",
        ),
        (
            route(
                "      - { name: q, url: \"redis://127.0.0.1:6379\", nats: { subject: s } }\n",
                "",
            ),
            "routes[0].destinations[0].nats",
            "applies to a nats:// destination",
        ),
        (
            route("      - { name: q, url: \"ftp://h/\" }\n", ""),
            "routes[0].destinations[0].url",
            "http://, nats://, amqp:// or redis://",
        ),
        (
            route(
                "      - { name: q, url: \"nats://127.0.0.1:4222\", nats: { subject: s } }\n",
                "    ack: sync\n",
            ),
            "routes[0].destinations[0]",
            "first must be an http:// service",
        ),
        (
            route(
                "      - { name: a, url: \"http://127.0.0.1:1/\", retry: { on: [200] } }\n",
                "",
            ),
            "routes[0].destinations[0].retry.on[0]",
            "not 2xx",
        ),
        (
            route(
                "      - { name: a, url: \"http://127.0.0.1:1/\", retry: { on: [] } }\n",
                "",
            ),
            "routes[0].destinations[0].retry.on",
            "list the answers",
        ),
        (
            // Stripe signs the body, not a query parameter: an unsigned
            // value must not steer the order of delivery.
            route(
                "      - { name: a, url: \"http://127.0.0.1:1/\", ordering: { key: \"{query:customer}\" } }\n",
                "",
            ),
            "routes[0].destinations[0].ordering.key",
            "",
        ),
        (
            route(
                "      - { name: q, url: \"redis://127.0.0.1:6379\", redis: { stream: s }, headers: { Authorization: x } }\n",
                "",
            ),
            "routes[0].destinations[0].headers",
            "apply to http:// destinations",
        ),
        (
            route("", "").replace("destinations:\n", "destinations: []\n"),
            "routes[0].destinations",
            "at least one",
        ),
        (
            route("", "").replace("    destinations:\n", ""),
            "routes[0]",
            "every route needs `upstream:`",
        ),
    ];
    for (yaml, path, needle) in cases {
        let err = load(&yaml).unwrap_err();
        assert_eq!(err.path, path, "{err}\n{yaml}");
        assert!(err.message.contains(needle), "{err}");
    }
}
