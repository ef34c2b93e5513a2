//! Graph's paging of member lists (learn.microsoft.com/graph/paging): `$top` (default 100, at
//! most 999, and never more than `graph_page_limit`, since Graph pages on the server side too)
//! and an absolute `@odata.nextLink` carrying an opaque `$skiptoken`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::graph::error;
use super::http::{json as json_response, Params, Resp};
use super::state::State;
use super::TestUser;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;

/// One page of `user`'s groups. `prefix` is the base the request came in under, `owner` the
/// entity whose navigation property is read (`me` or `users/{id}`), `path` the property
/// (`transitiveMemberOf`, maybe cast to `microsoft.graph.group`), `entity_set` the type named
/// in `@odata.context`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn member_of(
    state: &State,
    prefix: &str,
    owner: &str,
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
        body["@odata.nextLink"] = json!(format!("{prefix}/v1.0/{owner}/{path}?{q}"));
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
