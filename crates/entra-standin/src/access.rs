//! The claims of access tokens (access-token-claims-reference): delegated tokens for a user
//! and app-only tokens for a client (client-credentials grant), for a registered API or for
//! Microsoft Graph.
//!
//! The version follows the *resource*: an API's registration says v1 or v2
//! (`apps::TokenVersion`); Graph's tokens are v1. The two versions differ where a relying party
//! must tell them apart:
//!
//! | | v1.0 | v2.0 |
//! |---|---|---|
//! | `iss` | `https://sts.windows.net/{tid}/` | `{authority host}/{tid}/v2.0` |
//! | `aud` | the resource as requested (`api://{id}` or the ID) | the client ID |
//! | caller | `appid`, `appidacr` | `azp`, `azpacr` |
//! | user name | `upn`, `unique_name` | `preferred_username` |
//!
//! Delegated tokens carry `scp` (space-separated); app-only tokens carry `roles` (the
//! application permissions granted, none if none were) and `idtyp: "app"`, never `scp`, with
//! the caller's service principal as `oid` and `sub`.

use serde_json::{Map, Value};

use super::apps::{roles_on, service_principal_id, TokenVersion};
use super::claims::{groups, opaque, pairwise_sub, roles, Times};
use super::client_auth::Authenticated;
use super::scopes::{Resource, Scopes, GRAPH_APP_ID};
use super::state::State;
use super::TestUser;

/// The `aud` of app-only Graph tokens (delegated ones carry Graph's application ID).
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// What a token's resource decides: its version, `aud`, and the audience the stand-in records
/// for it (the client ID of the API, or Graph's application ID).
struct Target {
    version: TokenVersion,
    aud: String,
    audience: String,
}

fn target(state: &State, resource: &Resource, app_only: bool) -> Target {
    match resource {
        Resource::Api {
            client_id, named, ..
        } => {
            let version = state
                .client(client_id)
                .map(|c| c.access_token_version)
                .unwrap_or_default();
            let aud = match version {
                TokenVersion::V1 => named.clone(),
                TokenVersion::V2 => client_id.clone(),
            };
            Target {
                version,
                aud,
                audience: client_id.clone(),
            }
        }
        Resource::Graph(_) => Target {
            version: TokenVersion::V1,
            aud: if app_only {
                GRAPH_RESOURCE
            } else {
                GRAPH_APP_ID
            }
            .to_owned(),
            audience: GRAPH_APP_ID.to_owned(),
        },
    }
}

/// The claims every access token has: audience, issuer, times, tenant, version, the caller.
fn common(
    state: &State,
    t: &Target,
    tid: &str,
    auth: &Authenticated,
    times: Times,
) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("aud".into(), Value::from(t.aud.as_str()));
    let (iss, ver, app, acr) = match t.version {
        TokenVersion::V1 => (state.v1_issuer_for(tid), "1.0", "appid", "appidacr"),
        TokenVersion::V2 => (state.issuer_for(tid), "2.0", "azp", "azpacr"),
    };
    map.insert("iss".into(), Value::from(iss));
    map.insert("iat".into(), Value::from(times.iat));
    map.insert("nbf".into(), Value::from(times.iat));
    map.insert("exp".into(), Value::from(times.exp));
    map.insert(app.into(), Value::from(auth.client.client_id.as_str()));
    map.insert(acr.into(), Value::from(auth.acr));
    map.insert("tid".into(), Value::from(tid));
    map.insert("ver".into(), Value::from(ver));
    opaque(&mut map);
    map
}

/// A delegated access token for `scopes`' resource, requested by `auth`'s client for `user`.
/// Returns the claims and the audience to record.
pub(crate) fn delegated(
    state: &State,
    user: &TestUser,
    auth: &Authenticated,
    scopes: &Scopes,
    sid: &str,
    times: Times,
) -> (Value, String) {
    let tid = state.tid_of(user);
    let t = target(state, &scopes.resource, false);
    let mut map = common(state, &t, tid, auth, times);
    map.insert("name".into(), Value::from(user.name.as_str()));
    map.insert("oid".into(), Value::from(user.oid.as_str()));
    map.insert("scp".into(), Value::from(scopes.scp()));
    map.insert("sid".into(), Value::from(sid));
    map.insert(
        "sub".into(),
        Value::from(pairwise_sub(&user.oid, &t.audience)),
    );
    let upn = Value::from(user.username.as_str());
    match (&scopes.resource, t.version) {
        (Resource::Graph(_), _) => {
            map.insert("idtyp".into(), Value::from("user"));
            map.insert("unique_name".into(), upn.clone());
            map.insert("upn".into(), upn);
        }
        (Resource::Api { .. }, TokenVersion::V1) => {
            map.insert("unique_name".into(), upn.clone());
            map.insert("upn".into(), upn);
            groups(&mut map, state, user, tid);
            roles(&mut map, user);
        }
        (Resource::Api { .. }, TokenVersion::V2) => {
            map.insert("preferred_username".into(), upn);
            groups(&mut map, state, user, tid);
            roles(&mut map, user);
        }
    }
    (Value::Object(map), t.audience)
}

/// An app-only access token for `resource`, issued to `auth`'s client in tenant `tid`.
/// Returns the claims, the audience to record and the roles granted.
pub(crate) fn app_only(
    state: &State,
    auth: &Authenticated,
    resource: &Resource,
    tid: &str,
    times: Times,
) -> (Value, String, Vec<String>) {
    let t = target(state, resource, true);
    let mut map = common(state, &t, tid, auth, times);
    let sp = service_principal_id(&auth.client.client_id);
    map.insert("idtyp".into(), Value::from("app"));
    map.insert("oid".into(), Value::from(sp.as_str()));
    map.insert("sub".into(), Value::from(sp));
    let granted = roles_on(&auth.client.app_permissions, &t.audience);
    if !granted.is_empty() {
        map.insert("roles".into(), Value::from(granted.clone()));
    }
    (Value::Object(map), t.audience, granted)
}
