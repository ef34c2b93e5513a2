//! `/{t}/oauth2/v2.0/logout`: RP-initiated sign-out.
//!
//! Entra ends its browser session, then redirects to `post_logout_redirect_uri` only if the
//! request names the app (`client_id`, or the `aud` of a valid `id_token_hint`, as OpenID
//! Connect RP-Initiated Logout 1.0 §2-3 require for the URI to be honoured) and that app
//! registered the URI; otherwise it shows its own "You signed out" page
//! (v2-protocols-oidc, "Send a sign-out request"). A URI registered by some other app is no
//! better than an unregistered one. Each call is recorded so tests can check what the relying
//! party sent (`logout_hint` is Entra's preferred way to skip the account picker).

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::aadsts::Diagnostics;
use super::config::uri_allowed;
use super::discovery::Tenant;
use super::http::{append, cookie, html, read_form, redirect, Params, Resp};
use super::state::{lock, State};
use super::LogoutRecord;
use super::{pages, session};

pub(crate) async fn handle(state: &State, segment: &str, req: Request<Incoming>) -> Resp {
    let diag = Diagnostics::new(req.headers());
    let session = cookie(req.headers(), session::COOKIE);
    let params = match *req.method() {
        Method::GET => Params::from_query(req.uri()),
        Method::POST => read_form(req.into_body()).await.unwrap_or_default(),
        _ => Params::default(),
    };
    if let Err(e) = Tenant::resolve(state, segment) {
        return html(StatusCode::BAD_REQUEST, pages::error(&e, &diag));
    }
    let get = |name: &str| params.get(name).map(str::to_owned);
    let id_token_hint = get("id_token_hint");
    let client_id = get("client_id").or_else(|| {
        let claims = state.keys().verify(id_token_hint.as_deref()?)?;
        claims["aud"].as_str().map(str::to_owned)
    });
    let record = LogoutRecord {
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        logout_hint: get("logout_hint"),
        state: get("state"),
        id_token_hint,
        client_id,
    };
    lock(&state.records).logouts.push(record.clone());

    let target = record
        .post_logout_redirect_uri
        .as_deref()
        .filter(|uri| registered(state, record.client_id.as_deref(), uri));
    let mut resp = match target {
        Some(uri) => {
            let p = match &record.state {
                Some(s) => Params(vec![("state".to_owned(), s.clone())]),
                None => Params::default(),
            };
            if p.0.is_empty() {
                redirect(uri)
            } else {
                redirect(&append(uri, &p, false))
            }
        }
        None => html(StatusCode::OK, pages::signed_out()),
    };
    session::end(state, &mut resp, session.as_deref());
    resp
}

/// Whether `uri` is a registered post-logout URI of the app the request names; never when it
/// names none.
fn registered(state: &State, client_id: Option<&str>, uri: &str) -> bool {
    client_id
        .and_then(|id| state.client(id))
        .is_some_and(|client| uri_allowed(&client.post_logout_redirect_uris, uri))
}
