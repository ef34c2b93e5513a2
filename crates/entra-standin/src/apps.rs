//! What an app registration adds beyond sign-in: the version of the access tokens its API
//! accepts, the application permissions an admin granted it, and its service principal.
//!
//! - An access token's shape follows the *resource's* manifest, `accessTokenAcceptedVersion`:
//!   `2` gives v2.0 tokens, `1` or `null` (Entra's default) v1.0 tokens (access-tokens).
//! - Application permissions (app roles of another app, or of Microsoft Graph, that an admin
//!   consented to) are what the client-credentials grant puts in `roles`
//!   (v2-oauth2-client-creds-grant-flow). Without any, Entra still issues a token — one with
//!   no `roles` at all, which an API must refuse.
//! - App-only tokens carry the object ID of the caller's service principal in the tenant as
//!   `oid` and `sub`; the stand-in derives it from the client ID so tests can predict it.

use sha2::{Digest, Sha256};

use super::scopes::GRAPH_APP_ID;

/// The manifest's `accessTokenAcceptedVersion` for an app that exposes an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenVersion {
    /// `1` or `null` (Entra's default for a new registration): issuer
    /// `https://sts.windows.net/{tid}/`, `aud` as the client asked for it (often
    /// `api://{client id}`), the caller in `appid`.
    V1,
    /// `2`, as the proxy's documentation asks: issuer `…/{tid}/v2.0`, `aud` = the client ID,
    /// the caller in `azp`.
    #[default]
    V2,
}

/// An application permission granted to a client: the app role `value` of the app
/// `resource` (a client ID, or Microsoft Graph's application ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPermission {
    pub resource: String,
    pub value: String,
}

impl AppPermission {
    /// A Microsoft Graph application permission, e.g. `GroupMember.Read.All`.
    pub fn graph(value: &str) -> AppPermission {
        AppPermission {
            resource: GRAPH_APP_ID.to_owned(),
            value: value.to_owned(),
        }
    }

    /// An app role of the registered API `client_id`.
    pub fn api(client_id: &str, value: &str) -> AppPermission {
        AppPermission {
            resource: client_id.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// The object ID of `client_id`'s service principal (stable, GUID-shaped).
pub fn service_principal_id(client_id: &str) -> String {
    let d = Sha256::digest(format!("service-principal|{client_id}").as_bytes());
    let h: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The roles `permissions` grant on `resource`.
pub(crate) fn roles_on(permissions: &[AppPermission], resource: &str) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for p in permissions.iter().filter(|p| p.resource == resource) {
        if !roles.contains(&p.value) {
            roles.push(p.value.clone());
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_principal_ids_are_stable_guids() {
        let a = service_principal_id("6731de76-14a6-49ae-97bc-6eba6914391e");
        assert_eq!(
            a,
            service_principal_id("6731de76-14a6-49ae-97bc-6eba6914391e")
        );
        assert!(super::super::config::is_guid(&a), "{a}");
        assert_ne!(a, service_principal_id("other"));
    }

    #[test]
    fn roles_are_those_granted_on_the_resource() {
        let granted = [
            AppPermission::graph("GroupMember.Read.All"),
            AppPermission::api("api-1", "Tasks.Read"),
            AppPermission::api("api-1", "Tasks.Read"),
        ];
        assert_eq!(roles_on(&granted, "api-1"), ["Tasks.Read"]);
        assert_eq!(roles_on(&granted, GRAPH_APP_ID), ["GroupMember.Read.All"]);
        assert!(roles_on(&granted, "api-2").is_empty());
    }
}
