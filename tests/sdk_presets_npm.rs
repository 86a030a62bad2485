//! Presets checked against their senders' own JavaScript SDKs, the
//! versions pinned in [`PACKAGES`]: Sanity's `@sanity/webhook` signs
//! (`encodeSignatureHeader`) and hookgate must accept; for Sanity, Mux and
//! ElevenLabs a request signed as the preset describes (`HmacVerifier::sign`,
//! what `hookgate sign` uses) must pass the SDK's own verification, and
//! the same request with its body changed, or signed with another secret,
//! must fail it and hookgate alike. Chargebee's HTTP basic authentication
//! is checked against `chargebee`'s own `basicAuthValidator`, and Linear's
//! body-timestamped signature against `@linear/sdk`'s `LinearWebhookClient`;
//! Zoom's signature and its `endpoint.url_validation` answer against Zoom's
//! Rivet SDK; Meta's Graph API webhooks (the `meta`, `whatsapp` and
//! `instagram` presets) against Meta's WhatsApp SDK (`whatsapp`).
//!
//! The SDKs are installed with npm into a folder under `target/` on first
//! use; if the registry cannot be reached the tests say SKIPPED and pass,
//! except under CI (`CI` set), where they fail.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use hookgate::verify::{HmacSpec, HmacVerifier, SignedRequest, SpecKind, Verifier, VerifyError};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const PACKAGES: &[&str] = &[
    "@sanity/webhook@4.0.4",
    "@mux/mux-node@15.3.0",
    "@elevenlabs/elevenlabs-js@2.73.0",
    "chargebee@3.33.0",
    "@linear/sdk@98.0.0",
    "@zoom/rivet@0.4.0",
    "whatsapp@0.0.5-Alpha",
];

/// One SDK operation; reads JSON on stdin, prints `{"ok": bool, "value":
/// …, "error": text}`. Header names arrive lower-cased.
const SDK: &str = r#"
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const { op, secret, body, headers } = req;
  try {
    let value = null;
    if (op === 'sanity_sign') {
      value = await require('@sanity/webhook').encodeSignatureHeader(body, req.timestamp_ms, secret);
    } else if (op === 'sanity_verify') {
      const ok = await require('@sanity/webhook').isValidSignature(body, headers['sanity-webhook-signature'], secret);
      if (!ok) throw new Error('invalid signature');
    } else if (op === 'mux_verify') {
      const Mux = require('@mux/mux-node').default;
      const mux = new Mux({ tokenId: 'x', tokenSecret: 'y' });
      await mux.webhooks.verifySignature(body, headers, secret);
    } else if (op === 'elevenlabs_verify') {
      const { ElevenLabsClient } = require('@elevenlabs/elevenlabs-js');
      const client = new ElevenLabsClient({ apiKey: 'x' });
      await client.webhooks.constructEvent(body, headers['elevenlabs-signature'], secret);
    } else if (op === 'linear_verify') {
      const { LinearWebhookClient } = await import('@linear/sdk/webhooks');
      new LinearWebhookClient(secret).verify(Buffer.from(body, 'utf8'), headers['linear-signature']);
    } else if (op === 'zoom_receive') {
      // Zoom's Rivet SDK, as a Lambda receiver: 200 with its answer, or 400.
      console.debug = () => {};
      const { AwsLambdaReceiver } = require('@zoom/rivet/users');
      const receiver = new AwsLambdaReceiver({ webhooksSecretToken: secret });
      receiver.init({ eventEmitter: { emit: async () => {} } });
      const response = await receiver.start()({ body, headers, isBase64Encoded: false }, {});
      if (response.statusCode !== 200) throw new Error(response.body);
      value = JSON.parse(response.body);
    } else if (op === 'meta_sign') {
      // Meta's WhatsApp SDK: the function its webhook listener checks
      // `x-hub-signature-256` (less `sha256=`) against. The package exports
      // only its client, so the module is loaded by its path.
      const utils = require(require('path').join(process.cwd(), 'node_modules/whatsapp/build/utils.js'));
      value = utils.generateXHub256Sig(body, secret);
    } else if (op === 'chargebee_verify') {
      // The secret is `user:password`, as the preset takes it.
      const i = secret.indexOf(':');
      const [user, password] = [secret.slice(0, i), secret.slice(i + 1)];
      const validate = require('chargebee').basicAuthValidator((u, p) => u === user && p === password);
      await validate(headers);
    } else {
      throw new Error('unknown op ' + op);
    }
    console.log(JSON.stringify({ ok: true, value, error: '' }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, value: null, error: String(e && e.message || e) }));
  }
});
"#;

/// The folder with `node_modules` holding [`PACKAGES`], or `None` (said
/// loudly) when npm cannot install them.
fn sdk_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preset-sdks-npm");
        let stamp = dir.join("packages.txt");
        let wanted = PACKAGES.join("\n");
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
            return Some(dir);
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), "{\"private\":true}").unwrap();
        let installed = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund"])
            .args(PACKAGES)
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if installed {
            std::fs::write(&stamp, wanted).unwrap();
            Some(dir)
        } else {
            assert!(
                std::env::var_os("CI").is_none(),
                "could not install {PACKAGES:?} with npm into {} (CI is set, so this is not skipped)",
                dir.display()
            );
            eprintln!(
                "SKIPPED: could not install {PACKAGES:?} with npm into {}; the SDK cross-checks did NOT run",
                dir.display()
            );
            None
        }
    })
    .as_ref()
}

fn sdk(dir: &PathBuf, request: Value) -> Value {
    let mut command = Command::new("node");
    command.args(["-e", SDK]).current_dir(dir);
    support::run_json(command, &request, &format!("the SDK script ({request})"))
}

fn headers_json(h: &HeaderMap) -> HashMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

/// Whether the SDK's verification `op` accepts the request; its error.
fn sdk_verifies(
    dir: &PathBuf,
    op: &str,
    secret: &str,
    h: &HeaderMap,
    body: &str,
) -> (bool, String) {
    let answer = sdk(
        dir,
        json!({"op": op, "secret": secret, "body": body, "headers": headers_json(h)}),
    );
    (
        answer["ok"].as_bool().unwrap(),
        answer["error"].as_str().unwrap().to_string(),
    )
}

fn route(scheme: &str, secret: &str) -> hookgate::verify::VerifySpec {
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: {scheme}, secrets: [\"{secret}\"] }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    hookgate::Config::from_yaml(&yaml, &HashMap::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .routes[0]
        .verify
        .clone()
}

/// The headers the preset's (only) signature form gives `body`.
fn sign(scheme: &str, secret: &str, body: &str) -> HeaderMap {
    let SpecKind::Hmac { spec, secrets } = route(scheme, secret).kind else {
        panic!("{scheme} is not HMAC")
    };
    assert_eq!(spec.sources.len(), 1, "{scheme}");
    let mut h = HeaderMap::new();
    let signed = HmacVerifier::new(
        HmacSpec {
            sources: spec.sources,
        },
        &secrets,
    )
    .sign(
        0,
        "POST",
        None,
        &HeaderMap::new(),
        body.as_bytes(),
        SystemTime::now(),
    )
    .unwrap();
    for (k, v) in signed {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    h
}

fn hookgate_says(scheme: &str, secret: &str, h: &HeaderMap, body: &str) -> Result<(), VerifyError> {
    Verifier::new(&route(scheme, secret))
        .verify_request(&SignedRequest {
            method: "POST",
            query: None,
            headers: h,
            body: body.as_bytes(),
            now: SystemTime::now(),
        })
        .map(|_| ())
}

const SECRET: &str = "sdk-secret-0123456789";
const BODY: &str = r#"{"_id":"doc_original","type":"video.asset.ready","n":"Zo\u00eb"}"#;

#[test]
fn preset_signatures_pass_the_senders_sdks_and_tampered_ones_do_not() {
    let Some(dir) = sdk_dir() else { return };
    let tampered = BODY.replace("doc_original", "doc_tampered");
    for (scheme, op) in [
        ("sanity", "sanity_verify"),
        ("mux", "mux_verify"),
        ("elevenlabs", "elevenlabs_verify"),
    ] {
        let h = sign(scheme, SECRET, BODY);
        assert_eq!(hookgate_says(scheme, SECRET, &h, BODY), Ok(()), "{scheme}");
        let (ok, error) = sdk_verifies(dir, op, SECRET, &h, BODY);
        assert!(
            ok,
            "{scheme}: the SDK refused what the preset signed: {error}"
        );

        assert_eq!(
            hookgate_says(scheme, SECRET, &h, &tampered),
            Err(VerifyError::BadSignature),
            "{scheme}"
        );
        assert!(!sdk_verifies(dir, op, SECRET, &h, &tampered).0, "{scheme}");

        let other = sign(scheme, "another-secret", BODY);
        assert_eq!(
            hookgate_says(scheme, SECRET, &other, BODY),
            Err(VerifyError::BadSignature),
            "{scheme}"
        );
        assert!(!sdk_verifies(dir, op, SECRET, &other, BODY).0, "{scheme}");
    }
}

/// A signature made by `@sanity/webhook` itself verifies through the
/// preset, at its own millisecond timestamp.
#[test]
fn sanity_sdk_signatures_verify() {
    let Some(dir) = sdk_dir() else { return };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let answer = sdk(
        dir,
        json!({"op": "sanity_sign", "secret": SECRET, "body": BODY, "timestamp_ms": now_ms}),
    );
    assert!(answer["ok"].as_bool().unwrap(), "{answer}");
    let header = answer["value"].as_str().unwrap();
    assert!(header.starts_with(&format!("t={now_ms},v1=")), "{header}");
    let mut h = HeaderMap::new();
    h.insert(
        "sanity-webhook-signature",
        HeaderValue::from_str(header).unwrap(),
    );
    assert_eq!(hookgate_says("sanity", SECRET, &h, BODY), Ok(()));
    assert_eq!(
        hookgate_says("sanity", "another-secret", &h, BODY),
        Err(VerifyError::BadSignature)
    );
    let tampered = BODY.replace("doc_original", "doc_tampered");
    assert_eq!(
        hookgate_says("sanity", SECRET, &h, &tampered),
        Err(VerifyError::BadSignature)
    );
    // An hour old: outside the preset's five minutes.
    let answer = sdk(
        dir,
        json!({"op": "sanity_sign", "secret": SECRET, "body": BODY, "timestamp_ms": now_ms - 3_600_000}),
    );
    let mut old = HeaderMap::new();
    old.insert(
        "sanity-webhook-signature",
        HeaderValue::from_str(answer["value"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(
        hookgate_says("sanity", SECRET, &old, BODY),
        Err(VerifyError::StaleTimestamp)
    );
}

/// Chargebee authenticates with HTTP basic auth: what its SDK's
/// `basicAuthValidator` accepts, the preset accepts, and what it refuses
/// (another password, another user, a bearer token, no header), the
/// preset refuses.
#[test]
fn chargebee_basic_auth_agrees_with_the_chargebee_sdk() {
    use base64::Engine;
    let Some(dir) = sdk_dir() else { return };
    let secret = "hookgate:pa:ss word";
    let basic = |creds: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };
    for (authorization, accepted) in [
        (Some(basic(secret)), true),
        (Some(basic("hookgate:pa:ss wordx")), false),
        (Some(basic("other:pa:ss word")), false),
        (Some(format!("Bearer {secret}")), false),
        (None, false),
    ] {
        let mut h = HeaderMap::new();
        if let Some(value) = &authorization {
            h.insert("authorization", HeaderValue::from_str(value).unwrap());
        }
        let (sdk_ok, error) = sdk_verifies(dir, "chargebee_verify", secret, &h, BODY);
        assert_eq!(sdk_ok, accepted, "{authorization:?}: {error}");
        let ours = hookgate_says("chargebee", secret, &h, BODY);
        assert_eq!(ours.is_ok(), accepted, "{authorization:?}: {ours:?}");
    }
}

/// Linear signs the body and puts its millisecond timestamp inside it:
/// `@linear/sdk`'s `LinearWebhookClient.verify` and the preset agree on a
/// fresh event, a tampered one, another secret and an event older than
/// their shared minute.
#[test]
fn linear_preset_agrees_with_the_linear_sdk() {
    let Some(dir) = sdk_dir() else { return };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = |ms: u64| {
        format!(
            r#"{{"type":"Issue","action":"create","data":{{"id":"doc_original"}},"webhookTimestamp":{ms}}}"#
        )
    };
    let fresh = body(now_ms);
    let h = sign("linear", SECRET, &fresh);
    assert_eq!(hookgate_says("linear", SECRET, &h, &fresh), Ok(()));
    let (ok, error) = sdk_verifies(dir, "linear_verify", SECRET, &h, &fresh);
    assert!(ok, "{error}");

    let tampered = fresh.replace("doc_original", "doc_tampered");
    assert_eq!(
        hookgate_says("linear", SECRET, &h, &tampered),
        Err(VerifyError::BadSignature)
    );
    assert!(!sdk_verifies(dir, "linear_verify", SECRET, &h, &tampered).0);

    let other = sign("linear", "another-secret", &fresh);
    assert_eq!(
        hookgate_says("linear", SECRET, &other, &fresh),
        Err(VerifyError::BadSignature)
    );
    assert!(!sdk_verifies(dir, "linear_verify", SECRET, &other, &fresh).0);

    let old = body(now_ms - 3_600_000);
    let h = sign("linear", SECRET, &old);
    assert_eq!(
        hookgate_says("linear", SECRET, &h, &old),
        Err(VerifyError::StaleTimestamp)
    );
    assert!(!sdk_verifies(dir, "linear_verify", SECRET, &h, &old).0);
}

/// Zoom's Rivet SDK (`@zoom/rivet` 0.4, its Lambda receiver) and the preset
/// agree on a signed event, a tampered one and another secret; and
/// hookgate's answer to `endpoint.url_validation` is the one Rivet makes.
/// (Rivet verifies `JSON.stringify` of the parsed body, so the bodies here
/// are compact JSON, as Zoom sends them.)
#[tokio::test]
async fn zoom_preset_and_handshake_agree_with_zooms_rivet_sdk() {
    use http_body_util::BodyExt;
    let Some(dir) = sdk_dir() else { return };
    let receive = |h: &HeaderMap, body: &str| {
        sdk(
            dir,
            json!({"op": "zoom_receive", "secret": SECRET, "body": body, "headers": headers_json(h)}),
        )
    };
    let event = r#"{"event":"meeting.started","payload":{"object":{"id":"doc_original"}}}"#;
    let h = sign("zoom", SECRET, event);
    assert_eq!(hookgate_says("zoom", SECRET, &h, event), Ok(()));
    let answer = receive(&h, event);
    assert!(answer["ok"].as_bool().unwrap(), "{answer}");
    let tampered = event.replace("doc_original", "doc_tampered");
    assert_eq!(
        hookgate_says("zoom", SECRET, &h, &tampered),
        Err(VerifyError::BadSignature)
    );
    assert!(!receive(&h, &tampered)["ok"].as_bool().unwrap());
    let other = sign("zoom", "another-secret", event);
    assert_eq!(
        hookgate_says("zoom", SECRET, &other, event),
        Err(VerifyError::BadSignature)
    );
    assert!(!receive(&other, event)["ok"].as_bool().unwrap());

    // The URL validation handshake: Rivet's answer and hookgate's.
    let validation =
        r#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#;
    let h = sign("zoom", SECRET, validation);
    let rivet = receive(&h, validation);
    assert!(rivet["ok"].as_bool().unwrap(), "{rivet}");
    let spec = route("zoom", SECRET);
    let verified = Verifier::new(&spec)
        .verify_request(&SignedRequest {
            method: "POST",
            query: None,
            headers: &h,
            body: validation.as_bytes(),
            now: SystemTime::now(),
        })
        .unwrap();
    let yaml = format!(
        "routes:\n  - name: t\n    path: /t\n    verify: {{ scheme: zoom, secrets: [\"{SECRET}\"] }}\n    upstream: {{ url: \"http://127.0.0.1:9/\" }}\n"
    );
    let config = hookgate::Config::from_yaml(&yaml, &HashMap::new()).unwrap();
    let events = hookgate::events::Events::new(&config.routes[0].events, &config.routes[0].verify);
    let hookgate::events::Decision::Answer { response, .. } =
        events.decide(&h, validation.as_bytes(), &verified)
    else {
        panic!("the validation was forwarded")
    };
    let ours: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(ours, rivet["value"]);
}

/// Meta signs Graph API webhooks (WhatsApp, Instagram, Facebook) with the
/// app secret: Meta's WhatsApp Business SDK (`whatsapp` 0.0.5-Alpha, the
/// official Node SDK; its listener reads `x-hub-signature-256`, strips
/// `sha256=` and compares with `generateXHub256Sig(body, appSecret)`) makes
/// the signature here, and every Meta preset accepts it in that header and
/// refuses it over a changed body or under another secret.
#[test]
fn meta_presets_accept_signatures_made_by_metas_whatsapp_sdk() {
    let Some(dir) = sdk_dir() else { return };
    let body =
        r#"{"object":"whatsapp_business_account","entry":[{"id":"doc_original","changes":[]}]}"#;
    let answer = sdk(
        dir,
        json!({"op": "meta_sign", "secret": SECRET, "body": body}),
    );
    assert!(answer["ok"].as_bool().unwrap(), "{answer}");
    let mut h = HeaderMap::new();
    h.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&format!("sha256={}", answer["value"].as_str().unwrap())).unwrap(),
    );
    let tampered = body.replace("doc_original", "doc_tampered");
    for scheme in ["meta", "whatsapp", "instagram"] {
        assert_eq!(hookgate_says(scheme, SECRET, &h, body), Ok(()), "{scheme}");
        assert_eq!(
            hookgate_says(scheme, SECRET, &h, &tampered),
            Err(VerifyError::BadSignature),
            "{scheme}"
        );
        assert_eq!(
            hookgate_says(scheme, "another-secret", &h, body),
            Err(VerifyError::BadSignature),
            "{scheme}"
        );
    }
}
