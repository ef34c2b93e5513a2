//! Configuration: the main file (`portcullis.toml`, read with the `config` crate so every key
//! can be overridden by `PORTCULLIS__SECTION__KEY`) and the routing file (`routes.toml`,
//! re-read on change).
//!
//! ```text
//!  portcullis.toml ─┐                       routes.toml
//!  PORTCULLIS__* ───┴─▶ raw::RawConfig          │ toml (spans → line numbers)
//!                          │ validate()          ▼
//!                          ▼               raw::RawRoutesFile
//!                       Config                  │ routes::validate()
//!                                               ▼
//!                                         Routing ──▶ route::RouteTable (runtime)
//! ```
//!
//! Raw structs deny unknown fields; validation turns strings into typed values and every
//! failure names the file, the key and what was expected. Relative paths are resolved against
//! the directory of the file that names them.

mod assertion;
pub mod auth;
mod env;
mod errors;
pub mod managed_identity;
pub mod pages;
mod raw;
pub mod redis_auth;
pub mod routes;
pub mod server;
pub mod session;
pub mod sign_in;
mod telemetry;

pub use telemetry::{Sampler, TelemetryConfig};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use assertion::AssertionConfig;
pub use auth::{is_guid, OidcConfig, Secret, UserClaim};
pub use env::{EnvOverrides, ENV_PREFIX};
pub use managed_identity::ManagedIdentityConfig;
pub use pages::PagesConfig;
pub use redis_auth::{AppCredential, EntraCredential, EntraRedisAuth, RedisAuth};
pub use routes::{
    AuthContext, AuthMode, GroupsFilter, HeaderPreset, HostPattern, PolicySpec, RouteSpec, Routing,
    UpstreamTarget,
};
pub use server::ServerConfig;
pub use session::{RedisConfig, SessionConfig, StoreKind};
pub use sign_in::SignInConfig;

/// The validated main configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file this came from (for messages and relative paths).
    pub file: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    /// The routing file (always set for a configuration read from a file); `None` for one
    /// built in code, whose routes go to `App::build` directly.
    pub routes_file: Option<PathBuf>,
    pub upstream: UpstreamConfig,
    pub log: LogConfig,
    /// `[oidc]`; without it, only `auth = "public"` routes are accepted.
    pub oidc: Option<OidcConfig>,
    pub session: SessionConfig,
    pub redis: Option<RedisConfig>,
    /// `[sign_in]`: rate limit and redemption bound of sign-ins.
    pub sign_in: SignInConfig,
    pub telemetry: TelemetryConfig,
    /// `[assertion]`: signed identity assertions for routes with `assertion = true`.
    pub assertion: Option<AssertionConfig>,
    /// `[pages]`: the name, logo and support contact on the proxy's own pages.
    pub pages: PagesConfig,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The first entry is the default certificate, served when SNI matches no other.
    pub certificates: Vec<CertificateConfig>,
    /// Stateless TLS session tickets (`tls.session_tickets`), so that any number of returning
    /// clients can resume instead of a full handshake.
    pub session_tickets: bool,
}

#[derive(Debug, Clone)]
pub struct CertificateConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Lower-case names (`*.example.com` allowed); empty means "names in the certificate".
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration problem, always naming the file and, where there is one, the key; or, for
/// a value from the environment, the variable.
///
/// The causes are part of each message, not `source()`s, so `{:#}` prints them once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {error}", file.display())]
    Load {
        file: PathBuf,
        error: Box<config::ConfigError>,
    },
    #[error("{}: cannot read: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: `{key}`: expected {expected}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        expected: String,
    },
    /// A value set by a `PORTCULLIS__*` variable (the file may not even have the key).
    #[error("environment variable {var} (`{key}`): {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        file: &Path,
        key: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.to_owned(),
            key: key.into(),
            expected: expected.into(),
        }
    }
}

/// Loads and validates the main file plus the process's environment overrides. The routing
/// file is loaded separately (`routes::load`) because it reloads on its own.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let env = EnvOverrides::from_process().map_err(|env::NotUnicode(var)| ConfigError::Env {
        key: String::new(),
        var,
        message: "the value is not valid Unicode".to_owned(),
    })?;
    load_with_env(file, &env)
}

/// [`load`] with the given environment overrides instead of the process's.
pub fn load_with_env(file: &Path, env: &EnvOverrides) -> Result<Config, ConfigError> {
    if let Err(error) = std::fs::metadata(file) {
        return Err(ConfigError::Read {
            file: file.to_owned(),
            error,
        });
    }
    let load_err = |e| errors::from_config(file, env, e);
    let built = config::Config::builder()
        .add_source(config::File::from(file).format(config::FileFormat::Toml))
        .add_source(env.clone())
        .build()
        .map_err(load_err)?;
    let raw: raw::RawConfig = built.try_deserialize().map_err(load_err)?;
    if raw.routes.is_none() {
        return Err(ConfigError::invalid(
            file,
            "routes.file",
            "the routing file's path: [routes] file = \"routes.toml\"",
        ));
    }
    validate(raw, file).map_err(|e| errors::name_variable(e, env))
}

/// Where a configuration built in code says it came from, in its error messages.
const IN_CODE: &str = "(configuration built in code)";

impl Config {
    /// A configuration built in code (the demo, the benchmark, tests): HTTPS on `listen` with
    /// one certificate, every other key at its default, checked as a file would be. It has no
    /// routing file: routes go to `App::build`. Set fields afterwards as needed.
    pub fn new(
        listen: SocketAddr,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let raw = raw::RawConfig {
            server: raw::RawServer {
                listen: listen.to_string(),
                ..raw::RawServer::default()
            },
            tls: raw::RawTls {
                cert_file: Some(path(cert_file.into())),
                key_file: Some(path(key_file.into())),
                certificates: Vec::new(),
                session_tickets: None,
            },
            routes: None,
            upstream: raw::RawUpstream::default(),
            log: raw::RawLog::default(),
            oidc: None,
            session: raw::RawSession::default(),
            redis: None,
            sign_in: raw::RawSignIn::default(),
            telemetry: raw::RawTelemetry::default(),
            assertion: None,
            pages: raw::RawPages::default(),
        };
        validate(raw, Path::new(IN_CODE))
    }
}

impl OidcConfig {
    /// `[oidc]` built in code: the authority, the client and its secret (`None`: a public
    /// client), every other key at its default, checked as a file would be.
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<OidcConfig, ConfigError> {
        let raw = raw::RawOidc {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            ..raw::RawOidc::default()
        };
        auth::oidc(raw, Path::new(IN_CODE), Path::new(""))
    }
}

fn validate(raw: raw::RawConfig, file: &Path) -> Result<Config, ConfigError> {
    let base = base_dir(file);
    let server = server::server(raw.server, file)?;

    let mut certificates = Vec::new();
    match (raw.tls.cert_file, raw.tls.key_file) {
        (Some(c), Some(k)) => certificates.push(CertificateConfig {
            cert_file: base.join(c),
            key_file: base.join(k),
            server_names: Vec::new(),
        }),
        (None, None) => {}
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                file,
                "tls.key_file",
                "a key file to go with tls.cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                file,
                "tls.cert_file",
                "a certificate file to go with tls.key_file",
            ))
        }
    }
    for (i, c) in raw.tls.certificates.into_iter().enumerate() {
        let mut server_names = Vec::new();
        for name in c.server_names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !routes::valid_host_pattern(&name) || name == "*" {
                return Err(ConfigError::invalid(
                    file,
                    format!("tls.certificates[{i}].server_names"),
                    format!(
                        "host names like \"app.example.com\" or \"*.example.com\", got {name:?}"
                    ),
                ));
            }
            server_names.push(name);
        }
        certificates.push(CertificateConfig {
            cert_file: base.join(c.cert_file),
            key_file: base.join(c.key_file),
            server_names,
        });
    }
    if certificates.is_empty() {
        return Err(ConfigError::invalid(
            file,
            "tls.cert_file",
            "a certificate (tls.cert_file and tls.key_file, or [[tls.certificates]])",
        ));
    }
    let session_tickets = raw.tls.session_tickets.unwrap_or(true);

    let u = raw.upstream;
    let upstream = UpstreamConfig {
        connect_timeout: duration(file, "upstream.connect_timeout", u.connect_timeout, "5s")?,
        pool_idle_timeout: duration(
            file,
            "upstream.pool_idle_timeout",
            u.pool_idle_timeout,
            "4s",
        )?,
        pool_max_idle_per_host: u.pool_max_idle_per_host.unwrap_or(256),
        ca_file: u.ca_file.filter(|f| !f.is_empty()).map(|f| base.join(f)),
    };

    let format = match raw.log.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::invalid(
                file,
                "log.format",
                format!("\"text\" or \"json\", got {other:?}"),
            ))
        }
    };
    let level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(ConfigError::invalid(
            file,
            "log.level",
            format!("a level or filter like \"info\" or \"portcullis=debug,info\", got {level:?}"),
        ));
    }

    let oidc = raw.oidc.map(|o| auth::oidc(o, file, &base)).transpose()?;
    let session = session::session(raw.session, file, &base)?;
    let redis = raw
        .redis
        .map(|r| redis_auth::redis(r, file, &base, oidc.as_ref()))
        .transpose()?;
    let sign_in = sign_in::sign_in(raw.sign_in, file)?;
    let assertion = raw
        .assertion
        .map(|a| assertion::assertion(a, file, &base))
        .transpose()?;
    if assertion.is_some() && oidc.is_none() {
        return Err(ConfigError::invalid(
            file,
            "assertion",
            "an [oidc] section: assertions vouch for signed-in users",
        ));
    }
    let telemetry = telemetry::telemetry(raw.telemetry, file)?;
    if session.store == StoreKind::Redis && redis.is_none() {
        return Err(ConfigError::invalid(
            file,
            "redis.url",
            "a [redis] section: session.store is \"redis\"",
        ));
    }

    Ok(Config {
        file: file.to_owned(),
        server,
        tls: TlsConfig {
            certificates,
            session_tickets,
        },
        routes_file: raw.routes.map(|r| base.join(r.file)),
        upstream,
        log: LogConfig { format, level },
        oidc,
        session,
        redis,
        sign_in,
        telemetry,
        assertion,
        pages: pages::pages(raw.pages, file)?,
    })
}

/// The directory relative paths in `file` are resolved against.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`; `default` applies when the key is absent.
pub(crate) fn duration(
    file: &Path,
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(ConfigError::invalid(
            file,
            key,
            format!("a duration like \"30s\" or \"5m\", got {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests;
