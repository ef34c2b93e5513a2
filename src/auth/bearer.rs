//! `auth = "bearer"`: APIs called with an Entra ID access token for this application.
//!
//! The token must be an access token (`verify.rs`: it names its client and carries `scp` or
//! `roles`; ID tokens are refused), v1.0 or v2.0 as the app's manifest says
//! (`accessTokenAcceptedVersion`), whose `aud` is one of `oidc.audiences` (the client ID and
//! `api://{client ID}` by default), signed by the provider, with the issuer and tenant rules
//! of its version. Tokens for other resources, Microsoft Graph's included, are refused: they
//! are not ours to read.
//!
//! A token announcing a groups overage is completed with the user's groups, read from
//! Microsoft Graph by the app itself (`oidc/directory.rs`); if Graph cannot be asked the
//! groups stay unknown and group policies deny.

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
        if overage {
            match self
                .provider
                .app_groups(identity.tid(), identity.oid())
                .await
            {
                Ok(groups) => {
                    identity
                        .claims
                        .insert("groups".into(), groups.to_vec().into());
                }
                Err(e) => {
                    tracing::warn!(oid = identity.oid(), tid = identity.tid(), error = %crate::error::chain(&e), "the groups of a bearer token's user could not be read from Microsoft Graph; group policies deny");
                    identity.groups_unresolved = true;
                }
            }
        }
        Ok(Principal::Bearer {
            identity,
            token: token.to_owned(),
        })
    }
}
