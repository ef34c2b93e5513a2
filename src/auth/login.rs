//! Starting a sign-in: the redirect to Entra ID's authorize endpoint.
//!
//! With `oidc.signin_host`, an app host hands the sign-in to the sign-in host instead, and
//! the sign-in host's `/.auth/login` may return to an app host (`handoff.rs`).
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

use http::{Request, Response};

use super::handoff::{found, redirect_setting, After};
use super::pending::{self, Outbound, Pending};
use super::sign_in::{Endpoint, SignIn};
use super::{return_to, Decision};
use crate::body::Body;
use crate::config::AuthContext;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::oidc::AuthorizeParams;
use crate::primitives::{now, random_token};
use crate::request::Target;
use crate::route::RouteTable;

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
            let resp = match self.signin_host_for(target) {
                Some(signin_host) => self.hand_off(req, target, signin_host, back, &ask),
                None => self.start(req, target, back, &ask, None),
            };
            return resp.map(Decision::Respond);
        }
        Err(ProxyError::SignInRequired {
            login_url: login_url(&back, auth_context),
        })
    }

    /// `GET /.auth/login?rd=/path[&login_hint=…][&domain_hint=…][&auth_context=c1]`. On the
    /// sign-in host (`oidc.signin_host`), `rd` may name an app host (`handoff.rs`).
    pub(super) async fn login_endpoint<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        routes: &RouteTable,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        self.admit(ctx, Endpoint::Login)?;
        let q = LoginQuery::parse(req.uri().query().unwrap_or(""))?;
        if !self.provider.is_ready() {
            return Err(ProxyError::ProviderUnavailable);
        }
        let ask = q.ask();
        if let Some(signin_host) = self.signin_host_for(target) {
            let back =
                q.rd.as_deref()
                    .and_then(|r| return_to::safe(r, target.authority.as_str()))
                    .unwrap_or_else(|| "/".into());
            return self.hand_off(req, target, signin_host, back, &ask);
        }
        let after = match (&q.rd, self.on_signin_host(target)) {
            (Some(rd), true) => self.after_login(rd, target, routes),
            (Some(rd), false) => return_to::safe(rd, target.authority.as_str()).map(After::Here),
            (None, _) => None,
        };
        match after.unwrap_or_else(|| After::Here("/".into())) {
            After::Here(back) => self.start(req, target, back, &ask, None),
            After::AppLogin { authority, path } => {
                let rd: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                Ok(found(&format!("https://{authority}/.auth/login?rd={rd}")))
            }
            After::AppHost(to) => match self.hand_back(req, &to, ask.auth_context).await? {
                Some(resp) => Ok(resp),
                None => self.start(req, target, "/".into(), &ask, Some(to)),
            },
        }
    }

    fn start<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        return_to: String,
        ask: &Ask<'_>,
        handoff: Option<Outbound>,
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
            handoff,
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
        tracing::debug!(return_to = %p.return_to, "sign-in started");
        crate::audit::sign_in_started();
        redirect_setting(req, self.cookie_name(), url.as_str(), &name, &value)
    }
}

/// The parameters of `/.auth/login`.
struct LoginQuery {
    rd: Option<String>,
    login_hint: Option<String>,
    domain_hint: Option<String>,
    auth_context: Option<AuthContext>,
}

impl LoginQuery {
    fn parse(query: &str) -> Result<LoginQuery, ProxyError> {
        let mut q = LoginQuery {
            rd: None,
            login_hint: None,
            domain_hint: None,
            auth_context: None,
        };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                // `post_login_redirect_uri` (App Service's `/.auth/login/aad`) means the same.
                "rd" | "post_login_redirect_uri" | "post_login_redirect_url" => {
                    q.rd = Some(v.into_owned())
                }
                "login_hint" => q.login_hint = Some(v.into_owned()),
                "domain_hint" => q.domain_hint = Some(v.into_owned()),
                "auth_context" => {
                    q.auth_context = Some(AuthContext::parse(&v).ok_or(ProxyError::BadRequest(
                        "auth_context must be an authentication context ID, c1 to c99.",
                    ))?)
                }
                _ => {}
            }
        }
        // Hints are passed on only when they look like what Entra expects.
        let hint_ok = |h: &String| {
            h.len() <= 256
                && h.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        };
        q.login_hint = q.login_hint.filter(hint_ok);
        q.domain_hint = q.domain_hint.filter(hint_ok);
        Ok(q)
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            login_hint: self.login_hint.as_deref(),
            domain_hint: self.domain_hint.as_deref(),
            auth_context: self.auth_context.as_ref(),
        }
    }
}

/// What a sign-in asks Entra for beyond signing in.
pub(super) struct Ask<'a> {
    login_hint: Option<&'a str>,
    domain_hint: Option<&'a str>,
    pub(super) auth_context: Option<&'a AuthContext>,
}

impl Ask<'_> {
    /// Adds the asks to `/.auth/login` parameters (a hand-off to the sign-in host).
    pub(super) fn append_to(&self, query: &mut url::form_urlencoded::Serializer<'_, String>) {
        if let Some(h) = self.login_hint {
            query.append_pair("login_hint", h);
        }
        if let Some(h) = self.domain_hint {
            query.append_pair("domain_hint", h);
        }
        if let Some(c) = self.auth_context {
            query.append_pair("auth_context", c.id());
        }
    }
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
