//! `hookgate presets`: every preset of the table, as text and as JSON,
//! each entry describing what the table says.

use std::process::Command;

use serde_json::Value;

fn presets(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("presets")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_lists_every_preset_with_what_it_reads_and_signs() {
    let list: Vec<Value> = serde_json::from_str(&presets(&["--format", "json"])).unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, hookgate::presets::NAMES);
    assert!(names.len() >= 60, "{}", names.len());
    for p in &list {
        let name = p["name"].as_str().unwrap();
        // Every preset reads a header, but Mailgun, whose signature is in
        // the body.
        let in_body = p["signatures"][0]["header"]
            .as_str()
            .unwrap()
            .starts_with("body json:");
        assert_eq!(
            p["headers"].as_array().unwrap().is_empty(),
            in_body,
            "{name}"
        );
        assert!(!p["signatures"].as_array().unwrap().is_empty(), "{name}");
        assert!(
            p["default_dedup_key"].as_str().unwrap().starts_with('{'),
            "{name}"
        );
    }
    let by_name = |n: &str| list.iter().find(|p| p["name"] == n).unwrap();

    let stripe = by_name("stripe");
    assert_eq!(stripe["verification"], "hmac");
    assert_eq!(stripe["headers"], serde_json::json!(["stripe-signature"]));
    let form = &stripe["signatures"][0];
    assert_eq!(form["signed"], "v1=<hex HMAC-SHA256 of {timestamp}.{body}>");
    assert_eq!(form["separator"], ",");
    assert_eq!(form["timestamp"]["source"], "signature:t");
    assert_eq!(form["timestamp"]["tolerance_secs"], 300);
    assert_eq!(stripe["default_dedup_key"], "{json:/id}");
    assert_eq!(stripe["events_from"], "json:/type");
    assert_eq!(stripe["events_signed"], true);

    // HubSpot: three forms, v1/v2 chosen by the version header.
    let hubspot = by_name("hubspot");
    assert_eq!(hubspot["requires"], serde_json::json!(["public_url"]));
    let forms = hubspot["signatures"].as_array().unwrap();
    assert_eq!(forms.len(), 3);
    assert_eq!(forms[1]["only_when"], "x-hubspot-signature-version: v2");
    assert!(
        forms[2]["signed"]
            .as_str()
            .unwrap()
            .contains("SHA-256 of the secret followed by {body}"),
        "{}",
        forms[2]["signed"]
    );

    // GitHub's event header is outside its signature.
    assert_eq!(by_name("github")["events_signed"], false);
    assert_eq!(by_name("postmark")["verification"], "basic_auth");
    assert_eq!(by_name("telegram")["verification"], "shared_secret");
    assert_eq!(by_name("telnyx")["verification"], "public_key");
    assert_eq!(
        by_name("standard_webhooks")["credentials"],
        serde_json::json!(["secrets", "public_keys"])
    );
    assert_eq!(by_name("twilio")["default_dedup_key"], "{form_sha256}");
    assert!(by_name("slack")["handshake"].is_string());
    let mailgun = by_name("mailgun");
    assert_eq!(
        mailgun["signatures"][0]["header"],
        "body json:/signature/signature"
    );
    assert_eq!(mailgun["default_dedup_key"], "{json:/signature/token}");
    assert_eq!(mailgun["events_signed"], false);
}

#[test]
fn text_has_one_block_per_preset() {
    let text = presets(&[]);
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), hookgate::presets::NAMES.len());
    for (block, name) in blocks.iter().zip(hookgate::presets::NAMES) {
        assert!(block.starts_with(&format!("{name}\n")), "{block}");
        assert!(block.contains("  signature "), "{block}");
        assert!(block.contains("  dedup key "), "{block}");
    }
    assert!(text.contains(
        "box-signature-primary or box-signature-secondary: <base64 HMAC-SHA256 of {body}{timestamp}>; timestamp header:box-delivery-timestamp (rfc3339) within 10m"
    ));
}

#[test]
fn an_unknown_format_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["presets", "--format", "yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
