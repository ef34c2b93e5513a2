//! One access-log event per request, written when the response body ends (so bytes and
//! duration cover the whole streamed answer, not just its head).
//!
//! Events go to the `portcullis::access` target. They carry the path without its query string
//! and no header value but the user agent: query strings and other headers are where codes,
//! tokens and cookies travel. The signed-in user is named by `oid` and `tid` only.
//!
//! Per request the record holds shared handles, not copies, where it can: the user agent is a
//! reference-counted header value and a session's subject the session's own `Arc`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::Body;
use crate::route::Route;

/// Who a request was made as: `oid` and `tid` of the signed-in user or the token's subject.
pub trait Subject: Send + Sync + std::fmt::Debug {
    fn oid(&self) -> &str;
    fn tid(&self) -> &str;
}

/// What is known about a request so far; logged once, when its response body is done.
#[derive(Debug)]
pub struct AccessLog {
    start: Instant,
    method: Method,
    host: String,
    path: String,
    client: IpAddr,
    request_id: HeaderValue,
    route: Option<Arc<Route>>,
    error: Option<&'static str>,
    status: StatusCode,
    user_agent: Option<HeaderValue>,
    subject: Option<Arc<dyn Subject>>,
    /// From sending the request upstream to the upstream's response head.
    upstream_duration: Option<Duration>,
    /// The access log was on when the request came: only then is the upstream timed.
    on: bool,
    /// The request's span, if traced: entered once more and closed when the response body
    /// ends, so the span covers the streamed answer and not just its head.
    span: Option<tracing::Span>,
    /// `portcullis_requests_in_flight` until this log is dropped (written or abandoned).
    _in_flight: crate::metrics::InFlight,
}

impl AccessLog {
    /// `host` and `path` are copied only when the access log is on.
    pub fn start(
        method: Method,
        host: &str,
        path: &str,
        client: IpAddr,
        request_id: HeaderValue,
        user_agent: Option<&HeaderValue>,
    ) -> AccessLog {
        let on = tracing::enabled!(target: "portcullis::access", tracing::Level::INFO);
        let copy = |s: &str| if on { s.to_owned() } else { String::new() };
        // A header value parsed from the connection shares its buffer: no copy.
        let user_agent = user_agent.filter(|_| on).cloned();
        AccessLog {
            start: Instant::now(),
            method,
            host: copy(host),
            path: copy(path),
            client,
            request_id,
            route: None,
            error: None,
            status: StatusCode::OK,
            user_agent,
            subject: None,
            upstream_duration: None,
            on,
            span: None,
            _in_flight: crate::metrics::InFlight::start(),
        }
    }

    pub fn route(&mut self, route: &Arc<Route>) {
        self.route = Some(route.clone());
    }

    /// The matched route's name, or "" before routing.
    pub fn route_name(&self) -> &str {
        self.route.as_deref().map_or("", |r| r.name.as_str())
    }

    pub fn error(&mut self, kind: &'static str) {
        self.error = Some(kind);
    }

    pub fn subject(&mut self, subject: Arc<dyn Subject>) {
        self.subject = Some(subject);
    }

    /// Whether the access log was on when the request came.
    pub fn on(&self) -> bool {
        self.on
    }

    pub fn upstream_duration(&mut self, d: Duration) {
        self.upstream_duration = Some(d);
    }

    /// Attaches the log to the response body; the event is written when the body finishes or
    /// is dropped (client gone).
    pub fn finish(
        mut self,
        resp: Response<Body>,
        span: Option<tracing::Span>,
    ) -> Response<LoggedBody> {
        self.status = resp.status();
        self.span = span;
        resp.map(|inner| LoggedBody {
            inner,
            bytes: 0,
            log: Some(self),
        })
    }

    fn emit(&self, bytes: u64, complete: bool) {
        // The OpenTelemetry layer ends a span at its last exit: entering it here, as the body
        // ends, makes the span cover the whole answer (and parents the access event).
        let _entered = self.span.as_ref().map(tracing::Span::enter);
        let elapsed = self.start.elapsed();
        self.route
            .as_deref()
            .map_or(crate::metrics::RouteMetrics::none(), |r| &r.metrics)
            .record(&self.method, self.status.as_u16(), elapsed);
        if !tracing::enabled!(target: "portcullis::access", tracing::Level::INFO) {
            return;
        }
        let (route, upstream) = match &self.route {
            Some(r) => (r.name.as_str(), r.upstream.to_string()),
            None => ("", String::new()),
        };
        tracing::info!(
            target: "portcullis::access",
            method = %self.method,
            host = %self.host,
            path = %self.path,
            status = self.status.as_u16(),
            bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            route,
            upstream = %upstream,
            request_id = self.request_id.to_str().unwrap_or(""),
            client = %self.client,
            user_agent = self.user_agent.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
            oid = self.subject.as_deref().map_or("", |s| s.oid()),
            tid = self.subject.as_deref().map_or("", |s| s.tid()),
            upstream_ms = self.upstream_duration.map(|d| d.as_secs_f64() * 1000.0),
            error = self.error.unwrap_or(""),
            complete,
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts what it sends and logs the request when it ends.
    pub struct LoggedBody {
        #[pin]
        inner: Body,
        bytes: u64,
        log: Option<AccessLog>,
    }

    impl PinnedDrop for LoggedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(log) = this.log.take() {
                // hyper may stop polling once `is_end_stream` says so; that still counts as done.
                log.emit(*this.bytes, this.inner.is_end_stream());
            }
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(log) = this.log.take() {
                    log.emit(*this.bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
