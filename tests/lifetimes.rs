//! How long a session lives: `session.max_lifetime` ends it whatever its tokens say, and a
//! sign-in without `offline_access` (no refresh token) ends with its access token.

use std::time::Duration;

use crate::support::signin::{Setup, SignIn};

#[tokio::test]
async fn max_lifetime_ends_a_session_whose_tokens_are_still_valid() {
    let s = SignIn::start(Setup {
        session: "max_lifetime = \"2s\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    let set = hops
        .iter()
        .flat_map(|h| h.set_cookies())
        .find(|c| c.starts_with("__Host-portcullis="))
        .unwrap();
    assert!(
        set.contains("Max-Age=2"),
        "the cookie ends with the session: {set}"
    );
    assert_eq!(b.api(&s.url("/soon")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // (The browser would have dropped the cookie; a client that kept it gets nothing either.)
    let mut replay = s.browser();
    replay.jar = b.jar.clone();
    assert_eq!(replay.api(&s.url("/later")).await.status, 401);
    assert_eq!(s.idp.token_calls().refresh_token, 0, "nothing was renewed");
}

#[tokio::test]
async fn without_offline_access_a_session_ends_with_its_access_token() {
    let s = SignIn::start(Setup {
        oidc: "scopes = [\"openid\", \"profile\", \"email\"]".into(),
        access_token_lifetime: Duration::from_secs(3),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    let authorize = hops[0].location().unwrap();
    let scope = authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(!scope.contains("offline_access"), "{scope}");
    assert_eq!(b.api(&s.url("/soon")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut replay = s.browser();
    replay.jar = b.jar.clone();
    assert_eq!(replay.api(&s.url("/later")).await.status, 401);
    assert_eq!(
        s.idp.token_calls().refresh_token,
        0,
        "there was nothing to renew with"
    );
}
