//! `scheme: jwt` end to end: a real gateway, a real upstream, and a local
//! JWKS server (a recording HTTP server on port 0) that the gateway fetches
//! keys from. Tokens are signed here with ring: RSA keys are made by the
//! `openssl` CLI (ring cannot generate them), P-256 and Ed25519 by ring.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use sha2::Digest;
use support::*;

const ISSUER: &str = "https://accounts.google.com";
const AUDIENCE: &str = "https://hookgate.example/pubsub";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key of one algorithm, published under `kid`.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    fn rsa(kid: &str) -> Key {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.der");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .args(["-outform", "DER", "-out"])
            .arg(&file)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl CLI makes the test's RSA keys");
        assert!(status.success());
        let der = std::fs::read(&file).unwrap();
        Key {
            kid: kid.into(),
            // PKCS#8, or the bare RSAPrivateKey some openssl versions write.
            signer: Signer::Rsa(
                RsaKeyPair::from_pkcs8(&der)
                    .or_else(|_| RsaKeyPair::from_der(&der))
                    .unwrap(),
            ),
        }
    }

    fn ec(kid: &str) -> Key {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()),
        }
    }

    fn ed(kid: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public key as a JWK.
    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(pair) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(pair) => {
                let p = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(&p[1..33]), "y": b64(&p[33..])})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    fn sign_message(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A token with this key's `alg` and `kid` over `claims`.
    fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        token_with(&header, claims, |m| self.sign_message(m))
    }
}

fn token_with(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(signed.as_bytes());
    format!("{signed}.{}", b64(&sig))
}

/// Google Pub/Sub push's OIDC claims, valid now.
fn pubsub_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "email": "pusher@project.iam.gserviceaccount.com",
        "email_verified": true,
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// A JWKS server whose document can be changed (key rotation); every
/// request it answers is recorded.
struct KeyServer {
    server: Upstream,
    document: Arc<Mutex<String>>,
}

impl KeyServer {
    async fn start(keys: &[&Key]) -> KeyServer {
        let document = Arc::new(Mutex::new(String::new()));
        let served = document.clone();
        let server = Upstream::with(Duration::ZERO, move |_| {
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(served.lock().unwrap().clone())))
                .unwrap()
        })
        .await;
        let ks = KeyServer { server, document };
        ks.publish(keys);
        ks
    }

    fn publish(&self, keys: &[&Key]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        *self.document.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn url(&self) -> String {
        self.server.url("/oauth2/v3/certs")
    }

    fn fetches(&self) -> usize {
        self.server.received().len()
    }
}

fn route(upstream: &Upstream, verify: &str) -> String {
    format!(
        "routes:\n  - name: r\n    path: /r\n    ack: sync\n    dedup: off\n    verify: {verify}\n    upstream: {{ url: \"{}\" }}\n",
        upstream.url("/in")
    )
}

fn pubsub_verify(jwks: &str, algorithms: &str) -> String {
    format!(
        "{{ scheme: jwt, algorithms: [{algorithms}], jwks_url: \"{jwks}\", jwks_min_refetch: 1h, issuer: \"{ISSUER}\", audience: \"{AUDIENCE}\", required_claims: [email] }}"
    )
}

async fn post_token(gw: &Gateway, token: &str, body: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    post(
        &gw.url("/r"),
        &[("authorization", &bearer)],
        body.to_string(),
    )
    .await
}

async fn reason_count(gw: &Gateway, reason: &str) -> f64 {
    gw.metric(&format!(
        r#"hookgate_verify_failures_total{{route="r",reason="{reason}"}}"#
    ))
    .await
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_from_a_jwks_are_forwarded_without_the_token() {
    let (rsa, ec, ed) = (Key::rsa("r1"), Key::ec("e1"), Key::ed("d1"));
    let keys = KeyServer::start(&[&rsa, &ec, &ed]).await;
    let upstream = Upstream::start().await;
    let verify = pubsub_verify(&keys.url(), "RS256, ES256, EdDSA");
    let gw = Gateway::start(&route(&upstream, &verify)).await;
    for key in [&rsa, &ec, &ed] {
        let answer = post_token(&gw, &key.token(&pubsub_claims()), r#"{"message":{}}"#).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {:?}",
            key.alg(),
            answer.body
        );
    }
    let received = upstream.received();
    assert_eq!(received.len(), 3);
    assert!(received
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
    // One fetch served all three.
    assert_eq!(keys.fetches(), 1);
    assert_eq!(keys.server.received()[0].uri.path(), "/oauth2/v3/certs");
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused_with_their_reason() {
    let (rsa, impostor) = (Key::rsa("r1"), Key::rsa("r1"));
    let ec = Key::ec("e1");
    let keys = KeyServer::start(&[&rsa, &ec]).await;
    let upstream = Upstream::start().await;
    // ES256 keys are published, but the route allows RS256 only.
    let gw = Gateway::start(&route(&upstream, &pubsub_verify(&keys.url(), "RS256"))).await;
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = pubsub_claims();
        change(claims.as_object_mut().unwrap());
        claims
    };
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("valid", rsa.token(&pubsub_claims()), StatusCode::OK, ""),
        (
            "wrong signature",
            impostor.token(&pubsub_claims()),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "expired",
            rsa.token(&with(&|c| {
                c.insert("exp".into(), json!(now() - 120));
            })),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "not yet valid",
            rsa.token(&with(&|c| {
                c.insert("nbf".into(), json!(now() + 600));
            })),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "wrong issuer",
            rsa.token(&with(&|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            })),
            StatusCode::UNAUTHORIZED,
            "bad_claims",
        ),
        (
            "wrong audience",
            rsa.token(&with(&|c| {
                c.insert("aud".into(), json!("https://other.example/"));
            })),
            StatusCode::UNAUTHORIZED,
            "bad_claims",
        ),
        (
            "missing required claim",
            rsa.token(&with(&|c| {
                c.remove("email");
            })),
            StatusCode::UNAUTHORIZED,
            "bad_claims",
        ),
        (
            "alg not allowed",
            ec.token(&pubsub_claims()),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"r1"}"#),
                b64(pubsub_claims().to_string().as_bytes())
            ),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            // HS256 signed with the RSA public key as the secret.
            "HS256 with the public key",
            token_with(
                &json!({"alg": "HS256", "kid": "r1"}),
                &pubsub_claims(),
                |m| {
                    let secret = rsa.jwk().to_string();
                    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
                    ring::hmac::sign(&key, m).as_ref().to_vec()
                },
            ),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "not a token",
            "not-a-jwt".to_string(),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
    ];
    for (what, token, status, code) in &cases {
        let answer = post_token(&gw, token, "{}").await;
        assert_eq!(answer.status, *status, "{what}");
        if !code.is_empty() {
            assert_eq!(answer.error_code(), *code, "{what}");
        }
    }
    let missing = post(&gw.url("/r"), &[], "{}").await;
    assert_eq!(missing.error_code(), "missing_credentials");
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(reason_count(&gw, "bad_claims").await, 3.0);
    assert_eq!(reason_count(&gw, "stale_timestamp").await, 2.0);
    assert_eq!(reason_count(&gw, "bad_signature").await, 4.0);
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_and_a_rotated_key_verifies() {
    let (old, new) = (Key::ec("2026-11"), Key::ec("2026-12"));
    let keys = KeyServer::start(&[&old]).await;
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&route(&upstream, &pubsub_verify(&keys.url(), "ES256"))).await;
    assert_eq!(
        post_token(&gw, &old.token(&pubsub_claims()), "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(keys.fetches(), 1);
    // The sender rotates: the new key is published, then used.
    keys.publish(&[&old, &new]);
    let answer = post_token(&gw, &new.token(&pubsub_claims()), "{}").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(keys.fetches(), 2);
    // Both keys are cached now: no more fetches.
    for key in [&old, &new] {
        assert_eq!(
            post_token(&gw, &key.token(&pubsub_claims()), "{}")
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_the_key_server_one_refetch() {
    let genuine = Key::ed("k1");
    let keys = KeyServer::start(&[&genuine]).await;
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&route(&upstream, &pubsub_verify(&keys.url(), "EdDSA"))).await;
    assert_eq!(
        post_token(&gw, &genuine.token(&pubsub_claims()), "{}")
            .await
            .status,
        StatusCode::OK
    );
    let mut flood = Vec::new();
    for i in 0..60 {
        let attacker = Key::ed(&format!("random-{i}"));
        let token = attacker.token(&pubsub_claims());
        let url = gw.url("/r");
        flood.push(tokio::spawn(async move {
            let bearer = format!("Bearer {token}");
            post(&url, &[("authorization", &bearer)], "{}").await
        }));
    }
    for answer in flood {
        let answer = answer.await.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error_code(), "unknown_key");
    }
    // The first load, and one refetch for all 60 unknown kids.
    assert_eq!(keys.fetches(), 2);
    assert_eq!(reason_count(&gw, "unknown_key").await, 60.0);
    // The genuine sender is unaffected.
    assert_eq!(
        post_token(&gw, &genuine.token(&pubsub_claims()), "{}")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_server_that_fails_gives_503_keys_unavailable_and_is_not_hammered() {
    let key = Key::ec("e1");
    let failing = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"down"}"#)
    })
    .await;
    let upstream = Upstream::start().await;
    let jwks = failing.url("/certs");
    let gw = Gateway::start(&route(&upstream, &pubsub_verify(&jwks, "ES256"))).await;
    for _ in 0..5 {
        let answer = post_token(&gw, &key.token(&pubsub_claims()), "{}").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.error_code(), "keys_unavailable");
    }
    assert_eq!(failing.received().len(), 1);
    assert_eq!(reason_count(&gw, "keys_unavailable").await, 5.0);
    // Nobody listening at all: the same answer.
    let closed = format!("http://{}/certs", closed_port().await);
    let gw = Gateway::start(&route(&upstream, &pubsub_verify(&closed, "ES256"))).await;
    let answer = post_token(&gw, &key.token(&pubsub_claims()), "{}").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.error_code(), "keys_unavailable");
    assert_eq!(upstream.received().len(), 0);
}

#[tokio::test]
async fn an_inline_es256_key_and_a_body_hash_claim_verify_the_body_plaid_style() {
    let key = Key::ec("plaid-key");
    let upstream = Upstream::start().await;
    let verify = format!(
        "{{ scheme: jwt, header: Plaid-Verification, algorithms: [ES256], keys: [{}], max_age: 5m, body_sha256_claim: request_body_sha256 }}",
        key.jwk()
    );
    let gw = Gateway::start(&route(&upstream, &verify)).await;
    let body = r#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE"}"#;
    let token = |iat: u64, signed_body: &str| {
        key.token(&json!({
            "iat": iat,
            "request_body_sha256": hex::encode(sha2::Sha256::digest(signed_body.as_bytes())),
        }))
    };
    let send = |token: String, body: &'static str| {
        let url = gw.url("/r");
        async move { post(&url, &[("plaid-verification", &token)], body).await }
    };
    assert_eq!(send(token(now(), body), body).await.status, StatusCode::OK);
    let tampered = send(token(now(), body), r#"{"webhook_type":"ITEM"}"#).await;
    assert_eq!(tampered.error_code(), "bad_signature");
    let old = send(token(now() - 400, body), body).await;
    assert_eq!(old.error_code(), "stale_timestamp");
    assert_eq!(upstream.received().len(), 1);
    assert!(!upstream.received()[0]
        .headers
        .contains_key("plaid-verification"));
}

#[tokio::test]
async fn an_hs256_route_takes_its_secret_from_the_environment() {
    let secret = "an-hs256-secret-of-at-least-32-bytes";
    let upstream = Upstream::start().await;
    let verify =
        "{ scheme: jwt, algorithms: [HS256], secrets: [\"${JWT_SECRET}\"], issuer: partner }";
    let gw = Gateway::start_with_env(&route(&upstream, verify), &[("JWT_SECRET", secret)]).await;
    let claims = json!({"iss": "partner", "exp": now() + 60});
    let hs = |secret: &[u8]| {
        token_with(&json!({"alg": "HS256"}), &claims, |m| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            ring::hmac::sign(&key, m).as_ref().to_vec()
        })
    };
    assert_eq!(
        post_token(&gw, &hs(secret.as_bytes()), "{}").await.status,
        StatusCode::OK
    );
    let wrong = post_token(&gw, &hs(b"another-secret-of-at-least-32-bytes!"), "{}").await;
    assert_eq!(wrong.error_code(), "bad_signature");
    // The secret is in no metric.
    assert!(!gw.metrics().await.contains(secret));
}

/// The error `Config::from_yaml` gives for a route's `verify` block.
fn config_error(verify: &str, env: &[(&str, &str)]) -> String {
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {verify}, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n"
    );
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match hookgate::Config::from_yaml(&yaml, &env) {
        Ok(_) => panic!("accepted: {verify}"),
        Err(e) => e.to_string(),
    }
}

/// A `verify` block, its environment, the field its error names, and what
/// the error says.
type BadConfig = (
    String,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[test]
fn config_errors_name_the_field_and_say_what_is_wrong() {
    let jwks = "jwks_url: \"https://keys.example/certs\", audience: a";
    let secret: &'static [(&str, &str)] = &[("S", "a-secret-value-that-is-long-enough-for-hs")];
    let cases: Vec<BadConfig> = vec![
        (format!("{{ scheme: jwt, algorithms: [RS512], {jwks} }}"), &[], "verify.algorithms[0]", "unknown algorithm `RS512`"),
        (format!("{{ scheme: jwt, algorithms: [none], {jwks} }}"), &[], "verify.algorithms[0]", "never accepted"),
        (format!("{{ scheme: jwt, {jwks} }}"), &[], "verify.algorithms", "required"),
        ("{ scheme: jwt, algorithms: [RS256], audience: a }".into(), &[], "verify.jwks_url", "`jwks_url` (fetched) or `keys`"),
        (format!("{{ scheme: jwt, algorithms: [HS256], secrets: [\"${{S}}\"], {jwks} }}"), secret, "verify.jwks_url", "HS256 tokens are checked with `secrets` only"),
        (format!("{{ scheme: jwt, algorithms: [HS256], {jwks} }}"), &[], "verify.secrets", "HS256 needs `secrets`"),
        ("{ scheme: jwt, algorithms: [HS256], secrets: [short-secret] }".into(), &[], "verify.secrets[0]", "at least 32 bytes"),
        (format!("{{ scheme: jwt, algorithms: [RS256], secrets: [\"${{S}}\"], {jwks} }}"), secret, "verify.secrets", "does not list HS256"),
        ("{ scheme: jwt, algorithms: [RS256], jwks_url: \"https://keys.example/certs\" }".into(), &[], "verify.audience", "required with `jwks_url`"),
        ("{ scheme: jwt, algorithms: [RS256], jwks_url: \"ftp://keys.example/\", audience: a }".into(), &[], "verify.jwks_url", "http:// or https://"),
        ("{ scheme: jwt, algorithms: [ES256], keys: [{ kty: RSA, n: AQAB, e: AQAB }] }".into(), &[], "verify.keys[0]", "2048 bits"),
        ("{ scheme: jwt, algorithms: [RS256], keys: [{ kty: OKP, crv: Ed25519, x: \"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\" }] }".into(), &[], "verify.keys[0]", "does not list EdDSA"),
        ("{ scheme: jwt, algorithms: [HS256], secrets: [\"${S}\"], jwks_timeout: 1s }".into(), secret, "verify.jwks_timeout", "only with `jwks_url`"),
        ("{ scheme: hmac, secrets: [x], audience: a }".into(), &[], "verify.audience", "does not apply"),
    ];
    for (verify, env, field, message) in cases {
        let error = config_error(&verify, env);
        assert!(error.contains(field), "{verify}: {error}");
        assert!(error.contains(message), "{verify}: {error}");
        assert!(!error.contains("a-secret-value"), "{error}");
    }
}

/// `hookgate verify` on a captured request: the exit code and the output.
fn verify_cli(config: &std::path::Path, token: &str) -> (i32, String) {
    let request = config.with_file_name("request.http");
    std::fs::write(
        &request,
        format!("POST /r HTTP/1.1\r\nHost: hooks.example.com\r\nAuthorization: Bearer {token}\r\nContent-Length: 2\r\n\r\n{{}}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["verify", "--config"])
        .arg(config)
        .args(["--route", "r", "--request"])
        .arg(&request)
        .env_remove("HOOKGATE_CONFIG")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookgate_verify_fetches_the_jwks_and_names_the_failed_check() {
    let key = Key::ec("e1");
    let keys = KeyServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.yaml");
    std::fs::write(
        &config,
        format!(
            "routes:\n  - name: r\n    path: /r\n    ack: sync\n    verify: {}\n    upstream: {{ url: \"http://127.0.0.1:1/\" }}\n",
            pubsub_verify(&keys.url(), "ES256")
        ),
    )
    .unwrap();
    let genuine = key.token(&pubsub_claims());
    let mut claims = pubsub_claims();
    claims["aud"] = json!("https://someone-else.example/");
    let misaddressed = key.token(&claims);
    // The key server runs on this runtime's other worker meanwhile.
    let (ok, refused) = tokio::task::spawn_blocking(move || {
        (
            verify_cli(&config, &genuine),
            verify_cli(&config, &misaddressed),
        )
    })
    .await
    .unwrap();
    assert_eq!(ok.0, 0, "{}", ok.1);
    assert!(ok.1.contains("key #0"), "{}", ok.1);
    assert_ne!(refused.0, 0, "{}", refused.1);
    assert!(refused.1.contains("bad_claims"), "{}", refused.1);
    assert_eq!(keys.fetches(), 2);
}
