//! PKCE: required on every authorize request, S256 only, and checked at redemption.

use reqwest::StatusCode;

use super::*;

/// The authorize error sent back to the redirect URI: (`error`, AADSTS number).
async fn refused(si: &StandIn, extra: &[(&str, &str)], drop: &[&str]) -> (String, u64) {
    let url = format!("{}/{}/oauth2/v2.0/authorize", si.base_url(), si.tenant_id());
    let mut params = authorize_params(extra);
    params.retain(|(k, _)| !drop.contains(&k.as_str()));
    let url = reqwest::Url::parse_with_params(&url, params).unwrap();
    let resp = http().get(url).send().await.unwrap();
    let p = location_params(&resp);
    assert_eq!(param(&p, "code"), None);
    assert_eq!(param(&p, "state"), Some("st-1"));
    let description = param(&p, "error_description").unwrap();
    let code = description
        .strip_prefix("AADSTS")
        .and_then(|d| d.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    (param(&p, "error").unwrap().to_owned(), code)
}

#[tokio::test]
async fn an_authorize_request_without_a_code_challenge_is_refused() {
    let si = start(config()).await;
    let (error, code) = refused(&si, &[], &["code_challenge", "code_challenge_method"]).await;
    assert_eq!((error.as_str(), code), ("invalid_request", 9002325));
    // The public client, which has no secret to fall back on, just the same.
    let extra = [
        ("client_id", PUBLIC_CLIENT),
        ("redirect_uri", "http://localhost:8400/cb"),
    ];
    let (error, code) = refused(&si, &extra, &["code_challenge"]).await;
    assert_eq!((error.as_str(), code), ("invalid_request", 9002325));
}

#[tokio::test]
async fn plain_code_challenges_are_refused_explicit_or_implied() {
    let si = start(config()).await;
    let plain = [
        ("code_challenge", VERIFIER),
        ("code_challenge_method", "plain"),
    ];
    let (error, code) = refused(&si, &plain, &[]).await;
    assert_eq!((error.as_str(), code), ("invalid_request", 501491));
    // Without a method RFC 7636 §4.3 means `plain`.
    let implied = [("code_challenge", VERIFIER)];
    let (error, code) = refused(&si, &implied, &["code_challenge_method"]).await;
    assert_eq!((error.as_str(), code), ("invalid_request", 501491));
    assert_eq!(si.token_calls().authorization_code, 0);
}

#[tokio::test]
async fn a_redemption_without_the_code_verifier_is_refused() {
    let si = start(config()).await;
    let code = code(&si, &[]).await;
    let (status, body) = token(
        &si,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), aadsts(&body)),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            Some(900144)
        )
    );
}
