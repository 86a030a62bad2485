//! Header names hookgate keeps for itself: those that describe one
//! connection, and those only hookgate may set on the way to an upstream.
//!
//! A leaf module: `forward` strips these from what a sender sends, and
//! `config` refuses them where a route would set or list one (where they
//! would be silently dropped or would override hookgate's own).

use http::HeaderName;

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

/// True for headers only hookgate may set on the way to the upstream
/// (`Hookgate-*`, `Forwarded`, `X-Real-IP`, `X-Forwarded-For`), in any
/// spelling that a CGI-style stack reads as one of them.
pub fn is_gateway_managed(name: &HeaderName) -> bool {
    // Header names are lower case; compared without allocating (this runs
    // for every header of every request).
    let name = name.as_str().as_bytes();
    let prefix = b"hookgate-";
    (name.len() >= prefix.len() && dashed_eq(&name[..prefix.len()], prefix))
        || [&b"forwarded"[..], b"x-real-ip", b"x-forwarded-for"]
            .iter()
            .any(|managed| dashed_eq(name, managed))
}

/// `a == b`, where a `_` in `a` also matches a `-` in `b`.
fn dashed_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (*x == b'_' && *y == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_managed_names_in_any_dash_or_underscore_spelling() {
        let managed = |n: &str| is_gateway_managed(&HeaderName::from_bytes(n.as_bytes()).unwrap());
        for yes in [
            "Hookgate-Route",
            "hookgate_delivery_id",
            "HOOKGATE_ATTEMPT",
            "hookgate_",
            "Forwarded",
            "X_Real_IP",
            "x-forwarded_for",
        ] {
            assert!(managed(yes), "{yes}");
        }
        for no in [
            "hookgate",
            "hookgatex-id",
            "x-hookgate-id",
            "x-forwarded-host",
            "forwarded-by",
            "x-real-ip2",
        ] {
            assert!(!managed(no), "{no}");
        }
    }
}
