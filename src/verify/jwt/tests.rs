//! Tokens signed here (HS256, ES256, EdDSA with ring), verified, then
//! tampered with. RS256 and the JWKS cache are tested over real sockets in
//! tests/jwt.rs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::{HeaderMap, HeaderValue};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::Digest;

use super::*;
use crate::verify::{SignedRequest, VerifyError};

const SECRET: &[u8] = b"an-hs256-secret-of-32-bytes-or-more!";
const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(header: &Value, claims: &Value, signer: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = signer(signed.as_bytes());
    format!("{signed}.{}", b64(&signature))
}

fn hs256(message: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    ring::hmac::sign(&key, message).as_ref().to_vec()
}

fn spec(algorithms: &[JwtAlgorithm]) -> JwtSpec {
    JwtSpec {
        header: http::header::AUTHORIZATION,
        algorithms: algorithms.to_vec(),
        jwks: None,
        issuers: vec!["https://issuer.example".into()],
        audiences: vec!["https://hookgate.example/r".into()],
        required_claims: vec!["email".into()],
        claims: vec![],
        leeway: Duration::from_secs(60),
        max_age: None,
        body_sha256_claim: None,
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://issuer.example",
        "aud": "https://hookgate.example/r",
        "email": "sender@example.com",
        "iat": NOW,
        "exp": NOW + 3600,
    })
}

fn check(v: &JwtVerifier, token: &str, body: &[u8]) -> Result<Verified, VerifyError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    v.verify(&SignedRequest {
        method: "POST",
        query: None,
        headers: &headers,
        body,
        now: UNIX_EPOCH + Duration::from_secs(NOW),
    })
}

fn hs_verifier(spec: JwtSpec) -> JwtVerifier {
    JwtVerifier::new(spec, &[JwtKey::secret(SECRET)])
}

#[test]
fn a_valid_hs256_token_verifies_and_the_header_is_stripped() {
    let v = hs_verifier(spec(&[JwtAlgorithm::Hs256]));
    let token = sign(&json!({"alg": "HS256", "typ": "JWT"}), &claims(), hs256);
    let ok = check(&v, &token, b"{}").unwrap();
    assert_eq!(ok.secret_index, Some(0));
    assert_eq!(ok.strip_header.unwrap(), "authorization");
}

#[test]
fn tampered_tokens_are_refused_with_their_reason() {
    let v = hs_verifier(spec(&[JwtAlgorithm::Hs256]));
    let header = json!({"alg": "HS256"});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        check(&v, &sign(&header, &c, hs256), b"")
    };
    let stale = Err(VerifyError::StaleTimestamp);
    let bad_claims = Err(VerifyError::BadClaims);
    assert_eq!(with(&|c| c["exp"] = json!(NOW - 61)), stale);
    assert!(
        with(&|c| c["exp"] = json!(NOW - 59)).is_ok(),
        "within leeway"
    );
    assert_eq!(with(&|c| c["nbf"] = json!(NOW + 61)), stale);
    assert!(with(&|c| c["nbf"] = json!(NOW + 59)).is_ok());
    // A time claim of the wrong type is refused, never skipped.
    assert_eq!(with(&|c| c["nbf"] = json!("99999999999")), bad_claims);
    assert_eq!(with(&|c| c["exp"] = json!("never")), bad_claims);
    assert_eq!(
        with(&|c| c["iss"] = json!("https://evil.example")),
        bad_claims
    );
    assert_eq!(
        with(&|c| c["aud"] = json!("https://other.example")),
        bad_claims
    );
    assert!(with(&|c| c["aud"] = json!(["x", "https://hookgate.example/r"])).is_ok());
    assert_eq!(with(&|c| c["aud"] = json!(["x", "y"])), bad_claims);
    assert_eq!(
        with(&|c| c
            .as_object_mut()
            .unwrap()
            .remove("email")
            .map(drop)
            .unwrap()),
        bad_claims
    );
    assert_eq!(with(&|c| c["email"] = Value::Null), bad_claims);
    // A token must expire.
    assert_eq!(
        with(&|c| c.as_object_mut().unwrap().remove("exp").map(drop).unwrap()),
        bad_claims
    );

    let token = sign(&header, &claims(), hs256);
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(check(&v, &forged, b""), Err(VerifyError::BadSignature));
    assert_eq!(check(&v, "a.b", b""), Err(VerifyError::MalformedSignature));
    assert_eq!(
        check(&v, "a.b.c.d", b""),
        Err(VerifyError::MalformedSignature)
    );
    let crit = sign(&json!({"alg": "HS256", "crit": ["exp"]}), &claims(), hs256);
    assert_eq!(check(&v, &crit, b""), Err(VerifyError::MalformedSignature));
    let mut headers = HeaderMap::new();
    headers.insert("x-other", HeaderValue::from_static("1"));
    let missing = v.verify(&SignedRequest {
        method: "POST",
        query: None,
        headers: &headers,
        body: b"",
        now: SystemTime::now(),
    });
    assert_eq!(missing, Err(VerifyError::MissingCredentials));
}

#[test]
fn alg_none_and_algorithms_not_listed_are_refused() {
    let v = hs_verifier(spec(&[JwtAlgorithm::Hs256]));
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims().to_string().as_bytes())
    );
    assert_eq!(check(&v, &none, b""), Err(VerifyError::BadSignature));
    // Signed with the right secret, but as HS384: not allowed.
    let other = sign(&json!({"alg": "HS384"}), &claims(), hs256);
    assert_eq!(check(&v, &other, b""), Err(VerifyError::BadSignature));
}

#[test]
fn a_public_key_is_never_used_as_an_hmac_secret() {
    // The classic confusion: the attacker signs HS256 with the public key's
    // bytes. Even with HS256 allowed, only secrets verify HS256 tokens.
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = b64(pair.public_key().as_ref());
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"});
    let key = JwtKey::from_jwk(&jwk).unwrap();
    let v = JwtVerifier::new(spec(&[JwtAlgorithm::Hs256, JwtAlgorithm::EdDsa]), &[key]);
    let forged = sign(&json!({"alg": "HS256", "kid": "k1"}), &claims(), |m| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pair.public_key().as_ref());
        ring::hmac::sign(&key, m).as_ref().to_vec()
    });
    assert_eq!(check(&v, &forged, b""), Err(VerifyError::UnknownKey));
    let genuine = sign(&json!({"alg": "EdDSA", "kid": "k1"}), &claims(), |m| {
        pair.sign(m).as_ref().to_vec()
    });
    assert!(check(&v, &genuine, b"").is_ok());
}

#[test]
fn es256_with_a_body_hash_claim_covers_the_body() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": "plaid", "alg": "ES256", "use": "sig"});
    let mut s = spec(&[JwtAlgorithm::Es256]);
    s.issuers.clear();
    s.audiences.clear();
    s.required_claims.clear();
    s.max_age = Some(Duration::from_secs(300));
    s.body_sha256_claim = Some("request_body_sha256".into());
    let v = JwtVerifier::new(s, &[JwtKey::from_jwk(&jwk).unwrap()]);
    let body = br#"{"webhook_type":"TRANSACTIONS"}"#;
    let token = |iat: u64, body: &[u8]| {
        let claims =
            json!({"iat": iat, "request_body_sha256": hex::encode(sha2::Sha256::digest(body))});
        sign(
            &json!({"alg": "ES256", "kid": "plaid", "typ": "JWT"}),
            &claims,
            |m| pair.sign(&rng, m).unwrap().as_ref().to_vec(),
        )
    };
    assert_eq!(
        check(&v, &token(NOW, body), body).unwrap().secret_index,
        Some(0)
    );
    assert_eq!(
        check(&v, &token(NOW, b"{}"), body),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        check(&v, &token(NOW - 361, body), body),
        Err(VerifyError::StaleTimestamp)
    );
    assert_eq!(
        check(&v, &token(NOW + 61, body), body),
        Err(VerifyError::StaleTimestamp)
    );
    // An unknown kid is `unknown_key`, not a signature failure.
    let other = sign(
        &json!({"alg": "ES256", "kid": "rotated"}),
        &json!({"iat": NOW}),
        |m| pair.sign(&rng, m).unwrap().as_ref().to_vec(),
    );
    assert_eq!(check(&v, &other, body), Err(VerifyError::UnknownKey));
}

#[test]
fn jwks_documents_keep_only_usable_signing_keys() {
    let doc = json!({"keys": [
        {"kty": "RSA", "n": b64(&[0xff; 128]), "e": "AQAB", "kid": "short"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": b64(&[0xc5; 256]), "e": "AQAB", "kid": "ok"},
        {"kty": "RSA", "n": b64(&[0xc5; 256]), "e": "AQAB", "use": "enc"},
    ]});
    let keys = keys::parse_jwks(doc.to_string().as_bytes(), 16).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid.as_deref(), Some("ok"));
    assert!(keys::parse_jwks(b"{\"keys\":[]}", 16).is_err());
    assert!(keys::parse_jwks(b"not json", 16).is_err());
    // Debug never shows key material.
    assert!(!format!("{:?}", keys[0]).contains(&b64(&[0xc5; 256])[..16]));
}
