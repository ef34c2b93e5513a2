//! Managed identities and the tokens the proxy asks for as itself for a resource such as
//! Azure's Redis (`https://redis.azure.com`).
//!
//! - `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]`
//!   with `Metadata: true`: the Instance Metadata Service (how-to-use-vm-token). Served on
//!   the stand-in's plain-HTTP side listener too ([`crate::StandIn::imds_endpoint`]), as the
//!   real IMDS is plain HTTP on a link-local address.
//! - `GET /msi/token?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER`: App
//!   Service's identity endpoint (overview-managed-identity, "REST endpoint reference").
//! - The client-credentials grant for a first-party resource (`https://redis.azure.com/.default`)
//!   at the token endpoint, for the app's own credential (`app_grant.rs` calls [`app_token`]).
//!
//! Answers are shaped as IMDS writes them: every number a string (`expires_in`, `expires_on`,
//! `not_before`), errors as `{"error": "invalid_request", "error_description": …}` with 400.
//! Tokens are RS256 with `aud` = the resource, `oid` = `sub` = the identity's object ID, `tid`,
//! `iss`, `iat`/`nbf`/`exp`; a token for `api://AzureADTokenExchange` carries the v2 issuer, as
//! a federated identity credential on an app registration names it (`assertion.rs` checks it).
//!
//! Tests that emulate a resource server register a hook ([`crate::StandIn::set_token_hook`])
//! that sees each such token before the caller does (to mirror it into Redis ACLs), and set
//! the lifetime of these tokens (a few seconds, to exercise renewal).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::aadsts::AadError;
use super::apps::service_principal_id;
use super::client_auth::Authenticated;
use super::http::{json as json_response, Params, Resp};
use super::issue::signing_failed;
use super::state::{lock, now, State};

/// The audience of tokens exchanged as federated client assertions.
pub(crate) const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// First-party resources the client-credentials grant issues tokens for, besides Graph and
/// the registered APIs.
const FIRST_PARTY: &[&str] = &["https://redis.azure.com"];

/// A token issued for a resource, as the resource's emulation needs to know it.
#[derive(Clone)]
pub struct IssuedResourceToken {
    pub token: String,
    /// The identity's object ID (a managed identity's, or an app's service principal).
    pub oid: String,
    pub audience: String,
    /// Unix seconds.
    pub expires: u64,
}

impl std::fmt::Debug for IssuedResourceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedResourceToken")
            .field("oid", &self.oid)
            .field("audience", &self.audience)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Called with each resource token before it is handed out.
pub type TokenHook =
    Arc<dyn Fn(IssuedResourceToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A managed identity the host has.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// `None`: the system-assigned identity.
    pub client_id: Option<String>,
    pub object_id: String,
}

pub(crate) struct Identities {
    pub list: Vec<Identity>,
    pub lifetime: Duration,
    /// App Service's `IDENTITY_HEADER`.
    pub header_secret: String,
    pub hook: Option<TokenHook>,
    /// Tokens issued by the (synchronous) grant code whose hook has not run yet.
    pub pending: Vec<IssuedResourceToken>,
    pub issued: usize,
}

impl Default for Identities {
    fn default() -> Identities {
        Identities {
            list: Vec::new(),
            lifetime: Duration::from_secs(3600),
            header_secret: super::state::random(24),
            hook: None,
            pending: Vec::new(),
            issued: 0,
        }
    }
}

fn imds_error(description: &str) -> Resp {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": description}),
    )
}

/// `GET /metadata/identity/oauth2/token` (`app_service = false`) or `GET /msi/token`.
pub(crate) async fn handle(state: &State, req: Request<Incoming>, app_service: bool) -> Resp {
    let query = Params::from_query(req.uri());
    let headers: &HeaderMap = req.headers();
    let (version, proof) = if app_service {
        let secret = lock(&state.identities).header_secret.clone();
        let given = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        ("2019-08-01", given == Some(secret.as_str()))
    } else {
        let given = headers.get("metadata").and_then(|v| v.to_str().ok());
        (
            "2018-02-01",
            given.is_some_and(|v| v.eq_ignore_ascii_case("true")),
        )
    };
    if !proof {
        return imds_error("Required metadata header not specified");
    }
    if query.get("api-version") != Some(version) {
        return imds_error("Invalid or missing api-version");
    }
    let Some(resource) = query.get("resource") else {
        return imds_error("Required audience parameter not specified");
    };
    let wanted = query.get("client_id").map(str::to_ascii_lowercase);
    let identity = {
        let ids = lock(&state.identities);
        ids.list.iter().find(|i| i.client_id == wanted).cloned()
    };
    let Some(identity) = identity else {
        return imds_error("Identity not found");
    };
    let client_id = identity
        .client_id
        .clone()
        .unwrap_or_else(|| service_principal_id(&format!("system|{}", identity.object_id)));
    match issue(state, &identity.object_id, &client_id, resource) {
        Ok((issued, body)) => {
            run_hook(state, issued).await;
            json_response(StatusCode::OK, &body)
        }
        Err(_) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "unknown_error", "error_description": "signing failed"}),
        ),
    }
}

/// Signs a token for `resource` as `oid`; the IMDS-shaped answer (numbers as strings).
fn issue(
    state: &State,
    oid: &str,
    client_id: &str,
    resource: &str,
) -> Result<(IssuedResourceToken, Value), AadError> {
    let tid = state.config.tenant_id.clone();
    let lifetime = lock(&state.identities).lifetime.as_secs().max(1);
    let iat = now();
    let exp = iat + lifetime;
    let (iss, ver) = if resource == EXCHANGE_AUDIENCE {
        (state.issuer_for(&tid), "2.0")
    } else {
        (state.v1_issuer_for(&tid), "1.0")
    };
    let claims = json!({
        "aud": resource, "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
        "oid": oid, "sub": oid, "tid": tid, "appid": client_id, "idtyp": "app",
        "ver": ver, "uti": super::state::random(16),
    });
    let token = state
        .keys()
        .sign(&claims, None, None)
        .map_err(signing_failed)?;
    lock(&state.identities).issued += 1;
    let body = json!({
        "access_token": token,
        "client_id": client_id,
        "expires_in": lifetime.to_string(),
        "expires_on": exp.to_string(),
        "ext_expires_in": lifetime.to_string(),
        "not_before": iat.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    let issued = IssuedResourceToken {
        token,
        oid: oid.to_owned(),
        audience: resource.to_owned(),
        expires: exp,
    };
    Ok((issued, body))
}

/// The first-party resource a client-credentials `scope` names, if it is one.
pub(crate) fn first_party(scope: &str) -> Option<&'static str> {
    let resource = scope.trim().strip_suffix("/.default")?;
    FIRST_PARTY.iter().copied().find(|r| *r == resource)
}

/// The client-credentials answer for a first-party `resource`: the app's service principal
/// is the token's `oid`. The hook runs once the grant returns (`take_pending`).
pub(crate) fn app_token(
    state: &State,
    auth: &Authenticated,
    resource: &str,
) -> Result<Value, AadError> {
    let client_id = &auth.client.client_id;
    let (issued, body) = issue(state, &service_principal_id(client_id), client_id, resource)?;
    let lifetime = issued.expires.saturating_sub(now());
    lock(&state.identities).pending.push(issued.clone());
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": body["access_token"],
    }))
}

/// Runs the hook for the token in `body` if the grant code left one pending.
pub(crate) async fn after_grant(state: &State, body: &Value) {
    let Some(token) = body.get("access_token").and_then(Value::as_str) else {
        return;
    };
    let pending = {
        let mut ids = lock(&state.identities);
        let at = ids.pending.iter().position(|p| p.token == token);
        at.map(|i| ids.pending.swap_remove(i))
    };
    if let Some(issued) = pending {
        run_hook(state, issued).await;
    }
}

async fn run_hook(state: &State, issued: IssuedResourceToken) {
    let hook = lock(&state.identities).hook.clone();
    if let Some(hook) = hook {
        hook(issued).await;
    }
}
