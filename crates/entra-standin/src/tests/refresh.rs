//! Refresh-token rotation and revocation, and the injected token-endpoint failures.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::*;
use crate::TokenFailure;

async fn signed_in(si: &StandIn) -> serde_json::Value {
    let (status, body) = redeem(si, &code(si, &[]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let si = start(config()).await;
    let first = signed_in(&si).await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = refresh(&si, rt1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);

    let id1 = peek(first["id_token"].as_str().unwrap());
    let id2 = verify(
        &si,
        second["id_token"].as_str().unwrap(),
        CLIENT,
        &si.issuer(),
    )
    .await;
    assert!(
        id2.get("nonce").is_none(),
        "refresh-issued ID tokens have no nonce"
    );
    assert_eq!(id2["sid"], id1["sid"]);
    assert_eq!(id2["sub"], id1["sub"]);

    let (status, body) = refresh(&si, rt1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(refresh(&si, rt2).await.0, StatusCode::OK);
    assert_eq!(si.token_calls().refresh_token, 3);
}

#[tokio::test]
async fn refresh_may_ask_for_another_resource() {
    let si = start(config()).await;
    let first = signed_in(&si).await;
    let (status, body) = token(
        &si,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("scope", "https://graph.microsoft.com/GroupMember.Read.All"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = peek(body["access_token"].as_str().unwrap());
    assert!(at["scp"]
        .as_str()
        .unwrap()
        .ends_with("User.Read GroupMember.Read.All"));
}

#[tokio::test]
async fn revoked_refresh_tokens_are_invalid_grant() {
    let si = start(config()).await;
    let body = signed_in(&si).await;
    si.revoke_refresh_tokens(ALICE);
    let (status, err) = refresh(&si, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_codes"][0], 50173);
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let si = start(config()).await;
    let code = code(&si, &[("scope", "openid profile")]).await;
    let (_, body) = redeem(&si, &code, VERIFIER).await;
    assert!(body["id_token"].is_string());
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn injected_failures_come_first_then_the_real_answer() {
    let si = start(config()).await;
    let body = signed_in(&si).await;
    let rt = body["refresh_token"].as_str().unwrap();
    si.fail_next_token_requests(2, TokenFailure::TemporarilyUnavailable);
    si.fail_next_token_requests(1, TokenFailure::InteractionRequired);
    for _ in 0..2 {
        let (status, err) = refresh(&si, rt).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err["error"], "temporarily_unavailable");
    }
    let (status, err) = refresh(&si, rt).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("interaction_required"))
    );
    si.fail_next_token_requests(1, TokenFailure::InvalidClient);
    assert_eq!(refresh(&si, rt).await.0, StatusCode::UNAUTHORIZED);
    si.fail_next_token_requests(1, TokenFailure::ServerError);
    assert_eq!(refresh(&si, rt).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    // The refresh token was never spent by the injected failures.
    assert_eq!(refresh(&si, rt).await.0, StatusCode::OK);
    let calls = si.token_calls();
    assert_eq!(
        (calls.authorization_code, calls.refresh_token, calls.failed),
        (1, 6, 5)
    );
}

#[tokio::test]
async fn connection_reset_closes_without_an_answer() {
    let si = start(config()).await;
    si.fail_next_token_requests(1, TokenFailure::ConnectionReset);
    let url = format!("{}/{}/oauth2/v2.0/token", si.base_url(), si.tenant_id());
    let result = http()
        .post(&url)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a transport error, got {result:?}"
    );
    let (status, _) = refresh(&si, "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delay_slows_the_token_endpoint() {
    let si = start(config()).await;
    si.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = refresh(&si, "unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_refused_scope_does_not_spend_the_refresh_token() {
    let si = start(config()).await;
    let body = signed_in(&si).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let (status, err) = token(
        &si,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("refresh_token", rt),
            ("scope", "api://99999999-9999-9999-9999-999999999999/read"),
        ],
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_resource"))
    );
    assert_eq!(refresh(&si, rt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn expired_refresh_tokens_are_invalid_grant() {
    let si = start(StandInConfig {
        refresh_token_lifetime: Duration::ZERO,
        ..config()
    })
    .await;
    let body = signed_in(&si).await;
    let (status, err) = refresh(&si, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, err["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(700082))
    );
}

#[tokio::test]
async fn codes_redeem_only_at_the_tenant_that_issued_them() {
    let si = start(config()).await;
    let code = code(&si, &[]).await;
    let url = format!("{}/organizations/oauth2/v2.0/token", si.base_url());
    let resp = http()
        .post(url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error_codes"][0], 700005);
}

#[tokio::test]
async fn refresh_tokens_redeem_only_for_the_client_they_were_issued_to() {
    let si = start(config()).await;
    let body = signed_in(&si).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let (status, err) = token(
        &si,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", OTHER_CLIENT),
            ("client_secret", OTHER_SECRET),
            ("refresh_token", rt),
        ],
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str(), aadsts(&err)),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"), Some(70000))
    );
    assert_eq!(refresh(&si, rt).await.0, StatusCode::OK, "still its own");
}

#[tokio::test]
async fn refresh_tokens_redeem_only_at_their_users_tenant() {
    let fabrikam = "3f1d2c4b-5a69-4e8f-9b0a-1c2d3e4f5a6b";
    let mut carol = TestUser::new("carol@fabrikam.test", "Carol");
    carol.tenant_id = Some(fabrikam.into());
    let mut cfg = config();
    cfg.users.push(carol);
    let si = start(cfg).await;
    let body = signed_in(&si).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let f = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        ("refresh_token", rt),
    ];
    // Another tenant the stand-in serves: Alice's token is not valid there.
    let (status, err) = token_at(&si, fabrikam, &f).await;
    assert_eq!(
        (status, err["error"].as_str(), aadsts(&err)),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
            Some(9002313)
        )
    );
    // A multi-tenant authority routes to her own tenant.
    let (status, next) = token_at(&si, "organizations", &f).await;
    assert_eq!(status, StatusCode::OK, "{next}");
}

#[tokio::test]
async fn token_requests_that_are_not_form_encoded_are_refused() {
    let si = start(config()).await;
    let body = signed_in(&si).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let url = format!("{}/{}/oauth2/v2.0/token", si.base_url(), si.tenant_id());
    let json = serde_json::json!({
        "grant_type": "refresh_token",
        "client_id": CLIENT,
        "client_secret": SECRET,
        "refresh_token": rt,
    });
    let resp = http()
        .post(&url)
        .header("content-type", "application/json")
        .body(json.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        (err["error"].as_str(), aadsts(&err)),
        (Some("invalid_request"), Some(900144))
    );
    // A form body without the header is refused too, and the token was not spent.
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("refresh_token", rt),
        ])
        .finish();
    let resp = http().post(&url).body(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&si, rt).await.0, StatusCode::OK);
}
