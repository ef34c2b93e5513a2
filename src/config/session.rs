//! The `[session]` and `[redis]` sections of the main file: where sessions live, the secrets
//! that seal them, and the Redis connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::auth::{read_secret_file, secret, Secret};
use super::raw::{RawRedis, RawSession};
use super::{duration, ConfigError};

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreKind,
    /// Session secrets, each at least 32 bytes: the first encrypts, all decrypt. Empty means
    /// "generate one at start" (memory store only: sessions end with the process anyway).
    pub secrets: Vec<Secret>,
    pub cookie_name: String,
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    /// Refresh the access token when it expires within this long.
    pub refresh_before: Duration,
    /// How long a proxy instance may reuse a session it read from the store without reading it
    /// again. Deletions reach every instance at once through invalidation messages; this bounds
    /// the damage if one is missed.
    pub cache_ttl: Duration,
    pub memory_max_entries: usize,
}

/// `[redis]`: how to reach Redis. The store (`store/redis.rs`) takes it as it is.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://`, `rediss://` (TLS), with optional `user:password@` (ACL) and `/db`; also
    /// `redis-cluster://` and `redis-sentinel://` as fred parses them. May carry a password,
    /// so it is a secret too.
    pub url: Secret,
    /// Overrides the URL's user name.
    pub username: Option<String>,
    /// Overrides the URL's password.
    pub password: Option<Secret>,
    /// Prepended to every key, and to the invalidation channel's name.
    pub key_prefix: String,
    /// Connections for commands (one more is used for invalidations).
    pub pool_size: usize,
    /// Bound on each command, and on connecting: a dead Redis must never hang a request.
    pub command_timeout: Duration,
    /// Extra trust anchors (PEM) for `rediss://`, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM) for a Redis that asks for one
    /// (`tls-auth-clients`); both or neither.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Replicas that must have a session write before it counts (`WAIT`); 0: none.
    pub min_replicas_ack: usize,
    /// Password (the default) or Entra ID tokens (`redis_auth.rs`).
    pub auth: super::RedisAuth,
}

const DEFAULT_KEY_PREFIX: &str = "portcullis:";
const DEFAULT_POOL_SIZE: usize = 4;
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisConfig {
    /// `url` with every other key at its default, as in the file: prefix `portcullis:`,
    /// 4 connections, 2 s command timeout.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: Secret::new(url),
            username: None,
            password: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            ca_file: None,
            client_cert: None,
            min_replicas_ack: 0,
            auth: super::RedisAuth::Password,
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(self.url.expose()))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("min_replicas_ack", &self.min_replicas_ack)
            .field("auth", &self.auth)
            .finish()
    }
}

/// The URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable>".into(),
    }
}

/// The least a session secret may hold: 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

pub(super) fn session(
    raw: RawSession,
    file: &Path,
    base: &Path,
) -> Result<SessionConfig, ConfigError> {
    let store = match raw.store.as_deref().unwrap_or("memory") {
        "memory" => StoreKind::Memory,
        "redis" => StoreKind::Redis,
        other => {
            return Err(ConfigError::invalid(
                file,
                "session.store",
                format!("\"memory\" or \"redis\", got {other:?}"),
            ))
        }
    };
    let sources = [
        raw.secret.is_some(),
        raw.secrets.is_some(),
        raw.secret_file.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(ConfigError::invalid(
            file,
            "session.secret",
            "only one of secret, secrets and secret_file",
        ));
    }
    let (key, values): (&str, Vec<String>) = if let Some(f) = raw.secret_file {
        let text = read_secret_file(file, base, "session.secret_file", &f)?;
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        ("session.secret_file", lines)
    } else if let Some(list) = raw.secrets {
        ("session.secrets", list)
    } else {
        ("session.secret", raw.secret.into_iter().collect())
    };
    for (i, v) in values.iter().enumerate() {
        if v.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                file,
                key,
                format!(
                    "secrets of at least {MIN_SECRET_BYTES} bytes (entry {} has {}); generate one with `openssl rand -base64 48`",
                    i + 1,
                    v.len()
                ),
            ));
        }
    }
    if values.is_empty() && store == StoreKind::Redis {
        return Err(ConfigError::invalid(
            file,
            "session.secret_file",
            "a session secret shared by every instance (required with store = \"redis\")",
        ));
    }
    let cookie_name = raw
        .cookie_name
        .unwrap_or_else(|| "__Host-portcullis".to_owned());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ConfigError::invalid(
            file,
            "session.cookie_name",
            format!("a cookie name of letters, digits, '-', '_' and '.', got {cookie_name:?}"),
        ));
    }
    let max_lifetime = duration(file, "session.max_lifetime", raw.max_lifetime, "12h")?;
    let idle_timeout = duration(file, "session.idle_timeout", raw.idle_timeout, "1h")?;
    let cache_ttl = duration(file, "session.cache_ttl", raw.cache_ttl, "10s")?;
    if cache_ttl >= idle_timeout {
        return Err(ConfigError::invalid(
            file,
            "session.cache_ttl",
            "a duration shorter than session.idle_timeout",
        ));
    }
    Ok(SessionConfig {
        store,
        secrets: values.into_iter().map(Secret::new).collect(),
        cookie_name,
        max_lifetime,
        idle_timeout,
        refresh_before: duration(file, "session.refresh_before", raw.refresh_before, "5m")?,
        cache_ttl,
        memory_max_entries: match raw.memory_max_entries {
            Some(0) => {
                return Err(ConfigError::invalid(
                    file,
                    "session.memory_max_entries",
                    "a number greater than 0",
                ))
            }
            Some(n) => n,
            None => 100_000,
        },
    })
}

pub(super) fn redis(raw: RawRedis, file: &Path, base: &Path) -> Result<RedisConfig, ConfigError> {
    let url = secret(file, base, "redis.url", raw.url, raw.url_file)?
        .unwrap_or_else(|| Secret::new("redis://127.0.0.1:6379/0"));
    // The shipped `<cache-name>`: the placeholder alone is named, never the URL.
    if let Some(p) = super::auth::authority::placeholder(url.expose()) {
        return Err(ConfigError::invalid(
            file,
            "redis.url",
            format!("a real value in place of the shipped placeholder {p} (docs/operations.md)"),
        ));
    }
    let scheme = url.expose().split("://").next().unwrap_or("");
    if !matches!(
        scheme,
        "redis"
            | "rediss"
            | "redis-cluster"
            | "rediss-cluster"
            | "redis-sentinel"
            | "rediss-sentinel"
    ) || !url.expose().contains("://")
    {
        // Never echo the URL: it may hold a password.
        return Err(ConfigError::invalid(
            file,
            "redis.url",
            "a URL like redis://host:6379/0 or rediss://user@host:6380/0",
        ));
    }
    let key_prefix = raw
        .key_prefix
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
    if key_prefix.contains(char::is_whitespace) {
        return Err(ConfigError::invalid(
            file,
            "redis.key_prefix",
            "a prefix without spaces, like \"portcullis:\"",
        ));
    }
    Ok(RedisConfig {
        url,
        username: raw.username.filter(|u| !u.is_empty()),
        password: secret(
            file,
            base,
            "redis.password",
            raw.password,
            raw.password_file,
        )?,
        key_prefix,
        pool_size: match raw.pool_size {
            Some(0) => {
                return Err(ConfigError::invalid(
                    file,
                    "redis.pool_size",
                    "a number greater than 0",
                ))
            }
            Some(n) => n,
            None => DEFAULT_POOL_SIZE,
        },
        command_timeout: match raw.command_timeout {
            None => DEFAULT_COMMAND_TIMEOUT,
            t => duration(file, "redis.command_timeout", t, "")?,
        },
        ca_file: raw.ca_file.filter(|f| !f.is_empty()).map(|f| base.join(f)),
        client_cert: client_cert(raw.client_cert_file, raw.client_key_file, file, base)?,
        min_replicas_ack: raw.min_replicas_ack.unwrap_or(0),
        auth: super::RedisAuth::Password,
    })
}

/// `client_cert_file` and `client_key_file`: both or neither.
fn client_cert(
    cert: Option<String>,
    key: Option<String>,
    file: &Path,
    base: &Path,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (
        cert.filter(|f| !f.is_empty()),
        key.filter(|f| !f.is_empty()),
    ) {
        (Some(c), Some(k)) => Ok(Some((base.join(c), base.join(k)))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::invalid(
            file,
            "redis.client_key_file",
            "the key of redis.client_cert_file (PEM), set with it",
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            file,
            "redis.client_cert_file",
            "the certificate chain of redis.client_key_file (PEM), set with it",
        )),
    }
}
