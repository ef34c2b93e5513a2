//! Two proxy instances on one Redis, as replicas behind a load balancer: a session signed in
//! on one serves on the other, a sign-out on one ends it on both at once (their caches are
//! kept for a minute, so only the invalidation message can do it), and a session's token is
//! renewed once however many requests reach both replicas together; a session-secret
//! rotation rolled out replica by replica.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::signin::{Setup, SignIn, HOST, SESSION_SECRET};
use crate::support::{eventually, Harness};

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
    // PUBLISH answers once Redis has written the message to the replica's subscription, not
    // once the replica has read it: the replica gets that moment (this test's tasks share one
    // thread with both proxies), never the minute its cache would keep the session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut after = there.api(&other.url(HOST, "/after")).await;
    while after.status == 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = there.api(&other.url(HOST, "/after")).await;
    }
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
        // A renewed token is fresh for at least 2 s: however slowly the burst is served, no
        // second renewal becomes due.
        access_token_lifetime: Duration::from_secs(4),
        session: "refresh_before = \"1s\"".into(),
        ..Setup::default()
    })
    .await;
    let other = s.replica().await;
    let mut here = s.browser();
    assert_eq!(here.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let there = s.browser_at(&other, &here);
    // Expired, not only due (a replica serves a due but valid token without waiting): the
    // proxy keeps the end in whole seconds, rounded down, so 4.1 s after sign-in it has passed.
    tokio::time::sleep(Duration::from_millis(4100)).await;

    // The first renewal is held at the token endpoint (counted first) while the rest arrive.
    s.idp.hold_token_requests(true);
    let mut tasks = tokio::task::JoinSet::new();
    let mut first = s.browser_at(&s.proxy, &here);
    let url = s.url("/first");
    tasks.spawn(async move { first.api(&url).await.status });
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.idp.token_calls().refresh_token == 1
        })
        .await,
        "the first renewal reached the token endpoint"
    );
    let sets = redis.calls("set");
    for i in 0..4 {
        let mut b = s.browser_at(&other, &there);
        let url = other.url(HOST, &format!("/b{i}"));
        tasks.spawn(async move { b.api(&url).await.status });
    }
    // The replica found the store lock taken (its `SET NX` failed) and waits for the peer.
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.calls("set") > sets
        })
        .await,
        "the replica tried the store lock"
    );
    assert!(
        tasks.try_join_next().is_none(),
        "nothing was answered while the renewal is held"
    );
    s.idp.hold_token_requests(false);
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
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
