//! Bearer routes under attack, with tokens shaped as Entra shapes them, taken from the
//! stand-in's token endpoint: delegated (authorization code) and app-only (client
//! credentials), v1.0 and v2.0. This file holds the apps and the helpers; one module per
//! rule:
//!
//! - `shape`: ID tokens and tokens without `scp` or `roles` are refused; v1 tokens meet the
//!   v1 issuer rule, under single- and multi-tenant authorities.
//! - `callers`: `required_scopes` and `allowed_client_apps` judge the calling app.
//! - `overage`: a groups overage is read from Graph by the app itself, or denied.
//! - `login_or_bearer`: a request is judged by its token when it brings one, and only so.
//! - `step_up`: a route's `auth_context` answers a token without it with a claims challenge.

mod callers;
mod login_or_bearer;
mod overage;
mod shape;
mod step_up;

use entra_standin::{AppPermission, TestClient};
use serde_json::Value;

use crate::support::seen;
use crate::support::signin::{
    alice, client, Setup, SignIn, CLIENT_ID, CLIENT_SECRET, GROUP_ADMINS, HOST,
};

/// A confidential client app that calls the API behind the proxy.
pub const CALLER: &str = "3d4e5f60-7182-4394-a5b6-c7d8e9f0a1b2";
pub const CALLER_SECRET: &str = "caller-secret";
pub const CALLER_REDIRECT: &str = "https://caller.example/callback";
/// Another client app, registered the same way.
pub const OTHER_CALLER: &str = "4e5f6071-8293-44a5-b6c7-d8e9f0a1b2c3";
/// A daemon granted the API's `Tasks.Read.All` application permission.
pub const DAEMON: &str = "5f607182-93a4-45b6-87d8-e9f0a1b2c3d4";
/// A daemon nobody granted anything.
pub const BARE: &str = "60718293-a4b5-46c7-98e9-f0a1b2c3d4e5";
pub const DAEMON_SECRET: &str = "daemon-secret";

/// The client apps every test here registers beside the proxy's own.
pub fn callers() -> Vec<TestClient> {
    vec![
        TestClient::new(CALLER, Some(CALLER_SECRET)).with_redirect_uris(&[CALLER_REDIRECT]),
        TestClient::new(OTHER_CALLER, Some(CALLER_SECRET)).with_redirect_uris(&[CALLER_REDIRECT]),
        TestClient {
            app_permissions: vec![AppPermission::api(CLIENT_ID, "Tasks.Read.All")],
            ..TestClient::new(DAEMON, Some(DAEMON_SECRET))
        },
        TestClient::new(BARE, Some(DAEMON_SECRET)),
    ]
}

/// A `[[route]]` with `auth = "bearer"` on `path_prefix`, plus `extra` lines.
pub fn bearer_route(name: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nhost = \"{HOST}\"\npath_prefix = \"{prefix}\"\nupstream = \"{{upstream}}\"\nauth = \"bearer\"\n{extra}\n"
    )
}

/// An HTTP client for the stand-in (it serves TLS from the test CA).
fn idp_http(s: &SignIn) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(s.proxy.pki.ca_pem.as_bytes()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// POSTs `form` to tenant `tenant`'s token endpoint; the JSON answer.
pub async fn token_endpoint(s: &SignIn, tenant: &str, form: &[(&str, &str)]) -> Value {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", s.idp.base_url());
    let resp = idp_http(s).post(url).form(form).send().await.unwrap();
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

/// An app-only token for `client` (client-credentials grant) in `tenant`, for `scope`.
pub async fn app_token_in(s: &SignIn, tenant: &str, client: &str, scope: &str) -> String {
    let body = token_endpoint(
        s,
        tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", DAEMON_SECRET),
            ("scope", scope),
        ],
    )
    .await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// An app-only token for the API behind the proxy, in the stand-in's home tenant.
pub async fn app_token(s: &SignIn, client: &str) -> String {
    let tid = s.idp.tenant_id().to_owned();
    app_token_in(s, &tid, client, &format!("api://{CLIENT_ID}/.default")).await
}

/// The token answer of an authorization-code flow in which `user` signs in to `client`
/// (registered with `redirect`) asking for `scope`.
pub async fn code_flow(s: &SignIn, app: (&str, &str, &str), user: &str, scope: &str) -> Value {
    code_flow_with(s, app, user, scope, &[]).await
}

/// [`code_flow`] with more authorize parameters (`claims`).
pub async fn code_flow_with(
    s: &SignIn,
    (client, secret, redirect): (&str, &str, &str),
    user: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> Value {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let tid = s.idp.tenant_id().to_owned();
    let mut authorize = reqwest::Url::parse_with_params(
        &format!("{}/{tid}/oauth2/v2.0/authorize", s.idp.base_url()),
        [
            ("client_id", client),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "st"),
            ("nonce", "n-0"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("login_hint", user),
        ],
    )
    .unwrap();
    authorize.query_pairs_mut().extend_pairs(extra);
    let resp = idp_http(s).get(authorize).send().await.unwrap();
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code: {location}"))
        .1
        .into_owned();
    token_endpoint(
        s,
        &tid,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// A delegated token of `user` for the API behind the proxy, asked for by `client` with the
/// API's scopes `scopes` (short names).
pub async fn user_token(s: &SignIn, client: &str, user: &str, scopes: &[&str]) -> String {
    // The stand-in, stricter than Entra, signs in only with `openid`.
    let mut scope = vec!["openid".to_owned()];
    scope.extend(scopes.iter().map(|n| format!("api://{CLIENT_ID}/{n}")));
    let body = code_flow(
        s,
        (client, CALLER_SECRET, CALLER_REDIRECT),
        user,
        &scope.join(" "),
    )
    .await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

/// The claims of `jwt`, unverified (to build forged variants of a real token).
pub fn claims_of(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims(jwt).unwrap()
}

pub fn with(mut claims: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// `GET path` on the proxy with `token` as the bearer (none if `None`).
pub async fn call(s: &SignIn, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = s
        .proxy
        .client(&[HOST])
        .get(s.url(path))
        .header("accept", "application/json");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// Asserts a 401 whose challenge says `invalid_token`.
pub fn assert_invalid_token(r: &reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

pub fn setup(routes: String) -> Setup {
    Setup {
        users: vec![alice()],
        routes,
        extra_clients: callers(),
        ..Setup::default()
    }
}
