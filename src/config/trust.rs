//! Warnings about what a route trusts beyond what its sender signs: event
//! filters that read an unsigned event type, short secrets, and keys that
//! gave up replay protection. `hookgate check` prints them and `serve` logs
//! them at start-up; they are not errors, since each is a choice the
//! operator may have made knowingly.

use secrecy::ExposeSecret;

use super::{Config, DedupMode, Route};
use crate::verify::template::Part;
use crate::verify::{SpecKind, TimestampSource, Trust};

/// Secrets (decoded HMAC keys, shared secrets) shorter than this draw a
/// warning: they may be guessed offline from one captured signature.
pub const MIN_SECRET_BYTES: usize = 16;

impl Config {
    /// Every route's warnings, each prefixed with its route's name.
    pub fn trust_warnings(&self) -> Vec<String> {
        self.routes
            .iter()
            .flat_map(|r| {
                r.trust_warnings()
                    .into_iter()
                    .map(move |w| format!("route {}: {w}", r.name))
            })
            .collect()
    }
}

impl Route {
    pub fn trust_warnings(&self) -> Vec<String> {
        let mut out = short_secrets(self);
        out.extend(unsigned_timestamp(self));
        if let (Trust::Signed(coverage), Some(from)) = (self.verify.trust(), &self.events.from) {
            if self.events.filters() && !from.signed_by(&coverage) {
                out.push(format!(
                    "events are filtered on {}, which the `{}` signature does not cover (it signs {}): a captured request relabelled with another event type passes `allow`/`ack_only` as that type",
                    from.describe(),
                    self.verify.scheme,
                    coverage.describe()
                ));
            }
        }
        let signed = matches!(self.verify.trust(), Trust::Signed(_));
        if let DedupMode::On(d) = &self.dedup {
            if d.unsigned_key_allowed && signed {
                out.push(format!(
                    "dedup.unsigned_key: allow: the key {} may use parts the signature does not cover, so a replayed copy with them changed is forwarded again",
                    d.key.as_str()
                ));
            }
        }
        out
    }
}

/// A timestamp the payload does not sign can be refreshed on a replayed
/// copy, so its `tolerance` stops nothing.
fn unsigned_timestamp(route: &Route) -> Option<String> {
    let SpecKind::Hmac { spec, .. } = &route.verify.kind else {
        return None;
    };
    spec.sources.iter().find_map(|s| {
        let ts = s.timestamp.as_ref()?;
        let in_body = matches!(ts.source, TimestampSource::Json(_)) && s.payload.uses(&Part::Body);
        (!s.payload.uses(&Part::Timestamp) && !in_body).then(|| {
            format!(
                "verify.timestamp {} is not in the signed payload {}: a replayed copy with a fresh timestamp passes `tolerance`; add {{timestamp}} to the payload",
                ts.source.describe(),
                s.payload.describe()
            )
        })
    })
}

fn short_secrets(route: &Route) -> Vec<String> {
    let lengths: Vec<usize> = match &route.verify.kind {
        // JWT secrets are held to 32 bytes when the config is read.
        SpecKind::None | SpecKind::PublicKey { .. } | SpecKind::Jwt { .. } => return Vec::new(),
        SpecKind::Header { secrets, .. }
        | SpecKind::ApiKey { secrets, .. }
        | SpecKind::ClientState { secrets } => {
            secrets.iter().map(|s| s.expose_secret().len()).collect()
        }
        SpecKind::Hmac { spec, secrets } => secrets
            .iter()
            .map(|s| {
                spec.sources
                    .iter()
                    .filter_map(|src| src.secret_encoding.key(s.expose_secret()))
                    .map(|k| k.len())
                    .min()
                    .unwrap_or(0)
            })
            .collect(),
    };
    lengths
        .into_iter()
        .enumerate()
        .filter(|(_, n)| *n < MIN_SECRET_BYTES)
        .map(|(i, n)| {
            format!(
                "verify.secrets[{i}] is {n} bytes long (decoded): use at least {MIN_SECRET_BYTES} random bytes, or it may be guessed from one captured request"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
