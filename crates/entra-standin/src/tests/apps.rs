//! Tokens for APIs: the client-credentials grant (app-only tokens with the granted
//! application permissions), v1.0 tokens for an API registered for them, the v1 metadata, and
//! Graph reading any user's groups for an app that holds `GroupMember.Read.All`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::{service_principal_id, AppPermission, TokenVersion};

/// An API registered for v2.0 access tokens.
const API: &str = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
/// An API whose manifest says `accessTokenAcceptedVersion: null` (v1.0 tokens).
const LEGACY_API: &str = "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9";
/// A daemon with application permissions on both APIs and on Graph.
const DAEMON: &str = "0a1b2c3d-4e5f-4061-8273-a4b5c6d7e8f9";
const DAEMON_SECRET: &str = "daemon-secret";
/// A daemon nobody granted anything.
const BARE: &str = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
const BARE_SECRET: &str = "bare-secret";

fn apps_config() -> StandInConfig {
    let mut cfg = config();
    cfg.clients.push(TestClient::new(API, None));
    cfg.clients.push(TestClient {
        access_token_version: TokenVersion::V1,
        ..TestClient::new(LEGACY_API, None)
    });
    cfg.clients.push(TestClient {
        app_permissions: vec![
            AppPermission::api(API, "Tasks.Read.All"),
            AppPermission::api(LEGACY_API, "Reports.Read"),
            AppPermission::graph("GroupMember.Read.All"),
        ],
        ..TestClient::new(DAEMON, Some(DAEMON_SECRET))
    });
    cfg.clients
        .push(TestClient::new(BARE, Some(BARE_SECRET)).with_redirect_uris(&[REDIRECT]));
    cfg
}

async fn app_token(
    si: &StandIn,
    tenant: &str,
    client: (&str, &str),
    scope: &str,
) -> (StatusCode, Value) {
    token_at(
        si,
        tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client.0),
            ("client_secret", client.1),
            ("scope", scope),
        ],
    )
    .await
}

async fn graph_get(url: &str, bearer: &str) -> (StatusCode, Value) {
    let resp = http().get(url).bearer_auth(bearer).send().await.unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn client_credentials_give_app_only_tokens_with_the_granted_roles() {
    let si = start(apps_config()).await;
    let tid = si.tenant_id().to_owned();
    let (status, body) = app_token(
        &si,
        &tid,
        (DAEMON, DAEMON_SECRET),
        &format!("api://{API}/.default"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    assert_eq!(body["token_type"], "Bearer");
    let at = verify(
        &si,
        body["access_token"].as_str().unwrap(),
        API,
        &si.issuer(),
    )
    .await;
    let sp = service_principal_id(DAEMON);
    assert_eq!(at["ver"], "2.0");
    assert_eq!((&at["azp"], &at["azpacr"]), (&json!(DAEMON), &json!("1")));
    assert_eq!((&at["oid"], &at["sub"]), (&json!(sp), &json!(sp)));
    assert_eq!(at["idtyp"], "app");
    assert_eq!(at["roles"], json!(["Tasks.Read.All"]));
    assert_eq!(at["tid"], tid.as_str());
    assert!(at.get("scp").is_none() && at.get("name").is_none(), "{at}");

    // Nothing granted: a token all the same, with no roles at all.
    let (status, body) =
        app_token(&si, &tid, (BARE, BARE_SECRET), &format!("{API}/.default")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bare = verify(
        &si,
        body["access_token"].as_str().unwrap(),
        API,
        &si.issuer(),
    )
    .await;
    assert!(
        bare.get("roles").is_none() && bare.get("scp").is_none(),
        "{bare}"
    );

    // Graph's app token: v1, audience Graph's resource URI, the Graph permissions as roles.
    let (status, body) = app_token(
        &si,
        &tid,
        (DAEMON, DAEMON_SECRET),
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let graph = peek(body["access_token"].as_str().unwrap());
    assert_eq!(graph["aud"], "https://graph.microsoft.com");
    assert_eq!(graph["iss"], si.v1_issuer(&tid));
    assert_eq!(
        (&graph["appid"], &graph["idtyp"]),
        (&json!(DAEMON), &json!("app"))
    );
    assert_eq!(graph["roles"], json!(["GroupMember.Read.All"]));
    assert_eq!(si.token_calls().client_credentials, 3);
}

#[tokio::test]
async fn client_credentials_need_a_tenant_a_credential_and_one_default_scope() {
    let si = start(apps_config()).await;
    let tid = si.tenant_id().to_owned();
    let scope = format!("api://{API}/.default");
    let (status, body) = app_token(&si, "organizations", (DAEMON, DAEMON_SECRET), &scope).await;
    assert_eq!(
        (status, aadsts(&body)),
        (StatusCode::BAD_REQUEST, Some(50059))
    );
    let public = token_at(
        &si,
        &tid,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PUBLIC_CLIENT),
            ("scope", &scope),
        ],
    )
    .await;
    assert_eq!(
        (public.0, aadsts(&public.1)),
        (StatusCode::UNAUTHORIZED, Some(7000218))
    );
    let named = format!("api://{API}/Tasks.Read");
    let (status, body) = app_token(&si, &tid, (DAEMON, DAEMON_SECRET), &named).await;
    assert_eq!(
        (status, aadsts(&body)),
        (StatusCode::BAD_REQUEST, Some(1002012))
    );
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn an_api_registered_for_v1_gets_v1_tokens_and_the_v1_metadata_names_their_issuer() {
    let si = start(apps_config()).await;
    let tid = si.tenant_id().to_owned();
    let scope = format!("openid offline_access api://{LEGACY_API}/read");
    let (status, body) = redeem(&si, &code(&si, &[("scope", &scope)]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v1_iss = si.v1_issuer(&tid);
    assert_eq!(v1_iss, format!("https://sts.windows.net/{tid}/"));
    let aud = format!("api://{LEGACY_API}");
    let at = verify(&si, body["access_token"].as_str().unwrap(), &aud, &v1_iss).await;
    assert_eq!(at["ver"], "1.0");
    assert_eq!(
        (&at["appid"], &at["appidacr"]),
        (&json!(CLIENT), &json!("1"))
    );
    assert_eq!((&at["scp"], &at["upn"]), (&json!("read"), &json!(ALICE)));
    assert!(
        at.get("azp").is_none() && at.get("preferred_username").is_none(),
        "{at}"
    );
    assert_eq!(at["roles"], json!(["Reader"]));

    // App-only, the resource named by its client ID: that is the audience a v1 token carries.
    let (_, body) = app_token(
        &si,
        &tid,
        (DAEMON, DAEMON_SECRET),
        &format!("{LEGACY_API}/.default"),
    )
    .await;
    let app = verify(
        &si,
        body["access_token"].as_str().unwrap(),
        LEGACY_API,
        &v1_iss,
    )
    .await;
    assert_eq!(
        (&app["appid"], &app["roles"]),
        (&json!(DAEMON), &json!(["Reports.Read"]))
    );
    assert!(app.get("azp").is_none());

    let (status, md) = get_json(&format!(
        "{}/{tid}/.well-known/openid-configuration",
        si.base_url()
    ))
    .await;
    assert_eq!((status, &md["issuer"]), (StatusCode::OK, &json!(v1_iss)));
    let (_, md) = get_json(&format!(
        "{}/organizations/.well-known/openid-configuration",
        si.base_url()
    ))
    .await;
    assert_eq!(md["issuer"], "https://sts.windows.net/{tenantid}/");
}

#[tokio::test]
async fn graph_reads_any_users_groups_for_an_app_holding_group_member_read_all() {
    let si = start(StandInConfig {
        graph_page_limit: 2,
        ..apps_config()
    })
    .await;
    let tid = si.tenant_id().to_owned();
    let groups: Vec<String> = (0..5).map(|i| format!("group-{i}")).collect();
    si.set_user_groups(ALICE, groups.clone());
    let alice = si.user(ALICE).unwrap();
    let graph = "https://graph.microsoft.com/.default";
    let (_, body) = app_token(&si, &tid, (DAEMON, DAEMON_SECRET), graph).await;
    let daemon = body["access_token"].as_str().unwrap().to_owned();

    let mut next = Some(format!(
        "{}/v1.0/users/{}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999",
        si.graph_url(),
        alice.oid
    ));
    let mut seen = Vec::new();
    while let Some(url) = next.take() {
        let (status, page) = graph_get(&url, &daemon).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            assert!(n.contains(&format!("/v1.0/users/{}/", alice.oid)), "{n}");
        }
    }
    assert_eq!(seen, groups);
    let by_upn = format!("{}/v1.0/users/{ALICE}/transitiveMemberOf", si.graph_url());
    assert_eq!(graph_get(&by_upn, &daemon).await.0, StatusCode::OK);
    let nobody = format!(
        "{}/v1.0/users/{}/transitiveMemberOf",
        si.graph_url(),
        uuid::Uuid::new_v4()
    );
    assert_eq!(graph_get(&nobody, &daemon).await.0, StatusCode::NOT_FOUND);
    let me = format!("{}/v1.0/me/transitiveMemberOf", si.graph_url());
    assert_eq!(graph_get(&me, &daemon).await.0, StatusCode::BAD_REQUEST);

    // Without the application permission Graph refuses, as it does.
    let (_, body) = app_token(&si, &tid, (BARE, BARE_SECRET), graph).await;
    let (status, err) = graph_get(&by_upn, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("Authorization_RequestDenied"))
    );

    // A delegated token reads only its own user here.
    let (_, body) = redeem(&si, &code(&si, &[("login_hint", BOB)]).await, VERIFIER).await;
    let bob = body["access_token"].as_str().unwrap();
    assert_eq!(graph_get(&by_upn, bob).await.0, StatusCode::FORBIDDEN);
    let bob_oid = si.user(BOB).unwrap().oid;
    let own = format!("{}/v1.0/users/{bob_oid}/transitiveMemberOf", si.graph_url());
    assert_eq!(graph_get(&own, bob).await.0, StatusCode::OK);

    // An outage answers everyone with 503.
    si.set_graph_available(false);
    let (status, err) = graph_get(&own, bob).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("serviceNotAvailable")
        )
    );
}
