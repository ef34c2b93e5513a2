//! Starting a sign-in: the redirect to Entra ID's authorize endpoint.
//!
//! Each sign-in gets fresh `state`, `nonce` and PKCE verifier (256 random bits each; S256
//! challenge), `response_mode=query`, and a callback URL on the host the browser used. They
//! travel in a sealed cookie (`pending.rs`); Entra sees only the state, the nonce and the
//! challenge.
//!
//! Step-up: a route with `auth_context` asks for that Conditional Access authentication
//! context with the `claims` request parameter, both when a browser without a session signs
//! in and when a session lacks it (`acrs`). The pending sign-in remembers the context: the
//! callback accepts only an ID token whose `acrs` names it, and upgrades the browser's session
//! in place (`callback.rs`).

use http::header::{HeaderValue, CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};

use super::cookies::{self, MAX_PENDING};
use super::pending::{self, Pending};
use super::sign_in::{Endpoint, SignIn};
use super::{return_to, Decision};
use crate::body::{self, Body};
use crate::config::AuthContext;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::oidc::AuthorizeParams;
use crate::primitives::{now, random_token};
use crate::request::Target;

impl SignIn {
    /// No session, or one without the route's authentication context (`step_up`, with the
    /// session's `login_hint`): browsers go to sign in and come back here; others get 401.
    pub(super) fn challenge<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        auth_context: Option<&AuthContext>,
        login_hint: Option<&str>,
    ) -> Result<Decision, ProxyError> {
        let here = target.path_and_query.as_str();
        let back = return_to::safe(here, target.authority.as_str()).unwrap_or_else(|| "/".into());
        if !self.provider.is_ready() {
            return Err(ProxyError::ProviderUnavailable);
        }
        if super::is_navigation(req) {
            let ask = Ask {
                login_hint,
                domain_hint: None,
                auth_context,
            };
            return self.start(req, target, back, ask).map(Decision::Respond);
        }
        Err(ProxyError::SignInRequired {
            login_url: login_url(&back, auth_context),
        })
    }

    /// `GET /.auth/login?rd=/path[&login_hint=…][&domain_hint=…][&auth_context=c1]`.
    pub(super) fn login_endpoint<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        self.admit(ctx, Endpoint::Login)?;
        let mut rd = None;
        let mut login_hint = None;
        let mut domain_hint = None;
        let mut auth_context = None;
        for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match k.as_ref() {
                // `post_login_redirect_uri` (App Service's `/.auth/login/aad`) means the same.
                "rd" | "post_login_redirect_uri" | "post_login_redirect_url" => {
                    rd = Some(v.into_owned())
                }
                "login_hint" => login_hint = Some(v.into_owned()),
                "domain_hint" => domain_hint = Some(v.into_owned()),
                "auth_context" => {
                    auth_context = Some(AuthContext::parse(&v).ok_or(ProxyError::BadRequest(
                        "auth_context must be an authentication context ID, c1 to c99.",
                    ))?)
                }
                _ => {}
            }
        }
        let back = rd
            .and_then(|r| return_to::safe(&r, target.authority.as_str()))
            .unwrap_or_else(|| "/".into());
        // Hints are passed on only when they look like what Entra expects.
        let hint_ok = |h: &String| {
            h.len() <= 256
                && h.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        };
        if !self.provider.is_ready() {
            return Err(ProxyError::ProviderUnavailable);
        }
        let (login_hint, domain_hint) = (login_hint.filter(hint_ok), domain_hint.filter(hint_ok));
        let ask = Ask {
            login_hint: login_hint.as_deref(),
            domain_hint: domain_hint.as_deref(),
            auth_context: auth_context.as_ref(),
        };
        self.start(req, target, back, ask)
    }

    fn start<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        return_to: String,
        ask: Ask<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let p = Pending {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            return_to,
            redirect_uri: format!(
                "https://{}{}",
                canonical_authority(target),
                self.provider.config.callback_path
            ),
            expires_at: now() + pending::LIFETIME.as_secs(),
            auth_context: ask.auth_context.map(|c| c.id().to_owned()),
        };
        let url = self
            .provider
            .authorize_url(&AuthorizeParams {
                redirect_uri: &p.redirect_uri,
                state: &p.state,
                nonce: &p.nonce,
                pkce_verifier: &p.verifier,
                login_hint: ask.login_hint,
                domain_hint: ask.domain_hint,
                claims: ask.auth_context.map(AuthContext::id_token_claims),
            })
            .map_err(|_| ProxyError::ProviderUnavailable)?;
        let name = pending::cookie_name(self.cookie_name(), &p.state);
        let value = pending::seal(&self.sealer, &p, &name);

        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::FOUND;
        let h = resp.headers_mut();
        let location =
            HeaderValue::from_str(url.as_str()).map_err(|_| ProxyError::ProviderUnavailable)?;
        h.insert(LOCATION, location);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.append(SET_COOKIE, cookies::set(&name, &value, pending::LIFETIME));
        // Bound the cookies a browser collects from abandoned sign-ins.
        let open = cookies::pending_names(req.headers(), self.cookie_name());
        for stale in open.iter().take(open.len().saturating_sub(MAX_PENDING - 1)) {
            h.append(SET_COOKIE, cookies::clear(stale));
        }
        tracing::debug!(return_to = %p.return_to, "sign-in started");
        crate::audit::sign_in_started();
        Ok(resp)
    }
}

/// What a sign-in asks Entra for beyond signing in.
pub(super) struct Ask<'a> {
    login_hint: Option<&'a str>,
    domain_hint: Option<&'a str>,
    auth_context: Option<&'a AuthContext>,
}

/// `/.auth/login?rd=<path>[&auth_context=c1]`.
pub fn login_url(return_to: &str, auth_context: Option<&AuthContext>) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    match auth_context {
        Some(c) => format!("/.auth/login?rd={rd}&auth_context={}", c.id()),
        None => format!("/.auth/login?rd={rd}"),
    }
}

/// The host (lower case) and port the browser used: redirect URIs are matched exactly.
pub fn canonical_authority(target: &Target) -> String {
    match target.authority.port_u16() {
        Some(port) => format!("{}:{port}", target.host),
        None => target.host.clone(),
    }
}
