//! Sessions after sign-in: refresh with rotation, one token call under concurrency, refresh
//! failures, sign-out, `/.auth/me`, restarts with Redis, what Redis holds, a dead Redis.

use std::time::Duration;

use entra_standin::TokenFailure;
use fred::prelude::*;
use sha2::Digest;

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::seen;
use crate::support::signin::{login_route, Setup, SignIn, CLIENT_ID, HOST};

const COOKIE: &str = "__Host-portcullis";

/// How long after issue a `short_tokens` access token is due for renewal, for sure.
pub const DUE: Duration = Duration::from_millis(3100);

async fn signed_in(s: &SignIn) -> Browser {
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "sign-in completes: {}", last.body);
    b
}

/// Access tokens live 10 s and are renewed when 7 s or less remain. Session times have
/// one-second resolution, so a token is certainly not due for the first 2 s after issue and
/// certainly due after [`DUE`].
fn short_tokens(extra: Setup) -> Setup {
    Setup {
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        routes: login_route("app", HOST, "pass_access_token = true"),
        ..extra
    }
}

async fn access_token_seen(b: &mut Browser, s: &SignIn) -> String {
    let hop = b.get(&s.url("/echo")).await;
    assert_eq!(hop.status, 200, "{}", hop.body);
    let auth = seen(&hop.json(), "authorization");
    assert_eq!(auth.len(), 1, "{auth:?}");
    auth[0].clone()
}

#[tokio::test]
async fn access_tokens_are_refreshed_before_expiry_and_rotated_refresh_tokens_kept() {
    let s = SignIn::start(short_tokens(Setup::default())).await;
    let mut b = signed_in(&s).await;
    let first = access_token_seen(&mut b, &s).await;
    assert_eq!(s.idp.token_calls().refresh_token, 0, "not due yet");

    // Process-wide series (other tests refresh too): at least this test's refresh.
    let refreshes = "portcullis_token_refresh_duration_seconds_count";
    let before = crate::observability::metrics(&s).await;
    tokio::time::sleep(DUE).await;
    let second = access_token_seen(&mut b, &s).await;
    assert_ne!(first, second, "a new access token went upstream");
    assert_eq!(s.idp.token_calls().refresh_token, 1);
    let after = crate::observability::metrics(&s).await;
    assert!(
        after.get(refreshes).copied().unwrap_or(0.0)
            >= before.get(refreshes).copied().unwrap_or(0.0) + 1.0,
        "the refresh's latency is recorded"
    );

    // The stand-in refuses a refresh token once used: a second refresh only works if the
    // rotated one was stored.
    tokio::time::sleep(DUE).await;
    let third = access_token_seen(&mut b, &s).await;
    assert_ne!(second, third);
    let calls = s.idp.token_calls();
    assert_eq!(calls.refresh_token, 2);
    assert_eq!(calls.failed, 0, "no refresh was refused");
}

#[tokio::test]
async fn concurrent_requests_during_a_refresh_make_exactly_one_token_call() {
    let redis = RedisServer::start();
    // Fresh for at least 2 s after the refresh: a slow machine serving the burst does not make
    // a second one due.
    let s = SignIn::start(short_tokens(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    }))
    .await;
    let b = signed_in(&s).await;
    let cookie = b.cookie(HOST, COOKIE).unwrap().value.clone();
    tokio::time::sleep(DUE).await;
    // The token endpoint is slow, so every request arrives while the refresh is in flight.
    s.idp.set_delay(Duration::from_millis(400));
    let client = s.proxy.client(&[HOST]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let req = client
            .get(s.url(&format!("/r{i}")))
            .header("accept", "application/json")
            .header("cookie", format!("{COOKIE}={cookie}"));
        tasks.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        statuses.push(r.unwrap().unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(s.idp.token_calls().refresh_token, 1);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let s = SignIn::start(short_tokens(Setup::default())).await;
    let mut b = signed_in(&s).await;
    s.idp.revoke_refresh_tokens("alice@contoso.example");
    tokio::time::sleep(DUE).await;
    let api = b.api(&s.url("/data")).await;
    assert_eq!(api.status, 401, "{}", api.body);
    // The session is gone for good, not just for this request.
    let nav = b.get(&s.url("/")).await;
    assert_eq!(nav.status, 302);
    assert!(nav
        .location()
        .unwrap()
        .as_str()
        .starts_with(&s.idp.base_url()));
}

#[tokio::test]
async fn every_session_ending_refresh_error_ends_the_session() {
    let mut cases = Vec::new();
    for failure in [
        TokenFailure::InvalidGrant,
        TokenFailure::InteractionRequired,
        TokenFailure::LoginRequired,
        TokenFailure::ConsentRequired,
    ] {
        cases.push(signed_in_case(failure).await);
    }
    // One wait for all: every token is due now, and none has expired.
    tokio::time::sleep(DUE).await;
    for (failure, s, mut b) in cases {
        s.idp.fail_next_token_requests(1, failure);
        let api = b.api(&s.url("/data")).await;
        assert_eq!(api.status, 401, "{failure:?}: {}", api.body);
    }
}

async fn signed_in_case(failure: TokenFailure) -> (TokenFailure, SignIn, Browser) {
    let s = SignIn::start(short_tokens(Setup::default())).await;
    let b = signed_in(&s).await;
    (failure, s, b)
}

#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_session() {
    let mut cases = Vec::new();
    for failure in [
        TokenFailure::TemporarilyUnavailable,
        TokenFailure::ServerError,
        TokenFailure::ConnectionReset,
        TokenFailure::InvalidClient,
    ] {
        cases.push(signed_in_case(failure).await);
    }
    tokio::time::sleep(DUE).await;
    for (failure, s, mut b) in cases {
        s.idp.fail_next_token_requests(1, failure);
        // The token is still valid: the request is served, the user stays signed in.
        let hop = b.api(&s.url("/data")).await;
        assert_eq!(hop.status, 200, "{failure:?}: {}", hop.body);
        assert_eq!(b.api(&s.url("/data")).await.status, 200);
        assert_eq!(
            s.idp.token_calls().refresh_token,
            1,
            "{failure:?}: retried later, not at once"
        );
    }
}

#[tokio::test]
async fn an_expired_token_that_cannot_be_renewed_now_gives_503_not_a_sign_out() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        access_token_lifetime: Duration::from_secs(2),
        session: "refresh_before = \"1s\"".into(),
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s).await;
    s.idp
        .fail_next_token_requests(10, TokenFailure::TemporarilyUnavailable);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let hop = b.api(&s.url("/data")).await;
    assert_eq!(hop.status, 503, "{}", hop.body);
    assert_eq!(hop.headers["retry-after"], "5");
    // Still in the store: the user is not signed out by a provider outage.
    let id = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let raw = raw_client(&redis).await;
    let key = format!(
        "pc-test:session:{}",
        hex::encode(sha2::Sha256::digest(id.as_bytes()))
    );
    let exists: i64 = raw.exists(key).await.unwrap();
    assert_eq!(exists, 1);
}

#[tokio::test]
async fn sign_out_deletes_the_session_and_ends_the_entra_session() {
    let s = SignIn::start(Setup {
        oidc: "post_logout_redirect_uri = \"/\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s).await;
    let old = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let out = b.click(&s.url("/.auth/logout")).await;
    assert_eq!(out.status, 302);
    assert!(out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")));
    let to = out.location().unwrap();
    assert!(
        to.as_str().starts_with(&format!(
            "{}/{}/oauth2/v2.0/logout",
            s.idp.base_url(),
            s.idp.tenant_id()
        )),
        "{to}"
    );
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    let after = format!("https://{HOST}:{}/", s.proxy.https.port());
    assert_eq!(q["post_logout_redirect_uri"], after);
    // Names the app, so Entra checks the URI against its registration and follows it.
    assert_eq!(q["client_id"], CLIENT_ID);
    let back = b.get(to.as_str()).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(back.location().unwrap().as_str(), after);
    let record = s.idp.logouts().pop().unwrap();
    assert_eq!(record.client_id.as_deref(), Some(CLIENT_ID));
    let hint = record.logout_hint.expect("logout_hint sent");
    assert!(!hint.is_empty());
    // The old cookie no longer opens a session anywhere.
    let mut replay = s.browser();
    replay.jar.entry(HOST.into()).or_default().insert(
        COOKIE.into(),
        crate::support::browser::Cookie { value: old },
    );
    assert_eq!(replay.api(&s.url("/")).await.status, 401);
}

#[tokio::test]
async fn sign_out_without_an_entra_redirect_returns_to_a_safe_rd() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = signed_in(&s).await;
    let out = b.click(&s.url("/.auth/logout?rd=%2Fbye")).await;
    assert_eq!(out.headers["location"], "/bye");
    let out = b.click(&s.url("/.auth/logout?rd=%2F%2Fevil.example")).await;
    assert_eq!(out.headers["location"], "/");
    assert!(s.idp.logouts().is_empty());
}

#[tokio::test]
async fn me_returns_the_identity_and_401_without_a_session() {
    let s = SignIn::start(Setup::default()).await;
    let mut anon = s.browser();
    assert_eq!(anon.api(&s.url("/.auth/me")).await.status, 401);
    let mut b = signed_in(&s).await;
    let me = b.api(&s.url("/.auth/me")).await;
    assert_eq!(me.status, 200);
    let j = me.json();
    let user = s.idp.user("alice@contoso.example").unwrap();
    assert_eq!(j[0]["provider_name"], "aad");
    assert_eq!(j[0]["oid"], user.oid);
    assert_eq!(j[0]["user_id"], "alice@contoso.example");
    assert!(j[0]["user_claims"].as_array().unwrap().len() > 5);
    // No token of any kind: every JWT starts with `eyJ` (base64 of `{"`).
    assert!(
        !me.body.contains("eyJ"),
        "no tokens in /.auth/me: {}",
        me.body
    );
    assert!(
        !me.body.contains("refresh"),
        "no refresh token in /.auth/me"
    );
}

#[tokio::test]
async fn front_channel_logout_by_sid_ends_the_session() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    // Entra's session ID comes back as `session_state`; it is the ID token's `sid`.
    let sid = hops
        .iter()
        .find(|h| h.url.path() == "/.auth/callback")
        .and_then(|h| h.url.query_pairs().find(|(k, _)| k == "session_state"))
        .map(|(_, v)| v.into_owned())
        .expect("session_state");
    // Entra calls from a hidden frame, without the user's cookies.
    let mut entra = s.browser();
    let enc: String = url::form_urlencoded::byte_serialize(sid.as_bytes()).collect();
    let hop = entra
        .get(&s.url(&format!("/.auth/frontchannel-logout?sid={enc}")))
        .await;
    assert_eq!(hop.status, 200);
    assert_eq!(b.api(&s.url("/")).await.status, 401);
}

#[tokio::test]
async fn a_session_survives_a_proxy_restart_with_the_redis_store() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s).await;
    let s = s.restart_proxy().await;
    let misses = "portcullis_session_cache_lookups_total{result=\"miss\"}";
    let before = crate::observability::metrics(&s).await;
    let hop = b.api(&s.url("/after-restart")).await;
    assert_eq!(hop.status, 200, "{}", hop.body);
    assert_eq!(s.idp.token_calls().authorization_code, 1, "no new sign-in");
    // The new instance had no copy: read from Redis, counted as a miss (process-wide series).
    let after = crate::observability::metrics(&s).await;
    assert!(
        after.get(misses).copied().unwrap_or(0.0)
            >= before.get(misses).copied().unwrap_or(0.0) + 1.0
    );
}

#[tokio::test]
async fn the_redis_url_and_password_can_come_from_files() {
    // A Redis that wants a password; the URL (without it) and the password are files, as
    // Kubernetes Secrets mount them, with the trailing newline editors leave.
    let redis = RedisServer::start_with(&["--requirepass", "file-pw"]);
    let s = SignIn::start(Setup {
        session: "store = \"redis\"\n\n[redis]\nurl_file = \"redis-url\"\n\
                  password_file = \"redis-password\"\nkey_prefix = \"from-files:\"\n"
            .to_owned(),
        files: vec![
            ("redis-url".to_owned(), format!("{}\n", redis.url())),
            ("redis-password".to_owned(), "file-pw\n".to_owned()),
        ],
        ..Setup::default()
    })
    .await;
    let _b = signed_in(&s).await;
    // The session is in this Redis, under this prefix: the proxy signed in with the files.
    let mut config = Config::from_url(&redis.url()).unwrap();
    config.password = Some("file-pw".to_owned());
    let raw = Builder::from_config(config).build().unwrap();
    raw.init().await.unwrap();
    let keys: Vec<String> = raw
        .custom(fred::cmd!("KEYS"), vec!["from-files:session:*"])
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

async fn raw_client(redis: &RedisServer) -> Client {
    let config = Config::from_url(&redis.url()).unwrap();
    let client = Builder::from_config(config).build().unwrap();
    client.init().await.unwrap();
    client
}

#[tokio::test]
async fn redis_holds_no_raw_session_id_and_no_readable_tokens() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let b = signed_in(&s).await;
    let id = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let raw = raw_client(&redis).await;
    let keys: Vec<String> = raw.custom(fred::cmd!("KEYS"), vec!["*"]).await.unwrap();
    assert!(!keys.is_empty());
    let hashed = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    assert!(
        keys.contains(&format!("pc-test:session:{hashed}")),
        "{keys:?}"
    );
    let user = s.idp.user("alice@contoso.example").unwrap();
    for key in &keys {
        assert!(!key.contains(&id), "raw session ID in key {key}");
        assert!(key.starts_with("pc-test:"), "{key}");
        // Values are strings, and the indexes sets of session keys.
        let kind: String = raw
            .custom(fred::cmd!("TYPE"), vec![key.as_str()])
            .await
            .unwrap();
        let text = if kind == "set" {
            let members: Vec<String> = raw.smembers(key.as_str()).await.unwrap();
            assert!(
                members.iter().all(|m| m.starts_with("session:")),
                "{members:?}"
            );
            members.join(" ")
        } else {
            let value: Option<Vec<u8>> = raw.get(key.as_str()).await.unwrap();
            String::from_utf8_lossy(&value.unwrap_or_default()).into_owned()
        };
        for secret in [
            id.as_str(),
            user.oid.as_str(),
            "alice@contoso.example",
            "eyJ",
        ] {
            assert!(
                !text.contains(secret),
                "{key} holds {secret:?} in the clear"
            );
        }
        let ttl: i64 = raw.pttl(key.as_str()).await.unwrap();
        assert!(ttl > 0, "{key} has a TTL");
    }
    // The session key's TTL is the idle timeout (1 h), not the 12 h max lifetime.
    let ttl: i64 = raw.pttl(format!("pc-test:session:{hashed}")).await.unwrap();
    assert!(ttl <= 3_600_000 && ttl > 3_500_000, "{ttl}");
}

#[tokio::test]
async fn a_dead_redis_gives_503_fast_and_public_routes_keep_serving() {
    let mut redis = RedisServer::start();
    let routes = format!(
        "{}[[route]]\nname = \"pub\"\nhost = \"other.example.test\"\nupstream = \"{{upstream}}\"\nauth = \"public\"\n",
        login_route("app", HOST, "")
    );
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        routes,
        session: "cache_ttl = \"1s\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s).await;
    redis.stop();
    // A session read within cache_ttl rides out a blip; after that the store must answer.
    assert_eq!(b.api(&s.url("/cached")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = std::time::Instant::now();
    let hop = b.api(&s.url("/data")).await;
    assert_eq!(hop.status, 503, "{}", hop.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !hop.body.contains("redis") && !hop.body.contains("127.0.0.1"),
        "{}",
        hop.body
    );
    let mut public = s.browser();
    assert_eq!(
        public
            .get(&s.url_on("other.example.test", "/"))
            .await
            .status,
        200
    );
    let ready = reqwest::get(format!("http://{}/readyz", s.proxy.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // The store returns; sessions work again (this Redis kept nothing on disk, so sign in).
    redis.restart();
    let ok = crate::support::eventually(Duration::from_secs(10), || {
        let admin = s.proxy.admin;
        async move {
            reqwest::get(format!("http://{admin}/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    assert!(ok, "ready again");
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
}

#[tokio::test]
async fn an_idle_session_ends_and_an_active_one_does_not() {
    let s = SignIn::start(Setup {
        session: "idle_timeout = \"2s\"\ncache_ttl = \"500ms\"".into(),
        ..Setup::default()
    })
    .await;
    let mut active = signed_in(&s).await;
    let mut idle = signed_in(&s).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(active.api(&s.url("/")).await.status, 200);
    }
    assert_eq!(
        idle.api(&s.url("/")).await.status,
        401,
        "unused for 3.2 s of a 2 s idle timeout"
    );
}
