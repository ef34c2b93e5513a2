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
    /// Runtime worker threads; 0: one per CPU the process may use. One thread runs the
    /// single-threaded (current-thread) runtime.
    pub worker_threads: usize,
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
    /// The bearer token of the admin API (`POST /admin/sessions/revoke`); `None`: the API is
    /// off. Read at each call, so a rotated file takes effect at once.
    pub admin_token_file: Option<std::path::PathBuf>,
    /// `/readyz` fails while the session store does not answer (default). With false it only
    /// reports the store: a Redis outage then leaves every instance in the load balancer,
    /// serving public routes and cached sessions, while requests that need the store get 503.
    pub ready_requires_store: bool,
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
        worker_threads: match s.worker_threads {
            Some(n) if n > 1024 => {
                return Err(ConfigError::invalid(
                    file,
                    "server.worker_threads",
                    format!("0 (one per CPU) or a thread count up to 1024, got {n}"),
                ))
            }
            n => n.unwrap_or(0),
        },
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
        admin_token_file: admin_token_file(s.admin_token_file.as_deref(), file)?,
        ready_requires_store: s.ready_requires_store.unwrap_or(true),
    })
}

/// The least an admin token must hold: guessing it must be hopeless.
pub const ADMIN_TOKEN_MIN: usize = 32;

/// `admin_token_file`: resolved against the file's directory, and readable with a long
/// enough token now, so a typo fails at start rather than at the first revoke.
fn admin_token_file(
    value: Option<&str>,
    file: &Path,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let path = super::base_dir(file).join(value);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= ADMIN_TOKEN_MIN => Ok(Some(path)),
        Ok(_) => Err(ConfigError::invalid(
            file,
            "server.admin_token_file",
            format!("a file holding a token of at least {ADMIN_TOKEN_MIN} characters (e.g. `openssl rand -hex 32`); {value:?} holds a shorter one"),
        )),
        Err(e) => Err(ConfigError::invalid(
            file,
            "server.admin_token_file",
            format!("a readable file holding the admin token; {value:?}: {e}"),
        )),
    }
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
    use super::{admin_token_file, hsts, ADMIN_TOKEN_MIN};

    #[test]
    fn the_admin_token_file_must_hold_a_long_token() {
        let dir = tempfile::TempDir::new().unwrap();
        let main = dir.path().join("portcullis.toml");
        std::fs::write(dir.path().join("long"), "a".repeat(ADMIN_TOKEN_MIN) + "\n").unwrap();
        std::fs::write(dir.path().join("short"), "secret\n").unwrap();
        assert_eq!(admin_token_file(None, &main).unwrap(), None);
        assert_eq!(admin_token_file(Some(""), &main).unwrap(), None);
        assert_eq!(
            admin_token_file(Some("long"), &main).unwrap().as_deref(),
            Some(dir.path().join("long").as_path())
        );
        for bad in ["short", "missing"] {
            let e = admin_token_file(Some(bad), &main).unwrap_err().to_string();
            assert!(
                e.contains("server.admin_token_file") && e.contains(bad),
                "{e}"
            );
            assert!(e.starts_with(&main.display().to_string()), "{e}");
        }
    }

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
