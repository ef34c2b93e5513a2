//! The authorization code flow: authorize checks, user choice, sessions, code redemption.

use reqwest::StatusCode;

use super::*;
use crate::scopes::GRAPH_APP_ID;

#[tokio::test]
async fn code_flow_with_pkce_issues_verifiable_entra_tokens() {
    let si = start(config()).await;
    let resp = authorize(&si, &[]).await;
    let params = location_params(&resp);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT));
    assert_eq!(param(&params, "state"), Some("st-1"));
    assert_eq!(param(&params, "iss"), None);
    let session_state = param(&params, "session_state").unwrap().to_owned();
    let code = param(&params, "code").unwrap().to_owned();

    let (status, body) = redeem(&si, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    assert!(body["refresh_token"].is_string());

    let alice = si
        .users()
        .into_iter()
        .find(|u| u.username == ALICE)
        .unwrap();
    let id = verify(
        &si,
        body["id_token"].as_str().unwrap(),
        CLIENT,
        &si.issuer(),
    )
    .await;
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["oid"], alice.oid.as_str());
    assert_eq!(id["tid"], si.tenant_id());
    assert_eq!(id["preferred_username"], ALICE);
    assert_eq!(id["email"], ALICE);
    assert_eq!(id["name"], "Alice Archer");
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["sid"], session_state.as_str());
    assert_eq!(id["groups"], serde_json::json!(["g-1", "g-2"]));
    assert_eq!(id["roles"], serde_json::json!(["Reader"]));
    assert_eq!(id["sub"], crate::claims::pairwise_sub(&alice.oid, CLIENT));
    assert_ne!(id["sub"], alice.oid.as_str());
    assert!(id["login_hint"].as_str().unwrap().starts_with("O."));
    for claim in ["aio", "rh", "uti", "iat", "nbf", "exp"] {
        assert!(!id[claim].is_null(), "missing {claim}");
    }
    assert_eq!(
        id["exp"].as_u64().unwrap() - id["iat"].as_u64().unwrap(),
        3600
    );

    let access = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert!(header.nonce.is_some(), "Graph tokens carry a header nonce");
    let at = peek(access);
    assert_eq!(at["aud"], GRAPH_APP_ID);
    assert_eq!(at["scp"], "openid profile email User.Read");
    assert_eq!(si.token_calls().authorization_code, 1);

    let recorded = si.authorize_requests();
    assert_eq!(recorded.len(), 1);
    let q: Vec<(String, String)> = recorded[0].query_pairs().into_owned().collect();
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
}

#[tokio::test]
async fn pkce_mismatch_and_code_reuse_are_invalid_grant() {
    let si = start(config()).await;
    let code1 = code(&si, &[]).await;
    let other = "x".repeat(43);
    let (status, body) = redeem(&si, &code1, &other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 501481);

    let code2 = code(&si, &[]).await;
    assert_eq!(redeem(&si, &code2, VERIFIER).await.0, StatusCode::OK);
    let (status, body) = redeem(&si, &code2, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 54005);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS54005: "));
    assert!(description.contains("\r\nTrace ID: "));
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    assert_eq!(si.token_calls().failed, 2);
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_and_no_redirect() {
    let si = start(config()).await;
    let resp = authorize(&si, &[("redirect_uri", "https://evil.example/cb")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS50011"));

    let resp = authorize(
        &si,
        &[("client_id", "00000000-0000-0000-0000-000000000009")],
    )
    .await;
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS700016"));
}

#[tokio::test]
async fn protocol_errors_go_back_to_the_redirect_uri() {
    let si = start(config()).await;
    let resp = authorize(&si, &[("scope", "profile")]).await;
    let p = location_params(&resp);
    assert_eq!(param(&p, "error"), Some("invalid_scope"));
    assert_eq!(param(&p, "state"), Some("st-1"));

    let resp = authorize(&si, &[("response_type", "token")]).await;
    assert_eq!(
        param(&location_params(&resp), "error"),
        Some("unsupported_response_type")
    );

    si.set_authorize_error(Some((
        "access_denied".into(),
        "AADSTS50105: not assigned".into(),
    )));
    let p = location_params(&authorize(&si, &[]).await);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert_eq!(
        param(&p, "error_description"),
        Some("AADSTS50105: not assigned")
    );
    assert!(param(&p, "error_uri")
        .unwrap()
        .ends_with("/error?code=50105"));
    assert_eq!(param(&p, "state"), Some("st-1"));
}

#[tokio::test]
async fn several_users_and_no_hint_show_the_picker() {
    let si = start(StandInConfig {
        default_user: None,
        ..config()
    })
    .await;
    let resp = authorize(&si, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Alice Archer") && page.contains("Bob Baker"));
    assert!(page.contains("login_hint=bob%40contoso.test"));

    let p = location_params(&authorize(&si, &[("login_hint", BOB)]).await);
    let (_, body) = redeem(&si, param(&p, "code").unwrap(), VERIFIER).await;
    assert_eq!(
        peek(body["id_token"].as_str().unwrap())["preferred_username"],
        BOB
    );

    let p = location_params(&authorize(&si, &[("prompt", "none")]).await);
    assert_eq!(param(&p, "error"), Some("login_required"));
}

#[tokio::test]
async fn the_login_hint_claim_selects_its_user() {
    let si = start(config()).await;
    let (_, body) = redeem(&si, &code(&si, &[("login_hint", BOB)]).await, VERIFIER).await;
    let hint = peek(body["id_token"].as_str().unwrap())["login_hint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = redeem(&si, &code(&si, &[("login_hint", &hint)]).await, VERIFIER).await;
    assert_eq!(
        peek(body["id_token"].as_str().unwrap())["preferred_username"],
        BOB
    );
}

#[tokio::test]
async fn form_post_mode_answers_with_an_auto_submitting_form() {
    let si = start(config()).await;
    let resp = authorize(&si, &[("response_mode", "form_post")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains(&format!("action=\"{REDIRECT}\"")));
    assert!(page.contains("name=\"code\"") && page.contains("name=\"state\" value=\"st-1\""));
}

#[tokio::test]
async fn openidconnect_accepts_the_id_tokens_including_overage_ones() {
    use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
    use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};

    let si = start(StandInConfig {
        groups_overage_threshold: 1,
        ..config()
    })
    .await;
    let (_, jwks) = get_json(&format!(
        "{}/{}/discovery/v2.0/keys",
        si.base_url(),
        si.tenant_id()
    ))
    .await;
    let jwks: CoreJsonWebKeySet = serde_json::from_value(jwks).unwrap();
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(CLIENT.into()),
        ClientSecret::new(SECRET.into()),
        IssuerUrl::new(si.issuer()).unwrap(),
        jwks,
    );
    let (_, body) = redeem(&si, &code(&si, &[]).await, VERIFIER).await;
    let id: CoreIdToken = body["id_token"].as_str().unwrap().parse().unwrap();
    let claims = id.claims(&verifier, &Nonce::new("n-1".into())).unwrap();
    assert_eq!(claims.preferred_username().unwrap().as_str(), ALICE);
    assert!(peek(body["id_token"].as_str().unwrap())["_claim_names"].is_object());
}

#[tokio::test]
async fn the_session_cookie_gives_silent_sign_in_with_the_same_sid() {
    let si = start(StandInConfig {
        default_user: None,
        ..config()
    })
    .await;
    let resp = authorize(&si, &[("login_hint", BOB)]).await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("ESTSAUTH=") && cookie.contains("HttpOnly"));
    let sid = param(&location_params(&resp), "session_state")
        .unwrap()
        .to_owned();

    let url = format!("{}/{}/oauth2/v2.0/authorize", si.base_url(), si.tenant_id());
    let url =
        reqwest::Url::parse_with_params(&url, authorize_params(&[("prompt", "none")])).unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let resp = http().get(url).header("cookie", pair).send().await.unwrap();
    let p = location_params(&resp);
    assert_eq!(param(&p, "session_state"), Some(sid.as_str()));
    let (_, body) = redeem(&si, param(&p, "code").unwrap(), VERIFIER).await;
    let id = peek(body["id_token"].as_str().unwrap());
    assert_eq!(
        (id["preferred_username"].as_str(), id["sid"].as_str()),
        (Some(BOB), Some(sid.as_str()))
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let si = start(config()).await;
    let copy = si.clone();
    let url = format!(
        "{}/.well-known/openid-configuration",
        si.authority("common")
    );
    drop(si);
    assert!(
        http().get(&url).send().await.is_ok(),
        "a clone keeps it running"
    );
    drop(copy);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(http().get(&url).send().await.is_err());
}

#[tokio::test]
async fn other_tenant_users_get_their_own_tid_and_issuer() {
    let other = "3f1d2c4b-5a69-4e8f-9b0a-1c2d3e4f5a6b";
    let mut carol = TestUser::new("carol@fabrikam.test", "Carol");
    carol.tenant_id = Some(other.into());
    let mut cfg = config();
    cfg.users.push(carol);
    let si = start(cfg).await;
    let url = format!("{}/organizations/oauth2/v2.0/authorize", si.base_url());
    let params = authorize_params(&[("login_hint", "carol@fabrikam.test")]);
    let resp = http()
        .get(reqwest::Url::parse_with_params(&url, params).unwrap())
        .send()
        .await
        .unwrap();
    let p = location_params(&resp);
    let token_url = format!("{}/organizations/oauth2/v2.0/token", si.base_url());
    let resp = http()
        .post(token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", param(&p, "code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let issuer = format!("{}/{other}/v2.0", si.base_url());
    let id = verify(&si, body["id_token"].as_str().unwrap(), CLIENT, &issuer).await;
    assert_eq!(id["tid"], other);
}
