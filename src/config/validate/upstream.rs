//! `upstream:`: defaults, and retry bounds in order.

use http::HeaderName;

use super::super::leaf::{ListedHeader, Parsed, Positive};
use super::super::raw::{RawRetry, RawUpstream};
use super::super::{ConfigError, RetryConfig, Upstream};
use super::At;

pub fn upstream(at: &At, raw: RawUpstream) -> Result<Upstream, ConfigError> {
    Ok(Upstream {
        url: raw.url.0 .0,
        timeout: raw
            .timeout
            .map_or(Upstream::DEFAULT_TIMEOUT, Parsed::into_inner),
        headers: raw.headers.0,
        forward_headers: raw.forward_headers.map(header_list),
        relay_headers: raw.relay_headers.map(header_list).unwrap_or_default(),
        concurrency: raw
            .concurrency
            .map_or(Upstream::DEFAULT_CONCURRENCY, Positive::get),
        retry: retry(&at.field("retry"), raw.retry.unwrap_or_default())?,
    })
}

/// `max_backoff` must not be shorter than `initial_backoff`.
pub(super) fn retry(at: &At, raw: RawRetry) -> Result<RetryConfig, ConfigError> {
    let d = RetryConfig::default();
    let retry = RetryConfig {
        max_attempts: raw.max_attempts.map_or(d.max_attempts, |n| n.0),
        initial_backoff: raw
            .initial_backoff
            .map_or(d.initial_backoff, Parsed::into_inner),
        max_backoff: raw.max_backoff.map_or(d.max_backoff, Parsed::into_inner),
        max_age: raw.max_age.map_or(d.max_age, Parsed::into_inner),
    };
    if retry.max_backoff < retry.initial_backoff {
        return Err(at
            .field("max_backoff")
            .error("must not be shorter than `initial_backoff`"));
    }
    Ok(retry)
}

/// Header names in the order written, each once.
pub(super) fn header_list(names: Vec<Parsed<ListedHeader>>) -> Vec<HeaderName> {
    let mut list: Vec<HeaderName> = Vec::with_capacity(names.len());
    for Parsed(ListedHeader(name)) in names {
        if !list.contains(&name) {
            list.push(name);
        }
    }
    list
}
