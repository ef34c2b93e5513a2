//! Request spans and W3C trace context (`traceparent`, `tracestate`).
//!
//! Without `telemetry.otlp_endpoint`, nothing here runs: a client's `traceparent` is an
//! ordinary end-to-end header and reaches the upstream unchanged. With it, each request gets a
//! server span whose parent is the client's context (if any), and the upstream receives a
//! `traceparent` naming that span, so the proxy hop shows in the trace.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Reader<'a>(&'a HeaderMap);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct Writer<'a>(&'a mut HeaderMap);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// A server span for one request, child of the client's trace context.
pub fn request_span(method: &Method, path: &str, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: "portcullis::trace",
        "request",
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    // W3C trace context is the one format spoken here: no global propagator to set up first.
    let parent = TraceContextPropagator::new().extract(&Reader(headers));
    let _ = span.set_parent(parent);
    span
}

/// Replaces any client `traceparent`/`tracestate` with the current span's context.
pub fn inject(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&cx, &mut Writer(headers));
}
