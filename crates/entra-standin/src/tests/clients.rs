//! Client authentication at the token endpoint, and access tokens for the app's own API.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::StatusCode;

use super::*;

#[tokio::test]
async fn client_secret_basic_needs_form_encoding_and_the_right_secret() {
    let si = start(config()).await;
    let url = format!("{}/{}/oauth2/v2.0/token", si.base_url(), si.tenant_id());
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let code1 = code(&si, &[]).await;
    let basic = STANDARD.encode(format!("{}:{}", enc(CLIENT), enc(SECRET)));
    let resp = http()
        .post(&url)
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code1),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let code2 = code(&si, &[]).await;
    let (status, body) = token(
        &si,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("client_secret", "wrong"),
            ("code", &code2),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
}

#[tokio::test]
async fn public_clients_redeem_without_a_secret_but_not_with_one() {
    let si = start(config()).await;
    let redirect = "http://localhost:8400/cb";
    let extra = [("client_id", PUBLIC_CLIENT), ("redirect_uri", redirect)];
    let code1 = code(&si, &extra).await;
    let form = |code: &str, secret: Option<&'static str>| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", PUBLIC_CLIENT.to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ];
        if let Some(s) = secret {
            f.push(("client_secret", s.to_owned()));
        }
        f
    };
    let f = form(&code1, None);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(token(&si, &f).await.0, StatusCode::OK);
    let code2 = code(&si, &extra).await;
    let f = form(&code2, Some("anything"));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&si, &f).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(700025))
    );
}

#[tokio::test]
async fn api_scopes_yield_an_access_token_for_our_api() {
    let si = start(config()).await;
    let scope = format!("openid offline_access api://{CLIENT}/access_as_user");
    let (status, body) = redeem(&si, &code(&si, &[("scope", &scope)]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = verify(
        &si,
        body["access_token"].as_str().unwrap(),
        CLIENT,
        &si.issuer(),
    )
    .await;
    assert_eq!(at["scp"], "access_as_user");
    assert_eq!(at["azp"], CLIENT);
    assert_eq!(at["azpacr"], "1");
    assert_eq!(at["ver"], "2.0");
    assert_eq!(at["roles"], serde_json::json!(["Reader"]));
    assert_eq!(at["groups"], serde_json::json!(["g-1", "g-2"]));
    assert_eq!(
        body["scope"],
        format!("openid api://{CLIENT}/access_as_user")
    );
}
