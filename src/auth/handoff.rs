//! One sign-in host for many app hosts (`oidc.signin_host`).
//!
//! Entra ID accepts at most 256 redirect URIs per app registration, and each new one is an
//! admin's edit. With `signin_host = "auth.example.com"` every sign-in goes through
//! `https://auth.example.com/.auth/callback`, the only redirect URI the registration needs,
//! and the browser is handed back to the app host it came from:
//!
//! 1. **Hand-off.** An app host that needs a sign-in (`/.auth/login`, or a protected route)
//!    puts a fresh `state` and the return path in a sealed cookie on the app host (named as a
//!    pending sign-in, sealed for `<name>#handoff`), and sends the browser to
//!    `https://<signin_host>/.auth/login?rd=https://<app host>/.auth/ticket?state=…`.
//! 2. **Sign-in host.** Such an `rd` is accepted only with `https`, the port the sign-in host
//!    was reached on, no user info, the ticket path, and a host a route names — exactly or by
//!    wildcard; a catch-all route does not count, so this is no open redirect. A browser whose
//!    session on the sign-in host is live and good enough (the authentication context asked
//!    for; an access token while routes pass one) is handed back at once: single sign-on
//!    across hosts. Any other signs in with Entra ID; the callback creates the session and its
//!    cookie on the sign-in host, as without a sign-in host.
//! 3. **Hand-back.** A ticket (256 random bits) is minted: the store keeps the session ID, the
//!    app host and the state, sealed under a hash of the ticket, for 60 seconds. The browser
//!    goes to `https://<app host>/.auth/ticket?state=…&ticket=…`.
//! 4. **Redemption.** The app host's hand-off cookie must be there and hold the same state,
//!    so a ticket sent to another browser is useless (no login CSRF); the ticket must be for
//!    this host and unused — a one-time marker in the store, then the ticket is deleted, so a
//!    replay fails on every instance — and its session live. The app host then sets its own
//!    `__Host-` cookie to the same session ID: cookies stay per host, no `Domain=` cookie is
//!    ever set, and signing out on one host ends the session on all of them.

use std::time::Duration;

use base64::Engine;
use http::header::{HeaderValue, CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::cookies::{self, MAX_PENDING};
use super::login::{canonical_authority, Ask};
use super::pending::{self, Outbound};
use super::sign_in::{Endpoint, SignIn};
use super::SignInError;
use crate::body::{self, Body};
use crate::config::AuthContext;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::oidc::verify::constant_time_eq;
use crate::primitives::{digest, now, random_token};
use crate::request::Target;
use crate::route::RouteTable;
use crate::seal::Sealer;

/// The app host's endpoint that redeems a ticket.
pub const TICKET_PATH: &str = "/.auth/ticket";
/// How long a ticket may wait to be redeemed.
const TICKET_LIFETIME: Duration = Duration::from_secs(60);
/// How long a redeemed ticket's marker outlives the ticket.
const MARKER_LIFETIME: Duration = Duration::from_secs(120);

/// The hand-off an app host started, kept (sealed) in its browser.
#[derive(Serialize, Deserialize)]
struct Handoff {
    state: String,
    /// Same-host path to return to (checked by `return_to::safe`).
    return_to: String,
    /// Unix seconds.
    expires_at: u64,
}

/// What the store keeps for a ticket.
#[derive(Serialize, Deserialize)]
struct Ticket {
    /// The session's ID: the cookie value the app host sets.
    session: String,
    /// The app host (`host[:port]`) the ticket is for.
    authority: String,
    /// The state of the app host's hand-off.
    state: String,
}

/// Where a sign-in host's `/.auth/login` sends the browser afterwards.
pub(super) enum After {
    /// Back to a path on the sign-in host itself.
    Here(String),
    /// To an app host's ticket endpoint.
    AppHost(Outbound),
    /// To an app page, by way of that host's own `/.auth/login` (which hands off properly).
    AppLogin { authority: String, path: String },
}

impl SignIn {
    /// The sign-in host, when sign-ins go through one and `target` is another host.
    pub(super) fn signin_host_for(&self, target: &Target) -> Option<&str> {
        self.provider
            .config
            .signin_host
            .as_deref()
            .filter(|h| *h != target.host)
    }

    /// Whether `target` is on the sign-in host.
    pub(super) fn on_signin_host(&self, target: &Target) -> bool {
        self.provider.config.signin_host.as_deref() == Some(target.host.as_str())
    }

    /// Starts a hand-off from an app host: the hand-off cookie, and the redirect to the
    /// sign-in host's `/.auth/login` with the ticket endpoint as `rd`.
    pub(super) fn hand_off<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        signin_host: &str,
        return_to: String,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let state = random_token();
        let name = pending::cookie_name(self.cookie_name(), &state);
        let handoff = Handoff {
            state: state.clone(),
            return_to,
            expires_at: now() + pending::LIFETIME.as_secs(),
        };
        let value = seal(&self.sealer, &handoff, &name);
        let port = target
            .authority
            .port_u16()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let rd = format!(
            "https://{}{TICKET_PATH}?state={state}",
            canonical_authority(target)
        );
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("rd", &rd);
        ask.append_to(&mut query);
        let location = format!("https://{signin_host}{port}/.auth/login?{}", query.finish());
        tracing::debug!(signin_host, "sign-in handed off to the sign-in host");
        redirect_setting(req, self.cookie_name(), &location, &name, &value)
    }

    /// What an `rd` of the sign-in host's `/.auth/login` asks for: a same-host path, an app
    /// host's ticket endpoint, or an app page. `None` for anything else (refused).
    pub(super) fn after_login(
        &self,
        rd: &str,
        target: &Target,
        routes: &RouteTable,
    ) -> Option<After> {
        if let Some(path) = super::return_to::safe(rd, target.authority.as_str()) {
            return Some(After::Here(path));
        }
        let url = url::Url::parse(rd).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let same_port = url.port() == target.authority.port_u16();
        if url.scheme() != "https"
            || !url.username().is_empty()
            || url.password().is_some()
            || !same_port
            || !matches!(url.host(), Some(url::Host::Domain(_)))
            || !routes.names_host(&host)
        {
            return None;
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        if url.path() == TICKET_PATH {
            let state = url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .filter(|s| cookies::looks_like_token(s))?;
            return Some(After::AppHost(Outbound { authority, state }));
        }
        let path = super::return_to::safe(&url[url::Position::BeforePath..], "")?;
        Some(After::AppLogin { authority, path })
    }

    /// On the sign-in host, for an app host: hands the browser back at once when its session
    /// here is good enough; `None` when it must sign in.
    pub(super) async fn hand_back<B>(
        &self,
        req: &Request<B>,
        to: &Outbound,
        auth_context: Option<&AuthContext>,
    ) -> Result<Option<Response<Body>>, ProxyError> {
        let keeps_token = self.sessions.keeps_access_token();
        let good_enough = |s: &crate::session::Active| {
            auth_context.is_none_or(|c| c.satisfied_by(&s.identity))
                && (s.access_token.is_some() || !keeps_token)
        };
        match self.session_where(req.headers(), good_enough).await? {
            Some(id) => Ok(Some(found(&self.mint(&id, to).await?))),
            None => Ok(None),
        }
    }

    /// Mints a ticket for session `session` and returns the app host's URL that redeems it.
    pub(super) async fn mint(&self, session: &str, to: &Outbound) -> Result<String, ProxyError> {
        let ticket = random_token();
        let value = Ticket {
            session: session.to_owned(),
            authority: to.authority.clone(),
            state: to.state.clone(),
        };
        let plain = serde_json::to_vec(&value).unwrap_or_default();
        self.sessions
            .write_sealed(&ticket_key(&ticket), &plain, TICKET_LIFETIME)
            .await
            .map_err(ProxyError::StoreUnavailable)?;
        tracing::debug!(app_host = %to.authority, "sign-in ticket minted");
        Ok(format!(
            "https://{}{TICKET_PATH}?state={}&ticket={ticket}",
            to.authority, to.state
        ))
    }

    /// `GET /.auth/ticket?state=…&ticket=…` on an app host: redeems the ticket once and sets
    /// this host's session cookie.
    pub(super) async fn redeem<B>(
        &self,
        req: &Request<B>,
        target: &Target,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let fail = |e: SignInError| ProxyError::SignIn(e);
        self.admit(ctx, Endpoint::Callback)?;
        let (mut state, mut ticket) = (None, None);
        for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "state" => state = Some(v.into_owned()),
                "ticket" => ticket = Some(v.into_owned()),
                _ => {}
            }
        }
        let state = state
            .filter(|s| cookies::looks_like_token(s))
            .ok_or(fail(SignInError::MissingState))?;
        let ticket = ticket
            .filter(|t| cookies::looks_like_token(t))
            .ok_or(fail(SignInError::UnknownTicket))?;
        let name = pending::cookie_name(self.cookie_name(), &state);
        let value = cookies::get_all(req.headers(), &name)
            .next()
            .ok_or(fail(SignInError::UnknownState))?;
        let handoff = open(&self.sealer, value, &name).ok_or(fail(SignInError::Tampered))?;
        if !constant_time_eq(handoff.state.as_bytes(), state.as_bytes()) {
            return Err(fail(SignInError::Tampered));
        }
        if handoff.expires_at <= now() {
            return Err(fail(SignInError::Expired));
        }

        let key = ticket_key(&ticket);
        let t: Ticket = self
            .sessions
            .read_sealed(&key)
            .await
            .map_err(ProxyError::StoreUnavailable)?
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or(fail(SignInError::UnknownTicket))?;
        if !t
            .authority
            .eq_ignore_ascii_case(&canonical_authority(target))
        {
            return Err(fail(SignInError::TicketForAnotherHost));
        }
        if !constant_time_eq(t.state.as_bytes(), state.as_bytes()) {
            return Err(fail(SignInError::Tampered));
        }
        let first_use = self
            .sessions
            .try_lock(&format!("ticket-used:{}", digest(&ticket)), MARKER_LIFETIME)
            .await
            .map_err(ProxyError::StoreUnavailable)?;
        if !first_use {
            return Err(fail(SignInError::Replayed));
        }
        self.sessions
            .delete_sealed(&key)
            .await
            .map_err(ProxyError::StoreUnavailable)?;
        let session = self
            .sessions
            .load(&t.session)
            .await
            .map_err(ProxyError::StoreUnavailable)?
            .ok_or(fail(SignInError::UnknownTicket))?;
        let lifetime = Duration::from_secs(session.session.expires_at.saturating_sub(now()));
        tracing::debug!(
            oid = session.session.identity.oid(),
            "sign-in ticket redeemed"
        );

        let mut resp = found(&handoff.return_to);
        let h = resp.headers_mut();
        h.append(
            SET_COOKIE,
            cookies::set(self.cookie_name(), &t.session, lifetime),
        );
        h.append(SET_COOKIE, cookies::clear(&name));
        Ok(resp)
    }
}

/// The store key of a ticket: a hash, so the store never holds a usable ticket.
fn ticket_key(ticket: &str) -> String {
    format!("ticket:{}", digest(ticket))
}

/// A 302 to `location` that no cache keeps.
pub(super) fn found(location: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A 302 to `location` that sets cookie `name` for a sign-in in progress, and clears the
/// oldest such cookies beyond [`MAX_PENDING`] (abandoned sign-ins).
pub(super) fn redirect_setting<B>(
    req: &Request<B>,
    base: &str,
    location: &str,
    name: &str,
    value: &str,
) -> Result<Response<Body>, ProxyError> {
    let location = HeaderValue::from_str(location).map_err(|_| ProxyError::ProviderUnavailable)?;
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(LOCATION, location);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(SET_COOKIE, cookies::set(name, value, pending::LIFETIME));
    let open = cookies::pending_names(req.headers(), base);
    for stale in open.iter().take(open.len().saturating_sub(MAX_PENDING - 1)) {
        h.append(SET_COOKIE, cookies::clear(stale));
    }
    Ok(resp)
}

/// The additional data a hand-off cookie is sealed for: it cannot pass for a pending sign-in
/// of the same name, nor one for it.
fn aad(name: &str) -> Vec<u8> {
    format!("{name}#handoff").into_bytes()
}

fn seal(sealer: &Sealer, handoff: &Handoff, name: &str) -> String {
    let json = serde_json::to_vec(handoff).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealer.seal(&json, &aad(name)))
}

fn open(sealer: &Sealer, value: &str, name: &str) -> Option<Handoff> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    serde_json::from_slice(&sealer.open(&bytes, &aad(name))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Purpose;

    #[test]
    fn a_hand_off_cookie_and_a_pending_sign_in_never_open_as_each_other() {
        let sealer = Sealer::new(&[[3u8; 32]], Purpose::SignIn);
        let name = pending::cookie_name("__Host-p", "s");
        let h = Handoff {
            state: "s".into(),
            return_to: "/x".into(),
            expires_at: 9,
        };
        let sealed = seal(&sealer, &h, &name);
        assert_eq!(
            open(&sealer, &sealed, &name).map(|h| h.return_to),
            Some("/x".into())
        );
        assert!(pending::open(&sealer, &sealed, &name).is_none());
        let other = pending::cookie_name("__Host-p", "t");
        assert!(open(&sealer, &sealed, &other).is_none());
    }
}
