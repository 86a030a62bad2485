//! The test event "Send test event" is pre-filled with: the route's
//! preset's sample (`crate::presets::samples`), or a small generic one for
//! a route without a preset, fitted to where the route reads its event type.
//!
//! Fresh IDs are drawn each time the route page is rendered, and the form
//! is sent as shown (what the page shows is what is signed and sent). A
//! second test event from a newly rendered page is therefore a new event,
//! not a duplicate; sending the very same form twice (the browser's back
//! button) is a duplicate, which is what the route's dedup is for.

use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

use crate::config::Route;
use crate::events::EventSource;
use crate::presets::samples::TestEvent;
use crate::presets::samples::{preset_sample, GENERIC};

/// The event type a sample without one is given.
const TEST_EVENT_TYPE: &str = "test.event";

/// A fresh test event for `route`.
pub(super) fn for_route(route: &Route, now: SystemTime) -> TestEvent {
    let scheme = route.verify.scheme.as_str();
    let mut event = preset_sample(scheme).unwrap_or(&GENERIC).render(now);
    match &route.events.from {
        Some(EventSource::Json(pointer)) => {
            if let Some(e) = event.event.take() {
                sent_in_preset_header(scheme, e, &mut event);
            }
            event.body = with_event_at(&event.body, pointer);
        }
        Some(_) => {
            event
                .event
                .get_or_insert_with(|| TEST_EVENT_TYPE.to_string());
        }
        None => {
            if let Some(e) = event.event.take() {
                sent_in_preset_header(scheme, e, &mut event);
            }
        }
    }
    event
}

/// A route that reads its event type elsewhere than its preset still
/// gets the header its sender sends.
fn sent_in_preset_header(scheme: &str, value: String, event: &mut TestEvent) {
    let source = crate::presets::preset(scheme).and_then(|p| p.event_source());
    if let Some(h) = source.as_ref().and_then(EventSource::header) {
        event.headers.insert(0, (h.to_string(), value));
    }
}

/// `body` with `"test.event"` at `pointer` when nothing is there yet (a
/// route whose `events.from` its sample does not fill); unchanged when the
/// body is not a JSON object.
fn with_event_at(body: &str, pointer: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    if doc.pointer(pointer).is_some() || !doc.is_object() {
        return body.to_string();
    }
    let mut at = &mut doc;
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        let Some(object) = at.as_object_mut() else {
            return body.to_string();
        };
        let next = if i + 1 == tokens.len() {
            serde_json::Value::from(TEST_EVENT_TYPE)
        } else {
            serde_json::json!({})
        };
        at = object.entry(token.clone()).or_insert(next);
    }
    doc.to_string()
}

/// The form's headers, one `Name: value` a line, as the request will carry
/// them. Headers of the connection and of the body's framing are hookgate's
/// to set, and are refused.
pub(super) fn parse_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("{line:?} is not written `Name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        if crate::reserved_headers::is_hop_by_hop(&name)
            || [http::header::HOST, http::header::CONTENT_LENGTH].contains(&name)
        {
            return Err(format!("{name} is set by hookgate, not by the test event"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The headers as the form shows them.
pub(super) fn headers_text(headers: &[(String, String)]) -> String {
    headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_type_is_put_where_the_route_reads_it() {
        assert_eq!(
            with_event_at(r#"{"id":1}"#, "/meta/event~1name"),
            r#"{"id":1,"meta":{"event/name":"test.event"}}"#
        );
        assert_eq!(with_event_at(r#"{"type":"x"}"#, "/type"), r#"{"type":"x"}"#);
        assert_eq!(with_event_at("a=b", "/type"), "a=b");
        assert_eq!(
            with_event_at(r#"{"type":"x"}"#, "/type/inner"),
            r#"{"type":"x"}"#
        );
    }

    #[test]
    fn headers_are_parsed_and_framing_headers_refused() {
        let h = parse_headers("X-GitHub-Delivery: 1-2\n\n  webhook-id:msg_1 \n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, "x-github-delivery");
        assert_eq!(h[1].1, "msg_1");
        for bad in [
            "no colon",
            "Bad Name: v",
            "Content-Length: 3",
            "Connection: close",
        ] {
            assert!(parse_headers(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_headers(&headers_text(&[("A".into(), "b".into())])).unwrap()[0].1,
            "b"
        );
    }
}

#[cfg(test)]
mod signed_tests {
    use std::collections::HashMap;
    use std::time::SystemTime;

    use http::HeaderMap;

    use super::*;
    use crate::config::Config;
    use crate::presets::{PresetKind, TABLE};
    use crate::sign::{sign_with, SignError};
    use crate::verify::{SignedRequest, Verifier};

    /// Every HMAC preset's test event, as the console signs it for a route
    /// of that preset, passes the route's verifier: the sample's headers
    /// neither clash with the signature's nor spoil it.
    #[test]
    fn every_hmac_presets_sample_signs_and_verifies() {
        let mut routes = String::from("routes:\n");
        for row in TABLE {
            if !matches!(row.preset().kind, PresetKind::Hmac(_)) {
                continue;
            }
            let secret = match row.name {
                "standard_webhooks" | "svix" | "clerk" | "resend" | "openai" => {
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                }
                "airtable" => "c2VjcmV0LWtleS1mb3ItYWlydGFibGU=",
                _ => "a-test-secret",
            };
            let url = if crate::presets::describe::describe(row)
                .requires
                .contains(&"public_url")
            {
                format!(", public_url: \"https://hooks.example.com/{}\"", row.name)
            } else {
                String::new()
            };
            routes.push_str(&format!(
                "  - {{ name: {n}, path: /{n}, verify: {{ scheme: {n}, secrets: [\"{secret}\"]{url} }}, ack: sync, upstream: {{ url: \"http://127.0.0.1:1/\" }} }}\n",
                n = row.name
            ));
        }
        let config = Config::from_yaml(&routes, &HashMap::new()).expect("config");
        let now = SystemTime::now();
        for route in &config.routes {
            let test = for_route(route, now);
            let extra = parse_headers(&headers_text(&test.headers)).unwrap();
            let signed = match sign_with(
                route,
                test.body.as_bytes(),
                test.event.as_deref(),
                &extra,
                now,
            ) {
                Ok(signed) => signed,
                // Mailgun's signature travels in the body.
                Err(SignError::Sign { .. }) if route.name == "mailgun" => continue,
                Err(e) => panic!("{}: {e}", route.name),
            };
            let mut headers = HeaderMap::new();
            for (n, v) in &signed.headers {
                assert!(!headers.contains_key(n), "{}: {n} twice", route.name);
                headers.insert(n.clone(), v.parse().unwrap());
            }
            let verifier = Verifier::new(&route.verify);
            let request = SignedRequest {
                method: "POST",
                query: None,
                headers: &headers,
                body: test.body.as_bytes(),
                now,
            };
            if let Err(e) = verifier.verify_request(&request) {
                panic!("{}: {}", route.name, e.code());
            }
        }
    }
}
