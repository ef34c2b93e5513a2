//! One upstream's connections: a LIFO of idle HTTP/1.1 connections and at most one shared
//! HTTP/2 connection.
//!
//! An HTTP/1.1 connection has no task of its own. Whoever holds it drives it: the request
//! task while it waits for the response head (`exchange`), then the response body as the
//! downstream connection polls it (`body.rs`). That body returns it here once the response
//! has ended, and the next request takes the most recently used one: no per-request task,
//! channel hop to a connection task, or pool-key hashing. An idle connection is probed when
//! it is taken (it sees the upstream's FIN then), and one reaper task per pool, alive only
//! while the pool has idle connections, closes those idle for `pool_idle_timeout`.
//!
//! HTTP/2 (h2c, or ALPN `h2` from an https upstream) multiplexes, so its connection runs as a
//! task and requests share clones of its handle.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{HeaderValue, HOST};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::body::UpstreamBody;
use crate::error::ProxyError;

/// hyper's connection future with upgrades (its type is not nameable).
type H1Conn = dyn Future<Output = Result<(), hyper::Error>> + Send;

/// An HTTP/1.1 connection: the handle requests are sent through and the connection future,
/// `None` once it has ended.
pub(super) struct H1 {
    sender: http1::SendRequest<Incoming>,
    /// In a `Mutex` only to be `Sync` (response bodies must be); reached through `get_mut`,
    /// never locked.
    conn: Option<Mutex<Pin<Box<H1Conn>>>>,
    /// The response-head deadline, kept from one exchange to the next (see `exchange`).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl H1 {
    /// Polls the connection (reads, writes, closes); false once it has ended.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let conn = conn.get_mut().unwrap_or_else(|p| p.into_inner());
        match conn.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(ended) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.conn = None;
                false
            }
        }
    }

    /// Hands a connection that must finish on its own (an upgrade in progress) to a task.
    fn detach(self) {
        if let Some(conn) = self.conn {
            let conn = conn.into_inner().unwrap_or_else(|p| p.into_inner());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
        }
    }
}

/// What the connection pool of one upstream is configured with.
#[derive(Clone)]
pub(super) struct Settings {
    pub connector: HttpsConnector<HttpConnector>,
    pub h2c: bool,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

/// The connections to one upstream (scheme and authority, TLS trust, protocol).
pub struct Pool {
    settings: Settings,
    /// `scheme://authority/`, what the connector dials.
    target: Uri,
    /// The `Host` of an HTTP/1.1 request that carries none.
    host: HeaderValue,
    state: Mutex<State>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Oldest first; requests take from the end.
    idle: Vec<(H1, Instant)>,
    h2: Option<(http2::SendRequest<Incoming>, Instant)>,
    reaping: bool,
}

enum Conn {
    H1(H1),
    H2(http2::SendRequest<Incoming>),
}

impl Pool {
    pub(super) fn new(settings: Settings, target: Uri) -> Result<Pool, http::Error> {
        let authority = target.authority().map_or("", |a| a.as_str());
        let default_port = match target.scheme_str() {
            Some("https") => ":443",
            _ => ":80",
        };
        let host =
            HeaderValue::from_str(authority.strip_suffix(default_port).unwrap_or(authority))?;
        Ok(Pool {
            settings,
            target,
            host,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` (origin form: the path and query) and waits for the response head, all
    /// within `timeout` (else `UpstreamTimeout`). A request that a reused connection closed
    /// before taking is sent again on a new one.
    pub(super) async fn request(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (conn, reused) = match self.take_idle().await {
                Some(conn) => (conn, true),
                // Boxed: dialling (TCP, TLS, an HTTP/2 handshake) is a large future that
                // most requests, on a pooled connection, never run.
                None => (
                    within(deadline, timeout, Box::pin(self.connect())).await?,
                    false,
                ),
            };
            let mut h1 = match conn {
                Conn::H2(sender) => {
                    self.absolute_form(&mut req)?;
                    // Boxed: the HTTP/2 exchange is twice the HTTP/1.1 one's size, and every
                    // request's future (and each layer above it) would otherwise carry it.
                    let send = Box::pin(self.send_h2(sender, req, reused));
                    return within(deadline, timeout, send).await;
                }
                Conn::H1(h1) => h1,
            };
            self.set_host(&mut req);
            match exchange(&mut h1, req, deadline).await {
                Exchange::Response(resp) => {
                    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                        h1.detach();
                        return Ok(resp.map(UpstreamBody::plain));
                    }
                    return Ok(resp.map(|body| UpstreamBody::pooled(body, h1, self.clone())));
                }
                Exchange::NotSent(unsent, error) if reused => {
                    tracing::debug!(%error, "a pooled upstream connection closed; sending again");
                    req = unsent;
                }
                Exchange::NotSent(_, error) | Exchange::Failed(error) => {
                    return Err(ProxyError::UpstreamFailed(Box::new(error)))
                }
                Exchange::Closed => {
                    return Err(ProxyError::UpstreamFailed(
                        "the upstream closed the connection before answering".into(),
                    ))
                }
                // The connection, mid-exchange, is dropped (closed) with `h1`.
                Exchange::TimedOut => return Err(ProxyError::UpstreamTimeout(timeout)),
            }
        }
    }

    /// `Host` for an HTTP/1.1 request that carries none (the request is in origin form).
    fn set_host(&self, req: &mut Request<Incoming>) {
        req.headers_mut()
            .entry(HOST)
            .or_insert_with(|| self.host.clone());
    }

    /// HTTP/2 names the upstream in the request's `:scheme` and `:authority`.
    fn absolute_form(&self, req: &mut Request<Incoming>) -> Result<(), ProxyError> {
        let mut parts = http::uri::Parts::from(self.target.clone());
        parts.path_and_query = req.uri().path_and_query().cloned();
        *req.uri_mut() = Uri::from_parts(parts)
            .map_err(|_| ProxyError::BadRequest("The request target is malformed."))?;
        Ok(())
    }

    async fn send_h2(
        &self,
        mut sender: http2::SendRequest<Incoming>,
        req: Request<Incoming>,
        reused: bool,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        if let Err(e) = sender.ready().await {
            if reused {
                self.state().h2 = None;
            }
            return Err(ProxyError::UpstreamFailed(Box::new(e)));
        }
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp.map(UpstreamBody::plain)),
            Err(e) => Err(ProxyError::UpstreamFailed(Box::new(e))),
        }
    }

    /// The HTTP/2 connection, or the most recently used idle HTTP/1.1 connection that is
    /// still open and ready.
    async fn take_idle(&self) -> Option<Conn> {
        loop {
            let (mut h1, since) = {
                let mut state = self.state();
                if let Some((sender, used)) = &mut state.h2 {
                    if !sender.is_closed() {
                        *used = Instant::now();
                        return Some(Conn::H2(sender.clone()));
                    }
                    state.h2 = None;
                }
                state.idle.pop()?
            };
            if since.elapsed() >= self.settings.idle_timeout {
                // The rest are older still; the reaper would close them now anyway.
                let stale = std::mem::take(&mut self.state().idle);
                drop(stale);
                return None;
            }
            // One poll: the connection sees a FIN or error, or finishes the previous exchange
            // and asks for the next request. Unwatched: the exchange that follows drives it
            // with this task's waker before it waits, and meanwhile the wake-up its request
            // causes wakes nobody (not the task that used the connection last, nor this one).
            let open = h1.drive(&mut unwatched());
            if open && h1.sender.is_ready() {
                return Some(Conn::H1(h1));
            }
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Conn, ProxyError> {
        let mut connector = self.settings.connector.clone();
        let io = async {
            poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(self.target.clone()).await
        }
        .await
        .map_err(ProxyError::UpstreamUnreachable)?;
        if self.settings.h2c || io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| ProxyError::UpstreamUnreachable(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
                }
            });
            let mut state = self.state();
            state.h2 = Some((sender.clone(), Instant::now()));
            self.start_reaper(&mut state);
            return Ok(Conn::H2(sender));
        }
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| ProxyError::UpstreamUnreachable(Box::new(e)))?;
        Ok(Conn::H1(H1 {
            sender,
            conn: Some(Mutex::new(Box::pin(conn.with_upgrades()))),
            deadline: None,
        }))
    }

    /// Takes back a connection whose response has ended.
    pub(super) fn check_in(self: &Arc<Self>, h1: H1) {
        if h1.conn.is_none() || h1.sender.is_closed() || self.settings.max_idle == 0 {
            return;
        }
        let mut state = self.state();
        let dropped = if state.idle.len() >= self.settings.max_idle {
            Some(state.idle.remove(0))
        } else {
            None
        };
        state.idle.push((h1, Instant::now()));
        self.start_reaper(&mut state);
        drop(state);
        drop(dropped);
    }

    fn start_reaper(self: &Arc<Self>, state: &mut State) {
        if state.reaping {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            state.reaping = true;
            runtime.spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Closes idle connections once they have been idle for `pool_idle_timeout`; ends when the
/// pool has none left (or is gone).
async fn reap(pool: Weak<Pool>) {
    loop {
        let Some(timeout) = pool.upgrade().map(|p| p.settings.idle_timeout) else {
            return;
        };
        let tick = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(tick).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let mut state = pool.state();
        let now = Instant::now();
        let fresh = state
            .idle
            .iter()
            .position(|(_, since)| now.duration_since(*since) < timeout)
            .unwrap_or(state.idle.len());
        let closed: Vec<_> = state.idle.drain(..fresh).collect();
        let h2 = match &state.h2 {
            Some((_, used)) if now.duration_since(*used) >= timeout => state.h2.take(),
            _ => None,
        };
        let done = state.idle.is_empty() && state.h2.is_none();
        if done {
            state.reaping = false;
        }
        drop(state);
        drop((closed, h2));
        if done {
            return;
        }
    }
}

enum Exchange {
    Response(Response<Incoming>),
    /// The connection closed before taking the request, which comes back unsent.
    NotSent(Request<Incoming>, hyper::Error),
    Failed(hyper::Error),
    /// The connection ended with the request in flight and no error to tell.
    Closed,
    /// No response head by the deadline.
    TimedOut,
}

/// `answer`, or `UpstreamTimeout` once `deadline` (the route's `timeout` from the start) passes.
async fn within<T>(
    deadline: Instant,
    timeout: Duration,
    answer: impl Future<Output = Result<T, ProxyError>>,
) -> Result<T, ProxyError> {
    tokio::time::timeout_at(deadline.into(), answer)
        .await
        .unwrap_or(Err(ProxyError::UpstreamTimeout(timeout)))
}

/// A context whose waker does nothing, for polling what only the polling task itself can make
/// ready, right after it has driven that. Everything that waits on the outside world (the
/// socket) is polled with the task's own waker.
pub(super) fn unwatched() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}

/// Sends `req` on `h1` and drives the connection until the response head arrives, or
/// `deadline` passes.
///
/// The deadline is the connection's own timer, moved on for each request: a deadline later
/// than the one armed only updates it (tokio re-files the entry when the old one comes due),
/// so a request costs no timer-wheel insertion and removal, unlike a `timeout` per request.
async fn exchange(h1: &mut H1, req: Request<Incoming>, deadline: Instant) -> Exchange {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut timer = match h1.deadline.take() {
        Some(mut timer) => {
            timer.as_mut().reset(deadline);
            timer
        }
        None => Box::pin(tokio::time::sleep_until(deadline)),
    };
    let sent = h1.sender.try_send_request(req);
    let mut sent = std::pin::pin!(sent);
    let answer = poll_fn(|cx| {
        let open = h1.drive(cx);
        // The answer comes only from the connection, which only this task drives, just above:
        // looked at unwatched, so delivering it does not wake this task once more for nothing.
        match sent.as_mut().poll(&mut unwatched()) {
            Poll::Ready(Ok(resp)) => Poll::Ready(Exchange::Response(resp)),
            Poll::Ready(Err(mut e)) => Poll::Ready(match e.take_message() {
                Some(req) => Exchange::NotSent(req, e.into_error()),
                None => Exchange::Failed(e.into_error()),
            }),
            Poll::Pending if !open => Poll::Ready(Exchange::Closed),
            Poll::Pending if timer.as_mut().poll(cx).is_ready() => Poll::Ready(Exchange::TimedOut),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    h1.deadline = Some(timer);
    answer
}
