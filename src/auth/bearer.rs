//! `auth = "bearer"`: APIs called with an Entra ID access token for this application.
//!
//! The token must be a JWT (v2.0: `accessTokenAcceptedVersion = 2` in the app manifest) whose
//! `aud` is one of `oidc.audiences` (the client ID and `api://{client ID}` by default), signed
//! by the provider, with the same issuer and tenant rules as ID tokens. Tokens for other
//! resources, Microsoft Graph's included, are refused: they are not ours to read.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use std::sync::Arc;

use super::Principal;
use crate::error::ProxyError;
use crate::identity::Identity;
use crate::oidc::{graph, Expect, Provider};

/// Checks the access token of a bearer route's request.
pub struct Bearer {
    provider: Arc<Provider>,
}

impl Bearer {
    pub fn new(provider: Arc<Provider>) -> Bearer {
        Bearer { provider }
    }

    /// The caller, from the request's one `Authorization: Bearer` token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ProxyError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let token = match (values.next(), values.next()) {
            (Some(v), None) => v
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, token) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .filter(|t| !t.is_empty())
                .ok_or(ProxyError::BearerRequired(None))?,
            _ => return Err(ProxyError::BearerRequired(None)),
        };
        if !self.provider.is_ready() {
            return Err(ProxyError::ProviderUnavailable);
        }
        let claims = self
            .provider
            .verify(token, Expect::AccessToken)
            .await
            .map_err(|e| match e {
                crate::oidc::VerifyError::KeysUnavailable => ProxyError::ProviderUnavailable,
                e => ProxyError::BearerRequired(Some(e)),
            })?;
        let overage = graph::has_overage(&claims);
        let mut identity = Identity::from_claims(claims);
        // An access token's overage cannot be resolved without a Graph token of our own.
        identity.groups_unresolved = overage;
        Ok(Principal::Bearer {
            identity,
            token: token.to_owned(),
        })
    }
}
