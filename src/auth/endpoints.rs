//! `/.auth/logout`, `/.auth/me` and `/.auth/frontchannel-logout`; the dispatch of every
//! reserved path (the sign-in ones are in `login.rs`, `callback.rs` and `handoff.rs`).
//!
//! Sign-out deletes the local session first (ENTRA.md §6), then sends the browser to Entra's
//! `end_session_endpoint` with `post_logout_redirect_uri` and `logout_hint` when
//! `oidc.post_logout_redirect_uri` is set, so the Entra session ends too; otherwise back to a
//! same-host `rd`. Front-channel sign-out is Entra calling us (in a hidden frame, often without
//! our cookies) with the `sid` of a session it ended: the `sid → session` index finds it.
//!
//! Which `/.auth/logout` requests may sign out at all, and the page the others get (logout
//! CSRF): `sign_out.rs`.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};

use super::login::canonical_authority;
use super::{cookies, return_to, Auth};
use crate::body::{self, Body};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::headers::identity;
use crate::request::Target;
use crate::route::RouteTable;
use crate::session::store_key;

/// The reserved prefix; its endpoints are answered by the proxy.
const RESERVED: &str = "/.auth/";

/// A reserved endpoint, recognised from the canonical path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Callback,
    Login,
    Logout,
    Me,
    FrontChannelLogout,
    /// App Service's `/.auth/refresh`: renew the session's tokens now.
    Refresh,
    /// oauth2-proxy's `/oauth2/userinfo`.
    UserInfo,
    /// An app host redeeming a sign-in host's ticket (`handoff.rs`).
    Ticket,
}

/// oauth2-proxy's paths (`oidc.oauth2_proxy_paths`); `/oauth2/auth` is forward-auth
/// (`proxy/verify.rs`).
const OAUTH2_PROXY: [(&str, Endpoint); 4] = [
    ("/oauth2/start", Endpoint::Login),
    ("/oauth2/sign_in", Endpoint::Login),
    ("/oauth2/sign_out", Endpoint::Logout),
    ("/oauth2/userinfo", Endpoint::UserInfo),
];

/// The answer to a reserved path: boxed, so the request path's future stays small when, as on
/// almost every request, no reserved path is asked for.
pub type Answer<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Body>, ProxyError>> + Send + 'a>,
>;

impl Auth {
    /// The reserved `/.auth/*` endpoint (or the callback) `target` names; `None` for every
    /// other path, which goes on to routing.
    pub fn endpoint(&self, target: &Target) -> Option<Endpoint> {
        // The canonical path, matched without ASCII case: no spelling of a reserved path
        // reaches an upstream.
        let path = target.path();
        if path.eq_ignore_ascii_case(&self.provider.config.callback_path) {
            return Some(Endpoint::Callback);
        }
        if self.provider.config.oauth2_proxy_paths {
            if let Some((_, e)) = OAUTH2_PROXY
                .iter()
                .find(|(p, _)| path.eq_ignore_ascii_case(p))
            {
                return Some(*e);
            }
        }
        let rest = path
            .get(..RESERVED.len())
            .filter(|p| p.eq_ignore_ascii_case(RESERVED))
            .map(|_| &path[RESERVED.len()..])?;
        [
            ("login", Endpoint::Login),
            // App Service's spelling, for apps written against it.
            ("login/aad", Endpoint::Login),
            ("logout", Endpoint::Logout),
            ("refresh", Endpoint::Refresh),
            ("me", Endpoint::Me),
            ("frontchannel-logout", Endpoint::FrontChannelLogout),
            ("ticket", Endpoint::Ticket),
        ]
        .into_iter()
        .find(|(name, _)| rest.eq_ignore_ascii_case(name))
        .map(|(_, e)| e)
    }

    /// Answers a reserved endpoint (`routes`: the hosts a sign-in host may hand back to).
    pub fn answer<'a, B: Sync>(
        &'a self,
        endpoint: Endpoint,
        req: &'a Request<B>,
        target: &'a Target,
        routes: &'a RouteTable,
        ctx: &'a RequestCtx<'_>,
    ) -> Answer<'a> {
        Box::pin(async move {
            match endpoint {
                Endpoint::Callback => self.sign_in.callback(req, ctx).await,
                Endpoint::Login => self.sign_in.login_endpoint(req, target, routes, ctx).await,
                Endpoint::Ticket => self.sign_in.redeem(req, target, ctx).await,
                Endpoint::Logout => self.logout(req, target, ctx).await,
                Endpoint::Me => self.me(req, ctx).await,
                Endpoint::FrontChannelLogout => self.frontchannel_logout(req, ctx).await,
                Endpoint::Refresh => self.refresh(req, ctx).await,
                Endpoint::UserInfo => self.userinfo(req, ctx).await,
            }
        })
    }

    async fn logout<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        if req.method() != Method::GET && req.method() != Method::POST {
            return Err(ProxyError::BadRequest("Sign out with GET or POST."));
        }
        if !super::sign_out::may_sign_out(req, target) {
            return Ok(super::sign_out::confirmation(req, target, ctx));
        }
        let mut logout_hint = None;
        for id in cookies::session_ids(req.headers(), self.cookie_name()) {
            let key = store_key(id);
            // A plain read: extending the idle timeout of a session about to go is wasted.
            let session = self
                .sessions
                .read(&key)
                .await
                .map_err(ProxyError::StoreUnavailable)?;
            if let Some(s) = &session {
                logout_hint = s.login_hint.clone();
                let id = &s.identity;
                crate::audit::record(
                    ctx.audit(),
                    crate::audit::Event::SignOut,
                    id.oid(),
                    id.tid(),
                    "user",
                );
            }
            self.sessions
                .delete(&key, session.as_deref().map(|a| &**a))
                .await
                .map_err(ProxyError::StoreUnavailable)?;
        }
        let rd = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "rd")
            .map(|(_, v)| v.into_owned());
        // A relative post-logout URI is on the sign-in host when there is one: the only host
        // the app registration names.
        let authority = match &self.provider.config.signin_host {
            Some(h) => match target.authority.port_u16() {
                Some(port) => format!("{h}:{port}"),
                None => h.clone(),
            },
            None => canonical_authority(target),
        };
        let local = rd
            .and_then(|r| return_to::safe(&r, target.authority.as_str()))
            .unwrap_or_else(|| "/".into());
        let location = match self.provider.config.post_logout_redirect_uri.as_deref() {
            Some(p) => {
                let after = if p.starts_with('/') {
                    format!("https://{authority}{p}")
                } else {
                    p.to_owned()
                };
                self.provider
                    .end_session_url(Some(&after), logout_hint.as_deref())
                    .map_or(local, |u| u.to_string())
            }
            None => local,
        };
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::FOUND;
        let h = resp.headers_mut();
        h.insert(
            LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/")),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.append(SET_COOKIE, cookies::clear(self.cookie_name()));
        Ok(resp)
    }

    /// The signed-in identity as JSON, in App Service's `/.auth/me` shape (without tokens).
    async fn me<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let s = self.signed_in(req, ctx).await?;
        let id = &s.identity;
        let principal = identity::easy_auth_json(id);
        let expires_on =
            crate::primitives::iso_8601(s.expires_at.min(if s.refresh_token.is_some() {
                u64::MAX
            } else {
                s.access_expires_at
            }));
        let body = serde_json::json!([{
            "provider_name": "aad",
            "user_id": id.user(self.provider().config.user_claim.as_str()),
            "user_claims": principal["claims"],
            "oid": id.oid(),
            "tid": id.tid(),
            "name": id.str("name"),
            "groups": id.groups(),
            "roles": id.roles(),
            "expires_on": expires_on,
        }]);
        Ok(json(&body))
    }

    /// The request's live session, or 401 with the way to sign in.
    async fn signed_in<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<std::sync::Arc<crate::session::Active>, ProxyError> {
        self.session
            .lookup(req.headers(), ctx)
            .await?
            .ok_or_else(sign_in_required)
    }

    /// `GET /oauth2/userinfo` (oauth2-proxy): `{user, email, groups, preferredUsername}`.
    async fn userinfo<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let s = self.signed_in(req, ctx).await?;
        let id = &s.identity;
        let body = serde_json::json!({
            "user": id.user(self.provider().config.user_claim.as_str()),
            "email": id.str("email"),
            "groups": id.groups(),
            "preferredUsername": id.str("preferred_username"),
        });
        Ok(json(&body))
    }

    /// `GET /.auth/refresh` (App Service): renews the session's tokens now. 200 when renewed;
    /// 401 without a session, or one that has no refresh token or that the provider ended.
    async fn refresh<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        use crate::session::refresh::Freshness;
        let mut stored = None;
        for id in cookies::session_ids(req.headers(), self.cookie_name()) {
            if let Some(s) = self
                .sessions
                .load(id)
                .await
                .map_err(ProxyError::StoreUnavailable)?
            {
                stored = Some(s);
                break;
            }
        }
        let stored = stored.ok_or_else(sign_in_required)?;
        if stored.session.refresh_token.is_none() {
            return Err(sign_in_required());
        }
        match self
            .sessions
            .renew_now(self.provider(), stored, ctx.audit())
            .await
        {
            Freshness::Valid(_) => {
                let mut resp = Response::new(body::empty());
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(resp)
            }
            Freshness::Ended(_) => Err(sign_in_required()),
            Freshness::Unavailable(why) => Err(ProxyError::RenewalUnavailable(why)),
        }
    }

    /// `GET /.auth/frontchannel-logout?sid=…&iss=…`: ends every session of that Entra
    /// session; with `iss`, only sessions of that issuer. Always 200, so the provider's frame
    /// completes.
    async fn frontchannel_logout<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let param = |name: &str| {
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty() && v.len() <= 256)
        };
        if let Some(sid) = param("sid") {
            let iss = param("iss");
            match self.sessions.delete_by_sid(&sid, iss.as_deref()).await {
                Ok(0) => {}
                Ok(_) => crate::audit::record(
                    ctx.audit(),
                    crate::audit::Event::SignOut,
                    "",
                    "",
                    "front_channel",
                ),
                Err(e) => return Err(ProxyError::StoreUnavailable(e)),
            }
        }
        let mut resp = Response::new(body::full("signed out\n"));
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.append(SET_COOKIE, cookies::clear(self.cookie_name()));
        Ok(resp)
    }
}

fn sign_in_required() -> ProxyError {
    ProxyError::SignInRequired {
        login_url: super::login::login_url("/", None),
    }
}

/// A JSON answer no cache keeps.
fn json(body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(body::full(body.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
