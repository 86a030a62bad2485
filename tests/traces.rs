//! Traces end to end: a gateway exporting over OTLP/HTTP to a receiver on
//! a real socket (which decodes the protobuf it is sent), a real upstream
//! that records what it gets.
//! - async: the request's span and each delivery attempt's span share one
//!   trace id, the attempts are children of the request's span, and the
//!   upstream's `traceparent` names that trace and the attempt's span;
//! - a sender's `traceparent` is a link of the request's span, never its
//!   parent, and is not forwarded;
//! - sync: the upstream's `traceparent` names the request's span;
//! - no span attribute holds a secret or a header value.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;

const SECRET: &str = "trace-test-s3cret";
/// A sender's trace context: its trace must not become the request's.
const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Everything the receiver was sent, decoded; and what it saw on the wire.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Collector {
    /// Serves OTLP/HTTP `POST /v1/traces` on a free port; returns its base URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: http::Request<Incoming>| {
                            let this = this.clone();
                            async move {
                                assert_eq!(req.uri().path(), "/v1/traces");
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                this.raw.lock().unwrap().extend_from_slice(&body);
                                let request = ExportTraceServiceRequest::decode(body).unwrap();
                                let mut spans = this.spans.lock().unwrap();
                                for resource in request.resource_spans {
                                    for scope in resource.scope_spans {
                                        spans.extend(scope.spans);
                                    }
                                }
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn named(&self, name: &str) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            Value::DoubleValue(d) => d.to_string(),
            Value::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn config(collector: &str, upstream: &str, ack: &str) -> String {
    format!(
        "telemetry:\n  otlp: {{ endpoint: \"{collector}\", service_name: hookgate-test }}\nroutes:\n  - name: orders\n    path: /hooks/orders\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"{SECRET}\"] }}\n    ack: {ack}\n    dedup: off\n    upstream:\n      url: \"{upstream}\"\n      timeout: 2s\n      retry: {{ max_attempts: 5, initial_backoff: 20ms, max_backoff: 50ms }}\n"
    )
}

/// `00-<trace>-<span>-<flags>` split into trace and span id.
fn traceparent_ids(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_string(), parts[2].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_event_and_its_attempts_are_one_trace_that_the_consumer_joins() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    // The upstream fails the first attempt: two attempt spans.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}")
        } else {
            json_response(StatusCode::OK, "{}")
        }
    })
    .await;
    let gateway = Gateway::start(&config(&endpoint, &upstream.url("/orders"), "async")).await;
    let answer = post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", SECRET), ("traceparent", SENDER_PARENT)],
        r#"{"id":"evt_1"}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    eventually("two attempts", || upstream.received().len() == 2).await;
    wait_until("the spans are exported", Duration::from_secs(60), || {
        let done = collector.named("webhook.receive").len() == 1
            && collector.named("webhook.deliver").len() == 2;
        async move { done }
    })
    .await;

    let receive = &collector.named("webhook.receive")[0];
    let trace = hex::encode(&receive.trace_id);
    assert_ne!(trace, SENDER_TRACE, "the sender chose the trace");
    assert!(
        receive.parent_span_id.is_empty(),
        "the sender's span became the parent"
    );
    assert_eq!(receive.links.len(), 1);
    assert_eq!(hex::encode(&receive.links[0].trace_id), SENDER_TRACE);
    assert_eq!(
        attribute(receive, "hookgate.route").as_deref(),
        Some("orders")
    );
    assert_eq!(
        attribute(receive, "hookgate.outcome").as_deref(),
        Some("accepted")
    );
    assert_eq!(
        attribute(receive, "hookgate.verification").as_deref(),
        Some("verified")
    );
    assert_eq!(attribute(receive, "hookgate.delivery_id"), Some(id));
    assert_eq!(
        attribute(receive, "http.response.status_code").as_deref(),
        Some("200")
    );

    let mut attempts = collector.named("webhook.deliver");
    attempts.sort_by_key(|s| attribute(s, "hookgate.attempt"));
    let received = upstream.received();
    for (n, (attempt, request)) in attempts.iter().zip(&received).enumerate() {
        assert_eq!(hex::encode(&attempt.trace_id), trace, "attempt {n}");
        assert_eq!(attempt.parent_span_id, receive.span_id, "attempt {n}");
        assert_eq!(
            attribute(attempt, "hookgate.destination").as_deref(),
            Some("upstream")
        );
        let parents: Vec<&str> = request
            .headers
            .get_all("traceparent")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(parents.len(), 1, "one traceparent, the sender's is gone");
        let (upstream_trace, upstream_parent) = traceparent_ids(parents[0]);
        assert_eq!(upstream_trace, trace);
        // Each request names the span of its own attempt.
        let attempt_of_request = request.headers["hookgate-attempt"].to_str().unwrap();
        let span = attempts
            .iter()
            .find(|s| attribute(s, "hookgate.attempt").as_deref() == Some(attempt_of_request))
            .unwrap();
        assert_eq!(upstream_parent, hex::encode(&span.span_id));
        assert!(!request.headers.contains_key("hookgate-trace-context"));
    }
    assert_eq!(
        attribute(&attempts[0], "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(
        attribute(&attempts[1], "http.response.status_code").as_deref(),
        Some("200")
    );
    let raw = collector.raw.lock().unwrap().clone();
    assert!(
        !raw.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "a secret was exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_upstream_joins_the_request_span_and_a_refusal_is_recorded() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&endpoint, &upstream.url("/orders"), "sync")).await;
    let answer = post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", SECRET), ("traceparent", SENDER_PARENT)],
        "{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let refused = post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", "wrong")],
        "{}",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    wait_until("the spans are exported", Duration::from_secs(60), || {
        let done = collector.named("webhook.receive").len() == 2;
        async move { done }
    })
    .await;
    let spans = collector.named("webhook.receive");
    let accepted = spans
        .iter()
        .find(|s| attribute(s, "hookgate.outcome").as_deref() == Some("accepted"))
        .unwrap();
    let refusal = spans
        .iter()
        .find(|s| attribute(s, "hookgate.outcome").as_deref() == Some("unauthorized"))
        .unwrap();
    assert_eq!(
        attribute(refusal, "hookgate.verification").as_deref(),
        Some("failed")
    );
    assert_eq!(
        attribute(refusal, "http.response.status_code").as_deref(),
        Some("401")
    );
    let received = upstream.received();
    assert_eq!(received.len(), 1, "the refused request was not forwarded");
    let (trace, parent) = traceparent_ids(received[0].headers["traceparent"].to_str().unwrap());
    assert_eq!(trace, hex::encode(&accepted.trace_id));
    assert_eq!(parent, hex::encode(&accepted.span_id));
    assert_ne!(trace, SENDER_TRACE);
}

#[tokio::test]
async fn without_otlp_the_senders_traceparent_is_forwarded_untouched() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&format!(
        "routes:\n  - name: orders\n    path: /hooks/orders\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"{SECRET}\"] }}\n    ack: sync\n    dedup: off\n    upstream: {{ url: \"{}\" }}\n",
        upstream.url("/orders")
    ))
    .await;
    let answer = post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", SECRET), ("traceparent", SENDER_PARENT)],
        "{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(upstream.received()[0].headers["traceparent"], SENDER_PARENT);
}

#[test]
fn a_bad_sample_ratio_is_refused_with_its_field() {
    let error = hookgate::Config::from_yaml(
        "telemetry:\n  otlp: { endpoint: \"http://127.0.0.1:4318\", sample_ratio: 1.5 }\nroutes:\n  - name: r\n    path: /r\n    verify: { scheme: none }\n    upstream: { url: \"http://127.0.0.1:1/\" }\n",
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("telemetry.otlp.sample_ratio"), "{error}");
}

/// A queue message carries the attempt's `traceparent` as a message
/// header (here a Redis stream's `headers` field), in the request's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_message_carries_the_traceparent_of_its_attempt() {
    use support::brokers::{redis_url, RedisStream};
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let stream = RedisStream::create().await;
    let yaml = format!(
        "telemetry:\n  otlp: {{ endpoint: \"{endpoint}\", service_name: hookgate-test }}\nroutes:\n  - name: orders\n    path: /hooks/orders\n    verify: {{ scheme: header, header: X-Secret, secrets: [\"{SECRET}\"] }}\n    dedup: off\n    destinations:\n      - {{ name: feed, url: \"{}\", redis: {{ stream: \"{}\" }} }}\n",
        redis_url(),
        stream.key
    );
    let gateway = Gateway::start(&yaml).await;
    let answer = post(
        &gateway.url("/hooks/orders"),
        &[("X-Secret", SECRET), ("traceparent", SENDER_PARENT)],
        r#"{"id":"evt_q"}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    wait_until(
        "the stream holds the event",
        Duration::from_secs(20),
        || async { stream.messages().await.len() == 1 },
    )
    .await;
    wait_until("the spans are exported", Duration::from_secs(60), || {
        let done = collector.named("webhook.receive").len() == 1
            && collector.named("webhook.deliver").len() == 1;
        async move { done }
    })
    .await;
    let receive = &collector.named("webhook.receive")[0];
    let attempt = &collector.named("webhook.deliver")[0];
    assert_eq!(
        attribute(attempt, "hookgate.destination").as_deref(),
        Some("feed")
    );
    let message = &stream.messages().await[0];
    let (trace, parent) = traceparent_ids(&message.headers["traceparent"]);
    assert_eq!(trace, hex::encode(&receive.trace_id));
    assert_ne!(trace, SENDER_TRACE);
    assert_eq!(parent, hex::encode(&attempt.span_id));
    assert!(!message.headers.contains_key("hookgate-trace-context"));
    stream.remove().await;
}
