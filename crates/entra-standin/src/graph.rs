//! A sliver of Microsoft Graph: the calls a relying party makes to resolve a groups overage —
//! for the signed-in user with a delegated token (`/me/transitiveMemberOf`,
//! `/me/getMemberObjects`), or for any user with an app-only token
//! (`/users/{id}/transitiveMemberOf`) — plus `/me` and the OIDC userinfo endpoint.
//!
//! Served under `{base}/graph` and at the stand-in's root (discovery's `msgraph_host` names the
//! stand-in's host). Only access tokens the stand-in issued for Graph's audience are accepted,
//! answered like Graph answers: 401 `InvalidAuthenticationToken`. Graph's own rules for the
//! two kinds of token hold (user-list-transitivememberof, permissions-reference):
//! - `/me` means the signed-in user: an app-only token gets 400.
//! - Another user's memberships need an application permission that reads them
//!   (`GroupMember.Read.All`, `Group.Read.All` or `Directory.Read.All`); without one, 403
//!   `Authorization_RequestDenied`. A delegated token may read only its own user here.
//! - A user is found by object ID or UPN in the token's tenant; anyone else is 404.
//!
//! Paging is in `graph_pages`.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::aadsts::iso_timestamp;
use super::claims::pairwise_sub;
use super::graph_pages::member_of;
use super::http::{json as json_response, read_body, Params, Resp};
use super::scopes::GRAPH_APP_ID;
use super::state::{lock, now, Counters, State, Subject};
use super::TestUser;

/// Application permissions that let an app read any user's group memberships.
const READS_MEMBERSHIPS: [&str; 3] = [
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

/// Who is calling Graph.
enum Caller {
    /// A delegated token of `user`, issued to `client_id`.
    User { user: TestUser, client_id: String },
    /// An app-only token in tenant `tid` with these application permissions.
    App { tid: String, roles: Vec<String> },
}

/// `prefix` is the base the request came in under (`{base}/graph` or `{base}`), so
/// `nextLink`s point back the same way; `rest` are the path segments after it.
pub(crate) async fn handle(
    state: &State,
    prefix: &str,
    rest: &[&str],
    req: Request<Incoming>,
) -> Resp {
    Counters::bump(&state.counters.graph);
    let method = req.method().clone();
    let headers = req.headers().clone();
    if !lock(&state.controls).graph_up {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
            &headers,
        );
    }
    let query = Params::from_query(req.uri());
    let caller = match caller(state, &headers) {
        Ok(found) => found,
        Err(message) => return unauthorized(message, &headers),
    };
    let pages = |owner: &str, user: &TestUser, cast: bool| {
        let (path, entity_set) = match cast {
            false => ("transitiveMemberOf", "directoryObjects"),
            true => ("transitiveMemberOf/microsoft.graph.group", "groups"),
        };
        member_of(
            state, prefix, owner, path, entity_set, user, &query, &headers,
        )
    };
    if let ["v1.0", "users", id, "transitiveMemberOf", cast @ ..] = rest {
        if method != Method::GET || !matches!(cast, [] | ["microsoft.graph.group"]) {
            return not_found(&headers);
        }
        return match other_user(state, &caller, id) {
            Ok(user) => pages(&format!("users/{id}"), &user, !cast.is_empty()),
            Err(resp) => resp(&headers),
        };
    }
    let (user, client_id) = match (&caller, rest) {
        (Caller::User { user, client_id }, _) => (user, client_id),
        (Caller::App { .. }, ["v1.0", "me", ..]) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
                &headers,
            )
        }
        (Caller::App { .. }, _) => return not_found(&headers),
    };
    match (&method, rest) {
        (&Method::GET, ["v1.0", "me", "transitiveMemberOf"]) => pages("me", user, false),
        (&Method::GET, ["v1.0", "me", "transitiveMemberOf", "microsoft.graph.group"]) => {
            pages("me", user, true)
        }
        (&Method::POST, ["v1.0", "me", "getMemberObjects"]) => {
            // The body (`securityEnabledOnly`) is read but every group is security-enabled here.
            if read_body(req.into_body()).await.is_err() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Unreadable body.",
                    &headers,
                );
            }
            json_response(
                StatusCode::OK,
                &json!({
                    "@odata.context": format!("{prefix}/v1.0/$metadata#Collection(Edm.String)"),
                    "value": user.groups,
                }),
            )
        }
        (&Method::GET, ["v1.0", "me"]) => json_response(
            StatusCode::OK,
            &json!({
                "@odata.context": format!("{prefix}/v1.0/$metadata#users/$entity"),
                "id": user.oid,
                "displayName": user.name,
                "userPrincipalName": user.username,
                "mail": user.email,
            }),
        ),
        (&Method::GET | &Method::POST, ["oidc", "userinfo"]) => json_response(
            StatusCode::OK,
            &json!({
                "sub": pairwise_sub(&user.oid, client_id),
                "name": user.name,
                "email": user.email,
            }),
        ),
        _ => not_found(&headers),
    }
}

type Refusal = fn(&HeaderMap) -> Resp;

/// The user `id` (object ID or UPN) names, if `caller` may read that user's memberships.
fn other_user(state: &State, caller: &Caller, id: &str) -> Result<TestUser, Refusal> {
    let named =
        |u: &TestUser| u.oid.eq_ignore_ascii_case(id) || u.username.eq_ignore_ascii_case(id);
    match caller {
        Caller::App { tid, roles } => {
            if !roles
                .iter()
                .any(|r| READS_MEMBERSHIPS.contains(&r.as_str()))
            {
                return Err(|h| {
                    error(
                        StatusCode::FORBIDDEN,
                        "Authorization_RequestDenied",
                        "Insufficient privileges to complete the operation.",
                        h,
                    )
                });
            }
            state
                .users()
                .into_iter()
                .find(|u| named(u) && state.tid_of(u).eq_ignore_ascii_case(tid))
                .ok_or(|h| {
                    error(
                        StatusCode::NOT_FOUND,
                        "Request_ResourceNotFound",
                        "Resource does not exist or one of its queried reference-property \
                         objects are not present.",
                        h,
                    )
                })
        }
        Caller::User { user, .. } if named(user) => Ok(user.clone()),
        Caller::User { .. } => Err(|h| {
            error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
                h,
            )
        }),
    }
}

/// Who is behind the bearer token, or why Graph would answer 401.
fn caller(state: &State, headers: &HeaderMap) -> Result<Caller, &'static str> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or("Access token is empty.")?;
    let access =
        lock(&state.grants).access.get(token).cloned().ok_or(
            "Invalid JWT token. The token is malformed or was not issued by this directory.",
        )?;
    if access.audience != GRAPH_APP_ID {
        return Err("Access token validation failure. Invalid audience.");
    }
    if access.expires <= now() {
        return Err("Lifetime validation failed, the token is expired.");
    }
    match access.subject {
        Subject::User { username } => {
            let user = state
                .user(&username)
                .ok_or("The user of this token no longer exists.")?;
            Ok(Caller::User {
                user,
                client_id: access.client_id,
            })
        }
        Subject::App { tid, roles } => Ok(Caller::App { tid, roles }),
    }
}

fn unauthorized(message: &str, headers: &HeaderMap) -> Resp {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
        headers,
    );
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        ),
    );
    resp
}

fn not_found(headers: &HeaderMap) -> Resp {
    error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        "Resource not found for the segment.",
        headers,
    )
}

/// Graph's error body.
pub(crate) fn error(status: StatusCode, code: &str, message: &str, headers: &HeaderMap) -> Resp {
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    json_response(
        status,
        &json!({ "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": iso_timestamp(now()),
                "request-id": uuid::Uuid::new_v4().to_string(),
                "client-request-id": client_request_id,
            },
        } }),
    )
}
