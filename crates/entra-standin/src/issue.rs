//! The successful token response: access token, ID token, refresh token.
//!
//! The access token's audience follows the requested scopes (`scopes`); whether an ID token and
//! a refresh token come along follows the scopes of the original sign-in (`openid`,
//! `offline_access`), as with Entra, where a refresh for another resource still returns both.
//! Every access token is remembered so the Graph emulation can recognise its own tokens.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::aadsts::AadError;
use super::access;
use super::claims::{self, Times};
use super::client_auth::Authenticated;
use super::scopes::{Scopes, GRAPH_APP_ID};
use super::state::{lock, now, random, IssuedAccess, RefreshGrant, RefreshStatus, State, Subject};
use super::{KeyError, TestUser};

/// The answer when a token cannot be signed (it cannot with valid keys).
pub(crate) fn signing_failed(e: KeyError) -> AadError {
    tracing::error!(error = %e, "stand-in could not sign a token");
    AadError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        50000,
        "There was an error issuing a token.",
    )
}

/// What a token answer is bound to: the sign-in's nonce (ID tokens from a code only), the
/// browser session (`sid`) and the satisfied authentication contexts (`acrs`).
pub(crate) struct Grant<'a> {
    pub nonce: Option<&'a str>,
    pub sid: &'a str,
    pub acrs: &'a [String],
}

/// `acrs`: the authentication contexts satisfied, when any were asked for.
fn with_acrs(claims: &mut Value, acrs: &[String]) {
    if let (false, Some(map)) = (acrs.is_empty(), claims.as_object_mut()) {
        map.insert("acrs".into(), json!(acrs));
    }
}

/// The token response. `scopes` picks the access token's resource; `grant_scope` (the scopes
/// of the sign-in) decides whether an ID token and a refresh token come with it.
pub(crate) fn issue(
    state: &State,
    auth: &Authenticated,
    user: &TestUser,
    scopes: &Scopes,
    grant_scope: &str,
    grant: &Grant<'_>,
) -> Result<Value, AadError> {
    let (nonce, sid) = (grant.nonce, grant.sid);
    let has = |name: &str| {
        grant_scope
            .split_whitespace()
            .any(|s| s.eq_ignore_ascii_case(name))
    };
    let now = now();
    let client_id = auth.client.client_id.as_str();
    let access_times = Times::from(now, state.config.access_token_lifetime);
    let (mut access_claims, audience) =
        access::delegated(state, user, auth, scopes, sid, access_times);
    with_acrs(&mut access_claims, grant.acrs);
    let mut id_claims = None;
    let (access, id) = {
        let keys = state.keys();
        let header_nonce = (audience == GRAPH_APP_ID).then(|| random(32));
        let access = keys
            .sign(&access_claims, None, header_nonce)
            .map_err(signing_failed)?;
        let id = if has("openid") {
            let t = Times::from(now, state.config.id_token_lifetime);
            let optional = auth.client.optional_claims;
            let mut c = claims::id_token(state, user, client_id, optional, nonce, sid, t);
            with_acrs(&mut c, grant.acrs);
            let signed = keys.sign(&c, None, None).map_err(signing_failed)?;
            id_claims = Some(c);
            Some(signed)
        } else {
            None
        };
        (access, id)
    };
    // Outside the key lock: the rewrite may sign with `StandIn::mint_token`.
    let rewrite = lock(&state.controls).id_token_rewrite.take();
    let id = match (rewrite, id_claims) {
        (Some(f), Some(c)) => Some((f.0)(c)),
        _ => id,
    };
    let mut body = Map::new();
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("scope".into(), json!(scopes.granted()));
    body.insert(
        "expires_in".into(),
        json!(state.config.access_token_lifetime.as_secs()),
    );
    body.insert(
        "ext_expires_in".into(),
        json!(state.config.access_token_lifetime.as_secs()),
    );
    body.insert("access_token".into(), json!(access));
    let mut grants = lock(&state.grants);
    grants.purge(now);
    grants.access.insert(
        access,
        IssuedAccess {
            subject: Subject::User {
                username: user.username.clone(),
            },
            client_id: client_id.to_owned(),
            audience,
            expires: access_times.exp,
        },
    );
    if has("offline_access") {
        let refresh = random(96);
        grants.refresh.insert(
            refresh.clone(),
            RefreshGrant {
                client_id: client_id.to_owned(),
                tid: state.tid_of(user).to_owned(),
                username: user.username.clone(),
                scope: grant_scope.to_owned(),
                sid: sid.to_owned(),
                acrs: grant.acrs.to_vec(),
                issued: now,
                expires: now.saturating_add(state.config.refresh_token_lifetime.as_secs()),
                status: RefreshStatus::Active,
            },
        );
        body.insert("refresh_token".into(), json!(refresh));
    }
    if let Some(id) = id {
        body.insert("id_token".into(), json!(id));
    }
    Ok(Value::Object(body))
}
