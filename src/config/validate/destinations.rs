//! `destinations:` (or the one `upstream:`): names, kinds by URL scheme,
//! each kind's own block, `retry.on`, ordering keys.

use std::collections::HashSet;

use super::super::leaf::{Leaf, Parsed, Positive, UpstreamUrl};
use super::super::raw::{RawDestination, RawStatusMatch, RawUpstream};
use super::super::{AckMode, ConfigError, Destination, DestinationKind, RetryOn, Upstream};
use super::upstream::{header_list, retry, upstream};
use super::At;
use crate::spool::UPSTREAM;
use crate::verify::{Trust, VerifySpec};

/// The route's destinations: `upstream:` as one HTTP destination named
/// `upstream`, or the `destinations:` list.
pub fn destinations(
    at: &At,
    upstream_block: Option<RawUpstream>,
    list: Option<Vec<RawDestination>>,
    ack: AckMode,
    verify: &VerifySpec,
) -> Result<Vec<Destination>, ConfigError> {
    let destinations = match (upstream_block, list) {
        (Some(_), Some(_)) => {
            return Err(at.field("destinations").error(
                "a route has `upstream:` or `destinations:`, not both (`upstream:` is the destination named `upstream`)",
            ))
        }
        (None, None) => {
            return Err(at.error(
                "every route needs `upstream:` (one HTTP service) or `destinations:` (a list)",
            ))
        }
        (Some(raw), None) => {
            let upstream = upstream(&at.field("upstream"), raw)?;
            vec![Destination {
                name: UPSTREAM.to_string(),
                timeout: upstream.timeout,
                concurrency: upstream.concurrency,
                retry: upstream.retry,
                retry_on: RetryOn::AnyFailure,
                rate_limit: None,
                ordering: None,
                kind: DestinationKind::Http(Box::new(upstream)),
            }]
        }
        (None, Some(list)) => {
            let at = at.field("destinations");
            if list.is_empty() {
                return Err(at.error("list at least one destination"));
            }
            let mut names = HashSet::new();
            let mut out = Vec::with_capacity(list.len());
            for (i, raw) in list.into_iter().enumerate() {
                let at = at.index(i);
                let destination = destination(&at, raw, verify)?;
                if !names.insert(destination.name.clone()) {
                    return Err(at.field("name").error(format!(
                        "destination name {:?} is used by an earlier destination of this route",
                        destination.name
                    )));
                }
                out.push(destination);
            }
            out
        }
    };
    check_ack(at, &destinations, ack)?;
    Ok(destinations)
}

/// A sync route relays its first destination's answer: that one is HTTP.
/// Relayed headers only make sense there.
fn check_ack(at: &At, destinations: &[Destination], ack: AckMode) -> Result<(), ConfigError> {
    for (i, d) in destinations.iter().enumerate() {
        let relays = matches!(&d.kind, DestinationKind::Http(u) if !u.relay_headers.is_empty());
        if relays && (ack == AckMode::Async || i > 0) {
            return Err(at.field("upstream.relay_headers").error(
                "applies only to `ack: sync` routes (their first destination): an async delivery answers nobody",
            ));
        }
    }
    if ack == AckMode::Sync && !matches!(destinations[0].kind, DestinationKind::Http(_)) {
        return Err(at.field("destinations[0]").error(
            "an `ack: sync` route relays its first destination's answer to the sender, so the first must be an http:// service",
        ));
    }
    Ok(())
}

fn destination(
    at: &At,
    raw: RawDestination,
    verify: &VerifySpec,
) -> Result<Destination, ConfigError> {
    let kind = kind(at, &raw)?;
    let http = matches!(kind, Kind::Http(_));
    if !http && (!raw.headers.0.is_empty() || raw.forward_headers.is_some()) {
        // Queue messages carry the forwarded headers; extra ones would be
        // credentials sent to a broker.
        return Err(at.field("headers").error(
            "`headers` and `forward_headers` apply to http:// destinations; a queue message carries the sender's forwarded headers",
        ));
    }
    let d = Upstream::DEFAULT_TIMEOUT;
    let timeout = raw.timeout.map_or(d, Parsed::into_inner);
    let concurrency = raw
        .concurrency
        .map_or(Upstream::DEFAULT_CONCURRENCY, Positive::get);
    let raw_retry = raw.retry.unwrap_or_default();
    let retry_on = retry_on(&at.field("retry.on"), raw_retry.on.as_deref())?;
    let retry = retry(&at.field("retry"), raw_retry)?;
    let ordering = match raw.ordering {
        None => None,
        Some(ordering) => {
            let key = ordering.key.into_inner();
            // The order of delivery follows the key: only a sender's
            // signed values may steer it.
            if let Trust::Signed(coverage) = verify.trust() {
                key.check_signed(&verify.scheme, &coverage)
                    .map_err(|e| at.field("ordering.key").error(e))?;
            }
            Some(key)
        }
    };
    let kind = match kind {
        Kind::Http(url) => DestinationKind::Http(Box::new(Upstream {
            url,
            timeout,
            headers: raw.headers.0,
            forward_headers: raw.forward_headers.map(header_list),
            relay_headers: raw.relay_headers.map(header_list).unwrap_or_default(),
            concurrency,
            retry,
        })),
        Kind::Queue(kind) => kind,
    };
    Ok(Destination {
        name: raw.name.0 .0,
        kind,
        timeout,
        concurrency,
        retry,
        retry_on,
        rate_limit: raw.rate_limit.map(super::route::rate_limit),
        ordering,
    })
}

enum Kind {
    Http(http::Uri),
    Queue(DestinationKind),
}

/// The kind from the URL's scheme, with its block; a block of another
/// kind is an error, not ignored.
fn kind(at: &At, raw: &RawDestination) -> Result<Kind, ConfigError> {
    let url_at = at.field("url");
    let scheme = raw
        .url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let blocks = [
        ("nats", raw.nats.is_some()),
        ("amqp", raw.amqp.is_some()),
        ("redis", raw.redis.is_some()),
    ];
    let want = match scheme.as_deref() {
        Some("http" | "https") => None,
        Some("nats" | "tls") => Some("nats"),
        Some("amqp" | "amqps") => Some("amqp"),
        Some("redis" | "rediss") => Some("redis"),
        _ => {
            return Err(url_at.error(
                "must be an http://, nats://, amqp:// or redis:// URL (the scheme says what kind of destination it is)",
            ))
        }
    };
    for (block, present) in blocks {
        if present && want != Some(block) {
            return Err(at.field(block).error(format!(
                "`{block}:` applies to a {block}:// destination; this one's url is {}://",
                scheme.as_deref().unwrap_or("?")
            )));
        }
    }
    if url::Url::parse(&raw.url).is_err() {
        return Err(url_at.error("not a valid URL"));
    }
    let url = secrecy::SecretString::from(raw.url.clone());
    Ok(match want {
        None => Kind::Http(UpstreamUrl::parse(&raw.url).map_err(|e| url_at.error(e))?.0),
        Some("nats") => {
            let nats = raw
                .nats
                .as_ref()
                .ok_or_else(|| at.error("a nats:// destination needs `nats: { subject: ... }`"))?;
            if nats.subject.is_empty() || nats.subject.contains([' ', '*', '>']) {
                return Err(at
                    .field("nats.subject")
                    .error("a subject to publish on: no spaces or wildcards"));
            }
            Kind::Queue(DestinationKind::Nats {
                url,
                subject: nats.subject.clone(),
            })
        }
        Some("amqp") => {
            let amqp = raw.amqp.as_ref().ok_or_else(|| {
                at.error("an amqp:// destination needs `amqp: { exchange: ..., routing_key: ... }`")
            })?;
            Kind::Queue(DestinationKind::Amqp {
                url,
                exchange: amqp.exchange.clone(),
                routing_key: amqp.routing_key.clone(),
            })
        }
        _ => {
            let redis = raw
                .redis
                .as_ref()
                .ok_or_else(|| at.error("a redis:// destination needs `redis: { stream: ... }`"))?;
            if redis.stream.is_empty() {
                return Err(at.field("redis.stream").error("name the stream"));
            }
            Kind::Queue(DestinationKind::Redis {
                url,
                stream: redis.stream.clone(),
                maxlen: redis.maxlen.map(Positive::get),
            })
        }
    })
}

/// `[5xx, 429, 408]`: status classes and single statuses, any but 2xx.
fn retry_on(at: &At, list: Option<&[RawStatusMatch]>) -> Result<RetryOn, ConfigError> {
    let Some(list) = list else {
        return Ok(RetryOn::AnyFailure);
    };
    if list.is_empty() {
        return Err(at.error(
            "list the answers to retry (like [5xx, 429]); leave `on` out to retry any non-2xx",
        ));
    }
    let (mut classes, mut statuses) = (Vec::new(), Vec::new());
    for (i, entry) in list.iter().enumerate() {
        let text = entry.text().trim().to_ascii_lowercase();
        let bad = || {
            at.index(i)
                .error("a status class like `5xx` or a status like `429` (100-599, not 2xx)")
        };
        if let Some(class) = text.strip_suffix("xx") {
            let class: u16 = class.parse().map_err(|_| bad())?;
            if !(1..=5).contains(&class) || class == 2 {
                return Err(bad());
            }
            classes.push(class);
        } else {
            let status: u16 = text.parse().map_err(|_| bad())?;
            if !(100..=599).contains(&status) || status / 100 == 2 {
                return Err(bad());
            }
            statuses.push(status);
        }
    }
    Ok(RetryOn::Only { classes, statuses })
}
