//! How long a session lives: `session.max_lifetime` ends it whatever its tokens say, a
//! sign-in without `offline_access` (no refresh token) ends with its access token, and a
//! sign-in left pending for 10 minutes can no longer complete.
//!
//! The proxy keeps these ends in whole Unix seconds (rounded down at the start, compared with
//! `now >= end`), so waiting the lifetime plus half a second always passes the end.

use std::time::Duration;

use portcullis::auth::pending;
use portcullis::seal::{Purpose, Sealer};

use crate::support::signin::{Setup, SignIn, HOST, SESSION_SECRET};

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

#[tokio::test]
async fn a_sign_in_pending_for_ten_minutes_can_no_longer_complete() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let before = portcullis::primitives::now();
    let start = b.get(&s.url("/")).await;
    let after = portcullis::primitives::now();
    let set = start
        .set_cookies()
        .into_iter()
        .find(|c| c.contains("-signin-"))
        .expect("a pending sign-in cookie");
    assert!(set.contains("Max-Age=600"), "{set}");
    let callback = b.get(start.location().unwrap().as_str()).await;
    let callback = callback.location().unwrap();

    // The cookie's own end, sealed inside it, is ten minutes away.
    let name = b
        .cookie_names(HOST)
        .into_iter()
        .find(|n| n.contains("-signin-"))
        .unwrap();
    let sealer = Sealer::new(&[SESSION_SECRET.as_bytes()], Purpose::SignIn);
    let value = b.cookie(HOST, &name).unwrap().value.clone();
    let mut p = pending::open(&sealer, &value, &name).expect("sealed with the session secret");
    assert!(
        (before + 600..=after + 600).contains(&p.expires_at),
        "ends at {}, started between {before} and {after}",
        p.expires_at
    );

    // The same sign-in, ten minutes on: the sealed end has passed.
    p.expires_at = after;
    let mut late = s.browser();
    late.jar.entry(HOST.into()).or_default().insert(
        name.clone(),
        crate::support::browser::Cookie {
            value: pending::seal(&sealer, &p, &name),
        },
    );
    let refused = late.get(callback.as_str()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("took too long"), "{}", refused.body);
    assert_eq!(
        s.idp.token_calls().authorization_code,
        0,
        "no code redeemed"
    );

    // In time, the same callback completes.
    assert_eq!(b.get(callback.as_str()).await.status, 302);
}
