//! `events:`: a filter needs to know where the event type is.

use super::super::leaf::{Parsed, Pattern};
use super::super::raw::RawEvents;
use super::super::ConfigError;
use super::At;
use crate::events::{EventPolicy, EventSource};
use crate::presets::Preset;

/// The preset's policy, with what the route writes on top.
pub fn events(
    at: &At,
    raw: Option<RawEvents>,
    preset: Option<&Preset>,
) -> Result<EventPolicy, ConfigError> {
    let mut policy = EventPolicy::default();
    if let Some(p) = preset {
        policy.from = p
            .events_from
            .map(|f| EventSource::parse(f).expect("preset event sources are valid"));
        policy.ack_only = p.ack_only.iter().map(|s| s.to_string()).collect();
        policy.handshake = p.handshake;
    }
    let Some(raw) = raw else {
        return Ok(policy);
    };
    if let Some(from) = raw.from {
        policy.from = Some(from.0);
    }
    if let Some(allow) = raw.allow {
        policy.allow = patterns(allow.0);
    }
    if let Some(ack_only) = raw.ack_only {
        policy.ack_only = patterns(ack_only);
    }
    if policy.filters() && policy.from.is_none() {
        return Err(at.field("from").error(
            "required: this route's scheme does not say where the event type is (e.g. `header:X-Event` or `json:/type`)",
        ));
    }
    Ok(policy)
}

fn patterns(list: Vec<Parsed<Pattern>>) -> Vec<String> {
    list.into_iter().map(|Parsed(Pattern(p))| p).collect()
}
