//! One route: its parts, and the rules between them.

use super::super::leaf::{Parsed, Positive};
use super::super::raw::{RawRateLimit, RawRoute};
use super::super::{ConfigError, RateLimit, Route};
use super::{dedup, destinations, events, verify, At};

pub fn route(at: &At, raw: RawRoute) -> Result<Route, ConfigError> {
    let Some(mut raw_verify) = raw.verify else {
        return Err(at.field("verify").error(
            "every route needs `verify`; to accept unverified requests write `verify: { scheme: none }`",
        ));
    };
    let raw_token = raw_verify.verify_token.take();
    let (verify, preset) = verify::verify(&at.field("verify"), raw_verify)?;
    let verify_token = verify::verify_token(&at.field("verify"), raw_token, preset.as_ref())?;
    let ack = raw.ack.map_or(Route::DEFAULT_ACK, Parsed::into_inner);
    let dedup = dedup::dedup(&at.field("dedup"), raw.dedup, &verify)?;
    let events = events::events(&at.field("events"), raw.events, preset.as_ref())?;
    let destinations =
        destinations::destinations(at, raw.upstream, raw.destinations, ack, &verify)?;
    Ok(Route {
        name: raw.name.0 .0,
        path: raw.path.0 .0,
        verify,
        verify_token,
        ack,
        ack_status: raw.ack_status.map_or(Route::DEFAULT_ACK_STATUS, |s| s.0),
        max_pending: raw
            .max_pending
            .map_or(Route::DEFAULT_MAX_PENDING, Positive::get),
        dedup,
        events,
        allow_ips: raw.allow_ips.map_or_else(Vec::new, |list| {
            list.0.into_iter().map(Parsed::into_inner).collect()
        }),
        rate_limit: raw.rate_limit.map(rate_limit),
        destinations,
    })
}

/// `burst` defaults to `per_second`.
pub(super) fn rate_limit(raw: RawRateLimit) -> RateLimit {
    let per_second = raw.per_second.get();
    RateLimit {
        per_second,
        burst: raw.burst.map_or(per_second, Positive::get),
    }
}
