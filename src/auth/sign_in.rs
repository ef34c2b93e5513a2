//! Sign-in: starting it (`login.rs`: the redirect to Entra ID's authorize endpoint, the
//! challenge for a protected route, `/.auth/login`) and finishing it (`callback.rs`: the
//! callback, code redemption, ID token checks, the new session).
//!
//! What an unauthenticated client can make the proxy spend is bounded twice:
//!
//! - `/.auth/login` and the callback take a token from the client address's bucket
//!   (`throttle.rs`, `[sign_in] rate_limit` and `burst`); an empty bucket is a 429 with
//!   `Retry-After`. The redirect to sign in from a protected route is not counted: it writes
//!   nothing and calls no one, and the callback it leads to is counted.
//! - Code redemptions (token call, ID token check, Graph on overage) hold one of
//!   `max_concurrent_redemptions` slots. A callback waits at most [`REDEMPTION_WAIT`] for one,
//!   then gets 503 with `Retry-After`, before its state is marked used, so loading it again
//!   still works. Waiting longer would only pile up requests behind a slow provider.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::throttle::{Throttle, Verdict};
use super::SignInError;
use crate::audit::{self, Event};
use crate::config::SignInConfig;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::oidc::Provider;
use crate::seal::{Purpose, Sealer};
use crate::session::{Active, Sessions};

/// How long a callback waits for a redemption slot.
pub const REDEMPTION_WAIT: Duration = Duration::from_secs(1);

/// What signing in needs: the provider, the sessions it creates, the sealer of the pending
/// sign-in cookie, and the bounds on what clients can make it spend.
pub struct SignIn {
    pub(super) provider: Arc<Provider>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) sealer: Sealer,
    throttle: Throttle,
    redemptions: Semaphore,
}

/// Which rate-limited endpoint a request is for (the `reason` of its audit event).
#[derive(Debug, Clone, Copy)]
pub(super) enum Endpoint {
    Login,
    Callback,
}

impl SignIn {
    pub fn new(
        provider: Arc<Provider>,
        sessions: Arc<Sessions>,
        secrets: &[Vec<u8>],
        config: &SignInConfig,
    ) -> SignIn {
        SignIn {
            provider,
            sessions,
            sealer: Sealer::new(secrets, Purpose::SignIn),
            throttle: Throttle::new(config.rate_limit, config.burst),
            redemptions: Semaphore::new(config.max_concurrent_redemptions),
        }
    }

    /// The session cookie's name (pending sign-in cookies are named after it).
    pub(super) fn cookie_name(&self) -> &str {
        &self.sessions.config().cookie_name
    }

    /// Takes a token from the client's bucket, or refuses the request with 429.
    pub(super) fn admit(&self, ctx: &RequestCtx<'_>, endpoint: Endpoint) -> Result<(), ProxyError> {
        match self.throttle.check(ctx.client().client) {
            Verdict::Allowed => Ok(()),
            Verdict::Refused { retry_after, first } => {
                let reason = match endpoint {
                    Endpoint::Login => "login",
                    Endpoint::Callback => "callback",
                };
                // One audit event per run of refusals; the access log has every request, with
                // the client address.
                if first {
                    audit::record(ctx.audit(), Event::SignInRateLimited, "", "", reason);
                } else {
                    crate::metrics::auth("sign_in_rate_limited", reason);
                }
                Err(ProxyError::TooManyRequests { retry_after })
            }
        }
    }

    /// The first of the browser's sessions (its cookie's IDs, in order) that is live and
    /// passes `wanted`.
    pub(super) async fn session_where(
        &self,
        headers: &http::HeaderMap,
        wanted: impl Fn(&Active) -> bool,
    ) -> Result<Option<String>, ProxyError> {
        for id in super::cookies::session_ids(headers, self.cookie_name()) {
            let found = self
                .sessions
                .load(id)
                .await
                .map_err(ProxyError::StoreUnavailable)?;
            if found.is_some_and(|s| wanted(&s.session)) {
                return Ok(Some(id.to_owned()));
            }
        }
        Ok(None)
    }

    /// A redemption slot, waiting at most [`REDEMPTION_WAIT`].
    pub(super) async fn redemption_slot(&self) -> Result<SemaphorePermit<'_>, ProxyError> {
        match tokio::time::timeout(REDEMPTION_WAIT, self.redemptions.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (the semaphore is never closed).
            Ok(Err(_)) | Err(_) => Err(ProxyError::SignIn(SignInError::Busy)),
        }
    }
}
