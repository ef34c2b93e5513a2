//! HTTP/1.1 protocol upgrades (WebSocket): the request keeps `Connection: upgrade` and
//! `Upgrade`, and once the upstream answers 101 the two connections are joined byte for byte.

use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

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

/// Joins the client's and the upstream's upgraded connections until either side closes.
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade, route: String) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(route = %route, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => {
                tracing::debug!(route = %route, bytes_up = up, bytes_down = down, "upgraded connection closed")
            }
            Err(e) => {
                tracing::debug!(route = %route, error = %e, "upgraded connection ended with an error")
            }
        }
    });
}
