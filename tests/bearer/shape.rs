//! Only access tokens pass, each version with its own issuer rule.

use entra_standin::{TestClient, TestUser, TokenVersion};
use serde_json::json;

use super::*;

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
