//! The accept loop of one listener: the connection cap, the per-client cap, and the drain.
//!
//! Each accepted socket is wrapped in [`Guarded`], which holds the connection's share of the
//! limits (its semaphore permit, its per-client count, the open-connections gauge, a drain
//! token) for as long as the socket exists. When a connection upgrades, hyper moves the socket
//! into the `Upgraded` the tunnel copies through, so a WebSocket holds its share until the
//! tunnel ends, not merely until the upgrade — without the request path knowing about it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::per_client::{ClientSlot, PerClient};
use crate::config::ServerConfig;
use crate::metrics;

/// What a connection task watches: `stop` flips when shutdown begins (finish up), `cut` when
/// the grace has passed (end now).
pub(super) struct Signals {
    pub stop: watch::Receiver<bool>,
    pub cut: watch::Receiver<bool>,
}

/// Resolves once `flag` is true, or its sender is gone (the listener went away).
pub(super) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|up| *up).await;
}

/// Accepts connections within the caps and hands each to `serve` on its own task; when `stop`
/// flips, stops accepting and waits up to `server.shutdown_grace` for every connection
/// (tunnels included) to end, then cuts the rest.
pub(super) async fn run<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    limits: &ServerConfig,
    stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Guarded<TcpStream>, SocketAddr, Signals) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = PerClient::new(
        limits.max_connections_per_client,
        limits.trusted_proxies.clone(),
    );
    let (cut_tx, cut) = watch::channel(false);
    // Every connection holds a sender; `recv` returns `None` once the last one is gone.
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let mut stopping = stop.clone();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = raised(&mut stopping) => break,
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
            () = raised(&mut stopping) => break,
        };
        let Some(client) = per_client.admit(peer.ip()) else {
            tracing::debug!(%peer, listener = name, "connection refused: the client is at max_connections_per_client");
            metrics::connection_refused(name, "per_client_cap");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let held = Held {
            _permit: permit,
            _client: client,
            _open: metrics::Connection::open(name),
            _drain: drain.clone(),
        };
        let signals = Signals {
            stop: stop.clone(),
            cut: cut.clone(),
        };
        tokio::spawn(serve(Guarded { io: tcp, held }, peer, signals));
    }
    drop(listener);
    drop(drain);
    let grace = limits.shutdown_grace;
    match tokio::time::timeout(grace, drained.recv()).await {
        Ok(_) => tracing::debug!(listener = name, "connections drained"),
        Err(_) => {
            tracing::warn!(
                listener = name,
                ?grace,
                "shutdown grace passed with connections still open; closing them"
            );
            let _ = cut_tx.send(true);
        }
    }
}

/// One connection's share of the listener's limits, given back when dropped.
struct Held {
    _permit: OwnedSemaphorePermit,
    _client: ClientSlot,
    _open: metrics::Connection,
    _drain: mpsc::Sender<()>,
}

pin_project_lite::pin_project! {
    /// A socket that holds its connection's [`Held`] share for as long as it exists.
    pub(super) struct Guarded<T> {
        #[pin]
        io: T,
        held: Held,
    }
}

impl<T: AsyncRead> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
