//! The real brokers of the queue destinations, as a test reads them: a
//! JetStream stream, a RabbitMQ exchange with a bound queue, a Redis
//! stream, each named uniquely per test and removed by `remove`.
//! `HOOKGATE_TEST_{NATS,AMQP,REDIS}_URL` point the tests elsewhere.

use std::collections::HashMap;

/// One message as a broker holds it.
#[derive(Debug, Clone)]
pub struct Held {
    pub body: Vec<u8>,
    /// Lower-case names; repeated values joined with `, `.
    pub headers: HashMap<String, String>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", fastrand::u64(..))
}

pub fn nats_url() -> String {
    env_or("HOOKGATE_TEST_NATS_URL", "nats://127.0.0.1:4222")
}

pub fn amqp_url() -> String {
    env_or(
        "HOOKGATE_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    )
}

pub fn redis_url() -> String {
    env_or("HOOKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
}

/// A JetStream stream on one subject of its own.
pub struct NatsStream {
    pub subject: String,
    name: String,
    jetstream: async_nats::jetstream::Context,
}

impl NatsStream {
    pub async fn create() -> NatsStream {
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS with JetStream must run (see .ci/run)");
        let jetstream = async_nats::jetstream::new(client);
        let name = unique("HOOKGATE_FANOUT_");
        let subject = format!("hookgate.fanout.{}", name.to_lowercase());
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                storage: async_nats::jetstream::stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .unwrap();
        NatsStream {
            subject,
            name,
            jetstream,
        }
    }

    pub async fn messages(&self) -> Vec<Held> {
        let mut stream = self.jetstream.get_stream(&self.name).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut held = Vec::new();
        for seq in 1..=last {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            let headers = m
                .headers
                .iter()
                .map(|(k, values)| {
                    let joined: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
                    (k.to_string().to_lowercase(), joined.join(", "))
                })
                .collect();
            held.push(Held {
                body: m.payload.to_vec(),
                headers,
            });
        }
        held
    }

    pub async fn remove(self) {
        self.jetstream.delete_stream(&self.name).await.unwrap();
    }
}

/// A direct exchange with one queue bound by `routing_key`.
pub struct AmqpQueue {
    pub exchange: String,
    pub routing_key: String,
    queue: String,
    channel: lapin::Channel,
    seen: tokio::sync::Mutex<Vec<Held>>,
}

impl AmqpQueue {
    pub async fn create() -> AmqpQueue {
        use lapin::options::*;
        use lapin::types::FieldTable;
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("RabbitMQ must run (see .ci/run)");
        let channel = connection.create_channel().await.unwrap();
        let exchange = unique("hookgate-fanout-");
        let queue = unique("hookgate-fanout-q-");
        let routing_key = "stripe".to_string();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        AmqpQueue {
            exchange,
            routing_key,
            queue,
            channel,
            seen: tokio::sync::Mutex::default(),
        }
    }

    /// Everything the queue held so far (taken messages are kept here).
    pub async fn messages(&self) -> Vec<Held> {
        use lapin::options::BasicGetOptions;
        use lapin::types::AMQPValue;
        let mut seen = self.seen.lock().await;
        while let Some(m) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let mut headers = HashMap::new();
            if let Some(table) = m.delivery.properties.headers() {
                for (k, v) in table.inner() {
                    if let AMQPValue::LongString(s) = v {
                        headers.insert(
                            k.to_string().to_lowercase(),
                            String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        );
                    }
                }
            }
            seen.push(Held {
                body: m.delivery.data.clone(),
                headers,
            });
        }
        seen.clone()
    }

    pub async fn remove(self) {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        self.channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .unwrap();
    }
}

/// A Redis stream key of its own.
pub struct RedisStream {
    pub key: String,
    conn: redis::aio::MultiplexedConnection,
}

/// A stream entry: its id and its fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

impl RedisStream {
    pub async fn create() -> RedisStream {
        let client = redis::Client::open(redis_url()).unwrap();
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must run (see .ci/run)");
        RedisStream {
            key: unique("hookgate-fanout:stream:"),
            conn,
        }
    }

    /// Entries as messages: the `body` field, and the `headers` JSON
    /// object with the `hookgate-*` fields beside it.
    pub async fn messages(&self) -> Vec<Held> {
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| {
                let fields: HashMap<String, Vec<u8>> = fields.into_iter().collect();
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&fields["headers"]).unwrap();
                let mut headers: HashMap<String, String> = object
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                    .collect();
                for (name, value) in &fields {
                    if name.starts_with("hookgate-") {
                        headers.insert(name.clone(), String::from_utf8_lossy(value).into_owned());
                    }
                }
                Held {
                    body: fields["body"].clone(),
                    headers,
                }
            })
            .collect()
    }

    /// Deletes the stream and the delivery-id markers kept beside it.
    pub async fn remove(self) {
        let mut conn = self.conn.clone();
        let markers: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:hookgate-ids:*", self.key))
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .arg(&markers)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
