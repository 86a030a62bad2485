//! Signing a body as a route's sender would: the headers `hookgate sign`
//! prints and the console's "Send test event" sends. One implementation
//! for both, so a test event is signed exactly like the CLI says.
//!
//! Only HMAC schemes can be signed: hookgate holds their shared secret. A
//! shared-secret header would mean sending the secret itself, and a
//! public-key scheme needs the sender's private key, which hookgate never
//! has; both are refused with a reason. Errors never carry a secret.

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Route;
use crate::events::EventSource;
use crate::verify::{HmacVerifier, SpecKind};

/// Why a body cannot be signed for a route. The text is shown to
/// operators (CLI, console): it names the route and the scheme, never a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("route {0} does not verify requests: there is nothing to sign")]
    NotVerified(String),
    #[error("route {route} checks a shared secret in {header}, not a signature: the sender sends the secret itself, which hookgate does not print or send")]
    SharedSecret { route: String, header: HeaderName },
    #[error("route {route} verifies {algorithm} signatures with the sender's public keys: hookgate is verify-only for this scheme and has no private key to sign with; send a real request from the sender (or sign with its private key) to test the route")]
    PublicKey {
        route: String,
        algorithm: &'static str,
    },
    #[error("route {0} checks Microsoft Graph's clientState in the body, a shared secret the sender sends itself, which hookgate does not print or send")]
    ClientState(String),
    #[error("secret {0} does not decode")]
    BadSecret(usize),
    #[error("the event is not a valid header value")]
    BadEvent,
    #[error("header {0} is set by the signature (or the event type); leave it out")]
    SetBySignature(HeaderName),
    #[error("cannot sign for route {route}: {reason}")]
    Sign { route: String, reason: String },
}

/// A signed request's headers, in the order a sender sends them: the
/// event header first when one was asked for, then the signature headers.
#[derive(Debug, Clone)]
pub struct Signed {
    pub headers: Vec<(HeaderName, String)>,
    /// Something the caller may want to tell the user (e.g. that the event
    /// type is read from the body, so `event` added no header).
    pub note: Option<String>,
}

/// Whether `route` can be signed by hookgate; the reason when not.
pub fn signable(route: &Route) -> Result<(), SignError> {
    match &route.verify.kind {
        SpecKind::Hmac { .. } => Ok(()),
        SpecKind::None => Err(SignError::NotVerified(route.name.clone())),
        SpecKind::Header { header, .. } | SpecKind::ApiKey { header, .. } => {
            Err(SignError::SharedSecret {
                route: route.name.clone(),
                header: header.clone(),
            })
        }
        SpecKind::ClientState { .. } => Err(SignError::ClientState(route.name.clone())),
        SpecKind::PublicKey { spec, .. } => Err(SignError::PublicKey {
            route: route.name.clone(),
            algorithm: spec.algorithm.as_str(),
        }),
        SpecKind::Jwt { .. } => Err(SignError::PublicKey {
            route: route.name.clone(),
            algorithm: "JWT",
        }),
    }
}

/// Signs `body` for `route` with its first secret at `now`. With `event`,
/// a route that reads its event type from a header gets that header too
/// (and signed, where the signature covers it).
pub fn sign(
    route: &Route,
    body: &[u8],
    event: Option<&str>,
    now: SystemTime,
) -> Result<Signed, SignError> {
    sign_with(route, body, event, &[], now)
}

/// As [`sign`], with headers the sender sends besides (its event ID, say):
/// they come first, and are signed where the signature covers them (a
/// Standard Webhooks `webhook-id` is used, not made up). A header that the
/// signature or the event type sets is refused rather than sent twice.
pub fn sign_with(
    route: &Route,
    body: &[u8],
    event: Option<&str>,
    extra: &[(HeaderName, HeaderValue)],
    now: SystemTime,
) -> Result<Signed, SignError> {
    signable(route)?;
    let SpecKind::Hmac { spec, secrets } = &route.verify.kind else {
        unreachable!("signable accepts HMAC routes only");
    };
    let mut given = HeaderMap::new();
    let mut headers = Vec::new();
    for (name, value) in extra {
        given.append(name.clone(), value.clone());
        headers.push((name.clone(), value.to_str().unwrap_or_default().to_string()));
    }
    let mut note = None;
    if let Some(event) = event {
        match &route.events.from {
            Some(source @ (EventSource::Header(_) | EventSource::Headers(_))) => {
                let h = source.header().expect("a header source names a header");
                if given.contains_key(h) {
                    return Err(SignError::SetBySignature(h.clone()));
                }
                given.insert(h.clone(), event.parse().map_err(|_| SignError::BadEvent)?);
                headers.push((h.clone(), event.to_string()));
            }
            Some(EventSource::Json(p)) => {
                note = Some(format!(
                "route {} reads the event type from the body (json:{p}); the event adds no header",
                route.name
            ))
            }
            None => note = Some(format!("route {} does not read an event type", route.name)),
        }
    }
    let signer =
        HmacVerifier::try_new(spec.clone(), secrets).map_err(|e| SignError::BadSecret(e.0))?;
    let signed = signer
        .sign(0, "POST", None, &given, body, now)
        .map_err(|reason| SignError::Sign {
            route: route.name.clone(),
            reason,
        })?;
    if let Some((name, _)) = signed
        .iter()
        .find(|(n, _)| extra.iter().any(|(e, _)| e == n))
    {
        return Err(SignError::SetBySignature(name.clone()));
    }
    headers.extend(signed);
    Ok(Signed { headers, note })
}
