//! OpenID Connect discovery, done by hand for the one thing the `openidconnect` crate refuses:
//! Entra's `common` and `organizations` authorities publish the issuer as the template
//! `https://login.microsoftonline.com/{tenantid}/v2.0` (ENTRA.md §1).
//!
//! The metadata's issuer must match the configured authority: exactly for a tenant-ID
//! authority, as the `{tenantid}` template for a multi-tenant one, and as `/<GUID>/v2.0` on the
//! same host for a verified-domain authority (`contoso.onmicrosoft.com`), whose metadata names
//! the tenant by ID.
//!
//! The authority's v1 metadata (the same path without `/v2.0`) is read for one value: the
//! issuer of v1 access tokens, `https://sts.windows.net/{tid}/` in the public cloud and another
//! host in national clouds. Reading it, as Microsoft's `AadIssuerValidator` does, keeps hosts
//! out of the code; it must name the same tenant (or the same template) as the v2 issuer.

use serde::Deserialize;
use url::Url;

use crate::config::auth::is_guid;
use crate::config::OidcConfig;

/// The placeholder in a multi-tenant issuer.
pub const TENANT_TEMPLATE: &str = "{tenantid}";

/// What the proxy uses from the provider's metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// As published; contains `{tenantid}` for a multi-tenant authority.
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub end_session_endpoint: Option<Url>,
    /// The issuer of v1 access tokens (from the v1 metadata), in the same form as `issuer`.
    pub v1_issuer: Option<String>,
}

impl Metadata {
    /// The issuer a token from tenant `tid` must carry, if `tid` may sign in at all.
    pub fn issuer_for(&self, tid: &str) -> Option<String> {
        substitute(&self.issuer, tid)
    }

    /// The issuer a v1 access token from tenant `tid` must carry.
    pub fn v1_issuer_for(&self, tid: &str) -> Option<String> {
        substitute(self.v1_issuer.as_deref()?, tid)
    }

    /// The token endpoint for requests in tenant `tid`: a multi-tenant authority's endpoint
    /// names no tenant, and the client-credentials grant needs one.
    pub fn token_endpoint_for(&self, tid: &str) -> Option<Url> {
        if !self.issuer.contains(TENANT_TEMPLATE) {
            return Some(self.token_endpoint.clone());
        }
        if !is_guid(tid) {
            return None;
        }
        let mut url = self.token_endpoint.clone();
        let rest: Vec<String> = url.path_segments()?.skip(1).map(String::from).collect();
        url.path_segments_mut().ok()?.clear().push(tid).extend(rest);
        Some(url)
    }

    /// The tenant ID of a single-tenant issuer (`https://host/<tid>/v2.0`).
    pub fn tenant(&self) -> Option<String> {
        let url = Url::parse(&self.issuer).ok()?;
        let first = url.path_segments()?.next()?.to_ascii_lowercase();
        is_guid(&first).then_some(first)
    }
}

/// `template` with `tid` for its `{tenantid}`, if it has one (and `tid` is a tenant ID).
fn substitute(template: &str, tid: &str) -> Option<String> {
    if template.contains(TENANT_TEMPLATE) {
        is_guid(tid).then(|| template.replace(TENANT_TEMPLATE, tid))
    } else {
        Some(template.to_owned())
    }
}

#[derive(Deserialize)]
struct Raw {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    end_session_endpoint: Option<Url>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

/// Why metadata was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("discovery document is not valid provider metadata: {0}")]
    Shape(serde_json::Error),
    #[error("discovery issuer {found:?} does not match the configured authority {configured:?}")]
    Issuer { found: String, configured: String },
    #[error("the provider does not sign ID tokens with RS256")]
    Algorithm,
    #[error("endpoint {0} is not https")]
    Insecure(Url),
    #[error("the v1 metadata's issuer {0:?} is not the same tenant's v1 issuer")]
    V1Issuer(String),
}

/// The discovery URL of an authority.
pub fn discovery_url(config: &OidcConfig) -> String {
    format!("{}/.well-known/openid-configuration", config.issuer)
}

/// The discovery URL of the authority's v1 endpoint.
pub fn v1_discovery_url(config: &OidcConfig) -> String {
    let authority = config
        .issuer
        .strip_suffix("/v2.0")
        .unwrap_or(&config.issuer);
    format!("{authority}/.well-known/openid-configuration")
}

#[derive(Deserialize)]
struct RawV1 {
    issuer: String,
}

/// The v1 issuer from the v1 discovery document: `scheme://host/{tenant}/` naming the v2
/// issuer's tenant, or the `{tenantid}` template when the v2 issuer is one.
pub fn parse_v1(body: &[u8], v2: &Metadata) -> Result<String, MetadataError> {
    let raw: RawV1 = serde_json::from_slice(body).map_err(MetadataError::Shape)?;
    let tenant = if v2.issuer.contains(TENANT_TEMPLATE) {
        TENANT_TEMPLATE.to_owned()
    } else {
        v2.tenant()
            .ok_or_else(|| MetadataError::V1Issuer(raw.issuer.clone()))?
    };
    let origin = Url::parse(&raw.issuer)
        .ok()
        .filter(secure)
        .map(|u| u.origin().ascii_serialization());
    let named = origin.is_some_and(|o| {
        raw.issuer
            .to_ascii_lowercase()
            .strip_prefix(&o)
            .is_some_and(|path| path == format!("/{}/", tenant.to_ascii_lowercase()))
    });
    if named {
        Ok(raw.issuer)
    } else {
        Err(MetadataError::V1Issuer(raw.issuer))
    }
}

fn secure(u: &Url) -> bool {
    u.scheme() == "https"
        || (u.scheme() == "http"
            && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
}

/// Parses and checks a discovery document against the configuration.
pub fn parse(body: &[u8], config: &OidcConfig) -> Result<Metadata, MetadataError> {
    let raw: Raw = serde_json::from_slice(body).map_err(MetadataError::Shape)?;
    if !raw.id_token_signing_alg_values_supported.is_empty()
        && !raw
            .id_token_signing_alg_values_supported
            .iter()
            .any(|a| a == "RS256")
    {
        return Err(MetadataError::Algorithm);
    }
    let issuer = raw.issuer.trim_end_matches('/').to_owned();
    if !issuer_matches(&issuer, config) {
        return Err(MetadataError::Issuer {
            found: raw.issuer,
            configured: config.issuer.clone(),
        });
    }
    for u in [
        &raw.authorization_endpoint,
        &raw.token_endpoint,
        &raw.jwks_uri,
    ] {
        if !secure(u) {
            return Err(MetadataError::Insecure(u.clone()));
        }
    }
    Ok(Metadata {
        // Keep the published spelling: tokens carry exactly that (with any trailing slash).
        issuer: raw.issuer,
        authorization_endpoint: raw.authorization_endpoint,
        token_endpoint: raw.token_endpoint,
        jwks_uri: raw.jwks_uri,
        end_session_endpoint: raw.end_session_endpoint,
        v1_issuer: None,
    })
}

fn issuer_matches(found: &str, config: &OidcConfig) -> bool {
    let configured = config.issuer.as_str();
    let (Ok(c), Ok(f)) = (Url::parse(configured), Url::parse(found)) else {
        return false;
    };
    if c.scheme() != f.scheme() || c.host_str() != f.host_str() || c.port() != f.port() {
        return false;
    }
    let segments = |u: &Url| -> Vec<String> {
        u.path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    };
    let (cs, fs) = (segments(&c), segments(&f));
    if cs.len() != fs.len() || cs.is_empty() || cs[1..] != fs[1..] {
        return false;
    }
    let (tenant, published) = (cs[0].to_ascii_lowercase(), fs[0].as_str());
    if config.multi_tenant {
        // Url percent-encodes the braces of the template.
        published == "%7Btenantid%7D" || published == TENANT_TEMPLATE
    } else if is_guid(&tenant) {
        published.eq_ignore_ascii_case(&tenant)
    } else {
        // A verified-domain authority: the metadata names the tenant by its ID.
        is_guid(&published.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests;
