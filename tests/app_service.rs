//! Apps written for App Service authentication keep working: `/.auth/login/aad` with
//! `post_login_redirect_uri`, `/.auth/refresh`, and `/.auth/me` in App Service's shape.

use std::time::Duration;

use crate::support::signin::{Setup, SignIn};

#[tokio::test]
async fn login_aad_signs_in_and_returns_to_the_post_login_redirect_uri() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let hops = b
        .navigate(&s.url("/.auth/login/aad?post_login_redirect_uri=/reports%3Fy%3D2026"))
        .await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.url.path(), "/reports");
    assert_eq!(last.url.query(), Some("y=2026"));
    // Another site is never a destination.
    let hops = s
        .browser()
        .navigate(&s.url("/.auth/login/aad?post_login_redirect_uri=https://evil.example/"))
        .await;
    assert_eq!(hops.last().unwrap().url.path(), "/");
    assert!(hops
        .iter()
        .all(|h| h.url.host_str() != Some("evil.example")));
}

#[tokio::test]
async fn refresh_renews_the_tokens_now_and_me_has_app_services_shape() {
    let s = SignIn::start(Setup {
        access_token_lifetime: Duration::from_secs(3600),
        ..Setup::default()
    })
    .await;
    // Without a session: 401.
    assert_eq!(s.browser().api(&s.url("/.auth/refresh")).await.status, 401);

    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    assert_eq!(s.idp.token_calls().refresh_token, 0, "not due for an hour");
    let r = b.api(&s.url("/.auth/refresh")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.idp.token_calls().refresh_token, 1, "renewed on request");
    assert_eq!(b.api(&s.url("/after")).await.status, 200);

    let me = b.api(&s.url("/.auth/me")).await.json();
    let one = &me[0];
    assert_eq!(one["provider_name"], "aad");
    assert_eq!(one["user_id"], "alice@contoso.example");
    assert!(one["user_claims"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["typ"].is_string() && c["val"].is_string()));
    let expires = one["expires_on"].as_str().unwrap();
    // 2026-12-02T14:00:00.0000000Z
    assert_eq!(expires.len(), 28, "{expires}");
    assert!(
        expires.ends_with(".0000000Z") && expires.as_bytes()[10] == b'T',
        "{expires}"
    );

    // A provider that refuses the refresh ends the session.
    s.idp.revoke_refresh_tokens("alice@contoso.example");
    assert_eq!(b.api(&s.url("/.auth/refresh")).await.status, 401);
    assert_eq!(b.api(&s.url("/again")).await.status, 401);
}

#[tokio::test]
async fn pass_tokens_sends_app_services_token_headers_and_strips_clients() {
    use crate::support::seen;
    use crate::support::signin::{login_route, HOST};
    let s = SignIn::start(Setup {
        routes: login_route("app", HOST, "headers = \"easy-auth\"\npass_tokens = true"),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    b.extra_headers
        .insert("x-ms-token-aad-id-token", "forged".parse().unwrap());
    let echo = b.get(&s.url("/echo")).await.json();
    let token = seen(&echo, "x-ms-token-aad-access-token");
    assert!(token.len() == 1 && token[0].starts_with("ey"), "{token:?}");
    let expires = seen(&echo, "x-ms-token-aad-expires-on");
    assert!(
        expires.len() == 1 && expires[0].ends_with(".0000000Z"),
        "{expires:?}"
    );
    assert!(seen(&echo, "x-ms-token-aad-id-token").is_empty());
    assert!(seen(&echo, "authorization").is_empty());
    assert_eq!(seen(&echo, "x-ms-client-principal-idp"), ["aad"]);
}
