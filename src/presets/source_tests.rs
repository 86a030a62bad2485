//! Every signature source of every HMAC preset, generated from [`TABLE`]:
//! a request signed in that source's header alone (GitHub's SHA-1
//! fallback, Shopify's second header name, Svix's `svix-*` family, every
//! `X-DocuSign-Signature-N`, …) is accepted, and refused when its body is
//! tampered with, when it was signed with another secret, and when its
//! signature has the right shape but the wrong bytes. A source added to a
//! row gets these checks without a line here.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::config::Config;
use crate::verify::template::Part;
use crate::verify::{HmacVerifier, SignedRequest, SpecKind, Verifier, VerifyError, VerifySpec};

const NOW: u64 = 1_700_000_000;
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_OTHER: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// The route's verification as `hookgate serve` builds it from YAML (with
/// the public URL the URL-signing presets need).
fn spec(scheme: &str, secret: &str) -> VerifySpec {
    let url = match preset(scheme).map(|p| p.kind) {
        Some(PresetKind::Hmac(spec)) if spec.sources.iter().any(|s| s.payload.uses(&Part::Url)) => {
            ", public_url: \"https://h.test/x\""
        }
        _ => "",
    };
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"{secret}\"]{url} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = Config::from_yaml(&yaml, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    config.routes[0].verify.clone()
}

fn sources(spec: &VerifySpec) -> Vec<SignatureSource> {
    match &spec.kind {
        SpecKind::Hmac { spec, .. } => spec.sources.clone(),
        _ => panic!("{}: not HMAC", spec.scheme),
    }
}

/// Whether the row verifies with secrets written `whsec_…`.
fn whsec(row: &Row) -> bool {
    match row.preset().kind {
        PresetKind::Hmac(spec) => spec
            .sources
            .iter()
            .any(|s| s.secret_encoding == SecretEncoding::Whsec),
        _ => false,
    }
}

/// Whether the row's secrets are written in base64.
fn base64_secret(row: &Row) -> bool {
    match row.preset().kind {
        PresetKind::Hmac(spec) => spec
            .sources
            .iter()
            .any(|s| s.secret_encoding == SecretEncoding::Base64),
        _ => false,
    }
}

/// The headers a sender would send for `body`, signed with `secret` by
/// source `index` of `scheme` only, its signature in header `name`.
fn sign(scheme: &str, secret: &str, index: usize, name: &HeaderName, body: &[u8]) -> HeaderMap {
    let spec = spec(scheme, secret);
    let SpecKind::Hmac {
        spec: hmac,
        secrets,
    } = spec.kind
    else {
        unreachable!()
    };
    let one = HmacSpec {
        sources: vec![hmac.sources[index].clone()],
    };
    let signer = HmacVerifier::new(one, &secrets);
    let pairs = signer
        .sign(0, "POST", None, &HeaderMap::new(), body, now())
        .unwrap_or_else(|e| panic!("{scheme} source {index}: {e}"));
    let signature_header = &hmac.sources[index].header;
    let mut out = HeaderMap::new();
    for (k, v) in pairs {
        let k = if k == *signature_header {
            name.clone()
        } else {
            k
        };
        out.append(k, HeaderValue::from_str(&v).unwrap());
    }
    out
}

fn check(v: &Verifier, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    v.verify_request(&SignedRequest {
        method: "POST",
        query: None,
        headers,
        body,
        now: now(),
    })
    .map(|_| ())
}

fn output_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 | Algorithm::SecretPrefixedSha256 => 32,
        Algorithm::Sha512 => 64,
    }
}

/// `headers` with the MAC at the end of header `name` replaced by other
/// bytes of the same length and encoding: well formed, not authentic.
fn forge(headers: &HeaderMap, name: &HeaderName, source: &SignatureSource) -> HeaderMap {
    let value = headers[name].to_str().unwrap().to_string();
    let fake = source
        .encoding
        .encode(&vec![0xa5; output_len(source.algorithm)]);
    assert!(value.len() >= fake.len(), "{value}");
    let real = &value[value.len() - fake.len()..];
    assert_ne!(real, fake);
    let forged = format!("{}{fake}", &value[..value.len() - fake.len()]);
    let mut out = headers.clone();
    out.insert(name.clone(), HeaderValue::from_str(&forged).unwrap());
    out
}

/// Every (row, source index, signature header) the table describes.
fn every_source() -> Vec<(&'static Row, usize, SignatureSource, HeaderName)> {
    let mut out = Vec::new();
    for row in TABLE {
        let PresetKind::Hmac(spec) = row.preset().kind else {
            continue;
        };
        for (i, source) in spec.sources.iter().enumerate() {
            // A signature in the body (Mailgun) has its own tests.
            if source.body_signature.is_some() {
                continue;
            }
            for name in std::iter::once(&source.header).chain(&source.more_headers) {
                out.push((row, i, source.clone(), name.clone()));
            }
        }
    }
    out
}

#[test]
fn every_source_of_every_hmac_preset_signs_and_refuses_tamper_wrong_secret_forgery() {
    // The body carries Linear's millisecond timestamp; for every other
    // preset it is just JSON (or, for Twilio, one form parameter).
    let body = format!(
        r#"{{"type":"t","webhookTimestamp":{},"n":"a"}}"#,
        NOW * 1000
    );
    let body = body.as_bytes();
    let mut tampered = body.to_vec();
    let at = tampered.len() - 3;
    tampered[at] = b'b';

    let mut checked = 0;
    let mut multi = Vec::new();
    for (row, index, _, name) in every_source() {
        let scheme = row.name;
        let (secret, other) = if whsec(row) {
            (WHSEC, WHSEC_OTHER)
        } else if base64_secret(row) {
            // `k-secret` and `another-secret`, base64 (Airtable's keys).
            ("ay1zZWNyZXQ=", "YW5vdGhlci1zZWNyZXQ=")
        } else {
            ("k-secret", "another-secret")
        };
        let what = format!("{scheme} source {index} in {name}");
        let spec = spec(scheme, secret);
        let source = sources(&spec)[index].clone();
        if sources(&spec).len() > 1 || !source.more_headers.is_empty() {
            multi.push(scheme);
        }
        let v = Verifier::new(&spec);

        let signed = sign(scheme, secret, index, &name, body);
        assert_eq!(check(&v, &signed, body), Ok(()), "{what}: valid");
        assert_eq!(
            check(&v, &signed, &tampered),
            Err(VerifyError::BadSignature),
            "{what}: body tampered"
        );
        let wrong = sign(scheme, other, index, &name, body);
        assert_eq!(
            check(&v, &wrong, body),
            Err(VerifyError::BadSignature),
            "{what}: wrong secret"
        );
        let forged = forge(&signed, &name, &source);
        assert_eq!(
            check(&v, &forged, body),
            Err(VerifyError::BadSignature),
            "{what}: forged {:?}",
            forged.get(&name)
        );
        checked += 1;
    }
    // The multi-source presets the issue names are among those walked.
    for scheme in ["github", "shopify", "svix", "clerk", "resend", "docusign"] {
        assert!(multi.contains(&scheme), "{scheme} has one source?");
    }
    assert!(checked > TABLE.len(), "{checked}");
}
