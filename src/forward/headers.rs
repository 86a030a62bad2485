//! Header rules for both directions of a forwarded exchange.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones RFC 2616 listed)
//! describe one connection and are never passed on; neither is any header
//! the `Connection` header names. Everything else is end-to-end and copied.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const HOOKGATE_ROUTE: HeaderName = HeaderName::from_static("hookgate-route");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// True for headers that belong to one connection, not to the message.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authorization"
    )
}

/// Removes hop-by-hop headers, including those named by `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// The headers sent upstream: the sender's end-to-end headers, minus the
/// credential the verifier consumed and any `Hookgate-*` header a sender
/// might use to impersonate the gateway, plus the route's own headers,
/// `Hookgate-Route` and `X-Forwarded-For`.
pub fn upstream_request_headers(
    mut headers: HeaderMap,
    strip: Option<&HeaderName>,
    route: &HeaderValue,
    extra: &HeaderMap,
    peer: IpAddr,
) -> HeaderMap {
    remove_hop_by_hop(&mut headers);
    // The client sets Host from the upstream URL and Content-Length from the body.
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if let Some(name) = strip {
        headers.remove(name);
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("hookgate-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }

    let forwarded_for = match headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
    {
        prior if prior.is_empty() => peer.to_string(),
        prior => format!("{}, {peer}", prior.join(", ")),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(HOOKGATE_ROUTE, route.clone());
    headers
}

/// The headers relayed to the sender from the upstream's response.
pub fn relayed_response_headers(mut headers: HeaderMap) -> HeaderMap {
    remove_hop_by_hop(&mut headers);
    // The body is re-framed by our own connection.
    headers.remove(header::CONTENT_LENGTH);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_headers_drop_hop_by_hop_credentials_and_spoofed_gateway_headers() {
        let incoming = map(&[
            ("host", "gateway.example"),
            ("connection", "keep-alive, X-Custom-Hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("content-length", "12"),
            ("x-timify-secret", "s3cret"),
            ("tt-hook-signature", "sha1=00"),
            ("hookgate-route", "other"),
            ("hookgate-delivery-id", "forged"),
            ("content-type", "application/json"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let extra = map(&[("x-source", "timify")]);
        let out = upstream_request_headers(
            incoming,
            Some(&HeaderName::from_static("x-timify-secret")),
            &HeaderValue::from_static("timify"),
            &extra,
            "10.1.2.3".parse().unwrap(),
        );
        for gone in [
            "host",
            "connection",
            "x-custom-hop",
            "keep-alive",
            "transfer-encoding",
            "te",
            "upgrade",
            "proxy-authorization",
            "content-length",
            "x-timify-secret",
            "hookgate-delivery-id",
        ] {
            assert!(!out.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(out["tt-hook-signature"], "sha1=00");
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-source"], "timify");
        assert_eq!(out["hookgate-route"], "timify");
        assert_eq!(out.get_all("hookgate-route").iter().count(), 1);
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
    }

    #[test]
    fn response_headers_keep_end_to_end_only() {
        let out = relayed_response_headers(map(&[
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("content-length", "3"),
            ("x-booking", "confirmed"),
            ("set-cookie", "a=b"),
        ]));
        assert_eq!(out.len(), 2);
        assert_eq!(out["x-booking"], "confirmed");
    }
}
