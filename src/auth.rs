//! Authentication: the request-path stage that decides who is asking, and the reserved
//! `/.auth/*` endpoints that sign users in and out.
//!
//! - `auth = "login"`: the session cookie names a session (`session.rs`); a browser without
//!   one is sent to Entra ID (`login.rs`), an API client gets 401. Tokens due for renewal are
//!   renewed before forwarding.
//! - `auth = "bearer"`: an Entra ID access token for this application (`bearer.rs`).
//! - Reserved on every host: `/.auth/login`, the callback (`callback.rs`), `/.auth/logout`,
//!   `/.auth/me` and `/.auth/frontchannel-logout` (`endpoints.rs`).
//!
//! Failures are `ProxyError`s; `error.rs` turns them into answers.

mod bearer;
mod callback;
pub mod cookies;
mod endpoints;
mod login;
pub mod pending;
pub mod return_to;
pub mod setup;

use std::sync::Arc;

use http::header::ACCEPT;
use http::{HeaderMap, Method, Request, Response};

use crate::body::Body;
use crate::config::AuthMode;
use crate::error::ProxyError;
use crate::identity::Identity;
use crate::oidc::Provider;
use crate::request::Target;
use crate::seal::{Purpose, Sealer};
use crate::session::refresh::Outcome;
use crate::session::{Session, Sessions};

/// Who a request is from, once authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    Session(Arc<Session>),
    Bearer { identity: Identity, token: String },
}

impl Principal {
    pub fn identity(&self) -> &Identity {
        match self {
            Principal::Session(s) => &s.identity,
            Principal::Bearer { identity, .. } => identity,
        }
    }

    /// The route preset's identity headers: built once per session value, or now for a
    /// bearer token.
    pub fn preset_headers(
        &self,
        preset: crate::config::HeaderPreset,
    ) -> std::borrow::Cow<'_, [(http::HeaderName, http::HeaderValue)]> {
        use crate::config::HeaderPreset;
        use crate::identity::preset_headers;
        let slot = match preset {
            HeaderPreset::OAuth2Proxy => 0,
            HeaderPreset::EasyAuth => 1,
            HeaderPreset::None => return std::borrow::Cow::Borrowed(&[]),
        };
        match self {
            Principal::Session(s) => std::borrow::Cow::Borrowed(
                s.memo.headers[slot].get_or_init(|| preset_headers(&s.identity, preset)),
            ),
            Principal::Bearer { identity, .. } => {
                std::borrow::Cow::Owned(preset_headers(identity, preset))
            }
        }
    }

    pub fn access_token(&self) -> Option<&str> {
        match self {
            Principal::Session(s) => s.access_token.as_deref(),
            Principal::Bearer { token, .. } => Some(token),
        }
    }
}

/// What the authentication stage decided.
pub enum Decision {
    /// Forward, as this principal (none on a public route).
    Proceed(Option<Principal>),
    /// Answer now (the redirect to sign in).
    Respond(Response<Body>),
}

/// Why signing in failed. Every variant is the client's or the provider's doing: 4xx, or 502/503
/// when the provider or store is at fault. Never 500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    #[error("the callback has no state")]
    MissingState,
    #[error("no sign-in in progress matches the callback's state")]
    UnknownState,
    #[error("the sign-in cookie does not match the callback")]
    Tampered,
    #[error("the sign-in took longer than 10 minutes")]
    Expired,
    #[error("the callback was used before")]
    Replayed,
    #[error("the callback has no code")]
    MissingCode,
    #[error("the provider answered {error}{}", aadsts.map(|c| format!(" (AADSTS{c})")).unwrap_or_default())]
    Provider { error: String, aadsts: Option<u32> },
    #[error("the token endpoint refused the code: {0}")]
    Redeem(crate::oidc::TokenError),
    #[error("the token endpoint gave no ID token")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(crate::oidc::VerifyError),
}

impl SignInError {
    pub fn status(&self) -> http::StatusCode {
        use crate::oidc::{TokenError, VerifyError};
        use http::StatusCode as S;
        match self {
            SignInError::MissingState
            | SignInError::UnknownState
            | SignInError::Tampered
            | SignInError::Expired
            | SignInError::Replayed
            | SignInError::MissingCode => S::BAD_REQUEST,
            SignInError::Provider { error, .. } => match error.as_str() {
                "access_denied" | "unauthorized_client" => S::FORBIDDEN,
                "login_required" | "interaction_required" | "consent_required" => S::UNAUTHORIZED,
                _ => S::BAD_REQUEST,
            },
            SignInError::Redeem(TokenError::Rejected { .. }) => S::BAD_REQUEST,
            SignInError::Redeem(TokenError::Misconfigured { .. }) => S::BAD_GATEWAY,
            SignInError::Redeem(TokenError::Unavailable(_)) => S::SERVICE_UNAVAILABLE,
            SignInError::Redeem(TokenError::Malformed(_)) => S::BAD_GATEWAY,
            SignInError::NoIdToken => S::BAD_GATEWAY,
            SignInError::IdToken(VerifyError::Tenant) => S::FORBIDDEN,
            SignInError::IdToken(VerifyError::KeysUnavailable) => S::SERVICE_UNAVAILABLE,
            SignInError::IdToken(_) => S::UNAUTHORIZED,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SignInError::MissingState => "sign_in_missing_state",
            SignInError::UnknownState => "sign_in_unknown_state",
            SignInError::Tampered => "sign_in_tampered",
            SignInError::Expired => "sign_in_expired",
            SignInError::Replayed => "sign_in_replayed",
            SignInError::MissingCode => "sign_in_missing_code",
            SignInError::Provider { .. } => "sign_in_provider_error",
            SignInError::Redeem(_) => "sign_in_redeem_failed",
            SignInError::NoIdToken => "sign_in_no_id_token",
            SignInError::IdToken(_) => "sign_in_invalid_id_token",
        }
    }

    /// Whether starting over can help (the page then offers a sign-in link).
    pub fn retryable(&self) -> bool {
        !matches!(self, SignInError::Provider { error, .. } if error == "access_denied")
    }

    /// What the user is told. Values from the callback URL are reduced to an error code and an
    /// AADSTS number, never echoed as free text (the URL is anyone's to write).
    pub fn public_message(&self) -> String {
        let again = "Start again from the application's address.";
        match self {
            SignInError::MissingState | SignInError::UnknownState => format!(
                "This sign-in link is not one this browser started, or it has expired. {again}"
            ),
            SignInError::Tampered => format!("The sign-in could not be verified. {again}"),
            SignInError::Expired => format!("The sign-in took too long. {again}"),
            SignInError::Replayed => format!("This sign-in link was already used. {again}"),
            SignInError::MissingCode => format!("Microsoft Entra ID sent no sign-in code. {again}"),
            SignInError::Provider { error, aadsts } => format!(
                "Microsoft Entra ID did not sign you in: {error}{}.",
                aadsts.map(|c| format!(" (AADSTS{c})")).unwrap_or_default()
            ),
            SignInError::Redeem(crate::oidc::TokenError::Unavailable(_)) => {
                "Microsoft Entra ID is not answering. Try again in a moment.".to_owned()
            }
            SignInError::Redeem(_) | SignInError::NoIdToken => {
                format!("Microsoft Entra ID refused to complete the sign-in. {again}")
            }
            SignInError::IdToken(crate::oidc::VerifyError::Tenant) => {
                "Accounts from your organization cannot sign in to this application.".to_owned()
            }
            SignInError::IdToken(_) => format!("Your sign-in could not be verified. {again}"),
        }
    }
}

/// Everything sign-in needs.
pub struct Auth {
    pub provider: Arc<Provider>,
    pub sessions: Arc<Sessions>,
    sign_in: Sealer,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(provider: Arc<Provider>, sessions: Arc<Sessions>, secrets: &[Vec<u8>]) -> Auth {
        Auth {
            provider,
            sessions,
            sign_in: Sealer::new(secrets, Purpose::SignIn),
        }
    }

    fn cookie_name(&self) -> &str {
        &self.sessions.config.cookie_name
    }

    /// Answers the reserved `/.auth/*` paths (and the callback); `None` for every other path.
    pub async fn reserved<B>(
        &self,
        req: &Request<B>,
        target: &Target,
    ) -> Option<Result<Response<Body>, ProxyError>> {
        let path = req.uri().path();
        if path == self.provider.config.callback_path {
            return Some(self.callback(req).await);
        }
        Some(match path {
            "/.auth/login" => self.login_endpoint(req, target),
            "/.auth/logout" => self.logout(req, target).await,
            "/.auth/me" => self.me(req).await,
            "/.auth/frontchannel-logout" => self.frontchannel_logout(req).await,
            _ => return None,
        })
    }

    /// Runs the route's authentication.
    pub async fn authenticate<B>(
        &self,
        mode: AuthMode,
        req: &Request<B>,
        target: &Target,
    ) -> Result<Decision, ProxyError> {
        match mode {
            AuthMode::Public => Ok(Decision::Proceed(None)),
            AuthMode::Bearer => self
                .bearer(req.headers())
                .await
                .map(|p| Decision::Proceed(Some(p))),
            AuthMode::Login => match self.session(req.headers()).await? {
                Some(s) => Ok(Decision::Proceed(Some(Principal::Session(s)))),
                None => self.challenge(req, target),
            },
        }
    }

    /// The request's live session, renewed if due. `None`: no cookie, an unknown or ended
    /// session, or one the provider refused to renew.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Option<Arc<Session>>, ProxyError> {
        for id in cookies::get_all(headers, self.cookie_name()) {
            if !looks_like_token(id) {
                continue;
            }
            let Some(loaded) = self
                .sessions
                .load(id)
                .await
                .map_err(ProxyError::StoreUnavailable)?
            else {
                continue;
            };
            return match self.sessions.ensure_fresh(&self.provider, loaded).await {
                Outcome::Valid(s) => Ok(Some(s)),
                Outcome::Ended(_) => Ok(None),
                Outcome::Unavailable(why) => Err(ProxyError::RenewalUnavailable(why)),
            };
        }
        Ok(None)
    }
}

/// A cookie value shaped like the proxy's IDs (43 base64url characters): anything else is not
/// worth a store lookup.
fn looks_like_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A top-level browser navigation, which can be sent to sign in; anything else (XHR, fetch,
/// API clients, non-GET) gets 401.
pub fn is_navigation<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    let accepts_html = h
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    let fetch_mode = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && accepts_html
        && !h.contains_key("x-requested-with")
        && fetch_mode.is_none_or(|m| m == "navigate")
}
