//! What `[oidc]` must look like to name a real Entra ID application, checked before the proxy
//! asks the network anything: the shipped placeholders filled in, a tenant and a client that
//! are IDs, and an authority on an Entra sign-in host. A provider other than Entra ID says so
//! with `provider = "other"` and skips the Entra rules.

use super::is_guid;

/// `oidc.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Microsoft Entra ID (the default): the authority, tenant and client ID rules apply.
    Entra,
    /// Another OpenID Connect provider: any https issuer, any client ID.
    Other,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Entra => "entra",
            Provider::Other => "other",
        }
    }

    pub(super) fn parse(value: Option<&str>) -> Result<Provider, String> {
        match value.unwrap_or("entra") {
            "entra" => Ok(Provider::Entra),
            "other" => Ok(Provider::Other),
            other => Err(format!("\"entra\" or \"other\", got {other:?}")),
        }
    }
}

/// The sign-in hosts of Entra ID: the public cloud, US Government, China (21Vianet, old and
/// new host) and External ID tenants (`<tenant>.ciamlogin.com`). ENTRA.md §1.
const ENTRA_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
];
const ENTRA_HOST_SUFFIXES: &[&str] = &[".ciamlogin.com"];

/// A value still holding one of the shipped placeholders (`<tenant-id>`,
/// `<application (client) id>`): the text between `<` and `>`.
pub(in crate::config) fn placeholder(value: &str) -> Option<&str> {
    let start = value.find('<')?;
    let end = value[start..].find('>')? + start;
    Some(&value[start..=end])
}

/// Whether `host` is an Entra sign-in host. Loopback hosts count: a stand-in for Entra ID on
/// the same machine (tests, `portcullis demo`).
pub(super) fn entra_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    ENTRA_HOSTS.contains(&host.as_str())
        || ENTRA_HOST_SUFFIXES.iter().any(|s| host.ends_with(s))
        || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

/// The tenant segment of an Entra authority: a tenant ID, a verified domain
/// (`contoso.onmicrosoft.com`), or `common` / `organizations` (multi-tenant).
pub(super) fn entra_tenant(tenant: &str) -> bool {
    is_guid(tenant)
        || matches!(tenant, "common" | "organizations")
        || (tenant.contains('.')
            && !tenant.starts_with('.')
            && !tenant.ends_with('.')
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
}
