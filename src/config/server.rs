//! The `[server]` section of the main file: listeners, connection limits and deadlines, and the
//! `Strict-Transport-Security` value the HTTPS listener sends.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::HeaderValue;
use ipnet::IpNet;

use super::raw::RawServer;
use super::{duration, ConfigError};

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub http_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub trusted_proxies: Vec<IpNet>,
    /// The port browsers reach HTTPS on, for the plain-HTTP redirect (default: `listen`'s).
    pub https_port: u16,
    pub max_connections: usize,
    /// Open connections one client address may hold on a listener; 0 means no cap. Addresses
    /// in `trusted_proxies` are exempt: a load balancer carries many clients.
    pub max_connections_per_client: usize,
    pub max_header_bytes: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// A WebSocket tunnel with no bytes in either direction for this long is closed.
    pub websocket_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `Strict-Transport-Security` for every HTTPS answer that has none; `None`: not sent.
    pub hsts: Option<HeaderValue>,
}

const DEFAULT_HSTS: &str = "max-age=31536000";

pub(super) fn server(s: RawServer, file: &Path) -> Result<ServerConfig, ConfigError> {
    let addr = |key: &str, v: &str| {
        v.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                file,
                key,
                format!("a socket address like 0.0.0.0:8443, got {v:?}"),
            )
        })
    };
    let listen = addr("server.listen", &s.listen)?;
    let opt_addr = |key: &str, v: &Option<String>| match v.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => addr(key, v).map(Some),
    };
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in s.trusted_proxies.iter().enumerate() {
        trusted_proxies.push(parse_cidr(cidr).ok_or_else(|| {
            ConfigError::invalid(
                file,
                format!("server.trusted_proxies[{i}]"),
                format!("a CIDR like 10.0.0.0/8 or an IP address, got {cidr:?}"),
            )
        })?);
    }
    let positive = |key: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(ConfigError::invalid(file, key, "a number greater than 0")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let hsts_text = s.hsts.unwrap_or_else(|| DEFAULT_HSTS.to_owned());
    let hsts = hsts(&hsts_text).map_err(|()| {
        ConfigError::invalid(
            file,
            "server.hsts",
            format!(
                "a Strict-Transport-Security value: \"max-age=<seconds>\", optionally followed \
                 by \"; includeSubDomains\" and \"; preload\", or \"\" to send none; \
                 got {hsts_text:?}"
            ),
        )
    })?;
    Ok(ServerConfig {
        listen,
        http_listen: opt_addr("server.http_listen", &s.http_listen)?,
        admin_listen: opt_addr("server.admin_listen", &s.admin_listen)?,
        trusted_proxies,
        https_port: s.https_port.unwrap_or(listen.port()),
        max_connections: positive("server.max_connections", s.max_connections, 10_000)?,
        max_connections_per_client: s.max_connections_per_client.unwrap_or(256),
        max_header_bytes: header_limit(file, s.max_header_bytes)?,
        handshake_timeout: duration(file, "server.handshake_timeout", s.handshake_timeout, "10s")?,
        header_read_timeout: duration(
            file,
            "server.header_read_timeout",
            s.header_read_timeout,
            "10s",
        )?,
        idle_timeout: duration(file, "server.idle_timeout", s.idle_timeout, "5m")?,
        websocket_idle_timeout: duration(
            file,
            "server.websocket_idle_timeout",
            s.websocket_idle_timeout,
            "10m",
        )?,
        shutdown_grace: duration(file, "server.shutdown_grace", s.shutdown_grace, "30s")?,
        hsts,
    })
}

/// Checks a `Strict-Transport-Security` value (RFC 6797 §6.1): `max-age` first, with a
/// number of seconds, then at most one each of `includeSubDomains` and `preload`. Directive
/// names are case-insensitive. The empty string means "send none".
fn hsts(text: &str) -> Result<Option<HeaderValue>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut parts = text.split(';').map(str::trim);
    let max_age = parts.next().unwrap_or("");
    let seconds = max_age
        .get(..8)
        .filter(|name| name.eq_ignore_ascii_case("max-age="))
        .and_then(|_| max_age.get(8..))
        .unwrap_or("");
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let (mut subdomains, mut preload) = (false, false);
    for part in parts {
        let seen = if part.eq_ignore_ascii_case("includeSubDomains") {
            &mut subdomains
        } else if part.eq_ignore_ascii_case("preload") {
            &mut preload
        } else {
            return Err(());
        };
        if std::mem::replace(seen, true) {
            return Err(());
        }
    }
    HeaderValue::from_str(text).map(Some).map_err(|_| ())
}

fn header_limit(file: &Path, v: Option<usize>) -> Result<usize, ConfigError> {
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
    match v {
        None => Ok(64 * 1024),
        Some(n) if (8 * 1024..=1024 * 1024).contains(&n) => Ok(n),
        Some(n) => Err(ConfigError::invalid(
            file,
            "server.max_header_bytes",
            format!("a size from 8192 to 1048576 bytes, got {n}"),
        )),
    }
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::hsts;

    #[test]
    fn hsts_accepts_max_age_with_optional_directives() {
        for ok in [
            "max-age=0",
            "max-age=31536000",
            "Max-Age=63072000; includeSubDomains",
            "max-age=63072000; includeSubDomains; preload",
            "max-age=63072000;preload;includesubdomains",
        ] {
            let value = hsts(ok).unwrap().unwrap();
            assert_eq!(value, ok, "kept as written");
        }
    }

    #[test]
    fn empty_hsts_means_none() {
        assert_eq!(hsts(""), Ok(None));
        assert_eq!(hsts("  "), Ok(None));
    }

    #[test]
    fn hsts_refuses_anything_else() {
        for bad in [
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=1y",
            "max-age=\"60\"",
            "includeSubDomains; max-age=60",
            "max-age=60; includeSubDomains; includeSubDomains",
            "max-age=60; preload; preload",
            "max-age=60; max-age=70",
            "max-age=60;",
            "max-age=60; always",
            "max-age=60\nx",
        ] {
            assert_eq!(hsts(bad), Err(()), "{bad:?}");
        }
    }
}
