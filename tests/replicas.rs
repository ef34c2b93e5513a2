//! Two proxy instances on one Redis, as replicas behind a load balancer: a session signed in
//! on one serves on the other, a sign-out on one ends it on both at once (their caches are
//! kept for a minute, so only the invalidation message can do it), and a session's token is
//! renewed once however many requests reach both replicas together.

use std::time::Duration;

use crate::support::redis::RedisServer;
use crate::support::signin::{Setup, SignIn, HOST};

#[tokio::test]
async fn a_session_serves_on_every_replica_and_a_sign_out_on_one_ends_it_on_all() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        session: "cache_ttl = \"1m\"".into(),
        ..Setup::default()
    })
    .await;
    let other = s.replica().await;
    let mut here = s.browser();
    assert_eq!(here.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let mut there = s.browser_at(&other, &here);
    let served = there.api(&other.url(HOST, "/on-the-replica")).await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(
        s.idp.token_calls().authorization_code,
        1,
        "one sign-in for both"
    );

    assert_eq!(here.click(&s.url("/.auth/logout")).await.status, 302);
    // The replica has the session cached for a minute; the sign-out must still reach it.
    let after = there.api(&other.url(HOST, "/after")).await;
    assert_eq!(
        after.status, 401,
        "the replica still served a signed-out session"
    );
}

#[tokio::test]
async fn requests_on_both_replicas_renew_a_session_once() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        ..Setup::default()
    })
    .await;
    let other = s.replica().await;
    let mut here = s.browser();
    assert_eq!(here.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let there = s.browser_at(&other, &here);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // A slow token endpoint keeps the first renewal in flight while the others arrive.
    s.idp.set_delay(Duration::from_millis(500));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (mut b, url) = if i % 2 == 0 {
            (s.browser_at(&s.proxy, &here), s.url(&format!("/a{i}")))
        } else {
            (
                s.browser_at(&other, &there),
                other.url(HOST, &format!("/b{i}")),
            )
        };
        tasks.push(tokio::spawn(async move { b.api(&url).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    s.idp.set_delay(Duration::ZERO);
    let calls = s.idp.token_calls();
    assert_eq!(calls.refresh_token, 1, "{calls:?}");
    assert_eq!(calls.failed, 0);
}
