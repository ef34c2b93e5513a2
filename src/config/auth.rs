//! The `[oidc]` section of the main file (`session.rs` has `[session]` and `[redis]`), and the
//! secrets all three may hold.
//!
//! Secrets (`client_secret`, session secrets, the Redis password) may be written inline, given
//! in the environment (`PORTCULLIS__OIDC__CLIENT_SECRET`), or read from a `*_file` key (a
//! Kubernetes Secret mounted as a file). They are held in [`Secret`], whose `Debug` never shows
//! the value, so a config dump or an error message cannot leak one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawOidc;
use super::{duration, ConfigError};

pub(super) mod authority;
pub use authority::Provider;

/// A secret value from the configuration. `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[oidc]`: the Entra ID application and how its tokens are checked.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `provider`: Entra ID (the default) or another OpenID Connect provider.
    pub provider: Provider,
    /// The authority, without a trailing slash: `https://login.microsoftonline.com/{tenant}/v2.0`.
    pub issuer: String,
    /// Whether the authority is `common` or `organizations`: tokens from many tenants, whose
    /// issuer is checked by substituting `tid` into the metadata's `{tenantid}` template.
    pub multi_tenant: bool,
    pub client_id: String,
    /// How the proxy proves it is the application at the token endpoint.
    pub credential: Credential,
    pub scopes: Vec<String>,
    /// Lower-case tenant IDs accepted; empty means "the issuer's tenant" (single tenant only).
    pub allowed_tenants: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub callback_path: String,
    pub post_logout_redirect_uri: Option<String>,
    /// Microsoft Graph, for the groups overage (`https://graph.microsoft.com`; national clouds
    /// differ).
    pub graph_url: String,
    /// Audiences accepted on bearer tokens: the client ID and `api://{client_id}` by default.
    pub audiences: Vec<String>,
    pub clock_skew: Duration,
    pub jwks_refresh: Duration,
    pub http_timeout: Duration,
    /// The claim that names the user in `X-Auth-Request-User` and
    /// `X-MS-CLIENT-PRINCIPAL-NAME` (`user_claim`).
    pub user_claim: UserClaim,
    /// Also answer oauth2-proxy's `/oauth2/*` paths (`oauth2_proxy_paths`).
    pub oauth2_proxy_paths: bool,
    /// The one host every sign-in goes through (`signin_host`), lower case, without a port:
    /// its callback is the only redirect URI the app registration needs (`auth/handoff.rs`).
    pub signin_host: Option<String>,
}

/// Which claim names the user in the user headers. Display and logs only: policies use
/// `oid`, `tid`, groups and roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserClaim {
    /// `preferred_username`, then `upn`, then `email`, whichever the token has first.
    PreferredUsername,
    /// The object ID: immutable and unique in its tenant.
    Oid,
    Upn,
    /// Mutable, and not verified in every tenant (the "nOAuth" hazard): never an identity.
    Email,
}

impl UserClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            UserClaim::PreferredUsername => "preferred_username",
            UserClaim::Oid => "oid",
            UserClaim::Upn => "upn",
            UserClaim::Email => "email",
        }
    }
}

/// The client credential (ENTRA.md §7). Certificates and federated tokens are read from their
/// files at every token request, so rotated files take effect without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A public client (no credential): only for apps registered as such.
    None,
    /// `client_secret_post`.
    Secret(Secret),
    /// `private_key_jwt` signed with a certificate's key (PS256, `x5t#S256`).
    Certificate {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// A federated token (workload identity federation: AKS writes it to
    /// `AZURE_FEDERATED_TOKEN_FILE`) sent as the client assertion.
    FederatedToken { file: PathBuf },
    /// A managed identity's token for `api://AzureADTokenExchange` sent as the client
    /// assertion: the identity is a federated credential of the app registration
    /// (`client_assertion_source = "managed_identity"`).
    ManagedIdentity(super::ManagedIdentityConfig),
}

impl Credential {
    pub fn as_str(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Secret(_) => "client secret",
            Credential::Certificate { .. } => "certificate",
            Credential::FederatedToken { .. } => "federated token",
            Credential::ManagedIdentity(_) => "managed identity",
        }
    }
}

pub(super) fn oidc(mut raw: RawOidc, file: &Path, base: &Path) -> Result<OidcConfig, ConfigError> {
    let bad = |key: &str, expected: String| ConfigError::invalid(file, key, expected);
    let provider = Provider::parse(raw.provider.as_deref()).map_err(|e| bad("oidc.provider", e))?;
    for (key, value) in [
        ("oidc.issuer", &raw.issuer),
        ("oidc.client_id", &raw.client_id),
    ] {
        if let Some(p) = authority::placeholder(value) {
            return Err(bad(
                key,
                format!("a real value in place of the shipped placeholder {p} (docs/entra.md)"),
            ));
        }
    }
    let issuer = raw.issuer.trim().trim_end_matches('/').to_owned();
    let url = url::Url::parse(&issuer).map_err(|_| {
        bad(
            "oidc.issuer",
            format!("an https URL like \"https://login.microsoftonline.com/<tenant-id>/v2.0\", got {issuer:?}"),
        )
    })?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback))
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad(
            "oidc.issuer",
            format!("an https URL without query or fragment (plain http only on localhost), got {issuer:?}"),
        ));
    }
    let tenant = url
        .path_segments()
        .and_then(|mut s| s.next())
        .unwrap_or("")
        .to_ascii_lowercase();
    let entra = provider == Provider::Entra;
    if entra && !authority::entra_host(url.host_str().unwrap_or("")) {
        return Err(bad(
            "oidc.issuer",
            format!(
                "an Entra ID authority (https://login.microsoftonline.com/<tenant-id>/v2.0, or a \
                 national cloud's or External ID's sign-in host), got {issuer:?}; for another \
                 OpenID Connect provider set oidc.provider = \"other\""
            ),
        ));
    }
    let multi_tenant = entra && matches!(tenant.as_str(), "common" | "organizations");
    if entra && tenant == "consumers" {
        return Err(bad(
            "oidc.issuer",
            "a work or school tenant: personal Microsoft accounts (`consumers`) are not supported"
                .to_owned(),
        ));
    }
    if entra && !authority::entra_tenant(&tenant) {
        return Err(bad(
            "oidc.issuer",
            format!(
                "the tenant ID (GUID), a verified domain, `organizations` or `common` after the \
                 host, got {tenant:?} in {issuer:?}"
            ),
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(bad(
            "oidc.client_id",
            "the application (client) ID".to_owned(),
        ));
    }
    if entra && !is_guid(&raw.client_id.trim().to_ascii_lowercase()) {
        return Err(bad(
            "oidc.client_id",
            format!(
                "the application (client) ID, a GUID like \"00000000-0000-0000-0000-000000000000\", got {:?}",
                raw.client_id.trim()
            ),
        ));
    }
    let mut allowed_tenants = Vec::new();
    for (i, t) in raw.allowed_tenants.iter().enumerate() {
        let t = t.trim().to_ascii_lowercase();
        if !is_guid(&t) {
            return Err(bad(
                &format!("oidc.allowed_tenants[{i}]"),
                format!("a tenant ID (GUID), got {t:?}"),
            ));
        }
        allowed_tenants.push(t);
    }
    if multi_tenant && allowed_tenants.is_empty() {
        return Err(bad(
            "oidc.allowed_tenants",
            format!(
                "the tenant IDs to accept: the `{tenant}` authority admits users of any tenant"
            ),
        ));
    }
    let credential = credential(&mut raw, file, base)?;
    let scopes = raw.scopes.unwrap_or_else(|| {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    });
    if !scopes.iter().any(|s| s == "openid") {
        return Err(bad(
            "oidc.scopes",
            "a list that includes \"openid\"".to_owned(),
        ));
    }
    let callback_path = raw
        .callback_path
        .unwrap_or_else(|| "/.auth/callback".to_owned());
    if !callback_path.starts_with('/') || callback_path.contains(['?', '#', '\\']) {
        return Err(bad(
            "oidc.callback_path",
            format!("a path starting with \"/\", got {callback_path:?}"),
        ));
    }
    let post_logout_redirect_uri = match raw.post_logout_redirect_uri.as_deref() {
        None | Some("") => None,
        Some(u) if u.starts_with("https://") || u.starts_with('/') => Some(u.to_owned()),
        Some(u) => {
            return Err(bad(
                "oidc.post_logout_redirect_uri",
                format!("an https URL registered on the app, or a path like \"/\", got {u:?}"),
            ))
        }
    };
    let graph_url = raw
        .graph_url
        .unwrap_or_else(|| "https://graph.microsoft.com".to_owned())
        .trim_end_matches('/')
        .to_owned();
    if url::Url::parse(&graph_url).is_err() {
        return Err(bad(
            "oidc.graph_url",
            format!("a URL like \"https://graph.microsoft.com\", got {graph_url:?}"),
        ));
    }
    let client_id = raw.client_id.trim().to_owned();
    let audiences = raw
        .audiences
        .unwrap_or_else(|| vec![client_id.clone(), format!("api://{client_id}")]);
    Ok(OidcConfig {
        provider,
        issuer,
        multi_tenant,
        client_id,
        credential,
        scopes,
        allowed_tenants,
        ca_file: raw.ca_file.filter(|f| !f.is_empty()).map(|f| base.join(f)),
        callback_path,
        post_logout_redirect_uri,
        graph_url,
        audiences,
        clock_skew: duration(file, "oidc.clock_skew", raw.clock_skew, "5m")?,
        jwks_refresh: duration(file, "oidc.jwks_refresh", raw.jwks_refresh, "1h")?,
        http_timeout: duration(file, "oidc.http_timeout", raw.http_timeout, "10s")?,
        user_claim: match raw.user_claim.as_deref().unwrap_or("preferred_username") {
            "preferred_username" => UserClaim::PreferredUsername,
            "oid" => UserClaim::Oid,
            "upn" => UserClaim::Upn,
            "email" => UserClaim::Email,
            other => {
                return Err(bad(
                    "oidc.user_claim",
                    format!("\"preferred_username\", \"oid\", \"upn\" or \"email\", got {other:?}"),
                ))
            }
        },
        oauth2_proxy_paths: raw.oauth2_proxy_paths,
        signin_host: match raw.signin_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) => Some(plain_host(h).ok_or_else(|| {
                bad(
                    "oidc.signin_host",
                    format!("a host name like \"auth.example.com\" (no scheme, port or path), got {h:?}"),
                )
            })?),
        },
    })
}

/// `host` in lower case if it is a plain DNS host name: dot-separated labels of letters,
/// digits and inner hyphens.
fn plain_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    (host.len() <= 253 && host.split('.').all(label_ok)).then_some(host)
}

/// At most one of: a client secret, a certificate and its key, a federated token file.
fn credential(raw: &mut RawOidc, file: &Path, base: &Path) -> Result<Credential, ConfigError> {
    let bad = |key: &str, expected: String| ConfigError::invalid(file, key, expected);
    let client_secret = secret(
        file,
        base,
        "oidc.client_secret",
        raw.client_secret.take(),
        raw.client_secret_file.take(),
    )?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let cert = nonempty(raw.client_certificate_file.take());
    let key = nonempty(raw.client_key_file.take());
    let assertion = nonempty(raw.client_assertion_file.take());
    let managed = match nonempty(raw.client_assertion_source.take()).as_deref() {
        None => None,
        Some("managed_identity") => Some(super::managed_identity::parse(
            file,
            "oidc.managed_identity_client_id",
            raw.managed_identity_client_id.take(),
            "oidc.managed_identity_imds_endpoint",
            raw.managed_identity_imds_endpoint.take(),
        )?),
        Some(other) => {
            return Err(bad(
                "oidc.client_assertion_source",
                format!("\"managed_identity\" (or no key), got {other:?}"),
            ))
        }
    };
    if managed.is_none() {
        for key in [
            "managed_identity_client_id",
            "managed_identity_imds_endpoint",
        ] {
            let set = match key {
                "managed_identity_client_id" => &raw.managed_identity_client_id,
                _ => &raw.managed_identity_imds_endpoint,
            };
            if set.as_ref().is_some_and(|v| !v.trim().is_empty()) {
                return Err(bad(
                    &format!("oidc.{key}"),
                    "nothing unless client_assertion_source = \"managed_identity\"".to_owned(),
                ));
            }
        }
    }
    let given = [
        client_secret.is_some(),
        cert.is_some() || key.is_some(),
        assertion.is_some(),
        managed.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(bad(
            "oidc.client_secret",
            "one credential: a client secret, a certificate (client_certificate_file + client_key_file), a federated token (client_assertion_file) or a managed identity (client_assertion_source)".to_owned(),
        ));
    }
    if let Some(m) = managed {
        return Ok(Credential::ManagedIdentity(m));
    }
    Ok(match (client_secret, cert, key, assertion) {
        (Some(s), _, _, _) => Credential::Secret(s),
        (None, Some(c), Some(k), _) => Credential::Certificate {
            cert_file: base.join(c),
            key_file: base.join(k),
        },
        (None, Some(_), None, _) => {
            return Err(bad(
                "oidc.client_key_file",
                "the certificate's private key (PEM) to go with oidc.client_certificate_file"
                    .to_owned(),
            ))
        }
        (None, None, Some(_), _) => {
            return Err(bad(
                "oidc.client_certificate_file",
                "the certificate (PEM) to go with oidc.client_key_file".to_owned(),
            ))
        }
        (None, None, None, Some(a)) => Credential::FederatedToken { file: base.join(a) },
        (None, None, None, None) => Credential::None,
    })
}

/// A secret given inline (`key`) or in a file (`key_file`), not both.
pub(super) fn secret(
    file: &Path,
    base: &Path,
    key: &str,
    inline: Option<String>,
    from_file: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    match (
        inline.filter(|s| !s.is_empty()),
        from_file.filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            file,
            key,
            format!("either {key} or {key}_file, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret(v))),
        (None, Some(f)) => {
            let key_file = format!("{key}_file");
            let text = read_secret_file(file, base, &key_file, &f)?;
            let value = text.trim().to_owned();
            if value.is_empty() {
                return Err(ConfigError::invalid(
                    file,
                    key_file,
                    format!("a file holding the secret, but {f:?} is empty"),
                ));
            }
            Ok(Some(Secret(value)))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn read_secret_file(
    file: &Path,
    base: &Path,
    key: &str,
    name: &str,
) -> Result<String, ConfigError> {
    let path = base.join(name);
    std::fs::read_to_string(&path).map_err(|e| {
        ConfigError::invalid(
            file,
            key,
            format!(
                "a readable file, but {} cannot be read: {e}",
                path.display()
            ),
        )
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex (the shape of Entra tenant and object IDs).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests;
