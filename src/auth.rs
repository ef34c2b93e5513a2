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
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::identity::Identity;
use crate::oidc::Provider;
use crate::request::Target;
use crate::seal::{Purpose, Sealer};
use crate::session::refresh::Freshness;
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
        preset: crate::headers::identity::HeaderPreset,
    ) -> std::borrow::Cow<'_, [(http::HeaderName, http::HeaderValue)]> {
        use crate::headers::identity::preset_headers;
        use crate::headers::identity::HeaderPreset;
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

pub use crate::error::SignInError;

/// Everything sign-in needs.
pub struct Auth {
    provider: Arc<Provider>,
    sessions: Arc<Sessions>,
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

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.sessions.config().cookie_name
    }

    /// Answers the reserved `/.auth/*` paths (and the callback); `None` for every other path.
    pub async fn reserved<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx,
    ) -> Option<Result<Response<Body>, ProxyError>> {
        let path = req.uri().path();
        if path == self.provider.config.callback_path {
            return Some(self.callback(req, ctx).await);
        }
        Some(match path {
            "/.auth/login" => self.login_endpoint(req, target),
            "/.auth/logout" => self.logout(req, target, ctx).await,
            "/.auth/me" => self.me(req, ctx).await,
            "/.auth/frontchannel-logout" => self.frontchannel_logout(req, ctx).await,
            _ => return None,
        })
    }

    /// Runs the route's authentication.
    pub async fn authenticate<B>(
        &self,
        mode: AuthMode,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx,
    ) -> Result<Decision, ProxyError> {
        match mode {
            AuthMode::Public => Ok(Decision::Proceed(None)),
            AuthMode::Bearer => self
                .bearer(req.headers())
                .await
                .map(|p| Decision::Proceed(Some(p))),
            AuthMode::Login => match self.session(req.headers(), ctx).await? {
                Some(s) => Ok(Decision::Proceed(Some(Principal::Session(s)))),
                None => self.challenge(req, target),
            },
        }
    }

    /// The request's live session, renewed if due. `None`: no cookie, an unknown or ended
    /// session, or one the provider refused to renew.
    pub async fn session(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
    ) -> Result<Option<Arc<Session>>, ProxyError> {
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
            return match self
                .sessions
                .ensure_fresh(&self.provider, loaded, ctx.audit())
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
