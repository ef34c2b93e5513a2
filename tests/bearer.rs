//! Bearer routes under attack, with tokens shaped as Entra shapes them, taken from the
//! stand-in's token endpoint: delegated (authorization code) and app-only (client
//! credentials), v1.0 and v2.0. ID tokens and tokens without `scp` or `roles` are refused,
//! v1 tokens meet the v1 issuer rule, `required_scopes` and `allowed_client_apps` judge the
//! calling app, and a groups overage is read from Graph by the app itself, or denied.

use entra_standin::{AppPermission, TestClient, TestUser, TokenVersion};
use serde_json::{json, Value};

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
async fn token_endpoint(s: &SignIn, tenant: &str, form: &[(&str, &str)]) -> Value {
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
pub async fn code_flow(
    s: &SignIn,
    (client, secret, redirect): (&str, &str, &str),
    user: &str,
    scope: &str,
) -> Value {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let tid = s.idp.tenant_id().to_owned();
    let authorize = reqwest::Url::parse_with_params(
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

fn setup(routes: String) -> Setup {
    Setup {
        users: vec![alice()],
        routes,
        extra_clients: callers(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn an_id_token_for_this_app_is_refused_on_a_bearer_route() {
    let s = SignIn::start(setup(bearer_route("api", "/", ""))).await;
    // The proxy's own sign-in, as a token thief would replay it: an ID token whose audience
    // and issuer are exactly right.
    let origin = format!("https://{HOST}:{}", s.proxy.https.port());
    let callback = format!("{origin}/.auth/callback");
    let signed_in = code_flow(
        &s,
        (CLIENT_ID, CLIENT_SECRET, &callback),
        "alice@contoso.example",
        "openid profile email offline_access",
    )
    .await;
    let id_token = signed_in["id_token"].as_str().unwrap();
    assert_eq!(claims_of(id_token)["aud"], CLIENT_ID);
    let r = call(&s, "/x", Some(id_token)).await;
    assert_invalid_token(&r, "ID token from sign-in");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("not an access token"), "{challenge}");

    // One from a refresh carries no nonce, and Alice's app roles as `roles`: it still names
    // no client (`azp`), and is still refused.
    let refreshed = token_endpoint(
        &s,
        s.idp.tenant_id(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            (
                "refresh_token",
                signed_in["refresh_token"].as_str().unwrap(),
            ),
        ],
    )
    .await;
    let id_token = refreshed["id_token"].as_str().unwrap();
    let c = claims_of(id_token);
    assert_eq!((c.get("nonce"), &c["roles"]), (None, &json!(["Wiki.Read"])));
    assert_invalid_token(&call(&s, "/x", Some(id_token)).await, "refreshed ID token");

    // A real access token with a nonce added is no access token either.
    let at = user_token(&s, CALLER, "alice@contoso.example", &["Files.Read"]).await;
    assert_eq!(call(&s, "/x", Some(&at)).await.status(), 200);
    let nonce = s
        .idp
        .mint_token(with(claims_of(&at), json!({"nonce": "n"})), None);
    assert_invalid_token(
        &call(&s, "/x", Some(&nonce)).await,
        "access token with a nonce",
    );
}

#[tokio::test]
async fn an_app_only_token_needs_roles() {
    let s = SignIn::start(setup(bearer_route("api", "/", ""))).await;
    let bare = app_token(&s, BARE).await;
    let claims = claims_of(&bare);
    assert_eq!(
        (&claims["idtyp"], claims.get("roles")),
        (&json!("app"), None)
    );
    assert_invalid_token(
        &call(&s, "/x", Some(&bare)).await,
        "app-only token without roles",
    );

    let daemon = app_token(&s, DAEMON).await;
    let r = call(&s, "/x", Some(&daemon)).await;
    assert_eq!(r.status(), 200);
    let echo = crate::support::echo_json(r).await;
    let sp = entra_standin::service_principal_id(DAEMON);
    assert_eq!(seen(&echo, "x-auth-request-oid"), [sp.as_str()]);
    assert_eq!(seen(&echo, "x-auth-request-roles"), ["Tasks.Read.All"]);
}

#[tokio::test]
async fn v1_access_tokens_carry_the_v1_issuer_of_their_tenant() {
    let s = SignIn::start(Setup {
        client: Some(TestClient {
            access_token_version: TokenVersion::V1,
            ..client()
        }),
        ..setup(format!(
            "{}{}",
            bearer_route("api", "/", ""),
            bearer_route(
                "caller-only",
                "/caller-only",
                &format!("allowed_client_apps = [\"{CALLER}\"]")
            )
        ))
    })
    .await;
    let tid = s.idp.tenant_id().to_owned();
    let v1_iss = s.idp.v1_issuer(&tid);
    let delegated = user_token(&s, CALLER, "alice@contoso.example", &["Files.Read"]).await;
    let c = claims_of(&delegated);
    assert_eq!((&c["ver"], &c["iss"]), (&json!("1.0"), &json!(v1_iss)));
    assert_eq!(c["aud"], format!("api://{CLIENT_ID}"));
    let r = call(&s, "/x", Some(&delegated)).await;
    assert_eq!(r.status(), 200);
    let echo = crate::support::echo_json(r).await;
    assert_eq!(
        seen(&echo, "x-auth-request-user"),
        ["alice@contoso.example"]
    );
    let app = app_token(&s, DAEMON).await;
    assert_eq!(claims_of(&app)["ver"], "1.0");
    assert_eq!(call(&s, "/x", Some(&app)).await.status(), 200);
    // The calling app of a v1 token is its `appid`.
    assert_eq!(claims_of(&delegated)["appid"], CALLER);
    let caller_only = call(&s, "/caller-only", Some(&delegated)).await;
    assert_eq!(caller_only.status(), 200);
    let other = user_token(&s, OTHER_CALLER, "alice@contoso.example", &["Files.Read"]).await;
    assert_eq!(call(&s, "/caller-only", Some(&other)).await.status(), 403);
    assert_eq!(call(&s, "/caller-only", Some(&app)).await.status(), 403);

    let other = "00000000-0000-4000-8000-0000000000ff";
    for (what, patch) in [
        (
            "another tenant's v1 issuer",
            json!({"iss": s.idp.v1_issuer(other)}),
        ),
        (
            "the v2 issuer on a v1 token",
            json!({"iss": s.idp.issuer()}),
        ),
        (
            "a v1 issuer on another host",
            json!({"iss": format!("https://sts.example/{tid}/")}),
        ),
        ("a v2 token with the v1 issuer", json!({"ver": "2.0"})),
    ] {
        let forged = s.idp.mint_token(with(claims_of(&delegated), patch), None);
        assert_invalid_token(&call(&s, "/x", Some(&forged)).await, what);
    }
}

#[tokio::test]
async fn v1_tokens_under_a_multi_tenant_authority_need_an_allowed_tenant() {
    const HOME: &str = "11111111-2222-4333-8444-555555555555";
    const GUEST: &str = "3c2b1a09-8f7e-4d6c-9b5a-0123456789ab";
    const STRANGER: &str = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f";
    let mut guest = TestUser::new("jose@fabrikam.example", "José");
    guest.tenant_id = Some(GUEST.into());
    let mut stranger = TestUser::new("eve@evil.example", "Eve");
    stranger.tenant_id = Some(STRANGER.into());
    let s = SignIn::start(Setup {
        users: vec![alice(), guest, stranger],
        tenant_id: Some(HOME.into()),
        tenant: Some("organizations".into()),
        oidc: format!("allowed_tenants = [\"{HOME}\", \"{GUEST}\"]"),
        client: Some(TestClient {
            access_token_version: TokenVersion::V1,
            ..client()
        }),
        extra_clients: callers(),
        routes: bearer_route("api", "/", ""),
        ..Setup::default()
    })
    .await;
    let scope = format!("api://{CLIENT_ID}/.default");
    for (tenant, status) in [(HOME, 200), (GUEST, 200), (STRANGER, 401)] {
        let token = app_token_in(&s, tenant, DAEMON, &scope).await;
        let c = claims_of(&token);
        assert_eq!(
            (&c["tid"], &c["iss"]),
            (&json!(tenant), &json!(s.idp.v1_issuer(tenant)))
        );
        let r = call(&s, "/x", Some(&token)).await;
        assert_eq!(r.status(), status, "tenant {tenant}");
    }
    // A guest token naming the home tenant's issuer: iss must be the template with its own tid.
    let token = app_token_in(&s, GUEST, DAEMON, &scope).await;
    let forged = s.idp.mint_token(
        with(claims_of(&token), json!({"iss": s.idp.v1_issuer(HOME)})),
        None,
    );
    assert_invalid_token(
        &call(&s, "/x", Some(&forged)).await,
        "guest tid, home issuer",
    );
}

#[tokio::test]
async fn required_scopes_admit_any_listed_delegated_scope() {
    let s = SignIn::start(setup(format!(
        "{}{}",
        bearer_route(
            "files",
            "/files",
            "required_scopes = [\"Files.Read\", \"Files.ReadWrite\"]"
        ),
        bearer_route("any", "/", "")
    )))
    .await;
    let alice = "alice@contoso.example";
    let writer = user_token(&s, CALLER, alice, &["Tasks.Read", "Files.ReadWrite"]).await;
    assert_eq!(claims_of(&writer)["scp"], "Tasks.Read Files.ReadWrite");
    assert_eq!(call(&s, "/files/a", Some(&writer)).await.status(), 200);

    let tasks = user_token(&s, CALLER, alice, &["Tasks.Read"]).await;
    let r = call(&s, "/files/a", Some(&tasks)).await;
    assert_eq!(r.status(), 403);
    // RFC 6750 §3.1: the token is fine, its grant is not enough.
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\""
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("permission (scope)"), "{body}");
    assert!(
        !body.contains("Files.Read"),
        "the page names no accepted value: {body}"
    );
    assert_eq!(call(&s, "/other", Some(&tasks)).await.status(), 200);

    // App-only tokens hold roles, never scopes.
    let daemon = app_token(&s, DAEMON).await;
    assert_eq!(call(&s, "/files/a", Some(&daemon)).await.status(), 403);
}

#[tokio::test]
async fn allowed_client_apps_name_the_apps_whose_tokens_are_taken() {
    let s = SignIn::start(setup(bearer_route(
        "api",
        "/",
        &format!(
            "allowed_client_apps = [\"{CALLER}\", \"{}\"]",
            DAEMON.to_uppercase()
        ),
    )))
    .await;
    let alice = "alice@contoso.example";
    let mine = user_token(&s, CALLER, alice, &["Files.Read"]).await;
    assert_eq!(claims_of(&mine)["azp"], CALLER);
    assert_eq!(call(&s, "/x", Some(&mine)).await.status(), 200);
    let daemon = app_token(&s, DAEMON).await;
    assert_eq!(call(&s, "/x", Some(&daemon)).await.status(), 200);

    // The same user, through another app: the token is valid, the app is not welcome.
    let theirs = user_token(&s, OTHER_CALLER, alice, &["Files.Read"]).await;
    let r = call(&s, "/x", Some(&theirs)).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("does not accept calls from the app"),
        "{body}"
    );
    // Nor does claiming the right app in `appid` help a v2 token: `azp` decides.
    let forged = s
        .idp
        .mint_token(with(claims_of(&theirs), json!({"appid": CALLER})), None);
    assert_eq!(call(&s, "/x", Some(&forged)).await.status(), 403);
}

/// A user in 250 groups (Entra puts at most 200 in a token); `extra` is among them.
fn in_many_groups(username: &str, extra: Option<&str>) -> TestUser {
    let mut u = TestUser::new(username, username);
    u.groups = (0..250)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    if let Some(g) = extra {
        u.groups[240] = g.to_owned();
    }
    u
}

/// The proxy's registration, granted Graph's `GroupMember.Read.All` application permission.
fn reads_groups() -> TestClient {
    TestClient {
        app_permissions: vec![AppPermission::graph("GroupMember.Read.All")],
        ..client()
    }
}

fn group_routes() -> String {
    format!(
        "{}{}",
        bearer_route(
            "admins",
            "/admins",
            &format!("allowed_groups = [\"{GROUP_ADMINS}\"]")
        ),
        bearer_route("any", "/", "")
    )
}

#[tokio::test]
async fn an_overage_is_read_from_graph_with_the_apps_own_token_and_kept() {
    let s = SignIn::start(Setup {
        users: vec![
            in_many_groups("ada@contoso.example", Some(GROUP_ADMINS)),
            in_many_groups("bob@contoso.example", None),
        ],
        client: Some(reads_groups()),
        ..setup(group_routes())
    })
    .await;
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let c = claims_of(&ada);
    assert_eq!(
        (c.get("groups"), &c["_claim_names"]["groups"]),
        (None, &json!("src1"))
    );
    let (graph, app_tokens) = (s.idp.graph_calls(), s.idp.token_calls().client_credentials);

    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 200, "the group is found through Graph");
    let echo = crate::support::echo_json(r).await;
    let groups = seen(&echo, "x-auth-request-groups");
    assert_eq!(groups[0].split(',').count(), 250);
    assert!(groups[0].contains(GROUP_ADMINS));
    assert_eq!(s.idp.graph_calls(), graph + 1);
    assert_eq!(s.idp.token_calls().client_credentials, app_tokens + 1);

    // Kept: the next requests ask neither Graph nor the token endpoint.
    assert_eq!(call(&s, "/admins/y", Some(&ada)).await.status(), 200);
    assert_eq!(call(&s, "/z", Some(&ada)).await.status(), 200);
    assert_eq!(s.idp.graph_calls(), graph + 1);

    // Another user: Graph once more, with the app token already held.
    let bob = user_token(&s, CALLER, "bob@contoso.example", &["Files.Read"]).await;
    assert_eq!(call(&s, "/admins/x", Some(&bob)).await.status(), 403);
    assert_eq!(call(&s, "/x", Some(&bob)).await.status(), 200);
    assert_eq!(s.idp.graph_calls(), graph + 2);
    assert_eq!(s.idp.token_calls().client_credentials, app_tokens + 1);
}

#[tokio::test]
async fn an_overage_denies_group_routes_when_graph_cannot_be_asked() {
    let users = || {
        vec![
            in_many_groups("ada@contoso.example", Some(GROUP_ADMINS)),
            in_many_groups("bob@contoso.example", Some(GROUP_ADMINS)),
        ]
    };
    let denied = |what: &str, body: &str| {
        assert!(body.contains("could not be read"), "{what}: {body}");
    };

    // The app was never granted GroupMember.Read.All: Graph answers 403.
    let s = SignIn::start(Setup {
        users: users(),
        ..setup(group_routes())
    })
    .await;
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 403);
    denied("no permission", &r.text().await.unwrap());
    assert_eq!(
        call(&s, "/x", Some(&ada)).await.status(),
        200,
        "no group policy, no denial"
    );

    // Graph is down.
    let s = SignIn::start(Setup {
        users: users(),
        client: Some(reads_groups()),
        ..setup(group_routes())
    })
    .await;
    s.idp.set_graph_available(false);
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 403);
    denied("Graph down", &r.text().await.unwrap());
    // A failed lookup is not repeated on every request.
    let asked = s.idp.graph_calls();
    assert_eq!(call(&s, "/admins/x", Some(&ada)).await.status(), 403);
    assert_eq!(s.idp.graph_calls(), asked);

    // A public client has no credential to ask with.
    let s = SignIn::start(Setup {
        users: users(),
        client: Some(TestClient {
            app_permissions: vec![AppPermission::graph("GroupMember.Read.All")],
            ..TestClient::new(CLIENT_ID, None)
        }),
        credential: Some(String::new()),
        ..setup(group_routes())
    })
    .await;
    let bob = user_token(&s, CALLER, "bob@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&bob)).await;
    assert_eq!(r.status(), 403);
    denied("no credential", &r.text().await.unwrap());
    assert_eq!(s.idp.token_calls().client_credentials, 0);
}
