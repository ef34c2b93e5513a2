//! Session rules under attack: a sign-out during a token refresh stands, front-channel
//! sign-out ends every session of an Entra session and checks the issuer, `sid` and
//! `login_hint` never reach an upstream, overage groups survive a refresh, the user header
//! names the configured claim, and with the cache off a session ended or changed in Redis is
//! seen at the next request.

use std::time::Duration;

use base64::Engine;
use sha2::Digest;

use crate::support::browser::{Browser, Cookie};
use crate::support::redis::RedisServer;
use crate::support::seen;
use crate::support::signin::{alice, login_route, Setup, SignIn, GROUP_ADMINS, HOST};

const COOKIE: &str = "__Host-portcullis";
/// Tokens live 10 s and are renewed with 7 s left: certainly due after this.
const DUE: Duration = Duration::from_millis(3100);

fn short_tokens(setup: Setup) -> Setup {
    Setup {
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        ..setup
    }
}

/// Signs in with `b` and returns the session cookie and Entra's `sid` (`session_state`).
async fn sign_in(s: &SignIn, b: &mut Browser) -> (String, String) {
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    let sid = hops
        .iter()
        .find(|h| h.url.path() == "/.auth/callback")
        .and_then(|h| h.url.query_pairs().find(|(k, _)| k == "session_state"))
        .map(|(_, v)| v.into_owned())
        .expect("session_state");
    (b.cookie(HOST, COOKIE).unwrap().value.clone(), sid)
}

/// A browser holding only the session cookie `value`.
fn holding(s: &SignIn, value: &str) -> Browser {
    let mut b = s.browser();
    b.jar.entry(HOST.to_owned()).or_default().insert(
        COOKIE.to_owned(),
        Cookie {
            value: value.to_owned(),
        },
    );
    b
}

#[tokio::test]
async fn a_sign_out_during_a_token_refresh_is_not_undone() {
    let s = SignIn::start(short_tokens(Setup::default())).await;
    let mut b = s.browser();
    let (cookie, _) = sign_in(&s, &mut b).await;
    tokio::time::sleep(DUE).await;
    // The refresh's token call is held at the stand-in (counted first); the sign-out lands
    // while it waits there, then the call goes on.
    s.idp.hold_token_requests(true);
    let mut renewing = holding(&s, &cookie);
    let url = s.url("/renewing");
    let refresh = tokio::spawn(async move { renewing.api(&url).await.status });
    assert!(
        crate::support::eventually(Duration::from_secs(10), || async {
            s.idp.token_calls().refresh_token == 1
        })
        .await,
        "the refresh reached the token endpoint"
    );
    let out = holding(&s, &cookie)
        .request(reqwest::Method::POST, &s.url("/.auth/logout"), "text/html")
        .await;
    assert!(out.status.is_redirection(), "{}", out.status);
    s.idp.hold_token_requests(false);
    let during = refresh.await.unwrap();
    assert_eq!(s.idp.token_calls().refresh_token, 1, "the refresh did run");
    assert!(during == 200 || during == 401, "{during}");
    // The old cookie, replayed: the session stays ended.
    let after = holding(&s, &cookie).api(&s.url("/after")).await;
    assert_eq!(
        after.status, 401,
        "the refresh brought the session back: {}",
        after.body
    );
}

#[tokio::test]
async fn front_channel_logout_ends_every_session_of_the_entra_session_and_checks_the_issuer() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let (first, sid) = sign_in(&s, &mut b).await;
    // The same browser signs in again (a new tab after the cookie was lost): Entra reuses
    // its session, so both proxy sessions carry the same `sid`.
    b.jar.get_mut(HOST).unwrap().remove(COOKIE);
    let (second, sid_again) = sign_in(&s, &mut b).await;
    assert_eq!(sid, sid_again);
    assert_ne!(first, second);

    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let mut entra = s.browser();
    let wrong = entra
        .get(&s.url(&format!(
            "/.auth/frontchannel-logout?sid={}&iss={}",
            enc(&sid),
            enc("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0")
        )))
        .await;
    assert_eq!(wrong.status, 200);
    assert_eq!(
        holding(&s, &first).api(&s.url("/")).await.status,
        200,
        "another issuer ended it"
    );

    let right = entra
        .get(&s.url(&format!(
            "/.auth/frontchannel-logout?sid={}&iss={}",
            enc(&sid),
            enc(&s.idp.issuer())
        )))
        .await;
    assert_eq!(right.status, 200);
    for cookie in [&first, &second] {
        assert_eq!(holding(&s, cookie).api(&s.url("/")).await.status, 401);
    }
}

#[tokio::test]
async fn sid_and_login_hint_never_reach_an_upstream() {
    let routes = format!(
        "{}{}",
        login_route(
            "easy",
            HOST,
            "path_prefix = \"/easy\"\nheaders = \"easy-auth\""
        ),
        login_route("app", HOST, ""),
    );
    let s = SignIn::start(Setup {
        routes,
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let (_, sid) = sign_in(&s, &mut b).await;
    for path in ["/x", "/easy/x"] {
        let hop = b.get(&s.url(path)).await;
        assert_eq!(hop.status, 200);
        assert!(
            !hop.body.contains(&sid),
            "{path}: the sid reached the upstream"
        );
        let echo = hop.json();
        for principal in seen(&echo, "x-ms-client-principal") {
            let json = base64::engine::general_purpose::STANDARD
                .decode(principal)
                .unwrap();
            let text = String::from_utf8(json).unwrap();
            assert!(
                !text.contains("\"sid\"") && !text.contains("login_hint"),
                "{text}"
            );
        }
    }
    let me = b.api(&s.url("/.auth/me")).await;
    assert!(!me.body.contains(&sid));
}

#[tokio::test]
async fn overage_groups_resolved_through_graph_survive_a_token_refresh() {
    let mut many = alice();
    many.groups = (0..250)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    many.groups[240] = GROUP_ADMINS.to_owned();
    let s = SignIn::start(short_tokens(Setup {
        users: vec![many],
        routes: login_route(
            "admin",
            HOST,
            &format!("allowed_groups = [\"{GROUP_ADMINS}\"]"),
        ),
        ..Setup::default()
    }))
    .await;
    let mut b = s.browser();
    sign_in(&s, &mut b).await;
    assert_eq!(b.api(&s.url("/before")).await.status, 200);
    tokio::time::sleep(DUE).await;
    let after = b.api(&s.url("/after-refresh")).await;
    assert_eq!(s.idp.token_calls().refresh_token, 1, "a refresh ran");
    assert_eq!(
        after.status, 200,
        "groups lost at the refresh: {}",
        after.body
    );
    let groups = seen(&after.json(), "x-auth-request-groups");
    assert!(groups[0].contains(GROUP_ADMINS));
}

#[tokio::test]
async fn the_user_header_names_the_configured_claim() {
    let s = SignIn::start(Setup {
        oidc: "user_claim = \"oid\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    sign_in(&s, &mut b).await;
    let echo = b.get(&s.url("/")).await.json();
    let oid = seen(&echo, "x-auth-request-oid");
    assert_eq!(seen(&echo, "x-auth-request-user"), oid);
    assert_ne!(oid[0], "alice@contoso.example");
}

#[tokio::test]
async fn the_admin_api_revokes_every_session_of_a_user_on_every_instance() {
    let redis = crate::support::redis::RedisServer::start();
    let token = "9f1c2b7e4d3a58f60e1b2c3d4e5f60718293a4b5c6d7e8f9";
    let s = SignIn::start(Setup {
        users: vec![alice(), crate::support::signin::jose()],
        redis: Some(redis.url()),
        // A long cache: only the invalidation message can make an instance forget a session.
        session: "cache_ttl = \"1m\"".into(),
        files: vec![("admin-token".into(), format!("{token}\n"))],
        server: "admin_token_file = \"admin-token\"".into(),
        ..Setup::default()
    })
    .await;
    let mut laptop = s.signed_in_as("alice@contoso.example").await;
    let mut phone = s.signed_in_as("alice@contoso.example").await;
    let mut jose = s.signed_in_as("jose@contoso.example").await;
    for b in [&mut laptop, &mut phone, &mut jose] {
        assert_eq!(b.api(&s.url("/warm-the-cache")).await.status, 200);
    }
    let oid = s.idp.user("alice@contoso.example").unwrap().oid;
    let admin = reqwest::Client::new();
    let url = format!("http://{}/admin/sessions/revoke", s.proxy.admin);
    let call = |auth: Option<&str>, body: String| {
        let mut r = admin.post(&url).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let body = serde_json::json!({ "oid": oid }).to_string();
    assert_eq!(call(None, body.clone()).await.unwrap().status(), 401);
    let wrong = format!("Bearer {}x", &token[..token.len() - 1]);
    assert_eq!(
        call(Some(&wrong), body.clone()).await.unwrap().status(),
        401
    );
    let bearer = format!("Bearer {token}");
    let bad = call(Some(&bearer), "{\"oid\": \"alice\"}".into())
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let done = call(Some(&bearer), body).await.unwrap();
    assert_eq!(done.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&done.text().await.unwrap()).unwrap();
    assert_eq!(answer["sessions_ended"], 2);
    for b in [&mut laptop, &mut phone] {
        assert_eq!(
            b.api(&s.url("/after")).await.status,
            401,
            "a revoked session served"
        );
    }
    assert_eq!(
        jose.api(&s.url("/after")).await.status,
        200,
        "another user's session ended"
    );
}

#[tokio::test]
async fn without_an_admin_token_file_the_revoke_api_does_not_exist() {
    let s = SignIn::start(Setup::default()).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/admin/sessions/revoke", s.proxy.admin))
        .header("authorization", "Bearer anything")
        .body("{\"oid\": \"00000000-0000-0000-0000-000000000000\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn the_revoke_api_refuses_oversized_odd_and_wrongly_spelled_requests() {
    let token = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";
    let s = SignIn::start(Setup {
        files: vec![("admin-token".into(), format!("{token}\n"))],
        server: "admin_token_file = \"admin-token\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.signed_in_as("alice@contoso.example").await;
    let oid = s.idp.user("alice@contoso.example").unwrap().oid;
    let url = format!("http://{}/admin/sessions/revoke", s.proxy.admin);
    let client = reqwest::Client::new();
    let post = |auth: String, body: String| {
        client
            .post(&url)
            .header("authorization", auth)
            .body(body)
            .send()
    };
    let bearer = format!("Bearer {token}");
    let status = |r: reqwest::Response| r.status().as_u16();
    // The token in another case, padded, or as a prefix is not the token.
    for auth in [
        format!("Bearer {}", token.to_uppercase()),
        format!("Bearer {token}0"),
        format!("Bearer {}", &token[..32]),
        format!("Basic {token}"),
        token.to_owned(),
    ] {
        let body = serde_json::json!({ "oid": oid }).to_string();
        assert_eq!(
            status(post(auth.clone(), body).await.unwrap()),
            401,
            "{auth}"
        );
    }
    let oversized = format!("{{\"oid\": \"{oid}\", \"pad\": \"{}\"}}", "x".repeat(8192));
    assert_eq!(status(post(bearer.clone(), oversized).await.unwrap()), 413);
    for odd in [
        format!("{{\"oid\": \"{oid}\", \"tid\": \"x\"}}"),
        format!("{{\"oid\": [\"{oid}\"]}}"),
        "{\"oid\": \"alice@contoso.example\"}".to_owned(),
        "not json".to_owned(),
    ] {
        assert_eq!(
            status(post(bearer.clone(), odd.clone()).await.unwrap()),
            400,
            "{odd}"
        );
    }
    assert_eq!(
        b.api(&s.url("/still")).await.status,
        200,
        "a refused call ended nothing"
    );
    // The scheme is case-insensitive and the object ID compares without case.
    let body = serde_json::json!({ "oid": oid.to_uppercase() }).to_string();
    let done = post(format!("bearer {token}"), body).await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(b.api(&s.url("/gone")).await.status, 401);
}

/// With `cache_ttl = "1ms"` every request reads its session from Redis. An unchanged value is
/// read with a plain GET (the decoded copy is kept, no script runs per request); a key deleted
/// or replaced behind the proxy's back is seen at the very next request.
#[tokio::test]
async fn with_the_cache_off_each_request_reads_redis_and_sees_an_end_or_a_change() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        session: "cache_ttl = \"1ms\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    sign_in(&s, &mut b).await;
    let id = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let key = format!(
        "pc-test:session:{}",
        hex::encode(sha2::Sha256::digest(id.as_bytes()))
    );
    assert_eq!(b.api(&s.url("/")).await.status, 200);
    let (gets, scripts) = (redis.calls("get"), redis.calls("evalsha"));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(b.api(&s.url("/")).await.status, 200);
    }
    assert!(redis.calls("get") >= gets + 5, "one GET per request");
    assert_eq!(redis.calls("evalsha"), scripts, "no script per request");

    // Replaced in Redis by bytes that do not open (tampered with): refused.
    assert_eq!(
        redis
            .command(&format!("SET {key} not-a-sealed-value KEEPTTL"))
            .trim(),
        "+OK"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(b.api(&s.url("/")).await.status, 401);

    // A fresh sign-in, then its key deleted in Redis (an operator's revocation): refused.
    let mut b = s.browser();
    sign_in(&s, &mut b).await;
    assert_eq!(b.api(&s.url("/")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(b.api(&s.url("/")).await.status, 200);
    let id = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let key = format!(
        "pc-test:session:{}",
        hex::encode(sha2::Sha256::digest(id.as_bytes()))
    );
    assert_eq!(redis.command(&format!("DEL {key}")).trim(), ":1");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(b.api(&s.url("/")).await.status, 401);
}
