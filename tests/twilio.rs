//! The `twilio` preset against Twilio's own Python SDK (twilio 9.13's
//! `RequestValidator`): requests signed by the SDK reach a real gateway,
//! and the gateway's verdict on tampered copies matches the SDK's
//! `validate`. The SDK is installed into a venv under `target/` on first
//! use; if PyPI cannot be reached the tests say SKIPPED and pass, except
//! under CI (`CI` set), where they fail.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use http::StatusCode;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "12345678901234567890123456789012";
const PUBLIC_URL: &str = "https://hooks.example.com/twilio";

/// Signs or validates one request with the SDK; reads JSON on stdin.
const SDK: &str = r#"
import json, sys
from twilio.request_validator import RequestValidator, get_signature_algorithm

req = json.load(sys.stdin)
v = RequestValidator(req["token"])
algorithm = get_signature_algorithm(req.get("settings"))

class Multi(dict):
    # A MultiDict as Flask and Django give validate(): every value of a name.
    def getall(self, name):
        return self[name]

def params(pairs):
    p = Multi()
    for name, value in pairs:
        p.setdefault(name, []).append(value)
    return p

if req["op"] == "sign_form":
    print(json.dumps(v.compute_signature(req["url"], params(req["params"]), algorithm)))
elif req["op"] == "sign_json":
    url = req["url"] + ("&" if "?" in req["url"] else "?") + "bodySHA256=" + v.compute_hash(req["body"])
    print(json.dumps({"url": url, "signature": v.compute_signature(url, {}, algorithm)}))
elif req["op"] == "validate_form":
    print(json.dumps(v.validate(req["url"], params(req["params"]), req["signature"], algorithm)))
elif req["op"] == "validate_json":
    print(json.dumps(v.validate(req["url"], req["body"], req["signature"], algorithm)))
"#;

/// The venv's python with `twilio==9.13.*`, or `None` (said loudly) when
/// it cannot be installed.
fn sdk_python() -> Option<&'static PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("twilio-9.13-venv");
            let python = venv.join("bin").join("python");
            let has_sdk = |python: &PathBuf| {
                Command::new(python)
                    .args(["-c", "import twilio.request_validator as r; assert r.HMAC_SHA256"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if has_sdk(&python) {
                return Some(python);
            }
            let created = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            let installed = created
                && Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", "twilio==9.13.*"])
                    .status()
                    .is_ok_and(|s| s.success());
            if installed && has_sdk(&python) {
                Some(python)
            } else {
                // CI machines reach PyPI: there, a missing SDK is a failure.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "could not install twilio==9.13.* from PyPI into {} (CI is set, so this is not skipped)",
                    venv.display()
                );
                eprintln!(
                    "SKIPPED: could not install twilio==9.13.* from PyPI into {}; the Twilio SDK cross-checks did NOT run",
                    venv.display()
                );
                None
            }
        })
        .as_ref()
}

fn sdk(python: &PathBuf, request: Value) -> Value {
    let mut command = Command::new(python);
    command.args(["-c", SDK]);
    support::run_json(command, &request, "the SDK script")
}

fn form_body(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

async fn twilio_gateway(upstream: &Upstream) -> Gateway {
    let yaml = format!(
        "routes:\n  - {{ name: twilio, path: /twilio, ack: sync, verify: {{ scheme: twilio, secrets: [\"{TOKEN}\"], public_url: \"{PUBLIC_URL}\" }}, upstream: {{ url: \"{}\" }} }}\n",
        upstream.url("/")
    );
    Gateway::start(&yaml).await
}

const SETTINGS: &str = "X-Twilio-Webhooks-Signature-Settings";

#[tokio::test]
async fn form_requests_signed_by_the_sdk_verify_repeated_parameters_included() {
    let Some(python) = sdk_python() else { return };
    let upstream = Upstream::start().await;
    let gateway = twilio_gateway(&upstream).await;
    let params = [
        ("To", "+18005551212"),
        ("MediaUrl", "https://x.test/b.png"),
        ("From", "+12349013030"),
        ("MediaUrl", "https://x.test/a.png"),
        ("MediaUrl", "https://x.test/b.png"),
        ("Body", "Hi there & bye"),
    ];
    let url = format!("{PUBLIC_URL}?tenant=7");
    let mut reordered = params.to_vec();
    reordered.reverse();
    for (i, settings) in [
        None,
        Some("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"),
        Some("algorithm=hmac_sha1"),
    ]
    .into_iter()
    .enumerate()
    {
        let sig = sdk(
            python,
            json!({"op": "sign_form", "token": TOKEN, "url": url, "params": params, "settings": settings}),
        );
        let mut headers = vec![("X-Twilio-Signature", sig.as_str().unwrap())];
        if let Some(s) = settings {
            headers.push((SETTINGS, s));
        }
        // Later copies send the parameters in another order: the SDK's
        // signature does not see the order, so neither does the key.
        let body = form_body(if i == 0 { &params } else { &reordered });
        let r = post(&gateway.url("/twilio?tenant=7"), &headers, body).await;
        assert_eq!(r.status, StatusCode::OK, "{settings:?}: {:?}", r.body);
        assert_eq!(
            r.headers.get("hookgate-duplicate").is_some(),
            i > 0,
            "{settings:?}"
        );
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn json_requests_are_verified_by_the_body_hash_in_the_signed_url() {
    let Some(python) = sdk_python() else { return };
    let upstream = Upstream::start().await;
    let gateway = twilio_gateway(&upstream).await;
    let body = r#"{"MessageSid":"SM1","MessageStatus":"delivered"}"#;
    let signed = sdk(
        python,
        json!({"op": "sign_json", "token": TOKEN, "url": format!("{PUBLIC_URL}?x=1"), "body": body}),
    );
    let url = signed["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1;
    let sig = signed["signature"].as_str().unwrap();
    let r = post(
        &gateway.url(&format!("/twilio?{query}")),
        &[("X-Twilio-Signature", sig)],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(upstream.received()[0].body, body.as_bytes());

    // A captured URL and signature with any other body: the SDK refuses it,
    // and so does the gateway (these passed before, never hashed).
    for other in ["", "&", "=", "&=&", r#"{"MessageSid":"SM2"}"#] {
        let sdk_says = sdk(
            python,
            json!({"op": "validate_json", "token": TOKEN, "url": url, "body": other, "signature": sig}),
        );
        assert_eq!(sdk_says, json!(false), "{other:?}");
        let r = post(
            &gateway.url(&format!("/twilio?{query}")),
            &[("X-Twilio-Signature", sig)],
            other,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{other:?}");
        assert_eq!(r.error_code(), "bad_signature");
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn the_gateway_and_the_sdk_agree_on_tampered_requests() {
    let Some(python) = sdk_python() else { return };
    let upstream = Upstream::start().await;
    let gateway = twilio_gateway(&upstream).await;
    let params = [("CallSid", "CA1"), ("Digits", "1234"), ("Digits", "99")];
    let url = format!("{PUBLIC_URL}?a=1");
    let sha256_settings = "key=k1,algorithm=HMAC_SHA256";
    let sig = sdk(
        python,
        json!({"op": "sign_form", "token": TOKEN, "url": url, "params": params, "settings": sha256_settings}),
    );
    let sig = sig.as_str().unwrap();
    /// The request's query, its form parameters, its settings header.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        // The genuine request; then a repeated value, which the SDK's
        // de-duplication signs as one.
        ("a=1", params.to_vec(), Some(sha256_settings)),
        (
            "a=1",
            [&params[..], &[("Digits", "99")]].concat(),
            Some(sha256_settings),
        ),
        // Another value, a dropped parameter, another query, another or no
        // algorithm, an unknown algorithm.
        (
            "a=1",
            vec![("CallSid", "CA1"), ("Digits", "1235"), ("Digits", "99")],
            Some(sha256_settings),
        ),
        ("a=1", params[..2].to_vec(), Some(sha256_settings)),
        ("a=2", params.to_vec(), Some(sha256_settings)),
        ("a=1", params.to_vec(), None),
        ("a=1", params.to_vec(), Some("algorithm=HMAC_SHA1")),
        ("a=1", params.to_vec(), Some("algorithm=HMAC_SHA512")),
    ];
    for (query, params, settings) in cases {
        let sdk_says = sdk(
            python,
            json!({"op": "validate_form", "token": TOKEN, "url": format!("{PUBLIC_URL}?{query}"),
                   "params": params, "signature": sig, "settings": settings}),
        );
        let mut headers = vec![("X-Twilio-Signature", sig)];
        if let Some(s) = settings {
            headers.push((SETTINGS, s));
        }
        let r = post(
            &gateway.url(&format!("/twilio?{query}")),
            &headers,
            form_body(&params),
        )
        .await;
        let gateway_says = r.status == StatusCode::OK;
        assert_eq!(
            json!(gateway_says),
            sdk_says,
            "{query} {params:?} {settings:?}: gateway answered {}",
            r.status
        );
    }
}
