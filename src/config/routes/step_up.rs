//! `auth_context`: the Conditional Access authentication context (`c1` … `c99`) a route
//! requires. A session or access token whose `acrs` claim lacks it is stepped up: a browser
//! goes back through sign-in with the `claims` request parameter, an API client gets Entra's
//! claims challenge (`auth/step_up.rs`).

use std::path::Path;

use base64::Engine;

use super::AuthMode;
use crate::config::ConfigError;

/// A validated authentication context ID and the `claims` request values that ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    id: String,
    /// `{"id_token":{"acrs":{"essential":true,"value":"c1"}}}`, for `/authorize`.
    id_token_claims: String,
    /// The same for `access_token`, base64-encoded for a `WWW-Authenticate` claims challenge.
    access_token_challenge: String,
}

impl AuthContext {
    /// `c1` … `c99` (lower case, no leading zero), as Entra names them.
    pub fn parse(id: &str) -> Option<AuthContext> {
        let n = id.strip_prefix('c')?;
        let valid = !n.is_empty()
            && n.len() <= 2
            && !n.starts_with('0')
            && n.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| AuthContext {
            id: id.to_owned(),
            id_token_claims: claims_request("id_token", id),
            access_token_challenge: base64::engine::general_purpose::STANDARD
                .encode(claims_request("access_token", id)),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `claims` request parameter that asks Entra for this context in the ID token.
    pub fn id_token_claims(&self) -> &str {
        &self.id_token_claims
    }

    /// The base64 `claims` value of a `WWW-Authenticate: Bearer error="insufficient_claims"`
    /// challenge, which MSAL clients pass to `/authorize` as is.
    pub fn access_token_challenge(&self) -> &str {
        &self.access_token_challenge
    }

    /// Whether the token's `acrs` claim (an array, or one string) names this context.
    pub fn satisfied_by(&self, identity: &crate::identity::Identity) -> bool {
        identity.iter("acrs").any(|v| v == self.id)
    }
}

fn claims_request(token: &str, id: &str) -> String {
    serde_json::json!({ token: { "acrs": { "essential": true, "value": id } } }).to_string()
}

/// The route's `auth_context`: valid IDs only, and only on routes that sign users in.
pub(super) fn auth_context(
    value: Option<&str>,
    auth: AuthMode,
    file: &Path,
    key: &str,
) -> Result<Option<AuthContext>, ConfigError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let Some(ctx) = AuthContext::parse(v.trim()) else {
        return Err(ConfigError::invalid(
            file,
            key,
            format!(
                "an authentication context ID from \"c1\" to \"c99\" (Entra ID → Conditional Access → Authentication contexts), got {v:?}"
            ),
        ));
    };
    if auth == AuthMode::Public {
        return Err(ConfigError::invalid(
            file,
            key,
            "no auth_context on a public route: it needs auth = \"login\", \"bearer\" or \"login_or_bearer\"",
        ));
    }
    Ok(Some(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn ids_are_c1_to_c99() {
        for ok in ["c1", "c9", "c10", "c99"] {
            assert_eq!(AuthContext::parse(ok).unwrap().id(), ok);
        }
        for bad in [
            "", "c", "c0", "c01", "c100", "C1", "x1", "c1 ", "c-1", "c1a",
        ] {
            assert!(AuthContext::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_claims_request_asks_for_the_context_as_essential() {
        let c = AuthContext::parse("c7").unwrap();
        let v: serde_json::Value = serde_json::from_str(c.id_token_claims()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id_token": {"acrs": {"essential": true, "value": "c7"}}})
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(c.access_token_challenge())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["access_token"]["acrs"]["value"], "c7");
    }

    #[test]
    fn satisfied_only_by_an_acrs_that_names_it() {
        let c = AuthContext::parse("c2").unwrap();
        let with = |acrs: serde_json::Value| {
            let mut claims = serde_json::Map::new();
            claims.insert("acrs".into(), acrs);
            Identity::from_claims(claims)
        };
        assert!(c.satisfied_by(&with(serde_json::json!(["c1", "c2"]))));
        assert!(c.satisfied_by(&with(serde_json::json!("c2"))));
        assert!(!c.satisfied_by(&with(serde_json::json!(["c1", "c22"]))));
        assert!(!c.satisfied_by(&with(serde_json::json!([]))));
        assert!(!c.satisfied_by(&Identity::default()));
    }

    #[test]
    fn a_public_route_cannot_require_one() {
        let f = Path::new("routes.toml");
        assert!(auth_context(Some("c1"), AuthMode::Public, f, "k").is_err());
        let e = auth_context(Some("mfa"), AuthMode::Login, f, "route \"a\".auth_context")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("routes.toml") && e.contains("auth_context") && e.contains("c99"),
            "{e}"
        );
        assert!(auth_context(None, AuthMode::Public, f, "k")
            .unwrap()
            .is_none());
        assert_eq!(
            auth_context(Some("c3"), AuthMode::Bearer, f, "k")
                .unwrap()
                .unwrap()
                .id(),
            "c3"
        );
    }
}
