//! Header rules for both directions of a forwarded exchange.
//!
//! Towards the upstream, a sender's headers pass only if nothing downstream
//! could take them for something hookgate or a proxy vouches for:
//! - hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones RFC 2616
//!   listed) describe one connection and are never passed on; neither is
//!   any header the `Connection` header names;
//! - `Hookgate-*`, `Forwarded`, `X-Real-IP` and `X-Forwarded-For` are set
//!   (or not) by hookgate alone. Names are compared with `_` read as `-`:
//!   CGI and WSGI stacks turn `Hookgate_Attempt` and `Hookgate-Attempt`
//!   into the same variable;
//! - with `upstream.forward_headers`, only the listed ones are kept.
//!
//! Towards the sender (sync routes), only the upstream's response headers
//! that describe the answer are relayed: `Server`, `Set-Cookie` and
//! internal headers stay inside.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::reserved_headers::{is_gateway_managed, is_hop_by_hop};

pub const HOOKGATE_ROUTE: HeaderName = HeaderName::from_static("hookgate-route");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Upstream response headers relayed to the sender on every sync route;
/// `upstream.relay_headers` adds to them.
pub const RELAYED_RESPONSE_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::RETRY_AFTER,
    header::LOCATION,
];

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

/// What decides which headers a verified request carries upstream.
pub struct ForwardRules<'a> {
    /// The credential header the verifier consumed (shared-secret schemes).
    pub credential: Option<&'a HeaderName>,
    /// `upstream.forward_headers`: when set, the only sender headers kept.
    pub forward_only: Option<&'a [HeaderName]>,
    /// `Hookgate-Route`.
    pub route: &'a HeaderValue,
    /// `upstream.headers` (empty when they are added at delivery time).
    pub extra: &'a HeaderMap,
    /// The TCP peer, and whether it is one of `trusted_proxies`.
    pub peer: IpAddr,
    pub peer_trusted: bool,
}

/// The headers sent upstream: the sender's end-to-end headers that pass the
/// rules in the module docs, minus the credential the verifier consumed,
/// plus the route's own headers, `Hookgate-Route` and `X-Forwarded-For`:
/// the peer's address, appended to the chain only when the peer is a
/// trusted proxy (anyone else could write any chain they like).
pub fn upstream_request_headers(mut headers: HeaderMap, rules: &ForwardRules<'_>) -> HeaderMap {
    let prior: Vec<String> = if rules.peer_trusted {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    remove_hop_by_hop(&mut headers);
    // The client sets Host from the upstream URL and Content-Length from the body.
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if let Some(name) = rules.credential {
        headers.remove(name);
    }
    let mut headers = sender_headers(headers, rules.forward_only);
    let peer = rules.peer;
    let forwarded_for = match prior.as_slice() {
        [] => peer.to_string(),
        prior => format!("{}, {peer}", prior.join(", ")),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    add_own(&mut headers, rules.route, rules.extra);
    headers
}

/// The headers of a spooled event as its delivery sends them: the stored
/// headers (built by [`upstream_request_headers`] at ingress, without
/// `upstream.headers`) pass the sender rules again, so an event spooled by
/// an older version or before a reload that set `forward_headers` obeys the
/// rules in force. The stored `X-Forwarded-For` is hookgate's own and kept.
pub fn delivery_headers(
    stored: HeaderMap,
    forward_only: Option<&[HeaderName]>,
    route: &HeaderValue,
    extra: &HeaderMap,
) -> HeaderMap {
    let forwarded_for: Vec<HeaderValue> =
        stored.get_all(&X_FORWARDED_FOR).iter().cloned().collect();
    let mut headers = sender_headers(stored, forward_only);
    for value in forwarded_for {
        headers.append(X_FORWARDED_FOR, value);
    }
    add_own(&mut headers, route, extra);
    headers
}

/// Drops the headers only hookgate may set, then keeps only `forward_only`
/// (when given).
fn sender_headers(mut headers: HeaderMap, forward_only: Option<&[HeaderName]>) -> HeaderMap {
    let managed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_gateway_managed(n) || forward_only.is_some_and(|keep| !keep.contains(n)))
        .cloned()
        .collect();
    for name in managed {
        headers.remove(name);
    }
    headers
}

fn add_own(headers: &mut HeaderMap, route: &HeaderValue, extra: &HeaderMap) {
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(HOOKGATE_ROUTE, route.clone());
}

/// The headers relayed to the sender from the upstream's response: the
/// [`RELAYED_RESPONSE_HEADERS`] and the route's `relay_headers`.
pub fn relayed_response_headers(headers: HeaderMap, relay: &[HeaderName]) -> HeaderMap {
    let mut out = HeaderMap::new();
    // The body is re-framed by our own connection, so Content-Length is
    // never relayed; hop-by-hop headers are refused in `relay_headers`.
    let extra = relay
        .iter()
        .filter(|n| !RELAYED_RESPONSE_HEADERS.contains(n));
    for name in RELAYED_RESPONSE_HEADERS.iter().chain(extra) {
        for value in headers.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
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

    fn rules<'a>(
        credential: Option<&'a HeaderName>,
        forward_only: Option<&'a [HeaderName]>,
        extra: &'a HeaderMap,
        peer_trusted: bool,
    ) -> ForwardRules<'a> {
        static ROUTE: HeaderValue = HeaderValue::from_static("timify");
        ForwardRules {
            credential,
            forward_only,
            route: &ROUTE,
            extra,
            peer: "10.1.2.3".parse().unwrap(),
            peer_trusted,
        }
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
            ("Hookgate_Delivery_Id", "forged"),
            ("HOOKGATE_ATTEMPT", "forged"),
            ("hookgate_x", "forged"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.6"),
            ("content-type", "application/json"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let extra = map(&[("x-source", "timify")]);
        let secret = HeaderName::from_static("x-timify-secret");
        let out = upstream_request_headers(incoming, &rules(Some(&secret), None, &extra, true));
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
            "hookgate_delivery_id",
            "hookgate_attempt",
            "hookgate_x",
            "forwarded",
            "x-real-ip",
            "x_real_ip",
            "x_forwarded_for",
        ] {
            assert!(!out.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(out["tt-hook-signature"], "sha1=00");
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-source"], "timify");
        assert_eq!(out["hookgate-route"], "timify");
        assert_eq!(out.get_all("hookgate-route").iter().count(), 1);
        // From a trusted proxy the chain is extended.
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
    }

    #[test]
    fn an_untrusted_peer_is_the_whole_forwarded_for_chain() {
        let incoming = map(&[
            ("x-forwarded-for", "192.30.252.1"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        let out = upstream_request_headers(incoming, &rules(None, None, &HeaderMap::new(), false));
        assert_eq!(out.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
    }

    #[test]
    fn forward_headers_keep_only_the_listed_sender_headers() {
        let incoming = map(&[
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-internal-admin", "true"),
            ("cookie", "session=1"),
        ]);
        let keep = [
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-github-event"),
        ];
        let extra = map(&[("authorization", "Bearer upstream")]);
        let out = upstream_request_headers(incoming, &rules(None, Some(&keep), &extra, false));
        let mut names: Vec<&str> = out.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "authorization",
                "content-type",
                "hookgate-route",
                "x-forwarded-for",
                "x-github-event"
            ]
        );
    }

    #[test]
    fn delivery_headers_apply_the_rules_to_stored_events_and_keep_the_stored_chain() {
        let stored = map(&[
            ("hookgate_attempt", "forged"),
            ("hookgate-route", "old"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-extra", "1"),
            ("content-type", "text/plain"),
        ]);
        let keep = [HeaderName::from_static("content-type")];
        let out = delivery_headers(
            stored,
            Some(&keep),
            &HeaderValue::from_static("timify"),
            &HeaderMap::new(),
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out["hookgate-route"], "timify");
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
        assert_eq!(out["content-type"], "text/plain");
    }

    #[test]
    fn response_headers_relay_only_the_answer_describing_ones_and_the_listed() {
        let upstream = map(&[
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("content-length", "3"),
            ("content-type", "application/json"),
            ("retry-after", "5"),
            ("location", "/booking/1"),
            ("content-language", "de"),
            ("x-booking", "confirmed"),
            ("set-cookie", "a=b"),
            ("server", "internal/1.2"),
            ("x-internal-trace", "abc"),
        ]);
        let out = relayed_response_headers(upstream.clone(), &[]);
        let mut names: Vec<&str> = out.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-language",
                "content-type",
                "location",
                "retry-after"
            ]
        );
        let listed = [
            HeaderName::from_static("x-booking"),
            HeaderName::from_static("content-type"),
        ];
        let out = relayed_response_headers(upstream, &listed);
        assert_eq!(out.len(), 5);
        assert_eq!(out["x-booking"], "confirmed");
        assert_eq!(out.get_all("content-type").iter().count(), 1);
    }
}
