//! `/{t}/oauth2/v2.0/authorize`: checks the request, picks the user, issues a code.
//!
//! The order of checks follows Entra (v2-oauth2-auth-code-flow): faults that make the
//! redirect URI untrustworthy — unknown tenant, unknown `client_id`, unregistered
//! `redirect_uri` (AADSTS50011) — are shown as an error page and never redirected, since
//! redirecting would hand an attacker an open redirector. Every later fault goes back to the
//! redirect URI as `error`/`error_description`/`error_uri`/`state`.
//!
//! There are no passwords: the user is the one named by `login_hint` (a username or the
//! opaque `login_hint` claim), else the one whose `ESTSAUTH` session cookie the browser sends,
//! else `default_user`, else the only user; failing all that, a picker page, or
//! `login_required` under `prompt=none`.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::aadsts::{error_uri, AadError, Diagnostics};
use super::config::uri_allowed;
use super::discovery::Tenant;
use super::http::{append, cookie, html, read_form, redirect, Params, Resp};
use super::pages::{self, Account};
use super::state::{lock, now, random, AuthCode, State, CODE_LIFETIME};
use super::{scopes, session};

#[derive(Debug, Clone, Copy)]
enum Mode {
    Query,
    Fragment,
    FormPost,
}

/// Where and how a response goes back to the app.
struct Reply {
    redirect_uri: String,
    mode: Mode,
}

enum Answer {
    /// An error page, no redirect.
    Page(AadError),
    Picker,
    Reply {
        to: Reply,
        params: Params,
        session: Option<String>,
    },
}

pub(crate) async fn handle(state: &State, segment: &str, req: Request<Incoming>) -> Resp {
    let diag = Diagnostics::new(req.headers());
    let session = cookie(req.headers(), session::COOKIE);
    let path = req.uri().path().to_owned();
    // As received for GET (tests may check how the proxy encoded it); POSTed form as the query.
    let mut query = req.uri().query().unwrap_or("").to_owned();
    let params = match *req.method() {
        Method::GET => Params::from_query(req.uri()),
        Method::POST => match read_form(req.into_body()).await {
            Ok(p) => {
                query = p.encode();
                p
            }
            Err(_) => return page(&AadError::malformed(), &diag),
        },
        _ => {
            let err = AadError::bad_request(
                "invalid_request",
                900561,
                "The endpoint only accepts GET, POST requests.",
            );
            return page(&err, &diag);
        }
    };
    if let Ok(url) = url::Url::parse(&format!("{}{path}?{query}", state.base_url)) {
        lock(&state.records).authorize.push(url);
    }
    match decide(state, segment, &params, session.as_deref(), &diag) {
        Answer::Page(err) => page(&err, &diag),
        Answer::Picker => picker(state, &path, &params),
        Answer::Reply {
            to,
            params,
            session,
        } => reply(state, &to, &params, session.as_deref()),
    }
}

fn page(err: &AadError, diag: &Diagnostics) -> Resp {
    html(StatusCode::BAD_REQUEST, pages::error(err, diag))
}

fn decide(
    state: &State,
    segment: &str,
    p: &Params,
    session: Option<&str>,
    diag: &Diagnostics,
) -> Answer {
    let tenant = match Tenant::resolve(state, segment) {
        Ok(t) => t,
        Err(e) => return Answer::Page(e),
    };
    let Some(client_id) = p.get("client_id") else {
        return Answer::Page(AadError::missing("client_id"));
    };
    let Some(client) = state.client(client_id) else {
        return Answer::Page(AadError::app_not_found(client_id, tenant.segment()));
    };
    let redirect_uri = match (p.get("redirect_uri"), client.redirect_uris.as_slice()) {
        (Some(uri), _) => uri.to_owned(),
        (None, [only]) => only.clone(),
        (None, _) => {
            return Answer::Page(AadError::bad_request(
                "invalid_request",
                900971,
                "No reply address provided.",
            ))
        }
    };
    if !uri_allowed(&client.redirect_uris, &redirect_uri) {
        return Answer::Page(AadError::reply_url_mismatch(&redirect_uri, client_id));
    }
    let (mode, bad_mode) = match p.get("response_mode") {
        None | Some("query") => (Mode::Query, None),
        Some("fragment") => (Mode::Fragment, None),
        Some("form_post") => (Mode::FormPost, None),
        Some(other) => (Mode::Query, Some(other)),
    };
    let to = Reply { redirect_uri, mode };
    let app_state = p.get("state");
    let fail = |to: Reply, err: AadError| Answer::Reply {
        to,
        params: err.redirect_params(&state.base_url, diag, app_state),
        session: None,
    };
    if let Some(mode) = bad_mode {
        let msg = format!("The response_mode '{mode}' is not supported.");
        return fail(to, AadError::bad_request("invalid_request", 70007, msg));
    }
    if let Some((error, description)) = lock(&state.controls).authorize_error.clone() {
        return Answer::Reply {
            to,
            params: configured_error(state, &error, &description, app_state),
            session: None,
        };
    }
    match p.get("response_type") {
        Some("code") => {}
        None => return fail(to, AadError::missing("response_type")),
        Some(other) => {
            let msg = format!(
                "The provided value for the input parameter 'response_type' is not \
                allowed for this application. Value: '{other}'."
            );
            return fail(
                to,
                AadError::bad_request("unsupported_response_type", 70005, msg),
            );
        }
    }
    let Some(scope) = p.get("scope") else {
        return fail(to, AadError::missing("scope"));
    };
    match scopes::resolve(state, scope) {
        Ok(s) if s.openid => {}
        Ok(_) => {
            let msg = "The provided value for the input parameter 'scope' is not valid: sign-in \
                requires the scope 'openid'.";
            return fail(to, AadError::bad_request("invalid_scope", 70011, msg));
        }
        Err(e) => return fail(to, e),
    }
    let code_challenge = match pkce(p) {
        Ok(challenge) => challenge,
        Err(e) => return fail(to, e),
    };
    let acrs = match requested_acrs(p) {
        Ok(acrs) => acrs,
        Err(e) => return fail(to, e),
    };
    let prompt: Vec<&str> = p.get("prompt").unwrap_or("").split_whitespace().collect();
    let Some(user) = session::pick_user(state, p, session, &prompt) else {
        if prompt.contains(&"none") {
            let msg = "Session information is not sufficient for single-sign-on.";
            return fail(to, AadError::bad_request("login_required", 50058, msg));
        }
        return Answer::Picker;
    };

    let sid = session::sign_in(state, &user, session, prompt.contains(&"login"));
    let code = random(48);
    lock(&state.grants).codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.to_owned(),
            redirect_uri: to.redirect_uri.clone(),
            tenant: tenant.segment().to_owned(),
            code_challenge,
            nonce: p.get("nonce").map(str::to_owned),
            scope: scope.to_owned(),
            username: user.username.clone(),
            sid: sid.clone(),
            acrs,
            expires: now() + CODE_LIFETIME,
            used: false,
        },
    );
    let mut params = vec![("code".to_owned(), code)];
    if let Some(s) = app_state {
        params.push(("state".to_owned(), s.to_owned()));
    }
    params.push(("session_state".to_owned(), sid.clone()));
    Answer::Reply {
        to,
        params: Params(params),
        session: Some(sid),
    }
}

/// The authentication contexts the `claims` parameter asks for, as Entra reads it:
/// `{"id_token":{"acrs":{"essential":true,"value":"c1"}}}` (or `values`, or under
/// `access_token`). The user satisfies every one (the stand-in's users complete any
/// Conditional Access challenge); they come back in the `acrs` claim.
fn requested_acrs(p: &Params) -> Result<Vec<String>, AadError> {
    let Some(raw) = p.get("claims") else {
        return Ok(Vec::new());
    };
    let invalid = || {
        AadError::bad_request(
            "invalid_request",
            90100,
            "claims parameter is empty or not valid.",
        )
    };
    let v: serde_json::Value = serde_json::from_str(raw).map_err(|_| invalid())?;
    let obj = v.as_object().ok_or_else(invalid)?;
    let mut out: Vec<String> = Vec::new();
    for token in ["id_token", "access_token"] {
        let Some(acrs) = obj.get(token).and_then(|t| t.get("acrs")) else {
            continue;
        };
        let one = acrs
            .get("value")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let many = acrs
            .get("values")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_else(Vec::new);
        for id in one.into_iter().chain(many) {
            let valid = id.strip_prefix('c').is_some_and(|n| {
                (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
            });
            if !valid {
                return Err(invalid());
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The error a test configured with `set_authorize_error`.
fn configured_error(
    state: &State,
    error: &str,
    description: &str,
    app_state: Option<&str>,
) -> Params {
    let code: String = description
        .strip_prefix("AADSTS")
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let mut p = vec![
        ("error".to_owned(), error.to_owned()),
        ("error_description".to_owned(), description.to_owned()),
        (
            "error_uri".to_owned(),
            match code.parse::<u32>() {
                Ok(code) => error_uri(&state.base_url, code),
                Err(_) => format!("{}/error", state.base_url),
            },
        ),
    ];
    if let Some(s) = app_state {
        p.push(("state".to_owned(), s.to_owned()));
    }
    Params(p)
}

/// The PKCE challenge (RFC 7636 §4.3), required and S256 only.
///
/// Stricter than Entra, which demands PKCE only of SPA redirect URIs (AADSTS9002325) and also
/// takes `plain` (the default when the method is left out): the proxy always sends S256, so a
/// request without it is a proxy bug the tests must see (v2-oauth2-auth-code-flow, "Request
/// an authorization code").
fn pkce(p: &Params) -> Result<String, AadError> {
    let Some(challenge) = p.get("code_challenge") else {
        let msg = "Proof Key for Code Exchange is required for cross-origin authorization code \
                   redemption.";
        return Err(AadError::bad_request("invalid_request", 9002325, msg));
    };
    match p.get("code_challenge_method") {
        Some("S256") => {}
        method => {
            let msg = format!(
                "Invalid code_challenge_method '{}': only 'S256' is accepted.",
                method.unwrap_or("plain")
            );
            return Err(AadError::bad_request("invalid_request", 501491, msg));
        }
    }
    // A base64url SHA-256 digest is 43 characters; RFC 7636 allows 43 to 128 in general.
    if !(43..=128).contains(&challenge.len()) {
        let msg = "The size of the code challenge parameter is not valid.";
        return Err(AadError::bad_request("invalid_request", 50147, msg));
    }
    Ok(challenge.to_owned())
}

fn picker(state: &State, path: &str, params: &Params) -> Resp {
    let accounts: Vec<Account> = state
        .users()
        .into_iter()
        .map(|u| Account {
            href: format!("{path}?{}", params.with("login_hint", &u.username).encode()),
            name: u.name,
            username: u.username,
        })
        .collect();
    html(StatusCode::OK, pages::picker(&accounts))
}

fn reply(state: &State, to: &Reply, params: &Params, session: Option<&str>) -> Resp {
    let mut resp = match to.mode {
        Mode::Query => redirect(&append(&to.redirect_uri, params, false)),
        Mode::Fragment => redirect(&append(&to.redirect_uri, params, true)),
        Mode::FormPost => html(
            StatusCode::OK,
            pages::form_post(&to.redirect_uri, &params.0),
        ),
    };
    if let Some(sid) = session {
        session::set_cookie(state, &mut resp, sid);
    }
    resp
}
