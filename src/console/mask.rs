//! What the console shows of values that may carry a credential: stored
//! header values (masked when a signature, a shared secret or a credential
//! may be in them) and upstream URLs (shown without their query string or
//! userinfo).

use crate::config::{Config, DestinationKind, Route};

/// The value shown for a masked header.
pub const MASKED: &str = "•••• (masked)";

/// Stored headers with every value that may carry a signature or a
/// credential replaced by [`MASKED`]: the headers any route's verification
/// reads (see [`crate::reload::sensitive_headers`]: signatures, shared
/// secrets, `authorization`, `cookie`), the headers the upstream adds, and
/// any whose name mentions a secret, token, signature or key.
pub fn mask_headers(
    config: &Config,
    route: Option<&Route>,
    headers: &[(String, String)],
) -> Vec<(String, String)> {
    let mut sensitive: Vec<String> = crate::reload::sensitive_headers(config)
        .iter()
        .map(|h| h.as_str().to_string())
        .collect();
    if let Some(route) = route {
        for d in &route.destinations {
            if let DestinationKind::Http(upstream) = &d.kind {
                sensitive.extend(upstream.headers.keys().map(|k| k.as_str().to_string()));
            }
        }
    }
    headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let masked = sensitive.contains(&lower)
                || [
                    "secret",
                    "token",
                    "signature",
                    "key",
                    "auth",
                    "cookie",
                    "password",
                ]
                .iter()
                .any(|word| lower.contains(word));
            let value = if masked {
                MASKED.to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// A route's destinations as shown: `name: address` each, an HTTP
/// address as scheme, host, port and path; never a userinfo or query
/// string (either may hold a credential).
pub fn destination(route: &Route) -> String {
    let shown: Vec<String> = route
        .destinations
        .iter()
        .map(|d| {
            let address = address(&d.kind);
            if route.destinations.len() == 1 {
                address
            } else {
                format!("{}: {address}", d.name)
            }
        })
        .collect();
    shown.join(", ")
}

/// Where a destination delivers, without credentials.
pub fn address(kind: &DestinationKind) -> String {
    match kind {
        DestinationKind::Http(upstream) => http_address(&upstream.url),
        other => other.describe(),
    }
}

fn http_address(url: &http::Uri) -> String {
    let host = url.host().unwrap_or("");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if url.query().is_some() { "?…" } else { "" };
    format!(
        "{}://{host}{port}{}{query}",
        url.scheme_str().unwrap_or("http"),
        url.path()
    )
}
