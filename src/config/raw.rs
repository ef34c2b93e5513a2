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
    pub routes: Option<RawRoutesRef>,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub log: RawLog,
    pub oidc: Option<RawOidc>,
    #[serde(default)]
    pub session: RawSession,
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub sign_in: RawSignIn,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    pub assertion: Option<RawAssertion>,
    #[serde(default)]
    pub pages: RawPages,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    pub issuer: Option<String>,
    pub header: Option<String>,
    pub lifetime: Option<String>,
    #[serde(default)]
    pub key_files: Vec<String>,
    pub rotate_every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPages {
    pub product_name: Option<String>,
    pub logo_url: Option<String>,
    pub support: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sampler: Option<String>,
    pub sampler_arg: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub provider: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_certificate_file: Option<String>,
    pub client_key_file: Option<String>,
    pub client_assertion_file: Option<String>,
    pub client_assertion_source: Option<String>,
    pub managed_identity_client_id: Option<String>,
    pub managed_identity_imds_endpoint: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    pub ca_file: Option<String>,
    pub callback_path: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub graph_url: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub clock_skew: Option<String>,
    pub jwks_refresh: Option<String>,
    pub http_timeout: Option<String>,
    pub user_claim: Option<String>,
    #[serde(default)]
    pub oauth2_proxy_paths: bool,
    pub signin_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub store: Option<String>,
    pub secret: Option<String>,
    pub secrets: Option<Vec<String>>,
    pub secret_file: Option<String>,
    pub cookie_name: Option<String>,
    pub max_lifetime: Option<String>,
    pub idle_timeout: Option<String>,
    pub refresh_before: Option<String>,
    pub cache_ttl: Option<String>,
    pub memory_max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignIn {
    pub rate_limit: Option<String>,
    pub burst: Option<u32>,
    pub max_concurrent_redemptions: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub key_prefix: Option<String>,
    pub pool_size: Option<usize>,
    pub command_timeout: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    pub min_replicas_ack: Option<usize>,
    pub auth: Option<String>,
    pub entra_object_id: Option<String>,
    pub entra_credential: Option<String>,
    pub entra_client_id: Option<String>,
    pub entra_imds_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub http_listen: Option<String>,
    pub admin_listen: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub https_port: Option<u16>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub worker_threads: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub handshake_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub websocket_idle_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub admin_token_file: Option<String>,
    pub hsts: Option<String>,
    pub ready_requires_store: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    pub session_tickets: Option<bool>,
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
    pub case_sensitive_paths: bool,
    #[serde(default)]
    pub strip_headers: Vec<String>,
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
    pub headers: Option<String>,
    #[serde(default)]
    pub claims_headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub pass_access_token: bool,
    #[serde(default)]
    pub pass_tokens: bool,
    pub allowed_groups: Option<Vec<String>>,
    pub allowed_roles: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub allowed_users: Option<Vec<String>>,
    pub allowed_email_domains: Option<Vec<String>>,
    #[serde(default)]
    pub require_claims: std::collections::BTreeMap<String, Vec<String>>,
    pub required_scopes: Option<Vec<String>>,
    pub allowed_client_apps: Option<Vec<String>>,
    pub auth_context: Option<String>,
    pub cors_preflight: Option<String>,
    pub groups_filter: Option<GroupsFilterRaw>,
    #[serde(default)]
    pub assertion: bool,
    pub assertion_audience: Option<String>,
    #[serde(default)]
    pub allow_encoded_slashes: bool,
    #[serde(default)]
    pub allow_path_parameters: bool,
    #[serde(default)]
    pub allow_underscore_headers: Vec<String>,
}

fn default_prefix() -> String {
    "/".to_owned()
}

/// `groups_filter`: a list of group object IDs, or `"policy"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum GroupsFilterRaw {
    Named(String),
    List(Vec<String>),
}
