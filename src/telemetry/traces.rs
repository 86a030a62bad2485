//! Traces, exported over OTLP/HTTP when `telemetry.otlp` is set.
//!
//! - Each request to a route is a `webhook.receive` span (kind server):
//!   route, verification result, dedup outcome (when a copy), the answer's
//!   status and the delivery id. A sender's own `traceparent` is recorded
//!   as a *link*, never as the parent: a sender cannot choose which trace
//!   its request joins (nor mark it sampled).
//! - Each delivery attempt is a `webhook.deliver` span (kind client), a
//!   child of the request's span: for async routes through the span
//!   context stored with the event (the internal `hookgate-trace-context`
//!   header, which is never forwarded), so the attempts of an event share
//!   its trace even after a restart.
//! - Every HTTP request to an upstream carries a `traceparent` (and no
//!   sender's `traceparent`/`tracestate`), so the consumer's spans join.
//!
//! No attribute holds a header value, a body, a URL's credentials or a
//! secret. With tracing off, [`Traces`] is empty and every call returns at
//! once; requests and headers are exactly as without this module.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::OtlpConfig;

/// The span context of an async event's request, stored with the event.
pub const TRACE_CONTEXT: HeaderName = HeaderName::from_static("hookgate-trace-context");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's tracer, or nothing when tracing is off. Cheap to clone.
#[derive(Clone, Default)]
pub struct Traces {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// Tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the OTLP trace exporter: {0}")]
pub struct TracesError(String);

impl Traces {
    /// Starts exporting to `config` (batched, on the current tokio
    /// runtime); `None` means tracing is off.
    pub fn start(config: Option<&OtlpConfig>) -> Result<Traces, TracesError> {
        let Some(config) = config else {
            return Ok(Traces::default());
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(HyperClient::with_default_connector(EXPORT_TIMEOUT, None))
            .with_endpoint(config.traces_url.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TracesError(e.to_string()))?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("hookgate");
        Ok(Traces {
            inner: Some(Arc::new(Inner { provider, tracer })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Exports what is buffered and stops (shutdown), for at most
    /// [`EXPORT_TIMEOUT`]. The SDK waits for its export task by blocking,
    /// so it waits on a blocking thread while the runtime runs that task.
    pub async fn shutdown(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let provider = inner.provider.clone();
        let stopping = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(EXPORT_TIMEOUT, stopping).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "exporting the last spans failed"),
            Ok(Err(_)) | Err(_) => tracing::warn!("exporting the last spans did not finish"),
        }
    }

    /// Starts the span of a request to `route`. The sender's trace
    /// context, if any, becomes a link.
    pub fn receive(&self, route: &str, sender_headers: &HeaderMap) -> RequestSpan {
        let Some(inner) = &self.inner else {
            return RequestSpan(None);
        };
        let sender = propagator()
            .extract(&HeaderExtractor(sender_headers))
            .span()
            .span_context()
            .clone();
        let mut builder = inner
            .tracer
            .span_builder("webhook.receive")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("hookgate.route", route.to_string())]);
        if sender.is_valid() {
            builder = builder.with_links(vec![Link::with_context(sender)]);
        }
        // An empty context: the request starts a trace of its own.
        let span = builder.start_with_context(&inner.tracer, &Context::new());
        RequestSpan(Some(span))
    }

    /// Starts the span of one delivery attempt, a child of the request's
    /// span context (`parent`, when known).
    pub fn deliver(
        &self,
        parent: Option<SpanContext>,
        route: &str,
        destination: &str,
        attempt: u32,
    ) -> AttemptSpan {
        let Some(inner) = &self.inner else {
            return AttemptSpan(None);
        };
        let cx = parent.map_or_else(Context::new, |p| Context::new().with_remote_span_context(p));
        let span = inner
            .tracer
            .span_builder("webhook.deliver")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("hookgate.route", route.to_string()),
                KeyValue::new("hookgate.destination", destination.to_string()),
                KeyValue::new("hookgate.attempt", i64::from(attempt)),
            ])
            .start_with_context(&inner.tracer, &cx);
        AttemptSpan(Some(span))
    }
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// Replaces any trace context in `headers` with `context`'s (W3C
/// `traceparent`); without a context, leaves them alone.
pub fn inject(context: Option<&SpanContext>, headers: &mut HeaderMap) {
    let Some(context) = context.filter(|c| c.is_valid()) else {
        return;
    };
    headers.remove(TRACEPARENT);
    headers.remove(TRACESTATE);
    let cx = Context::new().with_remote_span_context(context.clone());
    propagator().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Stores `context` with an async event's headers (as
/// [`TRACE_CONTEXT`], which is never forwarded); without one, nothing.
pub fn store(context: Option<&SpanContext>, headers: &mut HeaderMap) {
    let Some(value) = context.and_then(traceparent) else {
        return;
    };
    headers.insert(TRACE_CONTEXT, value);
}

/// The span context stored with an async event, if any.
pub fn stored_context(headers: &HeaderMap) -> Option<SpanContext> {
    let value = headers.get(TRACE_CONTEXT)?;
    let mut carrier = HeaderMap::new();
    carrier.insert(TRACEPARENT, value.clone());
    let context = propagator()
        .extract(&HeaderExtractor(&carrier))
        .span()
        .span_context()
        .clone();
    context.is_valid().then_some(context)
}

/// The span of one request; ends when dropped or [`RequestSpan::finish`]ed.
pub struct RequestSpan(Option<opentelemetry_sdk::trace::Span>);

impl RequestSpan {
    /// The span's context, for the upstream request or the stored event.
    pub fn context(&self) -> Option<SpanContext> {
        self.0.as_ref().map(|s| s.span_context().clone())
    }

    /// Sets `traceparent` for the upstream of a sync route.
    pub fn inject(&self, headers: &mut HeaderMap) {
        inject(self.context().as_ref(), headers);
    }

    /// Stores the span's context with an async event's headers.
    pub fn store(&self, headers: &mut HeaderMap) {
        store(self.context().as_ref(), headers);
    }

    /// Records how the request ended: `outcome` (the metric's label, which
    /// names verification failures, duplicates and acks), the status sent
    /// back, and the delivery id when there is one.
    pub fn finish(mut self, outcome: &'static str, status: u16, delivery_id: Option<&str>) {
        let Some(span) = self.0.as_mut() else {
            return;
        };
        let verification = match outcome {
            "unauthorized" => "failed",
            "not_found" | "method_not_allowed" | "forbidden" | "too_large" | "bad_request"
            | "timeout" | "overloaded" => "not_reached",
            _ => "verified",
        };
        span.set_attributes([
            KeyValue::new("hookgate.outcome", outcome),
            KeyValue::new("hookgate.verification", verification),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ]);
        if let Some(id) = delivery_id {
            span.set_attribute(KeyValue::new("hookgate.delivery_id", id.to_string()));
        }
        if status >= 500 {
            span.set_status(Status::error(outcome));
        }
        span.end();
    }
}

/// The span of one delivery attempt.
pub struct AttemptSpan(Option<opentelemetry_sdk::trace::Span>);

impl AttemptSpan {
    /// Sets `traceparent` on the attempt's request (HTTP) or message.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let context = self.0.as_ref().map(|s| s.span_context().clone());
        inject(context.as_ref(), headers);
    }

    /// Records the attempt's result: the upstream's status, or the error
    /// (its text names the destination's address without credentials).
    pub fn finish(mut self, status: Option<u16>, error: Option<&str>, latency: Duration) {
        let Some(span) = self.0.as_mut() else {
            return;
        };
        span.set_attribute(KeyValue::new(
            "hookgate.latency_ms",
            latency.as_secs_f64() * 1000.0,
        ));
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if !(200..300).contains(&status) {
                span.set_status(Status::error(format!("status {status}")));
            }
        }
        if let Some(error) = error {
            span.set_status(Status::error(error.to_string()));
        }
        span.end();
    }
}

/// `traceparent` of a context.
pub fn traceparent(context: &SpanContext) -> Option<HeaderValue> {
    let mut carrier = HeaderMap::new();
    inject(Some(context), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The W3C `traceparent` header name.
pub const fn traceparent_header() -> HeaderName {
    TRACEPARENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_off_changes_no_header() {
        let traces = Traces::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let span = traces.receive("r", &headers);
        assert!(span.context().is_none());
        let before = headers.clone();
        span.inject(&mut headers);
        span.store(&mut headers);
        assert_eq!(headers, before);
        assert!(!traces.enabled());
    }

    #[test]
    fn a_stored_context_reads_back_and_a_forged_one_does_not() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACE_CONTEXT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let context = stored_context(&headers).unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(
            traceparent(&context).unwrap(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        headers.insert(TRACE_CONTEXT, "garbage".parse().unwrap());
        assert!(stored_context(&headers).is_none());
        assert!(stored_context(&HeaderMap::new()).is_none());
    }
}
