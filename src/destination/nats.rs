//! A NATS JetStream subject. Each delivery is a JetStream publish,
//! delivered once the stream acknowledges it (the stream must exist and
//! take the subject: hookgate does not create streams, whose retention and
//! replicas are the operator's choice). `Nats-Msg-Id` is the delivery id,
//! so a republish after a crash is dropped by the stream within its
//! duplicate window.
//!
//! The client connects in the background and reconnects by itself; a
//! publish while NATS is unreachable fails within the timeout and is
//! retried like any failed delivery.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap as NatsHeaders;

use super::{bounded, Answer, DeliverError, DeliverFuture, Destination, Message};

pub struct NatsDestination {
    jetstream: jetstream::Context,
    subject: String,
    timeout: Duration,
    target: String,
}

impl NatsDestination {
    /// Prepares the connection to `url` (`nats://[user:password@]host:port`);
    /// it is made in the background, so start-up does not wait for NATS.
    pub async fn new(
        url: &str,
        subject: &str,
        timeout: Duration,
    ) -> Result<NatsDestination, DeliverError> {
        let target = format!("{} subject {subject}", super::redacted(url));
        let client = async_nats::ConnectOptions::new()
            .name("hookgate")
            .retry_on_initial_connect()
            .connection_timeout(timeout)
            .connect(url)
            .await
            .map_err(|e| DeliverError::Failed {
                target: target.clone(),
                message: format!("cannot connect: {}", e.kind()),
            })?;
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(timeout);
        Ok(NatsDestination {
            jetstream,
            subject: subject.to_string(),
            timeout,
            target,
        })
    }

    fn failed(&self, what: &str, error: impl std::fmt::Display) -> DeliverError {
        DeliverError::Failed {
            target: self.target.clone(),
            message: format!("{what}: {error}"),
        }
    }
}

impl Destination for NatsDestination {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliverFuture<'a> {
        Box::pin(bounded(&self.target, self.timeout, async move {
            let mut headers = NatsHeaders::new();
            for (name, value) in message.text_headers() {
                headers.append(name, value);
            }
            headers.insert("Nats-Msg-Id", message.delivery_id.as_str());
            let ack = self
                .jetstream
                .publish_with_headers(self.subject.clone(), headers, message.body.clone())
                .await
                .map_err(|e| self.failed("publish", e))?;
            ack.await
                .map_err(|e| self.failed("no acknowledgement", e))?;
            Ok(Answer::Accepted)
        }))
    }
}
