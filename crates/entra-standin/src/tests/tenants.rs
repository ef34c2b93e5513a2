//! Which tenants the stand-in serves: its own, its users' and the multi-tenant authorities;
//! any other GUID is AADSTS90002 on every endpoint.

use reqwest::StatusCode;

use super::*;
use crate::discovery::CONSUMERS_TENANT;

const NOWHERE: &str = "4e0b9c1d-7a2f-4b3e-8c5d-6f7a8b9c0d1e";
const FABRIKAM: &str = "3f1d2c4b-5a69-4e8f-9b0a-1c2d3e4f5a6b";

fn with_guest() -> StandInConfig {
    let mut carol = TestUser::new("carol@fabrikam.test", "Carol");
    carol.tenant_id = Some(FABRIKAM.into());
    let mut cfg = config();
    cfg.users.push(carol);
    cfg
}

fn assert_unknown_tenant(status: StatusCode, body: &serde_json::Value) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_tenant");
    assert_eq!(aadsts(body), Some(90002));
}

#[tokio::test]
async fn discovery_and_keys_of_an_unknown_tenant_are_aadsts90002() {
    let si = start(with_guest()).await;
    let (status, body) = get_json(&format!(
        "{}/.well-known/openid-configuration",
        si.authority(NOWHERE)
    ))
    .await;
    assert_unknown_tenant(status, &body);
    let (status, body) =
        get_json(&format!("{}/{NOWHERE}/discovery/v2.0/keys", si.base_url())).await;
    assert_unknown_tenant(status, &body);
}

#[tokio::test]
async fn authorize_token_and_logout_at_an_unknown_tenant_are_aadsts90002() {
    let si = start(with_guest()).await;
    let url = format!("{}/{NOWHERE}/oauth2/v2.0/authorize", si.base_url());
    let resp = http()
        .get(reqwest::Url::parse_with_params(&url, authorize_params(&[])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS90002"));

    let code = code(&si, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = token_at(&si, NOWHERE, &form).await;
    assert_unknown_tenant(status, &body);
    // Refused before the code was looked at: it still redeems at its own tenant.
    assert_eq!(token(&si, &form).await.0, StatusCode::OK);

    let url = format!("{}/{NOWHERE}/oauth2/v2.0/logout", si.base_url());
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("AADSTS90002"));
    assert!(si.logouts().is_empty());
}

#[tokio::test]
async fn the_home_tenant_user_tenants_and_multi_tenant_authorities_are_served() {
    let si = start(with_guest()).await;
    let upper = si.tenant_id().to_ascii_uppercase();
    for tenant in [
        si.tenant_id(),
        upper.as_str(),
        FABRIKAM,
        CONSUMERS_TENANT,
        "common",
        "organizations",
        "consumers",
    ] {
        let (status, doc) = get_json(&format!(
            "{}/.well-known/openid-configuration",
            si.authority(tenant)
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{tenant}: {doc}");
    }
}
