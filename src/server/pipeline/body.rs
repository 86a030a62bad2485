//! Phase 2, the bounded body: the whole body in memory, or a refusal. A
//! sender cannot make the gateway buffer more than `max_body_bytes`, wait
//! longer than `body_read_timeout`, or hold a request open by trickling
//! bytes slower than `body_min_rate`.

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::config::{Limits, BODY_RATE_GRACE};
use crate::server::error::RequestError;

/// Reads the whole body, refusing more than `max_body_bytes` (from
/// Content-Length before reading anything, and while streaming for chunked
/// bodies) and giving up after `body_read_timeout`.
pub(super) async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Bytes, RequestError>
where
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(RequestError::TooLarge);
    }
    let limit = usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX);
    let started = tokio::time::Instant::now();
    let deadline = started + limits.body_read_timeout;
    let mut received = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        // Wait for the next frame until the overall deadline, or until the
        // moment the sender falls below the minimum rate, if sooner.
        let rate_deadline = (limits.body_min_rate > 0).then(|| {
            let needed = received.len() as f64 / limits.body_min_rate as f64;
            started + BODY_RATE_GRACE.max(std::time::Duration::from_secs_f64(needed))
        });
        let wait_until = rate_deadline.map_or(deadline, |r| r.min(deadline));
        let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
            Err(_) => return Err(RequestError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(RequestError::BadBody),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if received.len() + data.len() > limit {
                return Err(RequestError::TooLarge);
            }
            received.extend_from_slice(&data);
        }
    }
    Ok(received.freeze())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderValue, StatusCode};

    use super::super::testing::{Fixture, TestBody, Upstream};
    use super::*;

    fn limits(max_body_bytes: u64) -> Limits {
        Limits {
            max_body_bytes,
            body_read_timeout: Duration::from_millis(200),
            ..Limits::default()
        }
    }

    fn declaring(length: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers
    }

    #[tokio::test]
    async fn every_frame_is_read_up_to_the_limit() {
        let body = TestBody::frames(&[b"{\"a\":", b"1}"]);
        let read = read_body(body, &HeaderMap::new(), &limits(7)).await;
        assert_eq!(read, Ok(Bytes::from_static(b"{\"a\":1}")));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_without_reading() {
        // Reading this body would end in a timeout, not in 413.
        let read = read_body(TestBody::stalled(), &declaring(9), &limits(8)).await;
        assert_eq!(read, Err(RequestError::TooLarge));
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_refused() {
        let body = TestBody::frames(&[b"1234", b"5678", b"9"]);
        let read = read_body(body, &HeaderMap::new(), &limits(8)).await;
        assert_eq!(read, Err(RequestError::TooLarge));
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_times_out() {
        let read = read_body(TestBody::stalled(), &HeaderMap::new(), &limits(8)).await;
        assert_eq!(read, Err(RequestError::BodyTimeout));
    }

    #[tokio::test]
    async fn a_broken_body_is_a_bad_request() {
        let read = read_body(TestBody::broken(), &HeaderMap::new(), &limits(8)).await;
        assert_eq!(read, Err(RequestError::BadBody));
    }

    #[tokio::test]
    async fn the_gateway_answers_413_and_closes_the_connection() {
        let upstream = Upstream::start(StatusCode::OK).await;
        let fixture = Fixture::new(&format!(
            "limits: {{ max_body_bytes: 8 }}\nroutes:\n  - {{ name: r, path: /r, ack: sync, dedup: off, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n",
            upstream.url()
        ))
        .await;
        let request = http::Request::post("/r")
            .header(header::CONTENT_LENGTH, "9")
            .body(TestBody::stalled())
            .unwrap();
        let answer = fixture.send(request).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.error_code(), "payload_too_large");
        assert_eq!(answer.headers[header::CONNECTION], "close");
        assert_eq!(
            fixture.metric(r#"hookgate_requests_total{route="r",outcome="too_large"}"#),
            1.0
        );
        assert_eq!(upstream.received(), 0);
    }
}
