//! The signed-in user: the claims of a validated ID token (or bearer access token), kept for
//! the session's life. Policies read it (`policy.rs`); the identity headers for the upstream
//! are rendered from it in `headers/identity.rs`. A leaf: it imports no other module.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of a signed-in user, as validated from an ID token (or a bearer access token).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    pub claims: Map<String, Value>,
    /// The token said "too many groups" (overage) and Microsoft Graph could not be asked, so
    /// `groups` is unknown. Group policies deny rather than guess.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_unresolved: bool,
}

/// Claims that only matter while validating a token, that are large and useless upstream, or
/// that must never reach an upstream: `sid` and `login_hint` (the session keeps them for
/// sign-out; with them an app could sign the user out of Entra, or learn the user's session).
/// The token's validity times (`iat`, `nbf`, `exp`) are checked at validation and mean nothing
/// after it: a session has lifetimes of its own, and an upstream shown the ID token's `exp`
/// would read a stale expiry.
const DROPPED_CLAIMS: &[&str] = &[
    "sid",
    "login_hint",
    "iat",
    "nbf",
    "exp",
    "nonce",
    "aio",
    "rh",
    "uti",
    "at_hash",
    "c_hash",
    "_claim_names",
    "_claim_sources",
];

/// Claims no header may carry, even from a session stored before they were dropped.
pub const NEVER_UPSTREAM: &[&str] = &["sid", "login_hint"];

impl Identity {
    /// Keeps the claims worth keeping for the session's life.
    pub fn from_claims(mut claims: Map<String, Value>) -> Identity {
        for c in DROPPED_CLAIMS {
            claims.remove(*c);
        }
        Identity {
            claims,
            groups_unresolved: false,
        }
    }

    pub fn str(&self, claim: &str) -> Option<&str> {
        self.claims.get(claim).and_then(Value::as_str)
    }

    pub fn oid(&self) -> &str {
        self.str("oid").unwrap_or("")
    }

    pub fn tid(&self) -> &str {
        self.str("tid").unwrap_or("")
    }

    /// `preferred_username`, falling back to `upn` and `email` (display only, never policy).
    pub fn username(&self) -> &str {
        self.str("preferred_username")
            .or_else(|| self.str("upn"))
            .or_else(|| self.str("email"))
            .unwrap_or("")
    }

    /// The user's name by `claim` (`oidc.user_claim`): `preferred_username` falls back as
    /// [`Identity::username`] does; others are the claim or nothing.
    pub fn user(&self, claim: &str) -> &str {
        match claim {
            "preferred_username" => self.username(),
            c => self.str(c).unwrap_or(""),
        }
    }

    /// The values of a claim as strings: one for a string, each string of an array.
    pub fn iter<'a>(&'a self, claim: &str) -> impl Iterator<Item = &'a str> + 'a {
        let (one, many) = match self.claims.get(claim) {
            Some(Value::String(s)) => (Some(s.as_str()), None),
            Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
            _ => (None, None),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub fn values(&self, claim: &str) -> Vec<&str> {
        self.iter(claim).collect()
    }

    pub fn groups(&self) -> Vec<&str> {
        self.values("groups")
    }

    pub fn roles(&self) -> Vec<&str> {
        self.values("roles")
    }

    /// A copy whose `groups` keeps only those in `keep` (lower-case object IDs).
    pub fn with_groups_in(&self, keep: &std::collections::HashSet<String>) -> Identity {
        let mut out = self.clone();
        if let Some(Value::Array(groups)) = out.claims.get_mut("groups") {
            groups.retain(|g| {
                g.as_str()
                    .is_some_and(|g| keep.contains(&g.to_ascii_lowercase()))
            });
        }
        out
    }

    /// A claim rendered as one header value: arrays comma-joined, other JSON as text.
    pub fn rendered(&self, claim: &str) -> Option<String> {
        match self.claims.get(claim)? {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_only_claims_are_dropped() {
        let claims = serde_json::json!({
            "oid": "00000000-0000-0000-0000-0000000000aa",
            "nonce": "n",
            "aio": "x",
            "at_hash": "h",
            "name": "José",
        });
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        let j = Identity::from_claims(claims);
        assert!(j.claims.get("nonce").is_none());
        assert!(j.claims.get("aio").is_none());
        assert!(j.claims.get("at_hash").is_none());
        assert_eq!(j.oid(), "00000000-0000-0000-0000-0000000000aa");
        assert_eq!(j.str("name"), Some("José"));
    }
}
