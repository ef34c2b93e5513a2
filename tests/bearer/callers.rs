//! The app that calls: `required_scopes` and `allowed_client_apps`.

use serde_json::json;

use super::*;

#[tokio::test]
async fn required_scopes_admit_any_listed_delegated_scope() {
    let s = SignIn::start(setup(format!(
        "{}{}",
        bearer_route(
            "files",
            "/files",
            "required_scopes = [\"Files.Read\", \"Files.ReadWrite\"]"
        ),
        bearer_route("any", "/", "")
    )))
    .await;
    let alice = "alice@contoso.example";
    let writer = user_token(&s, CALLER, alice, &["Tasks.Read", "Files.ReadWrite"]).await;
    assert_eq!(claims_of(&writer)["scp"], "Tasks.Read Files.ReadWrite");
    assert_eq!(call(&s, "/files/a", Some(&writer)).await.status(), 200);

    let tasks = user_token(&s, CALLER, alice, &["Tasks.Read"]).await;
    let r = call(&s, "/files/a", Some(&tasks)).await;
    assert_eq!(r.status(), 403);
    // RFC 6750 §3.1: the token is fine, its grant is not enough.
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\""
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("permission (scope)"), "{body}");
    assert!(
        !body.contains("Files.Read"),
        "the page names no accepted value: {body}"
    );
    assert_eq!(call(&s, "/other", Some(&tasks)).await.status(), 200);

    // App-only tokens hold roles, never scopes.
    let daemon = app_token(&s, DAEMON).await;
    assert_eq!(call(&s, "/files/a", Some(&daemon)).await.status(), 403);
}

#[tokio::test]
async fn allowed_client_apps_name_the_apps_whose_tokens_are_taken() {
    let s = SignIn::start(setup(bearer_route(
        "api",
        "/",
        &format!(
            "allowed_client_apps = [\"{CALLER}\", \"{}\"]",
            DAEMON.to_uppercase()
        ),
    )))
    .await;
    let alice = "alice@contoso.example";
    let mine = user_token(&s, CALLER, alice, &["Files.Read"]).await;
    assert_eq!(claims_of(&mine)["azp"], CALLER);
    assert_eq!(call(&s, "/x", Some(&mine)).await.status(), 200);
    let daemon = app_token(&s, DAEMON).await;
    assert_eq!(call(&s, "/x", Some(&daemon)).await.status(), 200);

    // The same user, through another app: the token is valid, the app is not welcome.
    let theirs = user_token(&s, OTHER_CALLER, alice, &["Files.Read"]).await;
    let r = call(&s, "/x", Some(&theirs)).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("does not accept calls from the app"),
        "{body}"
    );
    // Nor does claiming the right app in `appid` help a v2 token: `azp` decides.
    let forged = s
        .idp
        .mint_token(with(claims_of(&theirs), json!({"appid": CALLER})), None);
    assert_eq!(call(&s, "/x", Some(&forged)).await.status(), 403);
}
