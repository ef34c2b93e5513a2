//! Raw, serde-shaped configuration: exactly what the files (and environment) may say.
//!
//! Every struct denies unknown fields so a typo is an error rather than a silently ignored
//! key. Nothing here is trusted yet; `super::validate` turns these into checked types.

use serde::Deserialize;

/// The main file, `portcullis.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub tls: RawTls,
    pub routes: RawRoutesRef,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub http_listen: Option<String>,
    pub admin_listen: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub https_port: Option<u16>,
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub handshake_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert_file: String,
    pub key_file: String,
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutesRef {
    pub file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub connect_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle_per_host: Option<usize>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

/// The routing file, `routes.toml`. Parsed with `toml` directly (not the `config` crate) so
/// that errors carry line numbers and each route remembers where it was written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutesFile {
    #[serde(default)]
    pub route: Vec<toml::Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub host: String,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub upstream: String,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub strip_prefix: bool,
    pub timeout: Option<String>,
    pub auth: Option<String>,
    #[serde(default)]
    pub h2c: bool,
    pub ca_file: Option<String>,
}

fn default_prefix() -> String {
    "/".to_owned()
}
