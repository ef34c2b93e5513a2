//! The request context: what the proxy knows about one request, built once in
//! `Proxy::handle` and passed by reference through the stages (Pingora's per-request `CTX`).
//!
//! It carries the request ID, the client's address as the forwarding rules decided it, the
//! answer format, the access-log record (which holds the matched route) and the request span.
//! Stages read the route and request ID from it for the audit log ([`RequestCtx::audit`]), so
//! code deep in sign-in needs no global or task-local to know which request it serves.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::Request;

use crate::access_log::{AccessLog, LoggedBody};
use crate::audit;
use crate::body::Body;
use crate::headers::{self, ClientAddr};
use crate::pages::Format;
use crate::route::Route;

/// One request's context.
#[derive(Debug)]
pub struct RequestCtx<'p> {
    id: HeaderValue,
    /// `[pages]`: how the proxy's own pages look, borrowed from the proxy.
    pages: &'p crate::config::PagesConfig,
    client: ClientAddr,
    format: Format,
    log: AccessLog,
    span: Option<tracing::Span>,
}

impl<'p> RequestCtx<'p> {
    /// The context of `req` from `peer`. Forwarding headers count only from
    /// `trusted_proxies`; `traced` opens a request span.
    pub fn new<B>(
        peer: SocketAddr,
        req: &Request<B>,
        trusted_proxies: &[ipnet::IpNet],
        traced: bool,
        pages: &'p crate::config::PagesConfig,
    ) -> RequestCtx<'p> {
        let client = ClientAddr::new(peer.ip(), req.headers(), trusted_proxies);
        let id = headers::request_id(req.headers(), client.trusted);
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        let log = AccessLog::start(
            req.method().clone(),
            host,
            req.uri().path(),
            client.client,
            id.clone(),
            req.headers().get(http::header::USER_AGENT),
        );
        let span = traced
            .then(|| crate::trace::request_span(req.method(), req.uri().path(), req.headers()));
        RequestCtx {
            pages,
            format: crate::pages::Format::from_headers(req.headers()),
            id,
            client,
            log,
            span,
        }
    }

    /// The request ID (`X-Request-Id`): the trusted proxy's, or generated here.
    pub fn id(&self) -> &HeaderValue {
        &self.id
    }

    /// The request ID as text ("" if it is not ASCII, which a generated one always is).
    pub fn id_str(&self) -> &str {
        self.id.to_str().unwrap_or("")
    }

    /// The client's address, and whether its forwarding headers are believed.
    pub fn client(&self) -> &ClientAddr {
        &self.client
    }

    /// The format the client's `Accept` asks answers in.
    /// `[pages]`, for the pages the proxy answers with.
    pub fn pages(&self) -> &'p crate::config::PagesConfig {
        self.pages
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The request span, when traces are exported.
    pub fn span(&self) -> Option<&tracing::Span> {
        self.span.as_ref()
    }

    /// Records the route the request matched (access log, audit log, span).
    pub fn set_route(&mut self, route: &Arc<Route>) {
        self.log.route(route);
    }

    /// The matched route's name, or "" before routing.
    pub fn route_name(&self) -> &str {
        self.log.route_name()
    }

    /// Who the request was made as, for the access log.
    pub fn set_subject(&mut self, subject: Arc<dyn crate::access_log::Subject>) {
        self.log.subject(subject);
    }

    /// Whether the access log writes this request (its upstream time is worth two clock reads).
    pub fn logs_access(&self) -> bool {
        self.log.on()
    }

    /// How long the upstream took to answer with its response head, for the access log.
    pub fn set_upstream_duration(&mut self, d: std::time::Duration) {
        self.log.upstream_duration(d);
    }

    /// Notes the error kind the request ended with, for the access log.
    pub fn set_error(&mut self, kind: &'static str) {
        self.log.error(kind);
    }

    /// Who the audit log should say an event belongs to.
    pub fn audit(&self) -> audit::Scope<'_> {
        audit::Scope {
            request_id: self.id_str(),
            route: self.route_name(),
            client: Some(self.client.client),
        }
    }

    /// Hands the access-log record to the response body; the event is written when it ends.
    /// The request span goes with it and ends with the body.
    pub fn finish(self, resp: http::Response<Body>) -> http::Response<LoggedBody> {
        self.log.finish(resp, self.span)
    }
}
