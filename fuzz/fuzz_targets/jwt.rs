//! The JWT parsers: a token's three parts, its JOSE header and its claims
//! (`scheme: jwt`), and JWKS documents. On arbitrary input: never a panic,
//! always one of the 401 reason codes, and no acceptance that does not
//! depend on the key: a token one verifier accepts, its twin configured
//! with another HS256 secret refuses.
//!
//! Input layout: the first byte picks what is parsed (even: the rest is a
//! token in `Authorization: Bearer …`; odd: the rest is a JWKS document);
//! the seeds in `fuzz/corpus/jwt/` are valid HS256 tokens and a JWKS.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use hookgate::verify::jwt::keys::parse_jwks;
use hookgate::verify::jwt::{parse_token, JwtVerifier};
use hookgate::verify::{JwtAlgorithm, JwtKey, JwtSpec, SignedRequest, VerifyError};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The secret the seed tokens are signed with.
const SECRET: &[u8] = b"hookgate-fuzz-secret-of-32-bytes!!";
const TWIN: &[u8] = b"another-fuzz-secret-of-32-bytes!!!";

fn verifier(secret: &[u8]) -> JwtVerifier {
    let spec = JwtSpec {
        header: http::header::AUTHORIZATION,
        algorithms: JwtAlgorithm::ALL.to_vec(),
        jwks: None,
        issuers: vec!["fuzz".into()],
        audiences: vec!["hookgate".into()],
        required_claims: vec![],
        claims: vec![],
        leeway: Duration::from_secs(60),
        max_age: Some(Duration::from_secs(300)),
        body_sha256_claim: None,
    };
    JwtVerifier::new(spec, &[JwtKey::secret(secret)])
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        let _ = parse_jwks(rest, 16);
        return;
    }
    if let Ok(token) = parse_token(rest) {
        let _ = token.claims();
    }
    let Ok(value) = HeaderValue::from_bytes(&[b"Bearer ", rest].concat()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let request = SignedRequest {
        method: "POST",
        query: None,
        headers: &headers,
        body: b"{}",
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    match verifier(SECRET).verify(&request) {
        Ok(_) => assert!(
            verifier(TWIN).verify(&request).is_err(),
            "accepted whatever the secret"
        ),
        Err(e) => assert!(VerifyError::ALL.contains(&e)),
    }
});
