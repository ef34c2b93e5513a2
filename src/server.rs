//! Accepting connections: TCP → TLS → HTTP/1.1 or HTTP/2 → `Proxy::handle`.
//!
//! Limits that protect the proxy from slow or abusive clients live here: a connection cap
//! (a semaphore taken before `accept`, so excess clients wait in the kernel backlog), a TLS
//! handshake deadline, a header-read deadline (which also closes idle HTTP/1 keep-alive
//! connections), and a header size limit (hyper answers 431 over it). On shutdown the
//! listener closes at once and open connections drain until `server.shutdown_grace`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::proxy::Proxy;

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
    let handshake_timeout = limits.handshake_timeout;
    accept_loop(
        "https",
        listener,
        limits.max_connections,
        limits.shutdown_grace,
        stop,
        move |tcp, peer, watcher| {
            let acceptor = acceptor.clone();
            let builder = builder.clone();
            let proxy = proxy.clone();
            async move {
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
                let service = service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(peer, req).await) }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
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
    accept_loop(
        name,
        listener,
        limits.max_connections,
        limits.shutdown_grace,
        stop,
        move |tcp, peer, watcher| {
            let builder = builder.clone();
            let handler = handler.clone();
            async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(peer, req).await) }
                });
                let conn = builder
                    .serve_connection(TokioIo::new(tcp), service)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        },
    )
    .await
}

/// Accepts connections within the connection cap and hands each to `serve` on its own task;
/// when `stop` flips, stops accepting and waits up to `grace` for the watched connections.
async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    max_connections: usize,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, hyper_util::server::graceful::Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let fut = serve(tcp, peer, graceful.watcher());
        let open = crate::metrics::Connection::open(name);
        tokio::spawn(async move {
            fut.await;
            drop(open);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace = ?grace, "shutdown deadline passed with connections still open"),
    }
}
