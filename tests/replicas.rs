//! Two proxy instances on one Redis, as replicas behind a load balancer: a session signed in
//! on one serves on the other, a sign-out on one ends it on both at once (their caches are
//! kept for a minute, so only the invalidation message can do it), and a session's token is
//! renewed once however many requests reach both replicas together; a session-secret
//! rotation rolled out replica by replica.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::signin::{Setup, SignIn, HOST, SESSION_SECRET};
use crate::support::Harness;

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
    // Due for renewal: the proxy keeps the token's end in whole seconds (rounded down), and
    // renews with 7 of its 10 s left, so 3.1 s after sign-in it is due for certain.
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

/// The rotation in docs/operations.md ("Rotating the session secret"), one replica per step:
/// the first secret seals, every secret opens.
#[tokio::test]
async fn a_session_secret_rotation_keeps_old_sessions_and_seals_new_ones_with_the_new_secret() {
    const NEW: &str = "the-next-session-secret-also-long-enough-for-aes";
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let secrets = |line: String| {
        move |sections: &str| {
            let old = format!("secret = \"{SESSION_SECRET}\"");
            assert!(sections.contains(&old));
            sections.replace(&old, &line)
        }
    };
    let mut old = s.browser();
    assert_eq!(old.navigate(&s.url("/")).await.last().unwrap().status, 200);

    let step1 = s
        .replica_with(secrets(format!(
            "secrets = [\"{SESSION_SECRET}\", \"{NEW}\"]"
        )))
        .await;
    let step2 = s
        .replica_with(secrets(format!(
            "secrets = [\"{NEW}\", \"{SESSION_SECRET}\"]"
        )))
        .await;
    let on = |proxy: &Harness, b: &Browser| s.browser_at(proxy, b);
    let served = on(&step2, &old).api(&step2.url(HOST, "/old")).await;
    assert_eq!(
        served.status, 200,
        "the old secret still opens: {}",
        served.body
    );

    let mut fresh = on(&step2, &s.browser());
    let hops = fresh.navigate(&step2.url(HOST, "/")).await;
    assert_eq!(hops.last().unwrap().status, 200, "signed in on step 2");
    let opened = on(&step1, &fresh).api(&step1.url(HOST, "/new")).await;
    assert_eq!(opened.status, 200, "step 1 opens step 2's session");
    let not_opened = on(&s.proxy, &fresh).api(&s.url("/new")).await;
    assert_eq!(
        not_opened.status, 401,
        "the new session was sealed with the new secret, which the first proxy lacks"
    );

    let step3 = s.replica_with(secrets(format!("secret = \"{NEW}\""))).await;
    assert_eq!(
        on(&step3, &fresh)
            .api(&step3.url(HOST, "/new"))
            .await
            .status,
        200
    );
    assert_eq!(
        on(&step3, &old).api(&step3.url(HOST, "/old")).await.status,
        401,
        "the old secret is gone"
    );
}
