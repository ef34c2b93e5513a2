//! Accepting connections: TCP → TLS → HTTP/1.1 or HTTP/2 → `Proxy::handle`.
//!
//! Limits that protect the proxy from slow or abusive clients live here:
//!
//! - a connection cap per listener (a semaphore taken before `accept`, so excess clients wait
//!   in the kernel backlog) and a cap per client address (over it, the connection is closed
//!   right after `accept`, before any TLS work; `trusted_proxies` are exempt) — see
//!   `server/accept.rs` and `server/per_client.rs`. A connection holds both until its socket
//!   closes, and an upgraded connection's socket lives in its WebSocket tunnel, so a tunnel
//!   counts against both caps until it ends;
//! - a TLS handshake deadline, a header-read deadline and a header size limit (hyper answers
//!   431 over it);
//! - an idle deadline: a connection with no request in flight for `server.idle_timeout` is
//!   closed gracefully (HTTP/2: GOAWAY), since hyper's HTTP/2 server has no such setting —
//!   see `server/conn.rs`. Tunnels have their own (`server.websocket_idle_timeout`, kept by
//!   `upgrade.rs`, told through the request's extensions).
//!
//! Every HTTPS answer carries `Strict-Transport-Security` (`server.hsts`) unless the upstream
//! sent its own; the plain-HTTP and admin listeners never send it (RFC 6797 §7.2).
//!
//! On shutdown the listeners close at once, every connection is asked to finish (HTTP/1.1:
//! after the request in flight; HTTP/2: GOAWAY), and the listener waits until every
//! connection and tunnel has ended or `server.shutdown_grace` has passed; then the rest are
//! cut.

mod accept;
mod conn;
mod per_client;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::UPGRADE;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::proxy::Proxy;
use crate::upgrade::TunnelLimits;

/// The HTTP/1 + HTTP/2 connection builder with the configured limits.
fn http_builder(limits: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        // Flatten head and body into one buffer: rustls turns each slice of a vectored write
        // into its own TLS record, so a small response would cost two records and two seals.
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves HTTPS on `listener` until `stop` flips, then drains.
pub async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    limits: ServerConfig,
    stop: watch::Receiver<bool>,
) {
    let builder = http_builder(&limits);
    let (handshake_timeout, idle_timeout) = (limits.handshake_timeout, limits.idle_timeout);
    let websocket_idle_timeout = limits.websocket_idle_timeout;
    let hsts = limits.hsts.clone();
    accept::run(
        "https",
        listener,
        &limits,
        stop,
        move |tcp, peer, signals| {
            let acceptor = acceptor.clone();
            let builder = builder.clone();
            let proxy = proxy.clone();
            let hsts = hsts.clone();
            async move {
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        crate::metrics::tls_handshake("failed");
                        return tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        crate::metrics::tls_handshake("timeout");
                        return tracing::debug!(%peer, "TLS handshake timed out");
                    }
                };
                crate::metrics::tls_handshake(match tls.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => "resumed",
                    _ => "full",
                });
                let tunnel = TunnelLimits {
                    idle_timeout: websocket_idle_timeout,
                    cut: signals.cut.clone(),
                };
                let handler = move |mut req: Request<Incoming>| {
                    if req.headers().contains_key(UPGRADE) {
                        req.extensions_mut().insert(tunnel.clone());
                    }
                    // Boxed once here: the request's future is several kilobytes, and the
                    // layers above (the in-flight count, hyper's dispatcher, an HTTP/2 stream's
                    // task) would each copy it whole when they move it.
                    Box::pin(proxy.clone().handle(peer, req, hsts.clone()))
                };
                conn::serve(&builder, tls, peer, idle_timeout, signals, handler).await;
            }
        },
    )
    .await
}

/// Serves plain HTTP/1.1 (admin endpoints, the HTTPS redirect) until `stop` flips.
pub async fn serve_plain<F, Fut, B>(
    name: &'static str,
    listener: TcpListener,
    limits: ServerConfig,
    stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    let idle_timeout = limits.idle_timeout;
    accept::run(name, listener, &limits, stop, move |tcp, peer, signals| {
        let builder = builder.clone();
        let handler = handler.clone();
        async move {
            let handler = move |req| handler(peer, req);
            conn::serve(&builder, tcp, peer, idle_timeout, signals, handler).await;
        }
    })
    .await
}
