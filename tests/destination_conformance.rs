//! One conformance suite for every destination kind (see
//! `src/destination/mod.rs`), each against the real thing: an HTTP server
//! on a socket, NATS JetStream (127.0.0.1:4222), RabbitMQ (127.0.0.1:5672)
//! and Redis (127.0.0.1:6379); `HOOKGATE_TEST_NATS_URL`,
//! `HOOKGATE_TEST_AMQP_URL` and `HOOKGATE_TEST_REDIS_URL` point elsewhere.
//! Each test makes its own stream, exchange and queue, or key, and removes
//! it. The destination talks to the broker through a TCP proxy the test can
//! cut, as when the broker goes away.
//!
//! For every kind:
//! - N messages arrive, each once, body and headers exact, with
//!   `hookgate-delivery-id`, `hookgate-route`, `hookgate-attempt` and
//!   `hookgate-event-type`;
//! - a republish of a delivery (a crash before it was recorded) is dropped
//!   where the kind can (NATS `Nats-Msg-Id`, the Redis id marker) and
//!   carries the same id where it cannot (AMQP `message_id`);
//! - with the broker unreachable a delivery fails within the timeout (no
//!   hang, no false success); once it is back the next attempt succeeds
//!   and nothing is lost.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookgate::destination::amqp::AmqpDestination;
use hookgate::destination::http::HttpDestination;
use hookgate::destination::nats::NatsDestination;
use hookgate::destination::redis_stream::RedisStreamDestination;
use hookgate::destination::{Answer, Destination, Message, SharedDestination};
use http::HeaderMap;
use support::proxy::Proxy;

const N: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(2);

/// Reading everything the far side holds so far.
type ReadFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Got>> + Send>>;
/// A Redis stream entry: its id and its fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// One message as the far side got it.
#[derive(Debug, Clone)]
struct Got {
    body: Vec<u8>,
    headers: HashMap<String, String>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", fastrand::u64(..))
}

fn message(n: usize) -> Message {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-sender-note", format!("note {n}").parse().unwrap());
    // Bytes that are not UTF-8: the body must arrive exactly.
    let mut body = format!("{{\"n\":{n},\"bin\":\"").into_bytes();
    body.extend_from_slice(&[0xff, 0x00, 0xfe]);
    body.extend_from_slice(b"\"}");
    Message {
        delivery_id: format!("0193{n:04}-{:08x}", fastrand::u32(..)),
        attempt: 1,
        route: "stripe".into(),
        event_type: Some(format!("invoice.paid.{n}")),
        headers,
        query: None,
        body: Bytes::from(body),
    }
}

/// A destination of one kind behind a proxy, and a way to read what it
/// received.
struct Harness {
    destination: SharedDestination,
    proxy: Proxy,
    /// Whether a republish of the same delivery id is dropped by the far side.
    drops_republish: bool,
    read: Box<dyn Fn() -> ReadFuture>,
}

async fn conformance(harness: Harness, kind: &str) {
    let d = &harness.destination;
    assert_eq!(d.kind(), kind);
    let sent: Vec<Message> = (0..N).map(message).collect();
    for m in &sent {
        let answer = d.deliver(m).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(answer.is_delivered(), "{kind}: {answer:?}");
    }
    let got = (harness.read)().await;
    assert_eq!(got.len(), N, "{kind}: each message once");
    for m in &sent {
        let matching: Vec<&Got> = got
            .iter()
            .filter(|g| g.headers.get("hookgate-delivery-id") == Some(&m.delivery_id))
            .collect();
        assert_eq!(matching.len(), 1, "{kind}: {}", m.delivery_id);
        let g = matching[0];
        assert_eq!(g.body, m.body.to_vec(), "{kind}: body exact");
        let header = |name: &str| g.headers.get(name).map(String::as_str);
        assert_eq!(header("content-type"), Some("application/json"), "{kind}");
        assert_eq!(
            header("x-sender-note"),
            m.headers["x-sender-note"].to_str().ok(),
            "{kind}"
        );
        assert_eq!(header("hookgate-route"), Some("stripe"), "{kind}");
        assert_eq!(header("hookgate-attempt"), Some("1"), "{kind}");
        assert_eq!(
            header("hookgate-event-type"),
            m.event_type.as_deref(),
            "{kind}"
        );
    }

    // A republish after a crash: the same delivery id, the next attempt.
    let again = Message {
        attempt: 2,
        ..sent[0].clone()
    };
    assert!(d.deliver(&again).await.unwrap().is_delivered());
    let got = (harness.read)().await;
    let copies = got
        .iter()
        .filter(|g| g.headers.get("hookgate-delivery-id") == Some(&again.delivery_id))
        .count();
    if harness.drops_republish {
        assert_eq!(got.len(), N, "{kind}: the republish was dropped");
        assert_eq!(copies, 1, "{kind}");
    } else {
        assert_eq!(copies, 2, "{kind}: the republish carries the same id");
    }

    // The broker goes away: a delivery fails, within the timeout.
    harness.proxy.cut();
    let lost = message(100);
    let failed = tokio::time::timeout(TIMEOUT * 3, d.deliver(&lost)).await;
    match failed {
        Err(_) => panic!("{kind}: a delivery to an unreachable broker hung"),
        Ok(Ok(answer)) => panic!("{kind}: delivered to an unreachable broker: {answer:?}"),
        Ok(Err(error)) => {
            let text = error.to_string();
            assert!(!text.contains("guest:guest"), "{kind}: {text}");
        }
    }
    // It comes back: the retried delivery gets through, nothing is lost.
    harness.proxy.restore();
    let retry = Message {
        attempt: 2,
        ..lost.clone()
    };
    support::wait_until(
        &format!("{kind}: delivery after the broker is back"),
        Duration::from_secs(30),
        || {
            let d = d.clone();
            let retry = retry.clone();
            async move { matches!(d.deliver(&retry).await, Ok(a) if a.is_delivered()) }
        },
    )
    .await;
    let got = (harness.read)().await;
    assert!(
        got.iter()
            .any(|g| g.headers.get("hookgate-delivery-id") == Some(&lost.delivery_id)),
        "{kind}: the retried delivery arrived"
    );
}

fn socket(url: &str, default_port: u16) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap();
    let host = parsed.host_str().unwrap().to_string();
    let port = parsed.port().unwrap_or(default_port);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap()
}

/// `url` with its host and port replaced by the proxy's.
fn via(url: &str, proxy: &Proxy) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(proxy.addr.port())).unwrap();
    parsed.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_conforms() {
    let url = env_or("HOOKGATE_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let admin = async_nats::connect(url.as_str())
        .await
        .expect("NATS with JetStream must run (see .ci/run)");
    let jetstream = async_nats::jetstream::new(admin);
    let name = unique("HOOKGATE_TEST_");
    let subject = format!("hookgate.test.{}", name.to_lowercase());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let proxy = Proxy::start(socket(&url, 4222)).await;
    let destination = NatsDestination::new(&via(&url, &proxy), &subject, TIMEOUT)
        .await
        .unwrap();
    let reader = jetstream.clone();
    let stream_name = name.clone();
    let read = move || {
        let (jetstream, name) = (reader.clone(), stream_name.clone());
        Box::pin(async move {
            let mut stream = jetstream.get_stream(&name).await.unwrap();
            let last = stream.info().await.unwrap().state.last_sequence;
            let mut got = Vec::new();
            for seq in 1..=last {
                let Ok(m) = stream.get_raw_message(seq).await else {
                    continue;
                };
                let mut headers = HashMap::new();
                for (k, values) in m.headers.iter() {
                    let value = values
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    headers.insert(k.to_string().to_lowercase(), value);
                }
                assert_eq!(
                    headers.get("nats-msg-id"),
                    headers.get("hookgate-delivery-id"),
                    "Nats-Msg-Id is the delivery id"
                );
                got.push(Got {
                    body: m.payload.to_vec(),
                    headers,
                });
            }
            got
        }) as ReadFuture
    };
    conformance(
        Harness {
            destination: Arc::new(destination),
            proxy,
            drops_republish: true,
            read: Box::new(read),
        },
        "nats",
    )
    .await;
    jetstream.delete_stream(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_subject_no_stream_takes_is_a_failure() {
    let url = env_or("HOOKGATE_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let destination = NatsDestination::new(&url, &unique("hookgate.nostream."), TIMEOUT)
        .await
        .unwrap();
    let error = destination.deliver(&message(1)).await.unwrap_err();
    assert!(
        error.to_string().contains("subject hookgate.nostream."),
        "{error}"
    );
}

async fn amqp_channel(url: &str) -> lapin::Channel {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ must run (see .ci/run)");
    connection.create_channel().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_conforms() {
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable};
    let url = env_or(
        "HOOKGATE_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
    let channel = amqp_channel(&url).await;
    let exchange = unique("hookgate-test-");
    let queue = unique("hookgate-test-q-");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
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
            "stripe".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let proxy = Proxy::start(socket(&url, 5672)).await;
    let destination = AmqpDestination::new(&via(&url, &proxy), &exchange, "stripe", TIMEOUT);
    // Everything the queue held so far: consumed messages are kept here.
    let seen: Arc<tokio::sync::Mutex<Vec<Got>>> = Arc::default();
    let (reader, queue_name, store) = (channel.clone(), queue.clone(), seen.clone());
    let read = move || {
        let (channel, queue, seen) = (reader.clone(), queue_name.clone(), store.clone());
        Box::pin(async move {
            let mut seen = seen.lock().await;
            while let Some(m) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                let properties = &m.delivery.properties;
                assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
                let mut headers = HashMap::new();
                if let Some(table) = properties.headers() {
                    for (k, v) in table.inner() {
                        if let AMQPValue::LongString(s) = v {
                            headers.insert(
                                k.to_string(),
                                String::from_utf8_lossy(s.as_bytes()).into_owned(),
                            );
                        }
                    }
                }
                assert_eq!(
                    properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .as_ref(),
                    headers.get("hookgate-delivery-id"),
                    "message_id is the delivery id"
                );
                seen.push(Got {
                    body: m.delivery.data.clone(),
                    headers,
                });
            }
            seen.clone()
        }) as ReadFuture
    };
    conformance(
        Harness {
            destination: Arc::new(destination),
            proxy,
            drops_republish: false,
            read: Box::new(read),
        },
        "amqp",
    )
    .await;

    // A routing key no queue is bound to: the message would be lost, so
    // it is a failure (retried), not a delivery.
    let unroutable = AmqpDestination::new(&url, &exchange, "nobody-listens", TIMEOUT);
    let error = unroutable.deliver(&message(7)).await.unwrap_err();
    assert!(
        error.to_string().contains("no queue took the message"),
        "{error}"
    );
    // An exchange that does not exist: a failure too.
    let missing = AmqpDestination::new(&url, &unique("hookgate-missing-"), "stripe", TIMEOUT);
    assert!(missing.deliver(&message(8)).await.is_err());
    // ... and the destination recovers from the channel error it caused.
    assert_eq!(
        AmqpDestination::new(&url, &exchange, "stripe", TIMEOUT)
            .deliver(&message(9))
            .await
            .unwrap(),
        Answer::Accepted
    );

    let channel = amqp_channel(&url).await;
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stream_conforms() {
    let url = env_or("HOOKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0");
    let stream = unique("hookgate-test:stream:");
    let proxy = Proxy::start(socket(&url, 6379)).await;
    let destination =
        RedisStreamDestination::new(&via(&url, &proxy), &stream, 1000, TIMEOUT).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must run (see .ci/run)");
    let (reader, key) = (conn.clone(), stream.clone());
    let read = move || {
        let (mut conn, key) = (reader.clone(), key.clone());
        Box::pin(async move {
            let entries: Vec<Entry> = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
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
                        .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                        .collect();
                    for (name, value) in &fields {
                        if name.starts_with("hookgate-") {
                            headers.insert(name.clone(), String::from_utf8(value.clone()).unwrap());
                        }
                    }
                    Got {
                        body: fields["body"].clone(),
                        headers,
                    }
                })
                .collect()
        }) as ReadFuture
    };
    conformance(
        Harness {
            destination: Arc::new(destination),
            proxy,
            drops_republish: true,
            read: Box::new(read),
        },
        "redis",
    )
    .await;
    remove_stream(&mut conn, &stream).await;
}

/// Deletes a test's stream and the delivery-id markers kept beside it.
async fn remove_stream(conn: &mut redis::aio::MultiplexedConnection, stream: &str) {
    let markers: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{stream}:hookgate-ids:*"))
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(stream)
        .arg(&markers)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stream_is_trimmed_to_about_maxlen() {
    let url = env_or("HOOKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0");
    let stream = unique("hookgate-test:trim:");
    let destination = RedisStreamDestination::new(&url, &stream, 10, TIMEOUT).unwrap();
    for n in 0..300 {
        destination.deliver(&message(n)).await.unwrap();
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Approximate trimming removes whole nodes: at least maxlen stay, and
    // far fewer than were added.
    assert!((10..300).contains(&len), "{len}");
    remove_stream(&mut conn, &stream).await;
}

/// An HTTP destination posting to `url` with the defaults of `upstream:`.
fn http_destination(url: &str) -> HttpDestination {
    let config = hookgate::config::Upstream {
        url: url.parse().unwrap(),
        timeout: TIMEOUT,
        headers: HeaderMap::new(),
        forward_headers: None,
        relay_headers: Vec::new(),
        concurrency: 4,
        retry: Default::default(),
    };
    HttpDestination::new(config, hookgate::forward::UpstreamClient::new(65536))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_conforms() {
    let upstream = support::Upstream::start().await;
    let proxy = Proxy::start(socket(&upstream.url("/"), 80)).await;
    let destination = http_destination(&via(&upstream.url("/hook"), &proxy));
    let recorder = Arc::new(upstream);
    let seen = recorder.clone();
    let read = move || {
        let seen = seen.clone();
        Box::pin(async move {
            seen.received()
                .into_iter()
                .map(|r| Got {
                    body: r.body.to_vec(),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                })
                .collect()
        }) as ReadFuture
    };
    conformance(
        Harness {
            destination: Arc::new(destination),
            proxy,
            drops_republish: false,
            read: Box::new(read),
        },
        "http",
    )
    .await;
}

#[tokio::test]
async fn an_http_answer_with_retry_after_asks_for_a_pause() {
    let upstream = support::Upstream::with(Duration::ZERO, |_| {
        let mut r = support::json_response(http::StatusCode::TOO_MANY_REQUESTS, "{}");
        r.headers_mut().insert("retry-after", "30".parse().unwrap());
        r
    })
    .await;
    let destination = http_destination(&upstream.url("/hook"));
    let answer = destination.deliver(&message(1)).await.unwrap();
    assert_eq!(
        answer,
        Answer::Status {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(30)),
        }
    );
    assert!(!answer.is_delivered());
}
