//! Conditional Access authentication contexts: the `claims` request parameter asks for them,
//! the tokens carry them in `acrs`, and refreshed tokens keep them.

use reqwest::StatusCode;

use super::*;

const C1: &str = r#"{"id_token":{"acrs":{"essential":true,"value":"c1"}}}"#;

#[tokio::test]
async fn a_context_asked_for_comes_back_in_acrs_and_survives_refresh() {
    let si = start(config()).await;
    let (status, body) = redeem(&si, &code(&si, &[("claims", C1)]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = verify(
        &si,
        body["id_token"].as_str().unwrap(),
        CLIENT,
        &si.issuer(),
    )
    .await;
    assert_eq!(id["acrs"], serde_json::json!(["c1"]));
    assert_eq!(
        peek(body["access_token"].as_str().unwrap())["acrs"],
        serde_json::json!(["c1"])
    );

    let (status, next) = refresh(&si, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(
        peek(next["id_token"].as_str().unwrap())["acrs"],
        serde_json::json!(["c1"])
    );
}

#[tokio::test]
async fn without_a_claims_request_there_is_no_acrs() {
    let si = start(config()).await;
    let (status, body) = redeem(&si, &code(&si, &[]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(peek(body["id_token"].as_str().unwrap())
        .get("acrs")
        .is_none());
    assert!(peek(body["access_token"].as_str().unwrap())
        .get("acrs")
        .is_none());
}

#[tokio::test]
async fn several_contexts_and_the_access_token_form_are_read() {
    let si = start(config()).await;
    let claims = r#"{"id_token":{"acrs":{"essential":true,"values":["c2","c3"]}},"access_token":{"acrs":{"essential":true,"value":"c2"}}}"#;
    let (status, body) = redeem(&si, &code(&si, &[("claims", claims)]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        peek(body["id_token"].as_str().unwrap())["acrs"],
        serde_json::json!(["c2", "c3"])
    );
}

#[tokio::test]
async fn a_malformed_claims_parameter_is_refused_with_aadsts90100() {
    let si = start(config()).await;
    for bad in [
        "not json",
        "[1]",
        r#"{"id_token":{"acrs":{"value":"mfa"}}}"#,
    ] {
        let resp = authorize(&si, &[("claims", bad)]).await;
        let params = location_params(&resp);
        assert_eq!(param(&params, "error"), Some("invalid_request"), "{bad}");
        assert!(
            param(&params, "error_description").is_some_and(|d| d.starts_with("AADSTS90100")),
            "{bad}: {params:?}"
        );
        assert!(param(&params, "code").is_none());
    }
}
