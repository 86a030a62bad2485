//! Forwarding verified requests to a route's upstream.
//!
//! One pooled hyper-util client is shared by every route (keep-alive, no
//! connection per request). The whole exchange, connect to last response
//! byte, is bounded by the route's `upstream.timeout`, and the response body
//! by `limits.max_upstream_response_bytes`, so a slow or chatty upstream
//! cannot hold a sender's request open forever or exhaust memory.

mod headers;
pub mod retry;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use headers::{
    delivery_headers, relayed_response_headers, upstream_request_headers, ForwardRules,
    HOOKGATE_ROUTE, RELAYED_RESPONSE_HEADERS,
};

use crate::config::Upstream;

/// Why an upstream exchange produced no usable answer. Causes are kept as
/// `source()`; the message also spells out the cause's chain, so that the
/// access log and a delivery's recorded error say what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connection refused or reset, DNS failure, protocol error.
    #[error("upstream unreachable: {}", error_chain(.0))]
    Unavailable(#[source] hyper_util::client::legacy::Error),
    /// The answer's body broke off while it was being read.
    #[error("upstream unreachable: reading the response body: {0}")]
    ResponseBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream response body is larger than {0} bytes")]
    ResponseTooLarge(u64),
}

/// The upstream's complete answer.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What to send: everything but the target comes from the verified request.
pub struct Outgoing<'a> {
    pub upstream: &'a Upstream,
    /// The sender's query string, appended to the upstream URL's.
    pub query: Option<&'a str>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct UpstreamClient {
    /// The process's pool, for threads without one of their own.
    client: Pool,
    max_response_bytes: u64,
}

type Pool = Client<HttpConnector, Full<Bytes>>;

thread_local! {
    /// A serving thread's own connection pool (`runtime.ingress:
    /// per_core`, see `server::per_core`): its connections' tasks run on
    /// that thread's runtime, so a request and its upstream exchange never
    /// wake another thread. Unset elsewhere.
    static THREAD_POOL: std::cell::RefCell<Option<Pool>> = const { std::cell::RefCell::new(None) };
}

/// A connection pool: keep-alive, no Nagle, connection tasks on the runtime
/// that opens them.
fn pool() -> Pool {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

impl UpstreamClient {
    pub fn new(max_response_bytes: u64) -> UpstreamClient {
        UpstreamClient {
            client: pool(),
            max_response_bytes,
        }
    }

    /// Gives the calling thread a connection pool of its own, which every
    /// `UpstreamClient` uses for requests sent from this thread. For the
    /// serving threads of `runtime.ingress: per_core`, at their start.
    pub fn use_thread_pool() {
        THREAD_POOL.with(|p| *p.borrow_mut() = Some(pool()));
    }

    /// The pool for a request sent from this thread: its own, if it has one.
    fn pool(&self) -> Pool {
        THREAD_POOL
            .with(|p| p.borrow().clone())
            .unwrap_or_else(|| self.client.clone())
    }

    /// The same connection pool with another response-size limit: each
    /// configuration generation takes the pool built at start-up and sets
    /// the limit it was configured with.
    pub fn with_max_response_bytes(&self, max_response_bytes: u64) -> UpstreamClient {
        UpstreamClient {
            client: self.client.clone(),
            max_response_bytes,
        }
    }

    /// Sends `out` and reads the whole answer, for relaying it (sync
    /// routes): a body over the limit, or cut off, is an error.
    pub async fn send(&self, out: Outgoing<'_>) -> Result<UpstreamResponse, ForwardError> {
        let timeout = out.upstream.timeout;
        let request = self.request(out);
        let exchange = async {
            let response = self
                .pool()
                .request(request)
                .await
                .map_err(ForwardError::Unavailable)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_response_bytes as usize)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ForwardError::ResponseTooLarge(self.max_response_bytes)
                    } else {
                        ForwardError::ResponseBody(e)
                    }
                })?
                .to_bytes();
            Ok(UpstreamResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(timeout))?
    }

    /// Sends `out` for an async delivery, where nobody reads the answer's
    /// body: the status (and the headers, for `Retry-After`) decides. Once a
    /// status has arrived the upstream has answered, so a body that is too
    /// large, cut off or too slow no longer matters (it is read within the
    /// limit and the timeout, to keep the connection for reuse, and
    /// otherwise dropped with the connection). Retrying a 2xx because of its
    /// body would deliver the event twice.
    pub async fn deliver_answer(
        &self,
        out: Outgoing<'_>,
    ) -> Result<(StatusCode, HeaderMap), ForwardError> {
        let timeout = out.upstream.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let request = self.request(out);
        let response = tokio::time::timeout_at(deadline, self.pool().request(request))
            .await
            .map_err(|_| ForwardError::Timeout(timeout))?
            .map_err(ForwardError::Unavailable)?;
        let (parts, body) = response.into_parts();
        let drain = Limited::new(body, self.max_response_bytes as usize).collect();
        let _ = tokio::time::timeout_at(deadline, drain).await;
        Ok((parts.status, parts.headers))
    }

    fn request(&self, out: Outgoing<'_>) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(out.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target_uri(&out.upstream.url, out.query);
        *request.headers_mut() = out.headers;
        request
    }
}

/// The upstream URL with the sender's query string appended.
fn target_uri(base: &Uri, query: Option<&str>) -> Uri {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return base.clone();
    };
    let path = base.path();
    let path_and_query = match base.query() {
        Some(own) => format!("{path}?{own}&{query}"),
        None => format!("{path}?{query}"),
    };
    let mut parts = base.clone().into_parts();
    // Both halves were valid URI parts, so the join is too; fall back to the
    // base URL rather than fail the request if that ever stops being true.
    match path_and_query.parse() {
        Ok(pq) => {
            parts.path_and_query = Some(pq);
            Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
        }
        Err(_) => base.clone(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection: the message spells out the whole chain, as it
    /// did when the error was a string, and the cause is still there.
    #[tokio::test]
    async fn unreachable_keeps_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = UpstreamClient::new(1024);
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let cause = client.client.request(request).await.unwrap_err();
        let chain = error_chain(&cause);
        assert!(chain.contains("onnect"), "{chain}");
        let error = ForwardError::Unavailable(cause);
        assert_eq!(error.to_string(), format!("upstream unreachable: {chain}"));
        let source = std::error::Error::source(&error).unwrap();
        assert!(source
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect()));
    }

    #[test]
    fn query_strings_are_appended() {
        let base: Uri = "http://127.0.0.1:3000/hook".parse().unwrap();
        assert_eq!(target_uri(&base, None), base);
        assert_eq!(
            target_uri(&base, Some("a=1")).to_string(),
            "http://127.0.0.1:3000/hook?a=1"
        );
        let with_query: Uri = "http://h/hook?src=x".parse().unwrap();
        assert_eq!(
            target_uri(&with_query, Some("a=1")).to_string(),
            "http://h/hook?src=x&a=1"
        );
    }
}
