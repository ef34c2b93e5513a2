//! Authentication: the request-path stage that decides who is asking, and the reserved
//! `/.auth/*` endpoints that sign users in and out. One part per job:
//!
//! - `auth = "login"`: `SessionAuth` finds the session the cookie names
//!   (`session_auth.rs`); a browser without one is sent to Entra ID by `SignIn`
//!   (`sign_in.rs`: `login.rs` starts, `callback.rs` finishes), an API client gets 401.
//! - `auth = "bearer"`: `Bearer` checks an Entra ID access token (`bearer.rs`).
//! - `auth = "login_or_bearer"`: a request carrying `Authorization: Bearer` is judged as on a
//!   bearer route and only so — a bad token is 401, never a fall-back to a session cookie
//!   the same request may carry (a stolen cookie must not rescue a forged token, nor a bad
//!   token silently act as the user) — any other request as on a login route. oauth2-proxy
//!   calls this `skip_jwt_bearer_tokens`.
//! - `auth_context` (step-up): a session or token whose `acrs` claim lacks the route's
//!   Conditional Access authentication context is not enough. A browser signs in again asking
//!   for it (`login.rs`, `callback.rs` upgrades the session in place); an API client gets 401
//!   with Entra's claims challenge (`WWW-Authenticate: Bearer error="insufficient_claims"`).
//! - `endpoints.rs`: the dispatcher for the reserved paths — `/.auth/login` and the callback
//!   (sign-in), `/.auth/logout` (which asks first unless the request comes from this host:
//!   `sign_out.rs`), `/.auth/me`, `/.auth/frontchannel-logout`.
//! - `handoff.rs`: one sign-in host for many app hosts (`oidc.signin_host`): the hand-off to
//!   it, the ticket it hands back, and `/.auth/ticket`, which redeems it.
//! - Helpers: `cookies.rs` (attributes, reading, stripping), `pending.rs` (the sealed
//!   pending sign-in), `return_to.rs` (open-redirect rules), `throttle.rs` (the per-client
//!   rate limit of sign-in), `setup.rs` (building it all).
//!
//! Failures are `ProxyError`s; `error.rs` turns them into answers.

mod bearer;
mod callback;
pub mod cookies;
mod endpoints;
mod handoff;
mod login;
pub mod pending;
pub mod return_to;
mod session_auth;
pub mod setup;
mod sign_in;
mod sign_out;
mod throttle;

use std::sync::Arc;

use http::header::ACCEPT;
use http::{Method, Request, Response};

use crate::body::Body;
use crate::config::{AuthMode, RouteSpec, SignInConfig};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::identity::Identity;
use crate::oidc::Provider;
use crate::request::Target;
use crate::session::{Active, Sessions};
use bearer::Bearer;
use session_auth::SessionAuth;
use sign_in::SignIn;

/// Who a request is from, once authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    Session(Arc<Active>),
    Bearer { identity: Identity, token: String },
}

impl Principal {
    pub fn identity(&self) -> &Identity {
        match self {
            Principal::Session(s) => &s.identity,
            Principal::Bearer { identity, .. } => identity,
        }
    }

    /// Who the access log names: a session's own `Arc` (no copy), or the token's subject.
    pub fn subject(&self) -> Arc<dyn crate::access_log::Subject> {
        match self {
            Principal::Session(s) => s.clone(),
            Principal::Bearer { identity, .. } => Arc::new(identity.clone()),
        }
    }

    /// The route preset's identity headers: built once per session value, or now for a
    /// bearer token.
    pub fn preset_headers(
        &self,
        preset: crate::headers::identity::HeaderPreset,
        user_claim: &str,
    ) -> std::borrow::Cow<'_, [(http::HeaderName, http::HeaderValue)]> {
        use crate::headers::identity::preset_headers;
        use crate::headers::identity::HeaderPreset;
        let slot = match preset {
            HeaderPreset::OAuth2Proxy => 0,
            HeaderPreset::EasyAuth => 1,
            HeaderPreset::OAuth2ProxyForwarded => 2,
            HeaderPreset::None => return std::borrow::Cow::Borrowed(&[]),
        };
        match self {
            Principal::Session(s) => std::borrow::Cow::Borrowed(
                s.memo().headers[slot]
                    .get_or_init(|| preset_headers(&s.identity, preset, user_claim)),
            ),
            Principal::Bearer { identity, .. } => {
                std::borrow::Cow::Owned(preset_headers(identity, preset, user_claim))
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

/// The authentication stage: one part per way of proving who is asking, and the `/.auth/*`
/// endpoints (`endpoints.rs`) on top of them.
pub struct Auth {
    provider: Arc<Provider>,
    sessions: Arc<Sessions>,
    sign_in: SignIn,
    session: SessionAuth,
    bearer: Bearer,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(
        provider: Arc<Provider>,
        sessions: Arc<Sessions>,
        secrets: &[Vec<u8>],
        sign_in: &SignInConfig,
    ) -> Auth {
        Auth {
            sign_in: SignIn::new(provider.clone(), sessions.clone(), secrets, sign_in),
            session: SessionAuth::new(provider.clone(), sessions.clone()),
            bearer: Bearer::new(provider.clone()),
            provider,
            sessions,
        }
    }

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The request's live session, if it has one (renewed if due).
    pub async fn session(
        &self,
        req_headers: &http::HeaderMap,
        ctx: &RequestCtx<'_>,
    ) -> Result<Option<Principal>, ProxyError> {
        Ok(self
            .session
            .lookup(req_headers, ctx)
            .await?
            .map(Principal::Session))
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        self.session.cookie_name()
    }

    /// Runs the route's authentication: its `auth` mode, the authentication context it
    /// requires, and a session that can pass its access token when the route does.
    pub async fn authenticate<B>(
        &self,
        route: &RouteSpec,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx<'_>,
    ) -> Result<Decision, ProxyError> {
        let auth_context = route.auth_context.as_ref();
        let by_token = match route.auth {
            AuthMode::Public => return Ok(Decision::Proceed(None)),
            AuthMode::Bearer => true,
            AuthMode::Login => false,
            AuthMode::LoginOrBearer => carries_bearer(req.headers()),
        };
        if by_token {
            // Boxed: token validation may fetch keys or ask Graph, a large future.
            let p = Box::pin(self.bearer.authenticate(req.headers())).await?;
            return match auth_context {
                Some(c) if !c.satisfied_by(p.identity()) => Err(ProxyError::InsufficientClaims {
                    challenge: c.access_token_challenge().to_owned(),
                }),
                _ => Ok(Decision::Proceed(Some(p))),
            };
        }
        match self.session.lookup(req.headers(), ctx).await? {
            Some(s) => match auth_context {
                Some(c) if !c.satisfied_by(&s.identity) => {
                    self.sign_in
                        .challenge(req, target, Some(c), s.login_hint.as_deref())
                }
                // Stored before a route passed access tokens, with no refresh token to get
                // one: a new sign-in gets it.
                _ if (route.pass_access_token || route.pass_tokens) && s.access_token.is_none() => {
                    self.sign_in
                        .challenge(req, target, auth_context, s.login_hint.as_deref())
                }
                _ => Ok(Decision::Proceed(Some(Principal::Session(s)))),
            },
            None => self.sign_in.challenge(req, target, auth_context, None),
        }
    }
}

/// Whether the request offers a bearer token: an `Authorization` field with the `Bearer`
/// scheme (RFC 6750 §2.1; the scheme is case-insensitive), well-formed or not.
pub fn carries_bearer(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|v| {
            let scheme = v
                .as_bytes()
                .split(|b| *b == b' ')
                .next()
                .unwrap_or_default();
            scheme.eq_ignore_ascii_case(b"bearer")
        })
}

/// Whether the proxy owns the upstream's `Authorization`, so that a client's must be removed
/// before anything else reads the request: on a route that passes the session's access token
/// (`pass_access_token`), unless the request is judged by its own bearer token — on a
/// `login_or_bearer` route that token is what the upstream receives.
pub fn owns_authorization(
    mode: AuthMode,
    pass_access_token: bool,
    headers: &http::HeaderMap,
) -> bool {
    pass_access_token
        && match mode {
            AuthMode::Login => true,
            AuthMode::LoginOrBearer => !carries_bearer(headers),
            AuthMode::Bearer | AuthMode::Public => false,
        }
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

impl crate::access_log::Subject for Active {
    fn oid(&self) -> &str {
        self.identity.oid()
    }
    fn tid(&self) -> &str {
        self.identity.tid()
    }
}

impl crate::access_log::Subject for Identity {
    fn oid(&self) -> &str {
        Identity::oid(self)
    }
    fn tid(&self) -> &str {
        Identity::tid(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::HeaderMap;

    fn with_authorization(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn any_bearer_scheme_makes_a_token_request() {
        for v in [
            &["Bearer x"][..],
            &["bearer"],
            &["BEARER  x"],
            &["Basic a", "Bearer b"],
        ] {
            assert!(carries_bearer(&with_authorization(v)), "{v:?}");
        }
        for v in [&[][..], &["Basic YTpi"], &["Bearerx y"], &["Negotiate abc"]] {
            assert!(!carries_bearer(&with_authorization(v)), "{v:?}");
        }
    }

    #[test]
    fn the_proxy_owns_authorization_only_where_it_passes_the_sessions_token() {
        let basic = with_authorization(&["Basic YTpi"]);
        let bearer = with_authorization(&["Bearer t"]);
        assert!(owns_authorization(AuthMode::Login, true, &bearer));
        assert!(owns_authorization(AuthMode::LoginOrBearer, true, &basic));
        assert!(!owns_authorization(AuthMode::LoginOrBearer, true, &bearer));
        assert!(!owns_authorization(AuthMode::Bearer, true, &bearer));
        for mode in [
            AuthMode::Login,
            AuthMode::LoginOrBearer,
            AuthMode::Bearer,
            AuthMode::Public,
        ] {
            assert!(!owns_authorization(mode, false, &basic), "{mode:?}");
        }
    }
}
