//! Redirect URIs: exact registration at authorize and at the token endpoint, and which
//! post-logout redirects are honoured.

use reqwest::StatusCode;

use super::*;

/// The AADSTS number on an error page (`AADSTS<n>: …`), if any.
fn page_code(page: &str) -> Option<u64> {
    let rest = &page[page.find("AADSTS")? + 6..];
    rest.split(':').next()?.parse().ok()
}

#[tokio::test]
async fn a_client_without_registered_redirect_uris_accepts_none() {
    let mut cfg = config();
    cfg.clients.push(TestClient::new(
        "5d4c3b2a-1f0e-4d9c-8b7a-695847362514",
        None,
    ));
    let si = start(cfg).await;
    for uri in [
        "https://app.example/oauth2/callback",
        "http://localhost:8400/cb",
    ] {
        let resp = authorize(
            &si,
            &[
                ("client_id", "5d4c3b2a-1f0e-4d9c-8b7a-695847362514"),
                ("redirect_uri", uri),
            ],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(resp.headers().get("location").is_none(), "{uri}");
        assert_eq!(page_code(&resp.text().await.unwrap()), Some(50011), "{uri}");
    }
}

#[tokio::test]
async fn redirect_uris_match_exactly_not_by_prefix_or_port() {
    let si = start(config()).await;
    for uri in [
        "https://app.example/oauth2/callback/",
        "https://app.example/oauth2/callback?x=1",
        "https://app.example:8443/oauth2/callback",
        "https://APP.example/oauth2/Callback",
    ] {
        let resp = authorize(&si, &[("redirect_uri", uri)]).await;
        assert!(resp.headers().get("location").is_none(), "{uri}");
        assert_eq!(page_code(&resp.text().await.unwrap()), Some(50011), "{uri}");
    }
}

#[tokio::test]
async fn uris_registered_while_running_are_accepted_from_then_on() {
    let si = start(config()).await;
    let late = "https://late.example/cb";
    let resp = authorize(&si, &[("redirect_uri", late)]).await;
    assert_eq!(page_code(&resp.text().await.unwrap()), Some(50011));
    assert!(si.register_redirect_uris(CLIENT, &[late.to_owned()], &[]));
    let resp = authorize(&si, &[("redirect_uri", late)]).await;
    assert!(param(&location_params(&resp), "code").is_some());
    assert!(!si.register_redirect_uris("00000000-0000-0000-0000-000000000001", &[], &[]));
}

#[tokio::test]
async fn the_token_request_must_repeat_the_codes_registered_redirect_uri() {
    let si = start(config()).await;
    let redeem_with = |code: String, uri: &'static str| {
        let si = si.clone();
        async move {
            token(
                &si,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT),
                    ("client_secret", SECRET),
                    ("code", &code),
                    ("redirect_uri", uri),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await
        }
    };
    // Registered, but not the one the code was issued for.
    let (status, body) = redeem_with(code(&si, &[]).await, REDIRECT_2).await;
    assert_eq!(
        (status, body["error"].as_str(), aadsts(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"), Some(500112))
    );
    // Not registered at all.
    let (status, body) = redeem_with(code(&si, &[]).await, "https://evil.example/cb").await;
    assert_eq!(
        (status, body["error"].as_str(), aadsts(&body)),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            Some(50011)
        )
    );
    // The refusals above did not spend a code issued for REDIRECT_2.
    let (status, body) =
        redeem_with(code(&si, &[("redirect_uri", REDIRECT_2)]).await, REDIRECT_2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn logout(si: &StandIn, params: &[(&str, &str)]) -> reqwest::Response {
    let url = format!("{}/{}/oauth2/v2.0/logout", si.base_url(), si.tenant_id());
    let url = reqwest::Url::parse_with_params(&url, params).unwrap();
    http().get(url).send().await.unwrap()
}

#[tokio::test]
async fn a_logout_that_names_no_client_shows_the_signed_out_page() {
    let si = start(config()).await;
    let resp = logout(&si, &[("post_logout_redirect_uri", LOGOUT_REDIRECT)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("You signed out"));
    // An unverifiable id_token_hint names no client either.
    let forged = "eyJhbGciOiJub25lIn0.eyJhdWQiOiI2NzMxZGU3NiJ9.";
    let resp = logout(
        &si,
        &[
            ("post_logout_redirect_uri", LOGOUT_REDIRECT),
            ("id_token_hint", forged),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(si.logouts()[1].client_id, None);
}

#[tokio::test]
async fn a_logout_follows_only_the_named_clients_own_post_logout_uris() {
    let si = start(config()).await;
    // LOGOUT_REDIRECT is registered, but by CLIENT, not by OTHER_CLIENT.
    let resp = logout(
        &si,
        &[
            ("post_logout_redirect_uri", LOGOUT_REDIRECT),
            ("client_id", OTHER_CLIENT),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("location").is_none());
    let resp = logout(
        &si,
        &[
            ("post_logout_redirect_uri", LOGOUT_REDIRECT),
            ("client_id", CLIENT),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], LOGOUT_REDIRECT);
}
