//! Per-route authorization: may this signed-in user use this route?
//!
//! Decisions rest on immutable identifiers — `oid`, `tid`, group object IDs, app roles — as
//! Microsoft asks ("never on email or UPN", ENTRA.md §4, §9). `allowed_email_domains` exists for
//! migrations from oauth2-proxy and is documented as the weak check it is. Within one list any
//! entry admits; every non-empty list must admit.

use serde_json::Value;

use crate::config::PolicySpec;
use crate::identity::Identity;

/// Which requirement a user did not meet. The message is safe to show the user: it names the
/// requirement, never the values the route accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this application is limited to members of certain groups")]
    Groups,
    #[error("your group memberships could not be read (you are in more groups than a token can carry, and Microsoft Graph could not be asked)")]
    GroupsUnresolved,
    #[error("this application is limited to users holding certain app roles")]
    Roles,
    #[error("this application does not accept accounts from your organization")]
    Tenants,
    #[error("this application is limited to certain users")]
    Users,
    #[error("this application is limited to certain email domains")]
    EmailDomains,
    #[error("your account lacks a claim this application requires ({0})")]
    Claim(String),
}

impl Denied {
    /// The routing-file key of the failed requirement, for logs and metrics.
    pub fn requirement(&self) -> &'static str {
        match self {
            Denied::Groups | Denied::GroupsUnresolved => "allowed_groups",
            Denied::Roles => "allowed_roles",
            Denied::Tenants => "allowed_tenants",
            Denied::Users => "allowed_users",
            Denied::EmailDomains => "allowed_email_domains",
            Denied::Claim(_) => "require_claims",
        }
    }
}

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
