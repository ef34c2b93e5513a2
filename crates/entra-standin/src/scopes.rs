//! Requested scopes → which resource the access token is for.
//!
//! Entra issues one access token per resource: the OIDC scopes (`openid`, `profile`, `email`,
//! `offline_access`) ride along with any resource, and all other scopes in one request must
//! belong to the same resource (AADSTS700022). A scope naming one of the registered clients
//! (`api://{client_id}/x` or `{client_id}/x`) targets that API; Graph scopes (bare names,
//! `https://graph.microsoft.com/x`, Graph's app ID, or the stand-in's own Graph URL) — or no
//! resource scope at all — yield a Graph token (v2-permissions-and-consent).

use super::aadsts::AadError;
use super::state::State;

/// Microsoft Graph's application ID: the `aud` of Graph tokens.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const GRAPH_URI: &str = "https://graph.microsoft.com";

/// The resource an access token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Graph, with the extra Graph scopes named (beyond the default `User.Read`).
    Graph(Vec<String>),
    /// One of the registered clients, exposing an API, with its scope names. `named` is the
    /// resource as the request wrote it (`api://{id}` or the bare ID): a v1 token's `aud`.
    Api {
        client_id: String,
        scp: Vec<String>,
        named: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Scopes {
    pub openid: bool,
    pub resource: Resource,
    /// The scopes as requested, for the token response's `scope`.
    pub requested: Vec<String>,
}

impl Scopes {
    /// The `scp` claim.
    pub fn scp(&self) -> String {
        match &self.resource {
            Resource::Graph(extra) => {
                let mut scp: Vec<&str> = vec!["openid", "profile", "email", "User.Read"];
                for s in extra {
                    if !scp.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                        scp.push(s);
                    }
                }
                scp.join(" ")
            }
            Resource::Api { scp, .. } => scp.join(" "),
        }
    }

    /// The `scope` member of the token response (Entra omits `offline_access` there).
    pub fn granted(&self) -> String {
        self.requested
            .iter()
            .filter(|s| !s.eq_ignore_ascii_case("offline_access"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses a space-separated `scope` parameter.
pub(crate) fn resolve(state: &State, raw: &str) -> Result<Scopes, AadError> {
    let requested: Vec<String> = raw.split_whitespace().map(str::to_owned).collect();
    if requested.is_empty() {
        return Err(AadError::missing("scope"));
    }
    let mut openid = false;
    let mut resource: Option<Resource> = None;
    for scope in &requested {
        match scope.to_ascii_lowercase().as_str() {
            "openid" => openid = true,
            "profile" | "email" | "offline_access" => {}
            _ => {
                let (target, name) = target_of(state, scope)?;
                resource = Some(merge(resource, target, name, raw)?);
            }
        }
    }
    Ok(Scopes {
        openid,
        resource: resource.unwrap_or(Resource::Graph(Vec::new())),
        requested,
    })
}

/// A registered API a scope names: its client ID and the resource as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Api {
    client_id: String,
    named: String,
}

/// Which resource a non-OIDC scope belongs to (`None`: Graph), and the scope's short name.
fn target_of<'a>(state: &State, scope: &'a str) -> Result<(Option<Api>, &'a str), AadError> {
    let (prefix, name) = match scope.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() => (Some(p), n),
        Some(_) => return Err(invalid_scope(scope)),
        // A bare name is a Graph permission.
        None => (None, scope),
    };
    let Some(prefix) = prefix else {
        return Ok((None, name));
    };
    // The stand-in serves Graph itself, at `{base}/graph` and at its root: a client pointed at
    // that Graph names it as the resource, as a national-cloud client names its cloud's Graph.
    let here = [state.graph_url.as_str(), state.base_url.as_str()];
    if prefix.eq_ignore_ascii_case(GRAPH_URI) || prefix == GRAPH_APP_ID || here.contains(&prefix) {
        return Ok((None, name));
    }
    let app = prefix.strip_prefix("api://").unwrap_or(prefix);
    if state.client(app).is_some() {
        let api = Api {
            client_id: app.to_owned(),
            named: prefix.to_owned(),
        };
        return Ok((Some(api), name));
    }
    Err(AadError::bad_request(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {prefix} was not found in the tenant named {}. This \
             can happen if the application has not been installed by the administrator of the \
             tenant or consented to by any user in the tenant. You might have sent your \
             authentication request to the wrong tenant.",
            state.config.tenant_id
        ),
    ))
}

/// Adds one scope to the resource found so far; a second resource is an error.
fn merge(
    so_far: Option<Resource>,
    target: Option<Api>,
    name: &str,
    raw: &str,
) -> Result<Resource, AadError> {
    // `.default` asks for everything consented: for Graph that is the `User.Read` every token
    // has anyway; for an API, the conventional `access_as_user`.
    let graph_extra = || (name != ".default").then(|| name.to_owned());
    let api_scope = || match name {
        ".default" => "access_as_user".to_owned(),
        n => n.to_owned(),
    };
    match (so_far, target) {
        (None, None) => Ok(Resource::Graph(graph_extra().into_iter().collect())),
        (Some(Resource::Graph(mut extra)), None) => {
            extra.extend(graph_extra());
            Ok(Resource::Graph(extra))
        }
        (None, Some(api)) => Ok(Resource::Api {
            client_id: api.client_id,
            scp: vec![api_scope()],
            named: api.named,
        }),
        (
            Some(Resource::Api {
                client_id,
                mut scp,
                named,
            }),
            Some(app),
        ) if client_id == app.client_id => {
            let s = api_scope();
            if !scp.contains(&s) {
                scp.push(s);
            }
            Ok(Resource::Api {
                client_id,
                scp,
                named,
            })
        }
        _ => Err(AadError::bad_request(
            "invalid_scope",
            700022,
            format!(
                "The provided value for the input parameter scope is not valid because it \
                 contains more than one resource. Scope {raw} is not valid."
            ),
        )),
    }
}

/// The resource of a client-credentials request: exactly one `{resource}/.default` scope
/// (AADSTS1002012 otherwise). An app-only token carries the granted application
/// permissions, never named scopes.
pub(crate) fn resolve_app(state: &State, raw: &str) -> Result<Resource, AadError> {
    let requested: Vec<&str> = raw.split_whitespace().collect();
    let [scope] = requested[..] else {
        return Err(match requested.len() {
            0 => AadError::missing("scope"),
            _ => invalid_scope(raw),
        });
    };
    match target_of(state, scope)? {
        (target, ".default") if scope.contains('/') => Ok(match target {
            None => Resource::Graph(Vec::new()),
            Some(api) => Resource::Api {
                client_id: api.client_id,
                scp: Vec::new(),
                named: api.named,
            },
        }),
        _ => Err(AadError::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        )),
    }
}

fn invalid_scope(scope: &str) -> AadError {
    AadError::bad_request(
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope \
            {scope} is not valid."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeySet, SigningKey};
    use crate::{StandInConfig, TestClient};

    fn state() -> State {
        let config = StandInConfig {
            clients: vec![TestClient::new(
                "11111111-1111-1111-1111-111111111111",
                None,
            )],
            ..StandInConfig::default()
        };
        State::new(
            config,
            "http://x".into(),
            KeySet::new(SigningKey::generate().unwrap()),
        )
    }

    #[test]
    fn oidc_scopes_alone_give_a_graph_token() {
        let s = resolve(&state(), "openid profile email offline_access").unwrap();
        assert!(s.openid);
        assert_eq!(s.resource, Resource::Graph(vec![]));
        assert_eq!(s.scp(), "openid profile email User.Read");
        assert_eq!(s.granted(), "openid profile email");
    }

    #[test]
    fn api_scopes_target_the_registered_client() {
        let st = state();
        let app = "11111111-1111-1111-1111-111111111111";
        let s = resolve(&st, &format!("openid api://{app}/read {app}/write")).unwrap();
        assert_eq!(
            s.resource,
            Resource::Api {
                client_id: "11111111-1111-1111-1111-111111111111".into(),
                scp: vec!["read".into(), "write".into()],
                named: format!("api://{app}"),
            }
        );
        let g = resolve(
            &st,
            "https://graph.microsoft.com/GroupMember.Read.All User.Read",
        )
        .unwrap();
        assert_eq!(
            g.scp(),
            "openid profile email User.Read GroupMember.Read.All"
        );
    }

    #[test]
    fn mixed_or_unknown_resources_are_refused() {
        let st = state();
        let mixed = resolve(
            &st,
            "User.Read api://11111111-1111-1111-1111-111111111111/read",
        );
        assert_eq!(mixed.unwrap_err().code, 700022);
        let unknown = resolve(&st, "api://22222222-2222-2222-2222-222222222222/read");
        assert_eq!(unknown.unwrap_err().error, "invalid_resource");
        assert_eq!(resolve(&st, "  ").unwrap_err().code, 900144);
    }

    #[test]
    fn client_credentials_take_one_default_scope() {
        let st = state();
        let app = "11111111-1111-1111-1111-111111111111";
        for graph in ["https://graph.microsoft.com", "http://x/graph", "http://x"] {
            assert_eq!(
                resolve_app(&st, &format!("{graph}/.default")).unwrap(),
                Resource::Graph(vec![]),
                "{graph}"
            );
        }
        assert_eq!(
            resolve_app(&st, &format!("{app}/.default")).unwrap(),
            Resource::Api {
                client_id: app.into(),
                scp: vec![],
                named: app.into(),
            }
        );
        for bad in [
            "https://graph.microsoft.com/User.Read".to_owned(),
            format!("api://{app}/read"),
            "User.Read".to_owned(),
            ".default".to_owned(),
        ] {
            assert_eq!(resolve_app(&st, &bad).unwrap_err().code, 1002012, "{bad}");
        }
        let two = format!("api://{app}/.default https://graph.microsoft.com/.default");
        assert_eq!(resolve_app(&st, &two).unwrap_err().code, 70011);
    }
}
