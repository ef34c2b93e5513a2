//! Signing in: the authorization-code flow through the stand-in Entra ID, from the first
//! redirect to the upstream seeing the user.

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::seen;
use crate::support::signin::{alice, Setup, SignIn, CLIENT_ID, HOST};

/// Follows a sign-in from `path` to the upstream's echo and checks every hop's shape.
async fn sign_in(s: &SignIn, b: &mut Browser, path: &str) -> serde_json::Value {
    let hops = b.navigate(&s.url(path)).await;
    assert!(
        hops.len() >= 4,
        "redirect chain: {:?}",
        hops.iter()
            .map(|h| (h.status, h.url.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(hops[0].status, 302, "first answer is the redirect to Entra");
    let authorize = hops[0].location().unwrap();
    assert!(
        authorize.as_str().starts_with(&s.idp.base_url()),
        "{authorize}"
    );
    let callback = &hops[2];
    assert_eq!(callback.url.path(), "/.auth/callback");
    assert_eq!(callback.status, 302);
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(
        path_and_query(&last.url),
        path,
        "returned to where it started"
    );
    last.json()
}

fn path_and_query(u: &url::Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

#[tokio::test]
async fn browser_signs_in_and_the_upstream_sees_the_user_with_the_memory_store() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let echo = sign_in(&s, &mut b, "/wiki/page?x=1").await;
    let user = s.idp.user("alice@contoso.example").unwrap();
    assert_eq!(seen(&echo, "x-auth-request-oid"), [user.oid.as_str()]);
    assert_eq!(
        seen(&echo, "x-auth-request-tid"),
        [s.idp.tenant_id().to_owned()]
    );
    assert_eq!(
        seen(&echo, "x-auth-request-user"),
        ["alice@contoso.example"]
    );
    assert_eq!(seen(&echo, "x-auth-request-name"), ["Alice Example"]);
    // The session cookie never reaches the upstream.
    assert!(seen(&echo, "cookie")
        .iter()
        .all(|c| !c.contains("__Host-portcullis")));

    // The next request rides on the session: no redirect.
    let hop = b.get(&s.url("/other")).await;
    assert_eq!(hop.status, 200);
    assert_eq!(s.idp.token_calls().authorization_code, 1);
}

#[tokio::test]
async fn browser_signs_in_with_the_redis_store() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let echo = sign_in(&s, &mut b, "/").await;
    assert_eq!(
        seen(&echo, "x-auth-request-user"),
        ["alice@contoso.example"]
    );
    assert_eq!(b.get(&s.url("/again")).await.status, 200);
}

#[tokio::test]
async fn authorize_request_carries_state_nonce_and_pkce_s256() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let hop = b.get(&s.url("/")).await;
    let url = hop.location().unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "base64url SHA-256");
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_ne!(q["state"], q["nonce"]);
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for want in ["openid", "profile", "email", "offline_access"] {
        assert!(scopes.contains(&want), "{scopes:?}");
    }
    assert_eq!(
        q["redirect_uri"],
        format!("https://{HOST}:{}/.auth/callback", s.proxy.https.port())
    );
    // The pending sign-in cookie is set with the browser-binding attributes.
    let pending: Vec<String> = hop
        .set_cookies()
        .into_iter()
        .filter(|c| c.starts_with("__Host-portcullis-signin-"))
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(pending[0].contains(attr), "{} lacks {attr}", pending[0]);
    }
    // Nothing about the sign-in is readable in the cookie.
    assert!(!pending[0].contains(&q["state"]) && !pending[0].contains(&q["nonce"]));
}

#[tokio::test]
async fn api_clients_get_401_json_and_browsers_a_redirect() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let api = b.api(&s.url("/data")).await;
    assert_eq!(api.status, 401);
    let j = api.json();
    assert_eq!(j["status"], 401);
    assert_eq!(j["login_url"], "/.auth/login?rd=%2Fdata");
    assert!(j["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let challenge = api.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("login_url=\"/.auth/login?rd=%2Fdata\""),
        "{challenge}"
    );

    // XHR from a page, and a POST, are not navigations either.
    b.extra_headers
        .insert("x-requested-with", "XMLHttpRequest".parse().unwrap());
    assert_eq!(b.get(&s.url("/data")).await.status, 401);
    b.extra_headers.clear();
    let post = b
        .request(reqwest::Method::POST, &s.url("/form"), "text/html")
        .await;
    assert_eq!(post.status, 401);
    b.extra_headers
        .insert("sec-fetch-mode", "cors".parse().unwrap());
    assert_eq!(b.get(&s.url("/data")).await.status, 401);
    b.extra_headers.clear();
    assert_eq!(b.get(&s.url("/data")).await.status, 302);
    assert_eq!(
        b.request(reqwest::Method::HEAD, &s.url("/"), "text/html")
            .await
            .status,
        302
    );
}

#[tokio::test]
async fn parallel_sign_ins_in_several_tabs_all_complete() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    // Three tabs start signing in before any comes back.
    let starts = [
        b.get(&s.url("/one")).await,
        b.get(&s.url("/two")).await,
        b.get(&s.url("/three")).await,
    ];
    assert_eq!(b.cookie_names(HOST).len(), 3, "{:?}", b.cookie_names(HOST));
    let mut returned = Vec::new();
    for start in starts.iter().rev() {
        let authorize = start.location().unwrap();
        let at_idp = b.get(authorize.as_str()).await;
        let callback = at_idp.location().unwrap();
        let done = b.get(callback.as_str()).await;
        assert_eq!(done.status, 302, "{}", done.body);
        returned.push(done.location().unwrap().path().to_owned());
    }
    assert_eq!(returned, ["/three", "/two", "/one"]);
    assert_eq!(b.cookie_names(HOST), ["__Host-portcullis"]);
}

/// Starts a sign-in and stops at the callback URL Entra would send the browser to.
async fn callback_url(s: &SignIn, b: &mut Browser) -> url::Url {
    let start = b.get(&s.url("/")).await;
    let at_idp = b.get(start.location().unwrap().as_str()).await;
    at_idp.location().unwrap()
}

fn with_param(url: &url::Url, name: &str, value: Option<&str>) -> String {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.to_string()
}

#[tokio::test]
async fn tampered_missing_or_foreign_state_is_refused_with_400() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let cb = callback_url(&s, &mut b).await;

    let missing = b.get(&with_param(&cb, "state", None)).await;
    assert_eq!(missing.status, 400);
    let tampered = b.get(&with_param(&cb, "state", Some("forged-state"))).await;
    assert_eq!(tampered.status, 400);
    assert!(
        tampered.body.contains("Request ID"),
        "friendly page: {}",
        tampered.body
    );

    // Another browser (no pending cookie) cannot complete this browser's sign-in.
    let mut other = s.browser();
    assert_eq!(other.get(cb.as_str()).await.status, 400);

    // A pending cookie with a flipped byte does not open.
    let name = b
        .cookie_names(HOST)
        .into_iter()
        .find(|n| n.contains("-signin-"))
        .unwrap();
    let mut forged = s.browser();
    let value = b.cookie(HOST, &name).unwrap().value.clone();
    let mut bytes = value.into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    forged.jar.entry(HOST.into()).or_default().insert(
        name.clone(),
        crate::support::browser::Cookie {
            value: String::from_utf8(bytes).unwrap(),
        },
    );
    assert_eq!(forged.get(cb.as_str()).await.status, 400);
    assert_eq!(
        s.idp.token_calls().authorization_code,
        0,
        "no code was redeemed"
    );

    // The real browser still completes.
    assert_eq!(b.get(cb.as_str()).await.status, 302);
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let cb = callback_url(&s, &mut b).await;
    let pending = b.jar[HOST].clone();
    assert_eq!(b.get(cb.as_str()).await.status, 302);
    // Put the pending cookie back, as an attacker holding both would.
    let mut replay = s.browser();
    replay.jar.insert(HOST.into(), pending);
    let again = replay.get(cb.as_str()).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);
    assert_eq!(s.idp.token_calls().authorization_code, 1);
}

#[tokio::test]
async fn provider_errors_give_a_friendly_page_never_500() {
    let s = SignIn::start(Setup::default()).await;
    for (error, status) in [
        ("access_denied", 403),
        ("consent_required", 401),
        ("server_error", 400),
    ] {
        s.idp.set_authorize_error(Some((
            error.into(),
            "AADSTS65004: User declined to consent to access the app.".into(),
        )));
        let mut b = s.browser();
        let hops = b.navigate(&s.url("/")).await;
        let last = hops.last().unwrap();
        assert_eq!(last.url.path(), "/.auth/callback");
        assert_eq!(last.status, status, "{error}: {}", last.body);
        assert!(last.body.contains(error), "{}", last.body);
        assert!(last.body.contains("AADSTS65004"), "{}", last.body);
        // The description's free text is not echoed.
        assert!(!last.body.contains("declined"), "{}", last.body);
        assert!(last.body.contains("Request ID"));
    }
}

#[tokio::test]
async fn open_redirect_vectors_fall_back_to_the_root() {
    let s = SignIn::start(Setup::default()).await;
    for rd in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "\\\\evil.example",
        "https://app.example.test.evil.example/",
        "javascript:alert(1)",
    ] {
        let mut b = s.browser();
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let hops = b.navigate(&s.url(&format!("/.auth/login?rd={enc}"))).await;
        let cb = hops
            .iter()
            .find(|h| h.url.path() == "/.auth/callback")
            .unwrap();
        let target = cb.headers["location"].to_str().unwrap();
        assert_eq!(target, "/", "rd={rd:?} must not leave the host");
    }
    // A same-host target is honoured.
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/.auth/login?rd=%2Fwiki%3Fa%3D1")).await;
    assert_eq!(hops.last().unwrap().url.path(), "/wiki");
}

#[tokio::test]
async fn a_request_path_starting_with_two_slashes_cannot_become_an_open_redirect() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("//evil.example/x")).await;
    let cb = hops
        .iter()
        .find(|h| h.url.path() == "/.auth/callback")
        .unwrap();
    // The canonical path merges the slashes: a path on this host, never `//host`.
    assert_eq!(cb.headers["location"], "/evil.example/x");
    assert_eq!(hops.last().unwrap().url.host_str(), Some(HOST));
}

#[tokio::test]
async fn protected_routes_answer_503_until_the_provider_answers_discovery() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    s.idp.set_discovery_available(false);
    let s = s.restart_proxy_without_waiting().await;
    let mut b = s.browser();
    let hop = b.get(&s.url("/")).await;
    assert_eq!(hop.status, 503, "{}", hop.body);
    assert!(
        hop.body.contains("Sign-in is not available yet"),
        "{}",
        hop.body
    );
    assert_eq!(hop.headers["retry-after"], "5");
    s.idp.set_discovery_available(true);
    s.wait_ready().await;
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
}

#[tokio::test]
async fn signing_in_again_replaces_the_session_id() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    sign_in(&s, &mut b, "/").await;
    let first = b.cookie(HOST, "__Host-portcullis").unwrap().value.clone();
    let hops = b.navigate(&s.url("/.auth/login?rd=%2F")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    let second = b.cookie(HOST, "__Host-portcullis").unwrap().value.clone();
    assert_ne!(first, second);
    assert_eq!(first.len(), 43, "256-bit base64url ID");
}

#[tokio::test]
async fn users_pick_themselves_with_login_hint() {
    let s = SignIn::start(Setup {
        users: vec![alice(), crate::support::signin::jose()],
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let hops = b
        .navigate(&s.url("/.auth/login?rd=%2F&login_hint=jose%40contoso.example"))
        .await;
    let echo = hops.last().unwrap().json();
    assert_eq!(seen(&echo, "x-auth-request-name"), ["José Núñez"]);
}
