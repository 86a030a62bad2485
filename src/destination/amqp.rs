//! An AMQP 0-9-1 exchange (RabbitMQ). Each delivery is a persistent
//! message (`delivery_mode` 2) published with `mandatory` set on a channel
//! in confirm mode: it is delivered once the broker confirms it, and a
//! message no queue takes (returned as unroutable) or a negative confirm
//! is a failure, retried. The exchange must exist. The delivery id is the
//! message's `message_id` (RabbitMQ cannot deduplicate; a consumer can).
//!
//! One connection and channel per destination, made on first use and
//! remade after any failure, so a restarted broker is picked up by the
//! next attempt.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::{bounded, Answer, DeliverError, DeliverFuture, Destination, Message};

/// Persistent, in AMQP's `delivery_mode`.
const PERSISTENT: u8 = 2;

pub struct AmqpDestination {
    url: secrecy::SecretString,
    exchange: String,
    routing_key: String,
    timeout: Duration,
    target: String,
    /// The open connection (kept so it is not closed) and its channel.
    open: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpDestination {
    /// `url` is `amqp://user:password@host:port/vhost` (or `amqps://`);
    /// nothing is connected until the first delivery.
    pub fn new(url: &str, exchange: &str, routing_key: &str, timeout: Duration) -> AmqpDestination {
        AmqpDestination {
            target: format!(
                "{} exchange {exchange:?} routing key {routing_key:?}",
                super::redacted(url)
            ),
            url: url.to_string().into(),
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            timeout,
            open: Mutex::new(None),
        }
    }

    fn failed(&self, what: &str, error: impl std::fmt::Display) -> DeliverError {
        DeliverError::Failed {
            target: self.target.clone(),
            message: format!("{what}: {error}"),
        }
    }

    /// The open channel, connecting first if there is none or it broke.
    async fn channel(&self) -> Result<Channel, DeliverError> {
        use secrecy::ExposeSecret;
        let mut open = self.open.lock().await;
        if let Some((connection, channel)) = open.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *open = None;
        let connection =
            Connection::connect(self.url.expose_secret(), ConnectionProperties::default())
                .await
                .map_err(|e| self.failed("cannot connect", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.failed("cannot open a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.failed("cannot enable publisher confirms", e))?;
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection after a failure, so the next attempt makes a
    /// new one.
    async fn forget(&self) {
        *self.open.lock().await = None;
    }

    async fn publish(&self, message: &Message) -> Result<Answer, DeliverError> {
        let channel = self.channel().await?;
        let mut headers = FieldTable::default();
        for (name, value) in message.text_headers() {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(message.delivery_id.clone()))
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = channel
            .basic_publish(
                ShortString::from(self.exchange.clone()),
                ShortString::from(self.routing_key.clone()),
                options,
                &message.body,
                properties,
            )
            .await
            .map_err(|e| self.failed("publish", e))?
            .await
            .map_err(|e| self.failed("no confirmation", e))?;
        if confirm.is_nack() {
            return Err(self.failed("publish", "the broker refused the message (nack)"));
        }
        if let Some(returned) = confirm.take_message() {
            return Err(self.failed(
                "publish",
                format!("no queue took the message ({})", returned.reply_text),
            ));
        }
        Ok(Answer::Accepted)
    }
}

impl Destination for AmqpDestination {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliverFuture<'a> {
        Box::pin(async move {
            let sent = bounded(&self.target, self.timeout, self.publish(message)).await;
            if sent.is_err() {
                self.forget().await;
            }
            sent
        })
    }
}
