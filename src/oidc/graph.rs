//! Groups overage: a user in more than 200 groups gets no `groups` claim but a pointer to an
//! old Azure AD Graph endpoint (`_claim_names`/`_claim_sources`), which must not be called —
//! or, from the implicit flow, `hasgroups: true`. Microsoft's guidance (ENTRA.md §4) is to ask
//! Microsoft Graph instead, following `@odata.nextLink`:
//!
//! - at sign-in, `GET /v1.0/me/transitiveMemberOf?$select=id` with the sign-in's access token
//!   (a Graph token carrying `User.Read` under the default scopes);
//! - for a bearer token, which is not a Graph token and cannot be used for Graph,
//!   `GET /v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$select=id` with the app's
//!   own Graph token (application permission `GroupMember.Read.All`; `directory.rs`).

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

/// At most this many pages (of up to 999 entries) are read.
const MAX_PAGES: usize = 50;

/// Whether the claims announce an overage instead of listing groups.
pub fn has_overage(claims: &Map<String, Value>) -> bool {
    claims
        .get("_claim_names")
        .and_then(|n| n.get("groups"))
        .is_some()
        || claims.get("hasgroups").and_then(Value::as_bool) == Some(true)
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Member>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(rename = "@odata.type", default)]
    kind: String,
    id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Microsoft Graph answered {0}")]
    Status(u16),
    #[error("Microsoft Graph request failed: {0}")]
    Request(String),
    #[error("Microsoft Graph gave a next page outside {0}")]
    ForeignLink(String),
    #[error("Microsoft Graph listed more than {MAX_PAGES} pages of groups")]
    TooMany,
    #[error("the user's object ID is not a GUID")]
    NotAnObjectId,
}

/// Every group the signed-in user is a transitive member of (group object IDs only: directory
/// roles and administrative units in the same list are skipped), with the user's Graph token.
pub async fn transitive_groups(
    http: &reqwest::Client,
    graph_url: &str,
    access_token: &str,
) -> Result<Vec<String>, GraphError> {
    let first = format!("{graph_url}/v1.0/me/transitiveMemberOf?$select=id&$top=999");
    read_pages(http, graph_url, access_token, first).await
}

/// Every group user `oid` is a transitive member of, with the app's own Graph token.
pub async fn user_groups(
    http: &reqwest::Client,
    graph_url: &str,
    app_token: &str,
    oid: &str,
) -> Result<Vec<String>, GraphError> {
    // The ID goes into the path: only a GUID may.
    if !crate::config::auth::is_guid(oid) {
        return Err(GraphError::NotAnObjectId);
    }
    let first = format!(
        "{graph_url}/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999"
    );
    read_pages(http, graph_url, app_token, first).await
}

/// Reads a member list from `first` to its last page.
async fn read_pages(
    http: &reqwest::Client,
    graph_url: &str,
    access_token: &str,
    first: String,
) -> Result<Vec<String>, GraphError> {
    let base = Url::parse(graph_url).map_err(|e| GraphError::Request(e.to_string()))?;
    let mut next = first;
    let mut groups = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = http
            .get(&next)
            .bearer_auth(access_token)
            .header("ConsistencyLevel", "eventual")
            .send()
            .await
            .map_err(|e| GraphError::Request(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(GraphError::Status(resp.status().as_u16()));
        }
        let body = super::limited::read(resp, super::limited::MAX_GRAPH_PAGE)
            .await
            .map_err(|e| match e {
                super::limited::BodyError::Read(e) => {
                    GraphError::Request(e.without_url().to_string())
                }
                e @ super::limited::BodyError::TooLarge(_) => GraphError::Request(e.to_string()),
            })?;
        let page: Page =
            serde_json::from_slice(&body).map_err(|e| GraphError::Request(e.to_string()))?;
        groups.extend(
            page.value
                .into_iter()
                .filter(|m| m.kind.is_empty() || m.kind == "#microsoft.graph.group")
                .filter_map(|m| m.id),
        );
        match page.next {
            None => return Ok(groups),
            Some(link) => {
                // The access token goes only to the configured Graph host.
                let same_origin = Url::parse(&link).is_ok_and(|u| {
                    u.scheme() == base.scheme()
                        && u.host_str() == base.host_str()
                        && u.port_or_known_default() == base.port_or_known_default()
                });
                if !same_origin {
                    return Err(GraphError::ForeignLink(graph_url.to_owned()));
                }
                next = link;
            }
        }
    }
    Err(GraphError::TooMany)
}
