//! Header hygiene: what the proxy removes, replaces and adds on the way through.
//!
//! - Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection and never cross the proxy:
//!   `Connection`, every field `Connection` names, `Keep-Alive`, `Proxy-Connection`, `TE`
//!   (except `TE: trailers`, which gRPC needs end to end), `Transfer-Encoding`, `Upgrade`
//!   (re-added by the WebSocket tunnel when the request really upgrades).
//! - `X-Forwarded-For/-Proto/-Host`, `Forwarded` and `X-Real-IP` are believed only from peers
//!   in `server.trusted_proxies`; from anyone else they are replaced, never appended to, so a
//!   client cannot forge its address for the upstream's logs or IP allow-lists.
//! - `X-Request-Id` is kept from a trusted proxy when well-formed, otherwise generated.
//! - Client headers (`client.rs`): hop-by-hop fields, `_` names, identity families and URL
//!   overrides removed on every route before anything is added; then the signed-in user's
//!   identity headers (`identity.rs`). Names the proxy owns can never be configured as claims
//!   headers ([`is_reserved_header`]).

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
use http::HeaderMap;
use ipnet::IpNet;
use rand::RngCore;

pub mod client;
pub mod identity;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers a `claims_headers` entry may not name: they carry connection, routing or
/// credentials semantics the proxy owns.
pub fn is_reserved_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "cookie"
            | "authorization"
            | "proxy-authorization"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "content-type"
            | "forwarded"
            | "x-real-ip"
            | "x-request-id"
    ) || name.as_str().starts_with("x-forwarded-")
}

/// The bits of [`hop_by_hop_present`]'s answer that [`remove_hop_by_hop`] reads on their own.
const CONNECTION_BIT: u8 = 1;
const TE_BIT: u8 = 1 << 3;

/// The fixed hop-by-hop fields, each with its bit in [`hop_by_hop_present`]'s answer.
const HOP_BY_HOP: [(HeaderName, u8); 6] = [
    (CONNECTION, CONNECTION_BIT),
    (KEEP_ALIVE, 1 << 1),
    (PROXY_CONNECTION, 1 << 2),
    (TE, TE_BIT),
    (TRANSFER_ENCODING, 1 << 4),
    (UPGRADE, 1 << 5),
];

/// Which of the fixed hop-by-hop fields `headers` holds, as bits of [`HOP_BY_HOP`]: one pass
/// over the names, where a lookup per field would hash each one.
fn hop_by_hop_present(headers: &HeaderMap) -> u8 {
    headers.keys().fold(0, |bits, name| {
        bits | HOP_BY_HOP
            .iter()
            .find(|(hop, _)| hop == name)
            .map_or(0, |(_, bit)| *bit)
    })
}

/// Removes hop-by-hop fields, including those the `Connection` field names.
///
/// Most messages carry none of them, or only `Connection`: the names are read once, and only
/// the fields found are looked up and removed.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        // No `Connection` either, so no other field is named for removal.
        return;
    }
    if present & CONNECTION_BIT != 0 {
        remove_connection_named(headers);
    }
    let keeps_trailers = present & TE_BIT != 0
        && headers
            .get_all(TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    for (name, bit) in HOP_BY_HOP {
        if present & bit != 0 {
            headers.remove(name);
        }
    }
    if keeps_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes the fields the `Connection` field names (not `Connection` itself).
fn remove_connection_named(headers: &mut HeaderMap) {
    // The values, shared rather than copied (and almost always one), so that the names
    // they list are removed without a heap allocation.
    let mut connection = headers.get_all(CONNECTION).iter();
    let first = connection.next().cloned();
    let more: Vec<HeaderValue> = connection.cloned().collect();
    // Read as bytes: one non-ASCII byte in the value must not hide the names beside it.
    for name in first
        .iter()
        .chain(&more)
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
    {
        // `Connection: te` must not take away an end-to-end `TE: trailers` decision below.
        // A name that is not a header name (or not UTF-8) names nothing to remove.
        if !name.eq_ignore_ascii_case(b"te") {
            if let Ok(name) = std::str::from_utf8(name) {
                headers.remove(name);
            }
        }
    }
}

/// Who sent a request, as far as the proxy can tell.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy whose forwarding headers are kept.
    pub trusted: bool,
    /// The original client: the peer, or for a trusted peer the right-most address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    pub client: IpAddr,
}

impl ClientAddr {
    pub fn new(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> ClientAddr {
        let peer = canonical(peer);
        let is_trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
        let trusted = is_trusted(&peer);
        let mut client = peer;
        if trusted {
            // Right to left: each hop was appended by the proxy to its right. The walk stops
            // at the first address that is not a trusted proxy, and also at an entry it cannot
            // read: everything left of it may be client-written text.
            for hop in forwarded_for(headers).rev() {
                let Some(hop) = hop else { break };
                client = hop;
                if !is_trusted(&hop) {
                    break;
                }
            }
        }
        ClientAddr {
            peer,
            trusted,
            client,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `X-Forwarded-For` entries in order, `None` for one that is not an address. Accepts
/// `ip`, `ip:port` and `[ipv6]:port` (Azure Application Gateway appends the port).
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = Option<IpAddr>> + '_ {
    let hops: Vec<Option<IpAddr>> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(v) => v.split(',').map(|hop| parse_hop(hop.trim())).collect(),
            Err(_) => vec![None],
        })
        .collect();
    hops.into_iter()
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|sa| canonical(sa.ip()))
}

/// Sets `X-Forwarded-*` and `X-Real-IP` for the upstream. `host` is the request's host as the
/// client sent it (with port, if any).
pub fn set_forwarded(headers: &mut HeaderMap, addr: &ClientAddr, host: &str) {
    let peer = ip_value(addr.peer);
    // HeaderValue clones share their bytes.
    let peer_value = peer.clone();
    if addr.trusted {
        let chain = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let value = if chain.is_empty() {
            peer
        } else {
            HeaderValue::from_str(&format!("{chain}, {}", addr.peer)).unwrap_or(peer)
        };
        headers.insert(X_FORWARDED_FOR, value);
        if !headers.contains_key(X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        }
        if !headers.contains_key(X_FORWARDED_HOST) {
            set_host(headers, host);
        }
    } else {
        headers.remove(FORWARDED);
        headers.insert(X_FORWARDED_FOR, peer);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_host(headers, host);
    }
    let real = if addr.client == addr.peer {
        Some(peer_value)
    } else {
        Some(ip_value(addr.client))
    };
    if let Some(v) = real {
        headers.insert(X_REAL_IP, v);
    }
}

/// An address as header text: formatted on the stack and copied once into a buffer its
/// clones share (`X-Forwarded-For` and `X-Real-IP` carry the same one). An IPv4 address,
/// the common case, is written octet by octet with `itoa`: `Display` for `Ipv4Addr` goes
/// through the formatting machinery (padding support included) and cost about 1,000
/// instructions per request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    use std::io::Write;
    // Room for any `IpAddr`'s text (an IPv6 address is at most 45 characters).
    const ROOM: usize = 48;
    let mut buf = [0u8; ROOM];
    let mut rest = &mut buf[..];
    let written = match ip {
        IpAddr::V4(v4) => v4.octets().iter().enumerate().try_for_each(|(i, octet)| {
            if i > 0 {
                rest.write_all(b".")?;
            }
            rest.write_all(itoa::Buffer::new().format(*octet).as_bytes())
        }),
        IpAddr::V6(v6) => write!(rest, "{v6}"),
    };
    if written.is_err() {
        return HeaderValue::from_static("unknown");
    }
    let len = ROOM - rest.len();
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf).slice(..len))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

fn set_host(headers: &mut HeaderMap, host: &str) {
    match HeaderValue::from_str(host) {
        Ok(v) => headers.insert(X_FORWARDED_HOST, v),
        Err(_) => headers.remove(X_FORWARDED_HOST),
    };
}

/// The request ID: a trusted proxy's well-formed `X-Request-Id` (one field), or a new random
/// one.
///
/// Marked sensitive, which HTTP/2's encoder (h2) sends as a never-indexed literal (RFC 7541
/// §6.2.3) instead of adding it to the connection's HPACK table. A value unique to each request
/// gains nothing from that table; adding it made each response walk and compare every earlier
/// ID still in the table, then evict one. HTTP/1.1 ignores the mark.
pub fn request_id(headers: &HeaderMap, trusted: bool) -> HeaderValue {
    let mut id = chosen_request_id(headers, trusted);
    id.set_sensitive(true);
    id
}

fn chosen_request_id(headers: &HeaderMap, trusted: bool) -> HeaderValue {
    // Exactly one field: with two, which one the edge set is anyone's guess.
    let mut fields = headers.get_all(X_REQUEST_ID).iter();
    if let (true, Some(v), None) = (trusted, fields.next(), fields.next()) {
        let ok = (1..=128).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if ok {
            return v.clone();
        }
    }
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let mut hex = [0u8; 32];
    // Cannot fail: the buffer is exactly twice the length of the random bytes.
    let _ = hex::encode_to_slice(raw, &mut hex);
    // Owned by its buffer: the clones for the access log and the response share it.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(hex))
        .unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests;
