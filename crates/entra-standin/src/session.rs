//! Browser sign-in sessions: who `/authorize` signs in, and the `sid` that ties tokens to it.
//!
//! Entra keeps an SSO session in its `ESTSAUTH` cookie; a second sign-in from the same browser
//! reuses it silently, and its ID is the `sid` claim (needed for front-channel logout). Here
//! the cookie holds the `sid` itself and the server maps it to a username. Clients without a
//! cookie store simply get a new session on every sign-in.

use http::header::SET_COOKIE;
use http::HeaderValue;

use super::claims::login_hint;
use super::http::{Params, Resp};
use super::state::{lock, State};
use super::TestUser;

/// Entra's session cookie name.
pub(crate) const COOKIE: &str = "ESTSAUTH";

/// The user to sign in: the `login_hint` (a username or the opaque `login_hint` claim), else
/// the browser's session (unless `prompt` asks for a fresh choice), else `default_user`, else
/// the only user. `None`: the picker (or `login_required` under `prompt=none`).
pub(crate) fn pick_user(
    state: &State,
    p: &Params,
    session: Option<&str>,
    prompt: &[&str],
) -> Option<TestUser> {
    let users = state.users();
    if let Some(hint) = p.get("login_hint") {
        // A hint that names nobody is not silently replaced by someone else.
        return users
            .iter()
            .find(|u| {
                u.username.eq_ignore_ascii_case(hint) || login_hint(u, state.tid_of(u)) == hint
            })
            .cloned();
    }
    let fresh = prompt.contains(&"login") || prompt.contains(&"select_account");
    if !fresh {
        let signed_in = session.and_then(|sid| lock(&state.grants).sessions.get(sid).cloned());
        if let Some(user) = signed_in.and_then(|name| state.user(&name)) {
            return Some(user);
        }
    }
    if prompt.contains(&"select_account") {
        return None;
    }
    if let Some(user) = state
        .config
        .default_user
        .as_deref()
        .and_then(|d| state.user(d))
    {
        return Some(user);
    }
    match users.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// The session `sid`: the browser's current one if it belongs to `user`, else a new one.
pub(crate) fn sign_in(
    state: &State,
    user: &TestUser,
    session: Option<&str>,
    reauth: bool,
) -> String {
    let mut grants = lock(&state.grants);
    if let Some(sid) = session.filter(|_| !reauth) {
        if grants
            .sessions
            .get(sid)
            .is_some_and(|name| name.eq_ignore_ascii_case(&user.username))
        {
            return sid.to_owned();
        }
    }
    let sid = uuid::Uuid::new_v4().to_string();
    grants.sessions.insert(sid.clone(), user.username.clone());
    sid
}

pub(crate) fn set_cookie(state: &State, resp: &mut Resp, sid: &str) {
    // A cross-site `form_post` back to the app must still carry the cookie next time, which
    // needs `SameSite=None` — and browsers accept that only with `Secure`.
    let attrs = if state.secure {
        "SameSite=None; Secure"
    } else {
        "SameSite=Lax"
    };
    let cookie = format!("{COOKIE}={sid}; Path=/; HttpOnly; {attrs}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

/// Ends the session `sid` (if any) and tells the browser to forget the cookie.
pub(crate) fn end(state: &State, resp: &mut Resp, sid: Option<&str>) {
    if let Some(sid) = sid {
        lock(&state.grants).sessions.remove(sid);
    }
    let clear = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}
