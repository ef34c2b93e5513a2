//! The stored session value stays small: at most 2 KiB sealed, for a user in 50 groups with
//! the tokens Entra issues (ID token claims, refresh token, `sid`, `login_hint`). The access
//! token is stored only while a route passes it upstream.
//!
//! `cargo test --test integration session_size -- --nocapture` prints the sizes.

use entra_standin::TestUser;

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

fn in_50_groups() -> TestUser {
    let mut u = TestUser::new("alice.example@contoso.example", "Alice Example");
    u.groups = (0..50)
        .map(|i| format!("{i:08x}-9c41-4c8e-8a3b-5d6e7f8091a2"))
        .collect();
    u.roles = vec!["Wiki.Read".into(), "Wiki.Edit".into()];
    u
}

/// Signs in once; the stored value's length in bytes, and the set-up, the signed-in browser
/// and the Redis it runs on.
async fn stored_size(routes: String) -> (usize, SignIn, Browser, RedisServer) {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        users: vec![in_50_groups()],
        routes,
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    // The value reads back: the groups and tokens survived the encoding.
    let me = b.api(&s.url("/.auth/me")).await.json();
    let groups = me[0]["user_claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["typ"] == "groups")
        .count();
    assert_eq!(groups, 50, "{me}");
    // The test set-up's key prefix.
    let keys = redis.keys("pc-test:session:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let reply = redis.command(&format!("STRLEN {}", keys[0]));
    let len = reply.trim().trim_start_matches(':').parse().unwrap();
    for key in redis.keys("pc-test:*") {
        let usage = redis.command(&format!("MEMORY USAGE {key}"));
        eprintln!(
            "MEMORY USAGE {}: {}",
            &key[..key.len().min(24)],
            usage.trim()
        );
    }
    (len, s, b, redis)
}

#[tokio::test]
async fn a_session_of_a_user_in_50_groups_is_at_most_2_kib() {
    let (len, ..) = stored_size(login_route("app", HOST, "")).await;
    eprintln!("stored session value, 50 groups, no route passing the access token: {len} bytes");
    assert!(len <= 2048, "{len} bytes");
}

#[tokio::test]
async fn the_access_token_is_kept_only_while_a_route_passes_it() {
    let plain = stored_size(login_route("app", HOST, "")).await.0;
    let (with_token, s, mut b, _redis) =
        stored_size(login_route("app", HOST, "pass_access_token = true")).await;
    eprintln!("stored session value with the access token kept: {with_token} bytes");
    // The stand-in's access token for Graph is several hundred bytes even packed.
    assert!(with_token > plain + 300, "{with_token} vs {plain}");
    let hop = b.get(&s.url("/echo")).await;
    let auth = crate::support::seen(&hop.json(), "authorization");
    assert!(
        auth.len() == 1 && auth[0].starts_with("Bearer ey"),
        "{auth:?}"
    );
}

#[tokio::test]
async fn a_reload_that_passes_access_tokens_renews_each_session_once_to_get_one() {
    let (_, s, mut b, _redis) = stored_size(login_route("app", HOST, "")).await;
    let hop = b.get(&s.url("/echo")).await;
    assert!(crate::support::seen(&hop.json(), "authorization").is_empty());

    let file = s.proxy.path("routes.toml");
    let routes = std::fs::read_to_string(&file).unwrap();
    let with = routes.replace(
        "auth = \"login\"",
        "auth = \"login\"\npass_access_token = true",
    );
    assert_ne!(routes, with);
    std::fs::write(&file, with).unwrap();
    s.proxy.reload().await;

    assert_eq!(s.idp.token_calls().refresh_token, 0);
    for _ in 0..3 {
        let hop = b.get(&s.url("/echo")).await;
        assert_eq!(hop.status, 200, "{}", hop.body);
        let auth = crate::support::seen(&hop.json(), "authorization");
        assert!(
            auth.len() == 1 && auth[0].starts_with("Bearer ey"),
            "{auth:?}"
        );
    }
    assert_eq!(
        s.idp.token_calls().refresh_token,
        1,
        "one renewal, then kept"
    );
}
