//! Sign-in: starting it (`login.rs`: the redirect to Entra ID's authorize endpoint, the
//! challenge for a protected route, `/.auth/login`) and finishing it (`callback.rs`: the
//! callback, code redemption, ID token checks, the new session).

use std::sync::Arc;

use crate::oidc::Provider;
use crate::seal::{Purpose, Sealer};
use crate::session::Sessions;

/// What signing in needs: the provider, the sessions it creates, and the sealer of the
/// pending sign-in cookie.
pub struct SignIn {
    pub(super) provider: Arc<Provider>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) sealer: Sealer,
}

impl SignIn {
    pub fn new(provider: Arc<Provider>, sessions: Arc<Sessions>, secrets: &[Vec<u8>]) -> SignIn {
        SignIn {
            provider,
            sessions,
            sealer: Sealer::new(secrets, Purpose::SignIn),
        }
    }

    /// The session cookie's name (pending sign-in cookies are named after it).
    pub(super) fn cookie_name(&self) -> &str {
        &self.sessions.config().cookie_name
    }
}
