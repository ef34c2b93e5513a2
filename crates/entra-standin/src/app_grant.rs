//! The client-credentials grant (v2-oauth2-client-creds-grant-flow): an app asks for a token
//! as itself, with `scope={resource}/.default`.
//!
//! - Only a confidential client may (a secret, a certificate or a federated assertion;
//!   AADSTS7000218 otherwise), and only at a tenant's own endpoint: `common` and
//!   `organizations` name no tenant to issue in (AADSTS50059).
//! - The token carries the application permissions an admin granted the client on that
//!   resource as `roles`; with none, the token simply has no `roles`.
//! - No refresh token, no ID token: the client asks again when the token runs out.
//!
//! Graph app tokens are remembered like every access token, so the Graph emulation can
//! answer them (and refuse what their permissions do not cover).

use serde_json::{json, Value};

use super::aadsts::AadError;
use super::access;
use super::claims::Times;
use super::client_auth::Authenticated;
use super::discovery::Tenant;
use super::http::Params;
use super::issue::signing_failed;
use super::scopes::{self, GRAPH_APP_ID};
use super::state::{lock, now, random, IssuedAccess, State, Subject};

pub(crate) fn grant(
    state: &State,
    tenant: &Tenant,
    auth: &Authenticated,
    form: &Params,
) -> Result<Value, AadError> {
    let Tenant::Id(tid) = tenant else {
        return Err(AadError::bad_request(
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any \
             provided credentials.",
        ));
    };
    if !auth.confidential {
        return Err(AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        ));
    }
    let scope = form
        .get("scope")
        .ok_or_else(|| AadError::missing("scope"))?;
    if let Some(resource) = super::managed_identity::first_party(scope) {
        return super::managed_identity::app_token(state, auth, resource);
    }
    let resource = scopes::resolve_app(state, scope)?;
    let now = now();
    let times = Times::from(now, state.config.access_token_lifetime);
    let (claims, audience, roles) = access::app_only(state, auth, &resource, tid, times);
    // Graph's tokens carry a nonce in their header: nobody but Graph can check them.
    let header_nonce = (audience == GRAPH_APP_ID).then(|| random(32));
    let token = state
        .keys()
        .sign(&claims, None, header_nonce)
        .map_err(signing_failed)?;
    let mut grants = lock(&state.grants);
    grants.purge(now);
    grants.access.insert(
        token.clone(),
        IssuedAccess {
            subject: Subject::App {
                tid: tid.clone(),
                roles,
            },
            client_id: auth.client.client_id.clone(),
            audience,
            expires: times.exp,
        },
    );
    let lifetime = state.config.access_token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}
