//! Micro-benchmarks of hookgate's per-request hot paths, through the public
//! API of the library only: verification per scheme family, dedup key
//! extraction, and the spool append. Figures and how to read them are in
//! BENCHMARKS.md ("Micro-benchmarks").
//!
//!   cargo bench --bench hot_paths                # everything, ~2 minutes
//!   cargo bench --bench hot_paths -- verify/     # one group
//!
//! These are measurements, not tests: nothing here asserts a time, and they
//! are not part of `.ci/run`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::Signer;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use hookgate::dedup::key::{EventKey, KeyTemplate};
use hookgate::presets::{hmac_preset, public_key_preset};
use hookgate::spool::{LocalClaim, NewDelivery, NewEvent, Spool, SqliteSpoolStore, UPSTREAM};
use hookgate::store::Db;
use hookgate::telemetry::Metrics;
use hookgate::verify::{
    HmacVerifier, KeyAlgorithm, KeyFormat, PublicKey, SignedRequest, SpecKind, Verifier, VerifySpec,
};

/// A TruTac clocking event of 1,513 bytes, the body `bench/run.sh` sends.
fn body(id: &str) -> Vec<u8> {
    let body = format!(
        concat!(
            r#"{{"id":"{id}","type":"clocking","action":"created","created_at":"2026-11-23T12:00:00Z","#,
            r#""clocking":{{"id":"{id}","employee":{{"id":"emp_4711","name":"Erika Mustermann","#,
            r#""email":"erika@example.com","department":"Warehouse North","cost_center":"CC-1234"}},"#,
            r#""location":{{"id":"loc_0815","name":"Hamburg Hafen","lat":53.5413,"lon":9.9841,"#,
            r#""address":"Am Sandtorkai 1, 20457 Hamburg, Germany"}},"#,
            r#""device":{{"id":"dev_42","model":"TT-Terminal 3","firmware":"3.14.1"}},"#,
            r#""kind":"clock_in","at":"2026-11-23T11:59:58Z","note":"{note}"}}}}"#
        ),
        id = id,
        note = "x".repeat(990)
    );
    body.into_bytes()
}

fn header_map(pairs: &[(HeaderName, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in pairs {
        headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn secrets(values: &[&str]) -> Vec<SecretString> {
    values.iter().map(|s| SecretString::from(*s)).collect()
}

/// An HMAC preset's verifier and the headers its sender would send for
/// `body` at `now`, signed with hookgate's own signer.
fn hmac_case(scheme: &str, secret: &str, body: &[u8], now: SystemTime) -> (Verifier, HeaderMap) {
    let spec = hmac_preset(scheme).unwrap();
    let secrets = secrets(&[secret]);
    let signed = HmacVerifier::new(spec.clone(), &secrets)
        .sign(0, "POST", None, &HeaderMap::new(), body, now)
        .unwrap();
    let verifier = Verifier::new(&VerifySpec {
        scheme: scheme.into(),
        kind: SpecKind::Hmac { spec, secrets },
    });
    (verifier, header_map(&signed))
}

fn verify(c: &mut Criterion) {
    let body = body("evt_000000001");
    let now = SystemTime::now();
    let mut cases: Vec<(&str, Verifier, HeaderMap)> = Vec::new();

    // HMAC-SHA1 of the raw body, hex (TruTac).
    let (v, h) = hmac_case("trutac", "bench-trutac-secret", &body, now);
    cases.push(("trutac_hmac_sha1", v, h));
    // Timestamped HMAC-SHA256: `t=…,v1=…` over `{timestamp}.{body}` (Stripe).
    let (v, h) = hmac_case("stripe", "whsec_bench", &body, now);
    cases.push(("stripe_timestamped_hmac_sha256", v, h));
    // Standard Webhooks: base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    let (v, h) = hmac_case(
        "standard_webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &body,
        now,
    );
    cases.push(("standard_webhooks_hmac_sha256", v, h));

    // A shared secret in a header (GitLab's X-Gitlab-Token).
    let gitlab = Verifier::new(&VerifySpec {
        scheme: "gitlab".into(),
        kind: SpecKind::Header {
            header: HeaderName::from_static("x-gitlab-token"),
            presented: hookgate::verify::Presented::Verbatim,
            secrets: secrets(&["bench-gitlab-token-0123456789"]),
        },
    });
    let h = header_map(&[(
        HeaderName::from_static("x-gitlab-token"),
        "bench-gitlab-token-0123456789".into(),
    )]);
    cases.push(("gitlab_shared_secret", gitlab, h));

    // Ed25519 over `{timestamp}{body}` (Discord).
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let key = PublicKey::parse(
        KeyAlgorithm::Ed25519,
        KeyFormat::Hex,
        &hex::encode(signer.verifying_key().to_bytes()),
    )
    .unwrap();
    let ts = now
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = signer.sign(&[ts.as_bytes(), &body].concat());
    let discord = Verifier::new(&VerifySpec {
        scheme: "discord".into(),
        kind: SpecKind::PublicKey {
            spec: public_key_preset("discord").unwrap(),
            keys: vec![key],
        },
    });
    let h = header_map(&[
        (
            HeaderName::from_static("x-signature-ed25519"),
            hex::encode(signature.to_bytes()),
        ),
        (HeaderName::from_static("x-signature-timestamp"), ts),
    ]);
    cases.push(("discord_ed25519", discord, h));

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for (name, verifier, headers) in &cases {
        let req = SignedRequest {
            method: "POST",
            query: None,
            headers,
            body: &body,
            now,
        };
        // A benchmark of a failing path would measure nothing useful.
        verifier
            .verify_request(&req)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        group.bench_function(*name, |b| b.iter(|| verifier.verify_request(&req)));
    }
    group.finish();
}

fn dedup_key(c: &mut Criterion) {
    let body = body("evt_000000001");
    let headers = header_map(&[
        (HeaderName::from_static("tt-hook-event"), "clocking".into()),
        (
            HeaderName::from_static("tt-hook-delivery"),
            "0b4a4a62-5b1e-4c39-9d1a-6d1f3b2c9e10".into(),
        ),
    ]);
    let mut group = c.benchmark_group("dedup_key");
    group.throughput(Throughput::Elements(1));
    for (name, template) in [
        ("header", "{header:TT-Hook-Delivery}"),
        ("json_id", "{json:/id}"),
        (
            "header_and_two_json",
            "{header:TT-Hook-Event}:{json:/action}:{json:/clocking/id}",
        ),
        ("body_sha256", "{body_sha256}"),
    ] {
        let template = KeyTemplate::parse(template).unwrap();
        let (_, fell_back) = template.extract("bench", &headers, None, &body);
        assert!(!fell_back, "{name}: every part must be found");
        group.bench_function(name, |b| {
            b.iter(|| template.extract("bench", &headers, None, &body))
        });
    }
    group.finish();
}

fn spool_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(body("evt_000000001"));
    let headers = header_map(&[(HeaderName::from_static("tt-hook-event"), "clocking".into())]);
    let event = || NewEvent {
        route: "bench".into(),
        headers: headers.clone(),
        query: None,
        body: body.clone(),
        deliveries: vec![NewDelivery::to(UPSTREAM)],
        dedup_key: None,
    };
    let keys = AtomicU64::new(0);
    let next_claim = || {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&keys.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        LocalClaim {
            key: EventKey(key),
            ttl: Duration::from_secs(3600),
        }
    };

    let mut group = c.benchmark_group("spool_append");
    group.throughput(Throughput::Elements(1));
    for (name, fsync, claim) in [
        ("fsync_off", false, false),
        ("fsync_off_with_local_claim", false, true),
        ("fsync_on", true, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), fsync, Box::new(|_, _, _| {})).unwrap();
        let metrics = Metrics::new();
        let spool = rt
            .block_on(Spool::open(
                std::sync::Arc::new(SqliteSpoolStore::new(db)),
                vec![("bench".into(), metrics.route("bench", 0))],
            ))
            .unwrap();
        group.bench_function(name, |b| {
            b.iter_batched(
                || (event(), claim.then(next_claim)),
                |(event, claim)| rt.block_on(spool.append(event, claim)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verify, dedup_key, spool_append
}
criterion_main!(benches);
