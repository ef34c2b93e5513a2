//! `[server] ready_requires_store`: whether a Redis outage fails `/readyz`. Either way a
//! request that needs the store answers 503 and a public route keeps serving.

use crate::support::redis::RedisServer;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

async fn readyz(s: &SignIn) -> (u16, String) {
    let resp = reqwest::get(format!("http://{}/readyz", s.proxy.admin))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Signs in on a proxy with `server` lines, kills Redis, and returns what `/readyz` said
/// then; checks the public and protected routes on the way.
async fn outage(server: &str) -> (u16, String) {
    let mut redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        session: "cache_ttl = \"1ms\"".into(),
        server: server.into(),
        routes: format!(
            "[[route]]\nname = \"open\"\nhost = \"{HOST}\"\npath_prefix = \"/open\"\n\
             upstream = \"{{upstream}}\"\nauth = \"public\"\n\n{}",
            login_route("app", HOST, "")
        ),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    assert_eq!(readyz(&s).await.0, 200);
    redis.stop();
    assert_eq!(b.get(&s.url("/open/page")).await.status, 200);
    let protected = b.api(&s.url("/private")).await;
    assert_eq!(protected.status, 503, "{}", protected.body);
    assert!(!protected.body.contains("alice"), "{}", protected.body);
    readyz(&s).await
}

#[tokio::test]
async fn by_default_a_store_outage_makes_the_proxy_unready() {
    let (status, text) = outage("").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("session store (redis)"), "{text}");
}

#[tokio::test]
async fn with_ready_requires_store_false_a_store_outage_keeps_the_proxy_ready() {
    let (status, text) = outage("ready_requires_store = false").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("session store (redis): not answering"),
        "{text}"
    );
}
