//! `auth = "login"` for a request that carries a session cookie: the session it names, read
//! from the instance cache or the store, and renewed first if its access token is due.

use std::sync::Arc;

use http::HeaderMap;

use super::cookies;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::oidc::Provider;
use crate::session::refresh::Freshness;
use crate::session::{Active, Sessions};

/// Finds a request's session.
pub struct SessionAuth {
    provider: Arc<Provider>,
    sessions: Arc<Sessions>,
}

impl SessionAuth {
    pub fn new(provider: Arc<Provider>, sessions: Arc<Sessions>) -> SessionAuth {
        SessionAuth { provider, sessions }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.sessions.config().cookie_name
    }

    /// The request's live session, renewed if due. `None`: no cookie, an unknown or ended
    /// session, or one the provider refused to renew.
    pub async fn lookup(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx<'_>,
    ) -> Result<Option<Arc<Active>>, ProxyError> {
        for id in cookies::session_ids(headers, self.cookie_name()) {
            let Some(stored) = self
                .sessions
                .load(id)
                .await
                .map_err(ProxyError::StoreUnavailable)?
            else {
                continue;
            };
            return match self
                .sessions
                .ensure_fresh(&self.provider, stored, ctx.audit())
                .await
            {
                Freshness::Valid(s) => Ok(Some(s)),
                Freshness::Ended(_) => Ok(None),
                Freshness::Unavailable(why) => Err(ProxyError::RenewalUnavailable(why)),
            };
        }
        Ok(None)
    }
}
