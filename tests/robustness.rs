//! Bounded randomized robustness: arbitrary bytes into the signature-header
//! parsers, the timestamp parsers and the payload-template parser. Nothing
//! may panic, and a request that is not correctly signed must always get a
//! 401-class error. Deterministic (fixed seed), so a failure reproduces.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use hookgate::presets::NAMES;
use hookgate::verify::{SignedRequest, Template, TimestampSource, Verifier, VerifyError};
use http::{HeaderMap, HeaderName, HeaderValue};

/// xorshift64*: tiny, deterministic, good enough to shake parsers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes biased towards the syntax the parsers care about.
    fn fuzz(&mut self, max: usize) -> Vec<u8> {
        const PIECES: &[&str] = &[
            "t=",
            "ts=",
            "v1=",
            "v0=",
            "h1=",
            "v1,",
            "v1a,",
            "MEUCIQ",
            "MEQCI",
            "sha1=",
            "sha256=",
            ",",
            ";",
            " ",
            "=",
            "{",
            "}",
            "{{",
            "}}",
            "{body}",
            "{timestamp}",
            "{header:",
            "{url}",
            "{method}",
            "{form_sorted}",
            "header:",
            "json:/",
            "signature:",
            "%",
            "%2",
            "&",
            "+",
            "0",
            "9",
            "ff",
            "AAAA",
            "==",
            "Z",
            "T",
            "-",
            ":",
            "+01:00",
            "1700000000",
            "\u{e9}",
        ];
        let len = self.below(max + 1);
        let mut out = Vec::new();
        while out.len() < len {
            if self.below(3) == 0 {
                out.push(self.next() as u8);
            } else {
                out.extend_from_slice(PIECES[self.below(PIECES.len())].as_bytes());
            }
        }
        out
    }
}

/// Public keys for the public-key presets: RFC 8032 TEST 1's key and
/// SendGrid's published test key.
const ED25519_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const WHPK: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const SENDGRID_DER: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";

fn verifier(scheme: &str) -> Verifier {
    use hookgate::presets::{hmac_preset, preset, PresetKind};
    use hookgate::verify::{template::Part, SecretEncoding};
    let credentials = match scheme {
        "discord" => format!("public_keys: [\"{ED25519_HEX}\"]"),
        "sendgrid" => format!("public_keys: [\"{SENDGRID_DER}\"]"),
        // The same Ed25519 key, in base64.
        "telnyx" => "public_keys: [\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]".to_string(),
        // Standard Webhooks with asymmetric (v1a) signatures.
        "standard_webhooks_v1a" => format!("public_keys: [\"{WHPK}\"]"),
        _ => String::new(),
    };
    let scheme = scheme.strip_suffix("_v1a").unwrap_or(scheme);
    let hmac = hmac_preset(scheme);
    let encoded = |e: SecretEncoding| {
        hmac.as_ref()
            .is_some_and(|spec| spec.sources.iter().any(|s| s.secret_encoding == e))
    };
    let secret = if encoded(SecretEncoding::Whsec) {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    } else if encoded(SecretEncoding::Base64) {
        "aw=="
    } else if matches!(preset(scheme).map(|p| p.kind), Some(PresetKind::BasicAuth)) {
        "u:k"
    } else {
        "k"
    };
    let signs_url = hmac
        .as_ref()
        .is_some_and(|spec| spec.sources.iter().any(|s| s.payload.uses(&Part::Url)));
    let url = if signs_url {
        ", public_url: \"https://h.test/x\""
    } else {
        ""
    };
    let credentials = if credentials.is_empty() {
        format!("secrets: [\"{secret}\"]")
    } else {
        credentials
    };
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, {credentials}{url} }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = hookgate::Config::from_yaml(&yaml, &HashMap::new()).unwrap();
    Verifier::new(&config.routes[0].verify)
}

#[test]
fn arbitrary_signature_headers_never_panic_and_get_a_401_reason() {
    let verifiers: Vec<(&str, Verifier)> = NAMES
        .iter()
        .chain(&["standard_webhooks_v1a"])
        .map(|n| (*n, verifier(n)))
        .collect();
    assert!(verifiers.iter().any(|(n, _)| *n == "sendgrid"));
    // Every header any preset reads, from the table.
    let pool = hookgate::presets::header_names();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let mut headers = HeaderMap::new();
        for _ in 0..rng.below(6) {
            let name = pool[rng.below(pool.len())].clone();
            // Any byte a header value may hold (hyper rejects the others).
            let bytes: Vec<u8> = rng
                .fuzz(120)
                .into_iter()
                .filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
                .collect();
            headers.append(name, HeaderValue::from_bytes(&bytes).unwrap());
        }
        let body = rng.fuzz(200);
        let query = String::from_utf8_lossy(&rng.fuzz(20)).into_owned();
        let now = UNIX_EPOCH + Duration::from_secs(rng.next() % 4_000_000_000);
        for (name, v) in &verifiers {
            let result = v.verify_request(&SignedRequest {
                method: "POST",
                query: Some(&query),
                headers: &headers,
                body: &body,
                now,
            });
            match result {
                Err(e) => assert!(VerifyError::ALL.contains(&e), "{name}: {e:?}"),
                Ok(_) => panic!("{name} accepted random input: {headers:?}"),
            }
        }
    }
}

#[test]
fn arbitrary_templates_and_timestamp_sources_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let text = String::from_utf8_lossy(&rng.fuzz(60)).into_owned();
        if let Ok(t) = Template::parse(&text) {
            parsed += 1;
            // What parses re-parses to the same template.
            assert_eq!(Template::parse(&t.describe()).as_ref(), Ok(&t), "{text:?}");
        }
        let _ = TimestampSource::parse(&text);
        for unit in ["seconds", "milliseconds", "rfc3339"] {
            let _ = hookgate::verify::TimeUnit::parse(unit)
                .unwrap()
                .parse_time(&text);
        }
    }
    // The generator does reach valid templates, so the round trip is tested.
    assert!(parsed > 100, "{parsed}");
}

/// Random signatures of the right shape (so they reach the public-key
/// verification itself, past the parsers) are always rejected as bad
/// signatures, never accepted and never a panic.
#[test]
fn well_formed_random_public_key_signatures_are_bad_signatures() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next() as u8).collect() };
    let discord = verifier("discord");
    let sendgrid = verifier("sendgrid");
    let stdwh = verifier("standard_webhooks_v1a");
    for i in 0..200u64 {
        let ts = (1_700_000_000 + i).to_string();
        let body = bytes(40);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut der = vec![0x30, 0x44, 0x02, 0x20];
        let mut r = bytes(32);
        r[0] &= 0x7f;
        r[0] |= 0x01;
        der.extend(r);
        der.extend([0x02, 0x20]);
        let mut s = bytes(32);
        s[0] &= 0x7f;
        s[0] |= 0x01;
        der.extend(s);
        let cases: [(&Verifier, Vec<(&str, String)>); 3] = [
            (
                &discord,
                vec![
                    ("x-signature-ed25519", hex::encode(bytes(64))),
                    ("x-signature-timestamp", ts.clone()),
                ],
            ),
            (
                &sendgrid,
                vec![
                    ("x-twilio-email-event-webhook-signature", b64(&der)),
                    ("x-twilio-email-event-webhook-timestamp", ts.clone()),
                ],
            ),
            (
                &stdwh,
                vec![
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", ts.clone()),
                    ("webhook-signature", format!("v1a,{}", b64(&bytes(64)))),
                ],
            ),
        ];
        for (v, pairs) in cases {
            let mut headers = HeaderMap::new();
            for (k, val) in pairs {
                headers.insert(
                    HeaderName::from_static(k),
                    HeaderValue::from_str(&val).unwrap(),
                );
            }
            let result = v.verify_request(&SignedRequest {
                method: "POST",
                query: None,
                headers: &headers,
                body: &body,
                now,
            });
            assert!(
                matches!(
                    result,
                    Err(VerifyError::BadSignature | VerifyError::MalformedSignature)
                ),
                "{result:?} {headers:?}"
            );
        }
    }
}
