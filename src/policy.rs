//! Per-route authorization: may this signed-in user use this route?
//!
//! Decisions rest on immutable identifiers — `oid`, `tid`, group object IDs, app roles — as
//! Microsoft asks ("never on email or UPN", ENTRA.md §4, §9). `allowed_email_domains` exists for
//! migrations from oauth2-proxy and is documented as the weak check it is. Within one list any
//! entry admits; every non-empty list must admit.
//!
//! A request with an access token is also judged as a call from a client app
//! ([`authorize_caller`]): which app asked for the token (`azp` in v2, `appid` in v1) and which
//! delegated permissions it holds (`scp`), as Microsoft.Identity.Web's `RequiredScope` does. A
//! browser session has no such caller: the proxy itself signed the user in.

use serde_json::Value;

use crate::config::PolicySpec;
use crate::identity::Identity;

pub use crate::error::Denied;

/// Checks `id` against `spec`.
pub fn authorize(spec: &PolicySpec, id: &Identity) -> Result<(), Denied> {
    if !spec.tenants.is_empty() && !contains_ci(&spec.tenants, id.tid()) {
        return Err(Denied::Tenants);
    }
    if !spec.users.is_empty() && !contains_ci(&spec.users, id.oid()) {
        return Err(Denied::Users);
    }
    if !spec.groups.is_empty() {
        if id.groups_unresolved {
            return Err(Denied::GroupsUnresolved);
        }
        if !id.iter("groups").any(|g| contains_ci(&spec.groups, g)) {
            return Err(Denied::Groups);
        }
    }
    if !spec.roles.is_empty() && !id.iter("roles").any(|r| spec.roles.iter().any(|a| a == r)) {
        return Err(Denied::Roles);
    }
    if !spec.email_domains.is_empty() {
        let domain = id
            .str("email")
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        if !domain.is_some_and(|d| spec.email_domains.contains(&d)) {
            return Err(Denied::EmailDomains);
        }
    }
    for (claim, accepted) in &spec.claims {
        if !claim_matches(id.claims.get(claim), accepted) {
            // The name comes from the operator's routing file, not from the user.
            return Err(Denied::Claim(claim.clone()));
        }
    }
    Ok(())
}

/// Checks the client app of an access token, and its delegated permissions, against `spec`.
pub fn authorize_caller(spec: &PolicySpec, token: &Identity) -> Result<(), Denied> {
    if !spec.client_apps.is_empty() {
        let claim = if token.str("ver") == Some("1.0") {
            "appid"
        } else {
            "azp"
        };
        if !token
            .str(claim)
            .is_some_and(|app| contains_ci(&spec.client_apps, app))
        {
            return Err(Denied::ClientApps);
        }
    }
    if !spec.scopes.is_empty() {
        let held = token.str("scp").unwrap_or("");
        if !held
            .split_whitespace()
            .any(|s| spec.scopes.iter().any(|want| want == s))
        {
            return Err(Denied::Scopes);
        }
    }
    Ok(())
}

fn contains_ci(list: &[String], value: &str) -> bool {
    !value.is_empty() && list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

fn claim_matches(value: Option<&Value>, accepted: &[String]) -> bool {
    let one = |v: &Value| match v {
        Value::String(s) => accepted.iter().any(|a| a == s),
        Value::Bool(_) | Value::Number(_) => {
            let text = v.to_string();
            accepted.contains(&text)
        }
        _ => false,
    };
    match value {
        Some(Value::Array(items)) => items.iter().any(one),
        Some(v) => one(v),
        None => false,
    }
}

#[cfg(test)]
mod tests;
