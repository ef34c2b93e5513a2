//! `auth_context` on a bearer route: a token without the context in `acrs` gets Entra's
//! claims challenge, which an MSAL client passes to `/authorize` to get one that has it.

use base64::Engine;

use super::*;

#[tokio::test]
async fn a_token_without_the_context_gets_a_claims_challenge_that_works() {
    let s = SignIn::start(setup(format!(
        "{}{}",
        bearer_route("strong", "/strong", "auth_context = \"c2\""),
        bearer_route("any", "/", "")
    )))
    .await;
    let alice = "alice@contoso.example";
    let plain = user_token(&s, CALLER, alice, &["Tasks.Read"]).await;
    assert_eq!(call(&s, "/other", Some(&plain)).await.status(), 200);

    let r = call(&s, "/strong/a", Some(&plain)).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge
            .starts_with("Bearer realm=\"portcullis\", error=\"insufficient_claims\", claims=\""),
        "{challenge}"
    );
    let b64 = challenge
        .split("claims=\"")
        .nth(1)
        .and_then(|c| c.strip_suffix('"'))
        .unwrap();
    let claims = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&claims).unwrap(),
        serde_json::json!({"access_token": {"acrs": {"essential": true, "value": "c2"}}})
    );

    // The client does what MSAL does: asks again with those claims.
    let scope = format!("openid api://{CLIENT_ID}/Tasks.Read");
    let body = code_flow_with(
        &s,
        (CALLER, CALLER_SECRET, CALLER_REDIRECT),
        alice,
        &scope,
        &[("claims", &claims)],
    )
    .await;
    let stepped = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(stepped)["acrs"], serde_json::json!(["c2"]));
    assert_eq!(call(&s, "/strong/a", Some(stepped)).await.status(), 200);

    // Another context does not count.
    let other = code_flow_with(
        &s,
        (CALLER, CALLER_SECRET, CALLER_REDIRECT),
        alice,
        &scope,
        &[(
            "claims",
            r#"{"access_token":{"acrs":{"essential":true,"value":"c3"}}}"#,
        )],
    )
    .await;
    let r = call(&s, "/strong/a", other["access_token"].as_str()).await;
    assert_eq!(r.status(), 401);
}
