//! `POST /{t}/oauth2/v2.0/token`: the authorization-code and refresh-token grants here, the
//! client-credentials grant in `app_grant`.
//!
//! The body must be `application/x-www-form-urlencoded` (RFC 6749 §4.1.3): Entra reads no other
//! body, so anything else lacks every parameter (AADSTS900144).
//! Codes redeem once (a second try is AADSTS54005), within ten minutes, for the same client,
//! tenant and redirect URI, with a PKCE verifier matching the S256 challenge (AADSTS501481).
//! Refresh tokens rotate: each use returns a successor and retires the used token. Entra does
//! not promise to invalidate a used refresh token at once; the stand-in does, so a relying
//! party that forgets to store the new token, or refreshes twice concurrently, is caught by
//! the tests. A refresh token also stays with its client and with the user's tenant
//! (refresh-tokens). The response itself is built in `issue`.
//!
//! Test controls act here in this order: the artificial delay, the hold (after the call is
//! counted), then the queue of injected failures, then the real checks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::aadsts::{timestamp, AadError, Diagnostics};
use super::client_auth::{authenticate, Authenticated};
use super::config::uri_allowed;
use super::discovery::Tenant;
use super::http::{json as json_response, read_form, Params, Resp};
use super::server::Reset;
use super::state::{lock, now, Counters, RefreshGrant, RefreshStatus, State};
use super::TestUser;
use super::{app_grant, issue, scopes};

pub(crate) async fn handle(
    state: &State,
    segment: &str,
    req: Request<Incoming>,
) -> Result<Resp, Reset> {
    let diag = Diagnostics::new(req.headers());
    let delay = lock(&state.controls).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let failed = |err: AadError| {
        Counters::bump(&state.counters.failed);
        Ok(err.response(&state.base_url, &diag))
    };
    if req.method() != Method::POST {
        let msg = format!(
            "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
            req.method()
        );
        return failed(AadError::bad_request("invalid_request", 900561, msg));
    }
    let headers = req.headers().clone();
    let Ok(form) = read_form(req.into_body()).await else {
        return failed(AadError::malformed());
    };
    match form.get("grant_type") {
        Some("authorization_code") => Counters::bump(&state.counters.authorization_code),
        Some("refresh_token") => Counters::bump(&state.counters.refresh_token),
        Some("client_credentials") => Counters::bump(&state.counters.client_credentials),
        _ => {}
    }
    // Never fails: the state owns the sender.
    let _ = state.token_hold.subscribe().wait_for(|held| !*held).await;
    let injected = lock(&state.controls).failures.pop_front();
    if let Some(failure) = injected {
        Counters::bump(&state.counters.failed);
        return match failure.error(form.get("client_id").unwrap_or("")) {
            Some(err) => Ok(err.response(&state.base_url, &diag)),
            None => Err(Reset),
        };
    }
    match grant(state, segment, &headers, &form) {
        Ok(body) => {
            super::managed_identity::after_grant(state, &body).await;
            Ok(json_response(StatusCode::OK, &body))
        }
        Err(err) => failed(err),
    }
}

fn grant(
    state: &State,
    segment: &str,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Value, AadError> {
    let tenant = Tenant::resolve(state, segment)?;
    if !is_form(headers) {
        // What Entra answers: it parses no other body, so the first parameter it needs is
        // missing.
        return Err(AadError::missing("grant_type"));
    }
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| AadError::missing("grant_type"))?;
    let auth = authenticate(state, tenant.segment(), headers, form)?;
    match grant_type {
        "authorization_code" => redeem_code(state, &tenant, &auth, form),
        "refresh_token" => redeem_refresh(state, &tenant, &auth, form),
        "client_credentials" => app_grant::grant(state, &tenant, &auth, form),
        other => Err(AadError::bad_request(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// `Content-Type: application/x-www-form-urlencoded`, with or without parameters.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn redeem_code(
    state: &State,
    tenant: &Tenant,
    auth: &Authenticated,
    form: &Params,
) -> Result<Value, AadError> {
    let code = form.get("code").ok_or_else(|| AadError::missing("code"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| AadError::missing("redirect_uri"))?;
    if !uri_allowed(&auth.client.redirect_uris, redirect_uri) {
        return Err(AadError::reply_url_mismatch(
            redirect_uri,
            &auth.client.client_id,
        ));
    }
    let entry = {
        let mut grants = lock(&state.grants);
        let Some(entry) = grants.codes.get_mut(code) else {
            return Err(AadError::invalid_grant(
                9002313,
                "Invalid request. Request is malformed or invalid.",
            ));
        };
        if entry.used {
            return Err(AadError::invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid \
                    code or use an existing refresh token.",
            ));
        }
        // Any redemption attempt spends the code, as a failed one may have leaked it.
        entry.used = true;
        entry.clone()
    };
    if entry.expires <= now() {
        return Err(AadError::invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send \
                a new interactive authorization request for this user and resource.",
        ));
    }
    if entry.client_id != auth.client.client_id {
        return Err(AadError::invalid_grant(
            70000,
            "The provided authorization code was issued to a different client.",
        ));
    }
    if entry.tenant != tenant.segment() {
        return Err(AadError::invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        ));
    }
    if entry.redirect_uri != redirect_uri {
        return Err(AadError::invalid_grant(
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' \
                    provided when requesting Authorization code.",
                entry.redirect_uri
            ),
        ));
    }
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| AadError::missing("code_verifier"))?;
    if !verifier_matches(&entry.code_challenge, verifier) {
        return Err(AadError::invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization \
                request.",
        ));
    }
    let user = signed_in_user(state, &entry.username)?;
    let scopes = scopes::resolve(state, form.get("scope").unwrap_or(&entry.scope))?;
    let grant = issue::Grant {
        nonce: entry.nonce.as_deref(),
        sid: &entry.sid,
        acrs: &entry.acrs,
    };
    issue::issue(state, auth, &user, &scopes, &entry.scope, &grant)
}

fn redeem_refresh(
    state: &State,
    tenant: &Tenant,
    auth: &Authenticated,
    form: &Params,
) -> Result<Value, AadError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| AadError::missing("refresh_token"))?;
    let mut grants = lock(&state.grants);
    let Some(entry) = grants.refresh.get_mut(token) else {
        return Err(AadError::invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid.",
        ));
    };
    usable(state, tenant, auth, entry)?;
    // A bad `scope` or a deleted user must not cost the caller its refresh token.
    let scopes = scopes::resolve(state, form.get("scope").unwrap_or(&entry.scope))?;
    let user = signed_in_user(state, &entry.username)?;
    entry.status = RefreshStatus::Rotated;
    let entry = entry.clone();
    drop(grants);
    let grant = issue::Grant {
        nonce: None,
        sid: &entry.sid,
        acrs: &entry.acrs,
    };
    issue::issue(state, auth, &user, &scopes, &entry.scope, &grant)
}

/// Whether `entry` may be redeemed by `auth`'s client at `tenant`'s endpoint now.
fn usable(
    state: &State,
    tenant: &Tenant,
    auth: &Authenticated,
    entry: &RefreshGrant,
) -> Result<(), AadError> {
    match entry.status {
        RefreshStatus::Active => {}
        RefreshStatus::Rotated => {
            return Err(AadError::invalid_grant(
                70000,
                "The provided refresh token has already been redeemed; use the refresh token \
                 returned with it.",
            ))
        }
        RefreshStatus::Revoked => {
            return Err(AadError::invalid_grant(
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is \
                 needed. The user might have changed or reset their password.",
            ))
        }
    }
    // AADSTS70000 (InvalidGrant): "The refresh token isn't valid" — for this client.
    if entry.client_id != auth.client.client_id {
        return Err(AadError::invalid_grant(
            70000,
            "The provided refresh token was issued to a different client.",
        ));
    }
    // The multi-tenant authorities route to the user's own tenant; a tenant endpoint must be
    // that tenant. Entra's answer to a token from elsewhere is its generic malformed-request
    // code (AADSTS9002313).
    let home = match tenant {
        Tenant::Id(id) => id.eq_ignore_ascii_case(&entry.tid),
        Tenant::Common | Tenant::Organizations => true,
        Tenant::Consumers => entry.tid == super::discovery::CONSUMERS_TENANT,
    };
    if !home {
        return Err(AadError::invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token was issued in \
             another tenant.",
        ));
    }
    if entry.expires <= now() {
        let msg = format!(
            "The refresh token has expired due to inactivity. The token was issued on {} and \
             was inactive for {} seconds.",
            timestamp(entry.issued),
            state.config.refresh_token_lifetime.as_secs()
        );
        return Err(AadError::invalid_grant(700082, msg));
    }
    Ok(())
}

fn signed_in_user(state: &State, username: &str) -> Result<TestUser, AadError> {
    state.user(username).ok_or_else(|| {
        AadError::invalid_grant(50034, "The user account does not exist in the directory.")
    })
}

/// RFC 7636 §4.6 for S256, after checking the verifier's own syntax (§4.1).
fn verifier_matches(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_verifiers_are_checked_per_rfc_7636() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(challenge, verifier));
        assert!(!verifier_matches(challenge, &verifier.replace('d', "e")));
        // The challenge itself, as a `plain` client would send it, is no S256 verifier.
        assert!(!verifier_matches(challenge, challenge));
        assert!(!verifier_matches(challenge, "short"));
    }

    #[test]
    fn only_form_bodies_are_read() {
        let mut h = HeaderMap::new();
        assert!(!is_form(&h));
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&h));
        h.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert!(is_form(&h));
    }
}
