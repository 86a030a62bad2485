//! Every preset's signature-header parsing and verification (HMAC,
//! shared-secret and public-key) on arbitrary headers and bodies: never a
//! panic, always one of the 401 reason codes, and no acceptance that does
//! not depend on the credential: a request one verifier accepts, its twin
//! configured with another secret or key refuses (the seed corpus holds
//! valid signatures, so acceptances are reached).
//!
//! Input layout: the first byte picks the time; then NUL-separated
//! chunks: each but the last is one header, its first byte picking the
//! name from `presets::header_names()` (every header any preset reads,
//! taken from the preset table) and the rest its value; the last chunk is
//! the body. `fuzz/corpus/signature_headers/` is written by
//! `HOOKGATE_WRITE_FUZZ_CORPUS=1 cargo test --lib fuzz_corpus`.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hookgate::presets::{header_names, NAMES};
use hookgate::verify::{SignedRequest, Verifier, VerifyError};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn headers() -> &'static [HeaderName] {
    static H: OnceLock<Vec<HeaderName>> = OnceLock::new();
    H.get_or_init(header_names)
}

/// The verifier of `scheme` with the credentials the seed corpus is
/// signed with, or (`twin`) with others; `None` for a twin that cannot be
/// made (SendGrid: no second key here, and no valid seed either).
fn verifier(scheme: &str, twin: bool) -> Option<Verifier> {
    let credentials = match (scheme, twin) {
        // RFC 8032 test keys 1 and 2.
        ("discord", false) => {
            "public_keys: [\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"]"
        }
        ("discord", true) => {
            "public_keys: [\"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"]"
        }
        ("sendgrid", false) => "public_keys: [\"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==\"]",
        ("sendgrid", true) => return None,
        ("standard_webhooks_v1a", false) => {
            "public_keys: [\"whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]"
        }
        ("standard_webhooks_v1a", true) => {
            "public_keys: [\"whpk_PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\"]"
        }
        // The same keys, in base64.
        ("telnyx", false) => "public_keys: [\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]",
        ("telnyx", true) => "public_keys: [\"PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\"]",
        ("standard_webhooks" | "svix" | "clerk" | "resend" | "openai", false) => {
            "secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]"
        }
        ("standard_webhooks" | "svix" | "clerk" | "resend" | "openai", true) => {
            "secrets: [\"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]"
        }
        // `k` and `another`, in base64 (Airtable's keys).
        ("airtable", false) => "secrets: [\"aw==\"]",
        ("airtable", true) => "secrets: [\"YW5vdGhlcg==\"]",
        // HTTP basic authentication: `user:password`.
        ("postmark" | "chargebee", false) => "secrets: [\"u:k\"]",
        ("postmark" | "chargebee", true) => "secrets: [\"u:another\"]",
        (_, false) => "secrets: [\"k\"]",
        (_, true) => "secrets: [\"another\"]",
    };
    let signs_url = hookgate::presets::hmac_preset(scheme).is_some_and(|spec| {
        spec.sources
            .iter()
            .any(|s| s.payload.uses(&hookgate::verify::template::Part::Url))
    });
    let url = if signs_url {
        ", public_url: \"https://h.test/x\""
    } else {
        ""
    };
    let name = scheme.strip_suffix("_v1a").unwrap_or(scheme);
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {name}, {credentials}{url} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = hookgate::Config::from_yaml(&yaml, &HashMap::new()).unwrap();
    Some(Verifier::new(&config.routes[0].verify))
}

/// Each preset's verifier and its twin.
fn verifiers() -> &'static [(&'static str, Verifier, Option<Verifier>)] {
    static V: OnceLock<Vec<(&'static str, Verifier, Option<Verifier>)>> = OnceLock::new();
    V.get_or_init(|| {
        NAMES
            .iter()
            .copied()
            .chain(["standard_webhooks_v1a"])
            .map(|s| (s, verifier(s, false).unwrap(), verifier(s, true)))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&t, rest)) = data.split_first() else {
        return;
    };
    let mut chunks: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
    let body = chunks.pop().unwrap_or_default();
    let names = headers();
    let mut headers = HeaderMap::new();
    for chunk in chunks {
        let Some((&i, value)) = chunk.split_first() else {
            continue;
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(names[usize::from(i) % names.len()].clone(), v);
        }
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_600_000_000 + u64::from(t) * 1_000_000);
    let request = SignedRequest {
        method: "POST",
        query: Some("a=1"),
        headers: &headers,
        body,
        now,
    };
    for (scheme, v, twin) in verifiers() {
        match v.verify_request(&request) {
            Err(e) => assert!(VerifyError::ALL.contains(&e)),
            Ok(_) => {
                let Some(twin) = twin else {
                    panic!("{scheme} accepted: {headers:?}");
                };
                let other = twin.verify_request(&request);
                assert!(
                    other.is_err(),
                    "{scheme} accepted the same request with another credential: {headers:?}"
                );
            }
        }
    }
});
