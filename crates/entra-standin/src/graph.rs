//! A sliver of Microsoft Graph: the calls a relying party makes to resolve a groups overage
//! (`/me/transitiveMemberOf`, `/me/getMemberObjects`), `/me`, and the OIDC userinfo endpoint.
//!
//! Served under `{base}/graph` and at the stand-in's root (discovery's `msgraph_host` names the
//! stand-in's host). Only access tokens the stand-in issued for Graph's audience are accepted,
//! answered like Graph answers: 401 `InvalidAuthenticationToken`. Member lists page with
//! `$top` (default 100, at most 999, and never more than `graph_page_limit`) and an absolute
//! `@odata.nextLink` carrying `$skiptoken`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::aadsts::iso_timestamp;
use super::claims::pairwise_sub;
use super::http::{json as json_response, read_body, Params, Resp};
use super::scopes::GRAPH_APP_ID;
use super::state::{lock, now, Counters, IssuedAccess, State};
use super::TestUser;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;

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
    let query = Params::from_query(req.uri());
    let (user, access) = match caller(state, &headers) {
        Ok(found) => found,
        Err(message) => return unauthorized(message, &headers),
    };
    match (&method, rest) {
        (&Method::GET, ["v1.0", "me", "transitiveMemberOf"]) => member_of(
            state,
            prefix,
            "transitiveMemberOf",
            "directoryObjects",
            &user,
            &query,
            &headers,
        ),
        (&Method::GET, ["v1.0", "me", "transitiveMemberOf", "microsoft.graph.group"]) => member_of(
            state,
            prefix,
            "transitiveMemberOf/microsoft.graph.group",
            "groups",
            &user,
            &query,
            &headers,
        ),
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
                "sub": pairwise_sub(&user.oid, &access.client_id),
                "name": user.name,
                "email": user.email,
            }),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "Resource not found for the segment.",
            &headers,
        ),
    }
}

/// The user behind the bearer token, or why Graph would answer 401.
fn caller(state: &State, headers: &HeaderMap) -> Result<(TestUser, IssuedAccess), &'static str> {
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
    let user = state
        .user(&access.username)
        .ok_or("The user of this token no longer exists.")?;
    Ok((user, access))
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

fn member_of(
    state: &State,
    prefix: &str,
    path: &str,
    entity_set: &str,
    user: &TestUser,
    query: &Params,
    headers: &HeaderMap,
) -> Resp {
    let top = match query.get("$top").map(str::parse::<usize>) {
        None => DEFAULT_PAGE.min(state.config.graph_page_limit),
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n.min(state.config.graph_page_limit),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Invalid page size specified: '$top'. Must be between 1 and 999 inclusive.",
                headers,
            )
        }
    };
    let skip = match query.get("$skiptoken").map(decode_skiptoken) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            let msg = "The specified page token value has expired and can no longer be included \
                       in your request.";
            return error(
                StatusCode::BAD_REQUEST,
                "Directory_ExpiredPageToken",
                msg,
                headers,
            );
        }
    };
    let page: Vec<Value> = user
        .groups
        .iter()
        .skip(skip)
        .take(top)
        .map(|id| json!({ "@odata.type": "#microsoft.graph.group", "id": id }))
        .collect();
    let select = query.get("$select");
    let context = match select {
        Some(s) => format!("{prefix}/v1.0/$metadata#{entity_set}({s})"),
        None => format!("{prefix}/v1.0/$metadata#{entity_set}"),
    };
    let mut body = json!({ "@odata.context": context, "value": page });
    let next = skip.saturating_add(top);
    if next < user.groups.len() {
        // Graph writes the `$` of system query options literally.
        let mut q = String::new();
        if let Some(s) = select {
            let s: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            q.push_str(&format!("$select={s}&"));
        }
        q.push_str(&format!("$top={top}&$skiptoken={}", encode_skiptoken(next)));
        body["@odata.nextLink"] = json!(format!("{prefix}/v1.0/me/{path}?{q}"));
    }
    json_response(StatusCode::OK, &body)
}

/// Opaque to callers, as Graph's are: they must follow `nextLink`, not build it.
fn encode_skiptoken(offset: usize) -> String {
    format!(
        "RFNwdAIAAQAAA{}",
        URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
    )
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix("RFNwdAIAAQAAA")?)
        .ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// Graph's error body.
fn error(status: StatusCode, code: &str, message: &str, headers: &HeaderMap) -> Resp {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(250)), Some(250));
        assert_eq!(decode_skiptoken("garbage"), None);
        assert_eq!(decode_skiptoken("RFNwdAIAAQAAA!!"), None);
    }
}
