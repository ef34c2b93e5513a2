//! HTTP/1.1 protocol upgrades (WebSocket): the request keeps `Connection: upgrade` and
//! `Upgrade`, and once the upstream answers 101 the two connections are joined byte for byte
//! until either side closes, nothing moves for the listener's `websocket_idle_timeout`
//! (`upgrade/copy.rs`), or the shutdown grace passes.

mod copy;

use std::time::Duration;

use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use self::copy::Ended;

/// The protocol a request asks to upgrade to, if it is an HTTP/1.1 upgrade to WebSocket.
/// Other upgrades (`h2c`, `TLS/1.0`) are not forwarded: the upstream would switch to a
/// protocol whose requests the proxy never sees, route or authorize (h2c smuggling).
pub fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(UPGRADE).filter(|_| asks)?;
    protocol
        .as_bytes()
        .eq_ignore_ascii_case(b"websocket")
        .then(|| protocol.clone())
}

/// Restores the upgrade fields that hop-by-hop removal took away.
pub fn restore(headers: &mut http::HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// What the listener tells a tunnel about its limits, through the request's extensions
/// (the listener sets it on requests that carry `Upgrade`).
#[derive(Debug, Clone)]
pub struct TunnelLimits {
    /// A tunnel with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Turns true when the listener's shutdown grace has passed: the tunnel ends at once.
    pub cut: watch::Receiver<bool>,
}

/// For a tunnel whose request came without [`TunnelLimits`] (the server's default).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The client's side of an upgrade: hyper's pending connection and the tunnel's limits.
#[derive(Debug)]
pub struct ClientUpgrade {
    on: OnUpgrade,
    limits: Option<TunnelLimits>,
}

/// Takes the client's side of an upgrade out of `req` (in place of `hyper::upgrade::on`).
pub fn on<B>(req: &mut Request<B>) -> ClientUpgrade {
    ClientUpgrade {
        limits: req.extensions_mut().remove::<TunnelLimits>(),
        on: hyper::upgrade::on(req),
    }
}

/// Joins the client's and the upstream's upgraded connections until either side closes, the
/// tunnel is idle too long, or the listener cuts it.
pub fn tunnel(client: ClientUpgrade, upstream: OnUpgrade, route: String) {
    let ClientUpgrade { on, limits } = client;
    let (idle, mut cut) = match limits {
        Some(l) => (l.idle_timeout, Some(l.cut)),
        None => (DEFAULT_IDLE_TIMEOUT, None),
    };
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(on, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(route = %route, error = %e, "upgrade did not complete");
                return;
            }
        };
        let cut = async {
            match &mut cut {
                // A listener that went away without saying so cuts too.
                Some(cut) => drop(cut.wait_for(|c| *c).await),
                None => std::future::pending().await,
            }
        };
        let done = copy::join(TokioIo::new(client), TokioIo::new(upstream), idle, cut).await;
        let (up, down) = (done.up, done.down);
        match done.ended {
            Ended::Closed => {
                tracing::debug!(route = %route, bytes_up = up, bytes_down = down, "upgraded connection closed")
            }
            Ended::Idle => {
                tracing::debug!(route = %route, bytes_up = up, bytes_down = down, idle = ?idle, "upgraded connection closed: idle")
            }
            Ended::Cut => {
                tracing::debug!(route = %route, bytes_up = up, bytes_down = down, "upgraded connection cut at shutdown")
            }
            Ended::Failed(e) => {
                tracing::debug!(route = %route, error = %e, "upgraded connection ended with an error")
            }
        }
    });
}
