//! A sign-in in progress, kept in the browser that started it.
//!
//! The state, nonce, PKCE verifier, return path and callback URL are sealed (AES-256-GCM under
//! the sign-in key, bound to the cookie's name) into a cookie named after a hash of the state,
//! so parallel sign-ins in several tabs each keep their own and all complete. Nothing is stored
//! server-side until the callback: an unauthenticated flood cannot fill the session store.
//! The cookie lives 10 minutes, as long as Entra's authorization codes.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::cookies::SIGNIN_INFIX;
use crate::primitives::digest;
use crate::seal::Sealer;

/// How long a sign-in may take.
pub const LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Same-host path to return to (already checked by `return_to::safe`).
    pub return_to: String,
    /// The callback URL sent to /authorize; the token request must repeat it.
    pub redirect_uri: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The authentication context asked for (step-up): the ID token's `acrs` must name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_context: Option<String>,
    /// A sign-in on the sign-in host for an app host (`handoff.rs`): where its ticket goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Outbound>,
}

/// The app host a sign-in on the sign-in host hands the browser back to, and the state of the
/// hand-off that host started (the ticket is only good with it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outbound {
    /// `host[:port]`, as the browser named the app host.
    pub authority: String,
    pub state: String,
}

/// The cookie that holds the sign-in for `state`.
pub fn cookie_name(base: &str, state: &str) -> String {
    format!("{base}{SIGNIN_INFIX}{}", &digest(state)[..12])
}

pub fn seal(sealer: &Sealer, pending: &Pending, cookie: &str) -> String {
    let json = serde_json::to_vec(pending).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealer.seal(&json, cookie.as_bytes()))
}

/// `None` for anything that was not sealed by this proxy for this cookie.
pub fn open(sealer: &Sealer, value: &str, cookie: &str) -> Option<Pending> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    let json = sealer.open(&bytes, cookie.as_bytes())?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Purpose;

    fn pending() -> Pending {
        Pending {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/x".into(),
            redirect_uri: "https://h/.auth/callback".into(),
            expires_at: 1,
            auth_context: None,
            handoff: None,
        }
    }

    #[test]
    fn sealed_pending_opens_only_under_its_own_cookie_name() {
        let sealer = Sealer::new(&[[7u8; 32]], Purpose::SignIn);
        let a = cookie_name("__Host-p", "state-a");
        let b = cookie_name("__Host-p", "state-b");
        assert_ne!(a, b);
        let v = seal(&sealer, &pending(), &a);
        assert_eq!(open(&sealer, &v, &a), Some(pending()));
        assert_eq!(open(&sealer, &v, &b), None);
        assert_eq!(open(&sealer, "not base64!", &a), None);
        let mut tampered = v.into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&sealer, std::str::from_utf8(&tampered).unwrap(), &a),
            None
        );
    }
}
