//! The tenant segment of every URL, the OpenID discovery document and the JWKS endpoint.
//!
//! Only directories the stand-in knows are served (`State::serves_tenant`), plus the
//! `common`, `organizations` and `consumers` authorities: like Entra, a GUID that names no
//! tenant is AADSTS90002 on every endpoint (reference-error-codes), so a proxy configured
//! with a mistyped tenant fails in the tests as it would in production.
//!
//! The document copies the shape of Entra's v2 metadata (v2-protocols-oidc). For the
//! multi-tenant authorities `common` and `organizations` the `issuer` is the literal template
//! `…/{tenantid}/v2.0`, which strict OIDC libraries reject: relying parties must substitute the
//! token's `tid` themselves. The stand-in reproduces that trap on purpose.

use http::StatusCode;
use serde_json::{json, Value};

use super::aadsts::{AadError, Diagnostics};
use super::config::is_guid;
use super::http::{cacheable_json, Resp};
use super::state::{Counters, State};

/// The tenant ID behind the `consumers` authority (personal Microsoft accounts).
pub(crate) const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// What the first path segment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tenant {
    /// A tenant GUID, lowercased.
    Id(String),
    Common,
    Organizations,
    Consumers,
}

impl Tenant {
    pub fn parse(segment: &str) -> Option<Tenant> {
        if is_guid(segment) {
            return Some(Tenant::Id(segment.to_ascii_lowercase()));
        }
        match segment.to_ascii_lowercase().as_str() {
            "common" => Some(Tenant::Common),
            "organizations" => Some(Tenant::Organizations),
            "consumers" => Some(Tenant::Consumers),
            _ => None,
        }
    }

    /// The tenant `segment` names, if the stand-in serves it; AADSTS90002 otherwise.
    pub fn resolve(state: &State, segment: &str) -> Result<Tenant, AadError> {
        match Tenant::parse(segment) {
            Some(Tenant::Id(id)) if !state.serves_tenant(&id) => {
                Err(AadError::unknown_tenant(segment))
            }
            Some(t) => Ok(t),
            None => Err(AadError::unknown_tenant(segment)),
        }
    }

    /// The path segment in its canonical form.
    pub fn segment(&self) -> &str {
        match self {
            Tenant::Id(id) => id,
            Tenant::Common => "common",
            Tenant::Organizations => "organizations",
            Tenant::Consumers => "consumers",
        }
    }

    /// The tenant ID in this authority's issuer, or the `{tenantid}` template.
    fn issuer_tenant(&self) -> &str {
        match self {
            Tenant::Id(id) => id,
            Tenant::Consumers => CONSUMERS_TENANT,
            Tenant::Common | Tenant::Organizations => "{tenantid}",
        }
    }

    /// The `issuer` advertised for this authority.
    pub fn issuer(&self, state: &State) -> String {
        state.issuer_for(self.issuer_tenant())
    }
}

/// The answer while `set_discovery_available(false)` is in force.
fn outage(state: &State, diag: &Diagnostics) -> Resp {
    AadError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        90006,
        "The service is temporarily unavailable.",
    )
    .response(&state.base_url, diag)
}

/// `GET /{t}/v2.0/.well-known/openid-configuration`
pub(crate) fn configuration(state: &State, segment: &str, diag: &Diagnostics) -> Resp {
    Counters::bump(&state.counters.discovery);
    if !state.discovery_up() {
        return outage(state, diag);
    }
    match Tenant::resolve(state, segment) {
        Ok(t) => cacheable_json(&document(state, &t)),
        Err(e) => e.response(&state.base_url, diag),
    }
}

/// `GET /{t}/discovery/v2.0/keys`
pub(crate) fn keys(state: &State, segment: &str, diag: &Diagnostics) -> Resp {
    Counters::bump(&state.counters.jwks);
    if !state.discovery_up() {
        return outage(state, diag);
    }
    match Tenant::resolve(state, segment) {
        Ok(t) => cacheable_json(&state.keys().jwks(&t.issuer(state))),
        Err(e) => e.response(&state.base_url, diag),
    }
}

/// `GET /{t}/.well-known/openid-configuration`: the v1 endpoint's metadata. Relying parties
/// that accept v1 access tokens read the v1 `issuer` here rather than assuming a host, as
/// Microsoft's `AadIssuerValidator` does.
pub(crate) fn configuration_v1(state: &State, segment: &str, diag: &Diagnostics) -> Resp {
    Counters::bump(&state.counters.discovery);
    if !state.discovery_up() {
        return outage(state, diag);
    }
    let t = match Tenant::resolve(state, segment) {
        Ok(t) => t,
        Err(e) => return e.response(&state.base_url, diag),
    };
    let base = &state.base_url;
    let seg = t.segment();
    cacheable_json(&json!({
        "token_endpoint": format!("{base}/{seg}/oauth2/token"),
        "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{seg}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": state.v1_issuer_for(t.issuer_tenant()),
        "authorization_endpoint": format!("{base}/{seg}/oauth2/authorize"),
        "end_session_endpoint": format!("{base}/{seg}/oauth2/logout"),
        "frontchannel_logout_supported": true,
        "http_logout_supported": true,
        "cloud_instance_name": "microsoftonline.com",
    }))
}

/// The discovery document for tenant `t`.
pub(crate) fn document(state: &State, t: &Tenant) -> Value {
    let base = &state.base_url;
    let seg = t.segment();
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
    let region = match t {
        Tenant::Id(_) => Value::from("EU"),
        _ => Value::Null,
    };
    json!({
        "token_endpoint": format!("{base}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": t.issuer(state),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{}/oidc/userinfo", state.graph_url),
        "authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
            "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
            "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "kerberos_endpoint": format!("{base}/{seg}/kerberos"),
        "tenant_region_scope": region,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        // Graph is served from the stand-in's own root too, so a client that derives Graph's
        // URL from `msgraph_host` (as sovereign-cloud support requires) reaches the emulation.
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_segments_parse_like_entra() {
        let id = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
        assert_eq!(Tenant::parse(id), Some(Tenant::Id(id.to_ascii_lowercase())));
        assert_eq!(Tenant::parse("Organizations"), Some(Tenant::Organizations));
        assert_eq!(Tenant::parse("common"), Some(Tenant::Common));
        assert_eq!(Tenant::parse("consumers"), Some(Tenant::Consumers));
        assert_eq!(Tenant::parse("contoso"), None);
        assert_eq!(Tenant::parse("72f988bf86f141af91ab2d7cd011db47"), None);
    }
}
