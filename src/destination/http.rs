//! An HTTP service: the event is POSTed to `url` (with the sender's query
//! string appended) through the process's one pooled client, with the
//! route's upstream headers added at send time (they may be credentials,
//! so they are never stored with the event).

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderValue};

use super::{
    Answer, DeliverError, DeliverFuture, Destination, Message, ATTEMPT, DELIVERY_ID, EVENT_TYPE,
};
use crate::config::Upstream;
use crate::forward::{delivery_headers, ForwardError, Outgoing, UpstreamClient};

/// Longest pause a `Retry-After` may ask for; the retry policy caps it
/// further with `retry.max_backoff`.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

pub struct HttpDestination {
    upstream: Upstream,
    client: UpstreamClient,
    target: String,
}

impl HttpDestination {
    pub fn new(upstream: Upstream, client: UpstreamClient) -> HttpDestination {
        let target = super::redacted(&upstream.url.to_string());
        HttpDestination {
            upstream,
            client,
            target,
        }
    }

    fn headers(&self, message: &Message) -> HeaderMap {
        let label = HeaderValue::from_str(&message.route).unwrap_or(HeaderValue::from_static(""));
        let mut headers = delivery_headers(
            message.headers.clone(),
            self.upstream.forward_headers.as_deref(),
            &label,
            &self.upstream.headers,
        );
        if let Ok(id) = HeaderValue::from_str(&message.delivery_id) {
            headers.insert(DELIVERY_ID, id);
        }
        headers.insert(ATTEMPT, HeaderValue::from(message.attempt));
        if let Some(value) = message
            .event_type
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(EVENT_TYPE, value);
        }
        headers
    }
}

impl Destination for HttpDestination {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliverFuture<'a> {
        Box::pin(async move {
            let sent = self
                .client
                .deliver_answer(Outgoing {
                    upstream: &self.upstream,
                    query: message.query.as_deref(),
                    headers: self.headers(message),
                    body: message.body.clone(),
                })
                .await;
            match sent {
                Ok((status, headers)) => Ok(Answer::Status {
                    status,
                    retry_after: retry_after(&headers, SystemTime::now()),
                }),
                Err(ForwardError::Timeout(after)) => Err(DeliverError::Timeout {
                    target: self.target.clone(),
                    after,
                }),
                Err(error) => Err(DeliverError::Failed {
                    target: self.target.clone(),
                    message: error.to_string(),
                }),
            }
        })
    }
}

/// `Retry-After` as a pause from `now`: delay-seconds or an HTTP date in
/// the future, capped; absent, malformed or past means none.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let pause = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .ok()?,
    };
    (!pause.is_zero()).then_some(pause.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_takes_seconds_and_future_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&with("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&with(" 7 "), now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&with(&later), now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&with(&earlier), now), None);
        assert_eq!(retry_after(&with("0"), now), None);
        assert_eq!(retry_after(&with("soon"), now), None);
        assert_eq!(retry_after(&with("-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(
            retry_after(&with("99999999999"), now),
            Some(RETRY_AFTER_CAP)
        );
    }
}
