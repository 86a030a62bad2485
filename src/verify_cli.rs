//! `hookgate verify`: checks a captured request offline against a route,
//! the way `serve` would, and says which step fails: no such route, the
//! method, a missing header, a malformed signature, a signature that no
//! secret matches (with the shape of the payload that was expected to be
//! signed), a timestamp outside the window (with the clock difference), or
//! an event the route's filters do not forward.
//!
//! Never prints a secret, a key or the MAC hookgate expected: only what the
//! request itself carries and the shape of the signed payload.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use http::{HeaderMap, HeaderName, HeaderValue};

use hookgate::config::{Config, Route};
use hookgate::events::{Decision, Events};
use hookgate::verify::template::Part;
use hookgate::verify::{
    HmacSpec, PublicKeySpec, SignatureSource, SignedRequest, SpecKind, Verifier, VerifyError,
};

/// A captured request: method, path, query, headers and body as sent.
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Parses a raw HTTP/1.1 request (`POST /p?q HTTP/1.1`, headers, a blank
/// line, the body), with CRLF or LF line ends, the `> ` lines of
/// `curl -v` output (which shows no body: give it with `--body`), or a HAR
/// file (its first entry's request).
pub fn parse_request(raw: &[u8]) -> anyhow::Result<Captured> {
    if raw.trim_ascii_start().starts_with(b"{") {
        return parse_har(raw);
    }
    let text_end = find_blank_line(raw);
    let (head, body) = match text_end {
        Some((end, skip)) => (&raw[..end], raw[end + skip..].to_vec()),
        None => (raw, Vec::new()),
    };
    let head = std::str::from_utf8(head).context("the request head is not UTF-8")?;
    let mut lines: Vec<&str> = head.lines().map(|l| l.trim_end_matches('\r')).collect();
    // curl -v: keep the request lines only (`> `), drop the rest.
    if lines.iter().any(|l| l.starts_with("> ")) {
        lines = lines
            .iter()
            .filter_map(|l| l.strip_prefix("> ").or_else(|| (*l == ">").then_some("")))
            .filter(|l| !l.is_empty())
            .collect();
    }
    let mut lines = lines.into_iter().skip_while(|l| l.trim().is_empty());
    let request_line = lines.next().context("the request file is empty")?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        bail!("the first line is not a request line (`POST /path HTTP/1.1`): {request_line:?}");
    };
    let target = match target.split_once("://") {
        // An absolute-form target: keep the path and query.
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("not a header line: {line:?}");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("{:?} is not a valid header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("the value of {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    if headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        bail!("the body is chunked: save the request with the body as it was reassembled (curl --trace, or the upstream's log)");
    }
    Ok(Captured {
        method: method.to_string(),
        path,
        query,
        headers,
        body,
    })
}

/// The first entry's request of a HAR file (`log.entries[0].request`):
/// method, URL, headers and `postData.text` (HAR keeps text bodies only).
fn parse_har(raw: &[u8]) -> anyhow::Result<Captured> {
    let har: serde_json::Value =
        serde_json::from_slice(raw).context("the file is not JSON (HAR)")?;
    let request = har
        .pointer("/log/entries/0/request")
        .context("the HAR file has no log.entries[0].request")?;
    let text = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("the HAR request has no {what}"))
    };
    let method = text(&request["method"], "method")?;
    let url = text(&request["url"], "url")?;
    let target = match url.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None => url.clone(),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.clone(), None),
    };
    let mut headers = HeaderMap::new();
    for h in request["headers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (name, value) = (
            text(&h["name"], "header name")?,
            text(&h["value"], "header value")?,
        );
        // HTTP/2 pseudo-headers (`:authority`) are not request headers.
        if name.starts_with(':') {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("{name:?} is not a valid header name"))?;
        let value = HeaderValue::from_str(&value)
            .with_context(|| format!("the value of {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    let body = request
        .pointer("/postData/text")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    Ok(Captured {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Where the head ends: the index of the blank line and the length of the
/// separator to skip.
fn find_blank_line(raw: &[u8]) -> Option<(usize, usize)> {
    let crlf = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The verdict: lines to print, and whether the request would be
/// forwarded.
pub struct Report {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Checks `request` against route `route_name` of the config at `path`, at
/// time `now`.
pub fn check(
    config_path: &Path,
    env: &HashMap<String, String>,
    route_name: &str,
    request: &Captured,
    now: SystemTime,
) -> anyhow::Result<Report> {
    let config = Config::load(config_path, env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut lines = Vec::new();
    let Some(route) = config.routes.iter().find(|r| r.name == route_name) else {
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        lines.push(format!(
            "FAIL no route: the config has no route {route_name:?} (routes: {})",
            names.join(", ")
        ));
        return Ok(Report { lines, ok: false });
    };
    lines.push(format!(
        "route {} ({}): {}",
        route.name,
        route.path,
        route.verify.summary()
    ));
    if request.path != route.path {
        lines.push(format!(
            "note: the request went to {}, the route listens on {}",
            request.path, route.path
        ));
    }
    if request.method != "POST" {
        lines.push(format!(
            "FAIL method: {} (routes take POST; a sender's GET handshake is answered only where its preset does)",
            request.method
        ));
        return Ok(Report { lines, ok: false });
    }
    let signed = SignedRequest {
        method: &request.method,
        query: request.query.as_deref(),
        headers: &request.headers,
        body: &request.body,
        now,
    };
    let verifier = Verifier::new(&route.verify);
    fetch_keys(route, &verifier, request);
    let verified = match verifier.verify_request(&signed) {
        Ok(v) => v,
        Err(e) => {
            lines.extend(explain(route, request, e, now));
            return Ok(Report { lines, ok: false });
        }
    };
    lines.push(match verified.secret_index {
        Some(i) => format!("ok   signature: matches secret or key #{i} (counting from 0)"),
        None => "ok   verification: none configured".to_string(),
    });
    let events = Events::new(&route.events, &route.verify);
    match events.decide(&request.headers, &request.body, &verified) {
        Decision::Forward => {
            lines.push(format!(
                "ok   events: forwarded ({})",
                route.events.summary()
            ));
            Ok(Report { lines, ok: true })
        }
        Decision::Answer { outcome, .. } => {
            lines.push(format!(
                "FAIL event: answered by hookgate and not forwarded (outcome {}; {})",
                outcome.as_str(),
                route.events.summary()
            ));
            Ok(Report { lines, ok: false })
        }
    }
}

/// A JWT route's JWKS keys, fetched as the gateway would (on a runtime of
/// its own: this command is synchronous); nothing for other schemes.
fn fetch_keys(route: &Route, verifier: &Verifier, request: &Captured) {
    let fetches_keys =
        matches!(&route.verify.kind, SpecKind::Jwt { spec, .. } if spec.jwks.is_some());
    if fetches_keys && tokio::runtime::Handle::try_current().is_err() {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(verifier.prepare(&request.headers));
        }
    }
}

/// Why verification failed, step by step.
fn explain(route: &Route, request: &Captured, error: VerifyError, now: SystemTime) -> Vec<String> {
    let h = &request.headers;
    match &route.verify.kind {
        SpecKind::Hmac { spec, secrets } => {
            explain_hmac(route, spec, secrets.len(), request, error, now)
        }
        SpecKind::PublicKey { spec, keys } => match error {
            VerifyError::StaleTimestamp => vec![stale(
                spec.timestamp.as_ref(),
                h,
                &request.body,
                Some((&spec.header, spec.separator.as_deref())),
                now,
            )],
            VerifyError::BadSignature => vec![
                format!(
                    "FAIL bad signature: none of the {} public key(s) verifies this request",
                    keys.len()
                ),
                format!("     signed payload: {}", spec.payload.describe()),
            ],
            VerifyError::MissingCredentials => vec![format!(
                "FAIL missing: the request lacks {}",
                public_key_missing(spec, h).join(" or ")
            )],
            other => vec![format!("FAIL {}: {}", other.code(), other)],
        },
        SpecKind::Header { header, .. } | SpecKind::ApiKey { header, .. } => match error {
            VerifyError::MissingCredentials => {
                vec![format!("FAIL missing: the request lacks header {header}")]
            }
            other => vec![format!(
                "FAIL {}: the value of {header} is not one of the {} secret(s)",
                other.code(),
                route.verify.secret_count()
            )],
        },
        SpecKind::ClientState { secrets } => match error {
            VerifyError::MissingCredentials => vec![
                "FAIL missing: the body is not {\"value\": [notifications]} with a clientState string in each".to_string(),
            ],
            other => vec![format!(
                "FAIL {}: a notification's clientState is not one of the {} secret(s)",
                other.code(),
                secrets.len()
            )],
        },
        SpecKind::Jwt { spec, .. } => vec![format!(
            "FAIL {}: {} (expected: {})",
            error.code(),
            error,
            spec.describe()
        )],
        SpecKind::None => vec![format!("FAIL {}", error)],
    }
}

/// Why an HMAC route refused the request.
fn explain_hmac(
    route: &Route,
    spec: &HmacSpec,
    secrets: usize,
    request: &Captured,
    error: VerifyError,
    now: SystemTime,
) -> Vec<String> {
    let h = &request.headers;
    let source = chosen_source(spec, h, &request.body);
    let mut out = Vec::new();
    match error {
        VerifyError::MissingCredentials => {
            let wanted = match source {
                Some(s) => missing_of(s, h),
                None => spec
                    .sources
                    .iter()
                    .map(|s| match &s.body_signature {
                        Some(p) => format!("body field {}", p.as_str()),
                        None => format!("header {}", s.header),
                    })
                    .collect(),
            };
            out.push(format!(
                "FAIL missing: the request lacks {}",
                wanted.join(" or ")
            ));
        }
        VerifyError::MalformedSignature => out.push(format!(
            "FAIL malformed: {}",
            source.map_or("the signature".into(), malformed_hint)
        )),
        VerifyError::BadSignature => {
            out.push(format!(
                "FAIL bad signature: none of the {secrets} secret(s) signs this request"
            ));
            if let Some(s) = source {
                out.extend(payload_shape(s, route, request));
                out.extend(also_stale(s, request, now));
            }
        }
        VerifyError::StaleTimestamp => out.push(stale(
            source.and_then(|s| s.timestamp.as_ref()),
            h,
            &request.body,
            source.map(|s| (&s.header, s.separator.as_deref())),
            now,
        )),
        VerifyError::BadCredentials
        | VerifyError::BadClaims
        | VerifyError::UnknownKey
        | VerifyError::KeysUnavailable => out.push(format!("FAIL {}", error)),
    }
    out
}

/// A timestamp outside the window is only reported for authentic
/// requests; after a bad signature, say so too.
fn also_stale(s: &SignatureSource, request: &Captured, now: SystemTime) -> Option<String> {
    let ts = s.timestamp.as_ref()?;
    let signature = (&s.header, s.separator.as_deref());
    let text = ts
        .extract(&request.headers, &request.body, signature)
        .ok()?;
    if ts.check(&text, now) != Err(VerifyError::StaleTimestamp) {
        return None;
    }
    let line = stale(
        Some(ts),
        &request.headers,
        &request.body,
        Some(signature),
        now,
    );
    Some(format!(
        "     and once signed right: {}",
        line.trim_start_matches("FAIL ")
    ))
}

/// The HMAC form this request is checked with: the first whose signature
/// the request carries, as the verifier chooses.
fn chosen_source<'a>(
    spec: &'a HmacSpec,
    h: &HeaderMap,
    body: &[u8],
) -> Option<&'a SignatureSource> {
    spec.sources.iter().find(|s| {
        let chosen = match &s.only_when {
            None => true,
            Some((name, value)) => h.get(name).is_some_and(|v| {
                v.as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(value.as_bytes())
            }),
        };
        let carried = match &s.body_signature {
            Some(p) => p.find(body).is_some(),
            None => h.contains_key(&s.header) || s.more_headers.iter().any(|m| h.contains_key(m)),
        };
        chosen && carried
    })
}

/// The parts of `source`'s payload the request lacks.
fn missing_of(s: &SignatureSource, h: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ts) = &s.timestamp {
        if let hookgate::verify::TimestampSource::Header(name) = &ts.source {
            if !h.contains_key(name) {
                out.push(format!("timestamp header {name}"));
            }
        }
    }
    for name in s.payload.headers() {
        if !h.contains_key(name) {
            out.push(format!("header {name} (signed)"));
        }
    }
    for part in s.payload.parts() {
        if let Part::Json(p) = part {
            out.push(format!("body field {} (if absent)", p.as_str()));
        }
    }
    if out.is_empty() {
        out.push("a part of the signed payload".into());
    }
    out
}

fn public_key_missing(spec: &PublicKeySpec, h: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    if !h.contains_key(&spec.header) {
        out.push(format!("header {}", spec.header));
    }
    if let Some(hookgate::verify::TimestampSource::Header(name)) =
        spec.timestamp.as_ref().map(|t| &t.source)
    {
        if !h.contains_key(name) {
            out.push(format!("timestamp header {name}"));
        }
    }
    out
}

fn malformed_hint(s: &SignatureSource) -> String {
    let at = match &s.body_signature {
        Some(p) => format!("body field {}", p.as_str()),
        None => format!("header {}", s.header),
    };
    let list = s
        .separator
        .as_ref()
        .map_or(String::new(), |sep| format!(" in a list split on {sep:?}"));
    format!(
        "{at} holds no {}{} {} of a {} MAC{list} (or its timestamp cannot be read)",
        if s.prefix.is_empty() { "" } else { "`" },
        if s.prefix.is_empty() {
            String::new()
        } else {
            format!("{}…`-prefixed", s.prefix)
        },
        s.encoding.as_str(),
        s.algorithm.as_str()
    )
}

/// What the sender should have signed, with the request's own values:
/// never the secret or the expected MAC.
fn payload_shape(s: &SignatureSource, route: &Route, request: &Captured) -> Vec<String> {
    let mut out = vec![format!(
        "     expected signature: {}<{} {} of {}> in {}",
        s.prefix,
        s.encoding.as_str(),
        s.algorithm.as_str(),
        s.payload.describe(),
        s.body_signature
            .as_ref()
            .map_or(s.header.to_string(), |p| format!(
                "body field {}",
                p.as_str()
            ))
    )];
    for part in s.payload.parts() {
        let line = match part {
            Part::Body => format!(
                "     {{body}} = the {} bytes received (SHA-256 {})",
                request.body.len(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&request.body))
            ),
            Part::Timestamp => match &s.timestamp {
                Some(ts) => format!(
                    "     {{timestamp}} = {:?} (from {})",
                    ts.extract(
                        &request.headers,
                        &request.body,
                        (&s.header, s.separator.as_deref())
                    )
                    .unwrap_or_default(),
                    ts.source.describe()
                ),
                None => continue,
            },
            Part::Header(h) => format!(
                "     {{header:{h}}} = {:?}",
                request
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            ),
            Part::Method => format!("     {{method}} = {:?}", request.method),
            Part::Url => {
                let base = match &route.verify.kind {
                    SpecKind::Hmac { spec, .. } => spec
                        .sources
                        .iter()
                        .find_map(|s| s.public_url.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let url = match &request.query {
                    Some(q) if !q.is_empty() => format!("{base}?{q}"),
                    _ => base,
                };
                format!("     {{url}} = {url:?} (public_url with the request's query)")
            }
            Part::FormSorted => "     {form_sorted} = the form parameters, names sorted".into(),
            Part::Json(p) => format!(
                "     {{json:{}}} = {:?}",
                p.as_str(),
                p.find(&request.body)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            ),
            Part::Literal(_) => continue,
        };
        out.push(line);
    }
    out.push("     check the secret, and that the body reached hookgate byte for byte (no re-encoding by a proxy)".into());
    out
}

/// The stale-timestamp step, with the clock difference.
fn stale(
    ts: Option<&hookgate::verify::TimestampSpec>,
    h: &HeaderMap,
    body: &[u8],
    signature: Option<(&HeaderName, Option<&str>)>,
    now: SystemTime,
) -> String {
    let (Some(ts), Some(sig)) = (ts, signature) else {
        return "FAIL stale timestamp".into();
    };
    let Some(at) = ts
        .extract(h, body, sig)
        .ok()
        .and_then(|text| ts.unit.parse_time(&text))
    else {
        return "FAIL stale timestamp".into();
    };
    let (distance, direction) = match now.duration_since(at) {
        Ok(past) => (past, "old"),
        Err(future) => (future.duration(), "in the future"),
    };
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    };
    format!(
        "FAIL stale timestamp: signed at {} (unix {}), {} {direction} at unix {}; the route accepts {} either way (`tolerance`)",
        humantime::format_rfc3339_seconds(at),
        secs(at),
        humantime::format_duration(Duration::from_secs(distance.as_secs())),
        secs(now),
        humantime::format_duration(ts.tolerance)
    )
}
