//! Destinations: where a verified event is delivered. One trait,
//! [`Destination`], with one implementation per kind:
//! - [`http`]: an HTTP service (the route's `upstream`), POSTed to;
//! - [`nats`]: a NATS JetStream subject, acknowledged by the stream;
//! - [`amqp`]: an AMQP 0-9-1 exchange (RabbitMQ), persistent, confirmed;
//! - [`redis_stream`]: a Redis stream, `XADD` with approximate trimming.
//!
//! # What every destination keeps
//!
//! `tests/destination_conformance.rs` checks these against each kind, on a
//! real broker or server.
//! - **Delivered means taken.** [`Destination::deliver`] answers
//!   [`Answer::Accepted`] only once the far side holds the message (a
//!   JetStream ack, a publisher confirm, the `XADD` reply), or
//!   [`Answer::Status`] with the HTTP service's status. Anything else is a
//!   [`DeliverError`], and the delivery is retried.
//! - **The message is the event.** The body is the sender's bytes, exactly.
//!   The forwarded request headers travel with it (HTTP headers, NATS
//!   headers, AMQP headers; in a Redis stream a `headers` field holding a
//!   JSON object), plus `hookgate-delivery-id` (the event's id, the same for
//!   every destination), `hookgate-route`, `hookgate-attempt` and, when
//!   known, `hookgate-event-type`.
//! - **A republish is harmless where the far side allows it.** JetStream
//!   publishes carry `Nats-Msg-Id: <delivery id>`, so the stream drops a
//!   republish after a crash; the Redis stream skips an id it has already
//!   appended (within [`redis_stream::REMEMBER_IDS_FOR`]); AMQP carries the
//!   id as `message_id` for the consumer to deduplicate (RabbitMQ itself
//!   cannot).
//! - **Bounded.** Every call ends within the destination's `timeout`; a
//!   broker that is down is an error, never a hang, and the next call
//!   reconnects.
//! - **No secret leaves through errors.** Error messages name the
//!   destination's address without credentials.
//!
//! Adding a kind (Kafka, SQS, Pub/Sub): a file here implementing
//! [`Destination`], a variant of [`Target`] with its config keys, and a run
//! of the conformance suite against the real service.

pub mod amqp;
pub mod http;
pub mod nats;
pub mod redis_stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, StatusCode};
use bytes::Bytes;

/// `hookgate-delivery-id`: the event's id, the idempotency key.
pub const DELIVERY_ID: HeaderName = HeaderName::from_static("hookgate-delivery-id");
/// `hookgate-attempt`: 1 for the first attempt.
pub const ATTEMPT: HeaderName = HeaderName::from_static("hookgate-attempt");
/// `hookgate-route`: the route that accepted the event.
pub const ROUTE: HeaderName = HeaderName::from_static("hookgate-route");
/// `hookgate-event-type`: the sender's event type, when the route knows it.
pub const EVENT_TYPE: HeaderName = HeaderName::from_static("hookgate-event-type");

/// One attempt to deliver one event.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event's id; the same for every destination of the event.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub route: String,
    pub event_type: Option<String>,
    /// The forwarded request headers (sender credentials already removed).
    pub headers: HeaderMap,
    /// The sender's query string (HTTP destinations append it to their URL).
    pub query: Option<String>,
    pub body: Bytes,
}

impl Message {
    /// The message's headers with hookgate's own values set (any the
    /// sender sent under these names were removed at the ingress).
    pub fn headers_with_hookgate_values(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(value) = ::http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(DELIVERY_ID, &self.delivery_id);
        set(ATTEMPT, &self.attempt.to_string());
        set(ROUTE, &self.route);
        if let Some(event_type) = &self.event_type {
            set(EVENT_TYPE, event_type);
        }
        headers
    }

    /// Header names and values as text, in order, for queue messages.
    /// Values that are not text (rare; HTTP allows opaque bytes) are kept
    /// with invalid bytes replaced, so the list stays usable.
    pub fn text_headers(&self) -> Vec<(String, String)> {
        self.headers_with_hookgate_values()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect()
    }
}

/// The far side's answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP service answered; its status decides, and `Retry-After`
    /// (seconds or an HTTP date, in the future) asks for a pause.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// A broker holds the message.
    Accepted,
}

impl Answer {
    /// Whether the event counts as delivered.
    pub fn is_delivered(&self) -> bool {
        match self {
            Answer::Status { status, .. } => status.is_success(),
            Answer::Accepted => true,
        }
    }
}

/// Why a delivery produced no answer: retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{target}: no answer within {after:?}")]
    Timeout { target: String, after: Duration },
    /// The far side could not be reached or refused the message.
    #[error("{target}: {message}")]
    Failed { target: String, message: String },
}

/// One call to a [`Destination`], in progress.
pub type DeliverFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Answer, DeliverError>> + Send + 'a>>;

/// Somewhere events are delivered. See the module docs for what every
/// implementation keeps.
pub trait Destination: Send + Sync + 'static {
    /// `http`, `nats`, `amqp` or `redis`: the kind, for logs and `check`.
    fn kind(&self) -> &'static str;
    /// The address without credentials, for logs and errors.
    fn target(&self) -> &str;
    /// Delivers one attempt of one event.
    fn deliver<'a>(&'a self, message: &'a Message) -> DeliverFuture<'a>;
}

/// A destination as the delivery workers hold it.
pub type SharedDestination = Arc<dyn Destination>;

/// The destination `kind` describes, ready to deliver (brokers connect
/// lazily or in the background: start-up never waits for one).
pub async fn build(
    kind: &crate::config::DestinationKind,
    timeout: Duration,
    client: &crate::forward::UpstreamClient,
) -> Result<SharedDestination, DeliverError> {
    use crate::config::DestinationKind as Kind;
    use secrecy::ExposeSecret;
    Ok(match kind {
        Kind::Http(upstream) => Arc::new(http::HttpDestination::new(
            upstream.as_ref().clone(),
            client.clone(),
        )),
        Kind::Nats { url, subject } => {
            Arc::new(nats::NatsDestination::new(url.expose_secret(), subject, timeout).await?)
        }
        Kind::Amqp {
            url,
            exchange,
            routing_key,
        } => Arc::new(amqp::AmqpDestination::new(
            url.expose_secret(),
            exchange,
            routing_key,
            timeout,
        )),
        Kind::Redis {
            url,
            stream,
            maxlen,
        } => Arc::new(redis_stream::RedisStreamDestination::new(
            url.expose_secret(),
            stream,
            maxlen.unwrap_or(0),
            timeout,
        )?),
    })
}

/// Runs `work` within `timeout`, naming `target` if it runs out.
pub(crate) async fn bounded<T>(
    target: &str,
    timeout: Duration,
    work: impl Future<Output = Result<T, DeliverError>>,
) -> Result<T, DeliverError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(DeliverError::Timeout {
                target: target.to_string(),
                after: timeout,
            })
        })
}

/// `scheme://host:port/path` of a URL, without user, password or query:
/// safe to log.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an address that does not parse)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_credentials() {
        assert_eq!(
            redacted("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redacted("redis://:pw@cache:6379/0?password=x"),
            "redis://cache:6379/0"
        );
        assert_eq!(redacted("nats://tok@10.0.0.1:4222"), "nats://10.0.0.1:4222");
        assert!(!redacted("::not a url s3cret").contains("s3cret"));
    }

    #[test]
    fn hookgate_values_replace_what_the_message_carried() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert(DELIVERY_ID, "forged".parse().unwrap());
        let message = Message {
            delivery_id: "0193-abc".into(),
            attempt: 2,
            route: "stripe".into(),
            event_type: Some("invoice.paid".into()),
            headers,
            query: None,
            body: Bytes::from_static(b"{}"),
        };
        let out = message.headers_with_hookgate_values();
        assert_eq!(out[DELIVERY_ID], "0193-abc");
        assert_eq!(out.get_all(DELIVERY_ID).iter().count(), 1);
        assert_eq!(out[ATTEMPT], "2");
        assert_eq!(out[ROUTE], "stripe");
        assert_eq!(out[EVENT_TYPE], "invoice.paid");
        assert_eq!(out["content-type"], "application/json");
        let without_type = Message {
            event_type: None,
            ..message
        };
        assert!(!without_type
            .headers_with_hookgate_values()
            .contains_key(EVENT_TYPE));
    }

    #[test]
    fn only_2xx_and_broker_acks_count_as_delivered() {
        let status = |code| Answer::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
        };
        assert!(status(200).is_delivered());
        assert!(status(204).is_delivered());
        assert!(!status(302).is_delivered());
        assert!(!status(429).is_delivered());
        assert!(!status(500).is_delivered());
        assert!(Answer::Accepted.is_delivered());
    }
}
