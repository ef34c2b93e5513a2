//! Sign-in under attack: what an unauthenticated client can make the proxy spend (store
//! writes, token calls), the per-address rate limit, the bound on redemptions in flight.

use std::time::Duration;

use crate::observability::metrics;
use crate::support::browser::{Browser, Hop};
use crate::support::eventually;
use crate::support::redis::RedisServer;
use crate::support::signin::{Setup, SignIn, GENEROUS_SIGN_IN};

/// The most any single wait in these tests may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Four requests, then one an hour: no token comes back while a test runs, however slowly.
const FOUR_THEN_ONE_AN_HOUR: &str = "rate_limit = \"1/h\"\nburst = 4";

/// Starts a sign-in in `b` and stops at the callback URL Entra sends the browser to.
async fn callback_url(s: &SignIn, b: &mut Browser) -> url::Url {
    let start = b.get(&s.url("/")).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let at_idp = b.get(start.location().unwrap().as_str()).await;
    at_idp.location().unwrap()
}

/// `url` with `name` removed, or set to `value`.
fn set_param(url: &url::Url, name: &str, value: Option<&str>) -> String {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    let mut u = url.clone();
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
async fn a_callback_without_a_code_writes_no_store_key_and_calls_no_token_endpoint() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let cb = callback_url(&s, &mut b).await;
    let sets = redis.calls("set");

    // The state checks out, but there is no code: Entra never sends that, a forger does.
    let no_code = b.get(&set_param(&cb, "code", None)).await;
    assert_eq!(no_code.status, 400, "{}", no_code.body);
    // Neither does an error from the provider cost anything.
    let denied = set_param(&cb, "code", None);
    let denied = set_param(
        &url::Url::parse(&denied).unwrap(),
        "error",
        Some("access_denied"),
    );
    assert_eq!(b.get(&denied).await.status, 403);
    assert_eq!(redis.calls("set"), sets, "no one-time marker was written");
    assert_eq!(s.idp.token_calls().authorization_code, 0);

    // The sign-in is still open: the real callback completes it.
    let done = b.get(cb.as_str()).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(s.idp.token_calls().authorization_code, 1);
}

#[tokio::test]
async fn a_loop_of_sign_in_starts_and_forged_callbacks_is_refused_with_429_and_redeems_nothing() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        redis: Some(redis.url()),
        sign_in: FOUR_THEN_ONE_AN_HOUR.into(),
        ..Setup::default()
    })
    .await;
    let sets = redis.calls("set");
    let before = metrics(&s).await;
    let mut b = s.browser();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let login = b.get(&s.url("/.auth/login?rd=%2F")).await;
        statuses.push(login.status.as_u16());
        // The state Entra would echo, base64url: it needs no escaping.
        let state = login
            .location()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_else(|| "guessed".into());
        let forged = b
            .get(&s.url(&format!("/.auth/callback?state={state}")))
            .await;
        statuses.push(forged.status.as_u16());
    }
    assert_eq!(
        statuses,
        [302, 400, 302, 400, 429, 429, 429, 429, 429, 429, 429, 429]
    );
    assert_eq!(s.idp.token_calls().authorization_code, 0);
    assert_eq!(redis.calls("set"), sets, "nothing was written to the store");

    // The refusal as a browser sees it ...
    let page = b.get(&s.url("/.auth/login?rd=%2F")).await;
    assert_eq!(page.status, 429);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.body.contains("Too many sign-in attempts") && page.body.contains("Request ID"),
        "{}",
        page.body
    );
    let wait: u64 = page.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After: {wait}");
    // ... and as an API client.
    let api = b.api(&s.url("/.auth/login")).await;
    assert_eq!(api.status, 429);
    let j = api.json();
    assert_eq!(j["status"], 429);
    assert!(j["message"].as_str().unwrap().contains("Too many"), "{j}");
    assert!(j["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(api.headers.contains_key("retry-after"));

    // Counted: the metrics are process-wide, so at least this test's refusals.
    let after = metrics(&s).await;
    for (reason, refused) in [("login", 6.0), ("callback", 4.0)] {
        let series = format!(
            "portcullis_auth_events_total{{event=\"sign_in_rate_limited\",reason=\"{reason}\"}}"
        );
        let delta = after.get(&series).copied().unwrap_or(0.0)
            - before.get(&series).copied().unwrap_or(0.0);
        assert!(delta >= refused, "{series}: {delta}");
    }
}

#[tokio::test]
async fn the_limit_is_per_client_address_behind_a_trusted_proxy() {
    let s = SignIn::start(Setup {
        server: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        sign_in: "rate_limit = \"1/h\"\nburst = 2".into(),
        ..Setup::default()
    })
    .await;
    let from = |forwarded_for: &str| {
        let mut b = s.browser();
        b.extra_headers
            .insert("x-forwarded-for", forwarded_for.parse().unwrap());
        b
    };
    let login = s.url("/.auth/login?rd=%2F");
    let mut first = from("203.0.113.7");
    assert_eq!(first.get(&login).await.status, 302);
    assert_eq!(first.get(&login).await.status, 302);
    assert_eq!(first.get(&login).await.status, 429);

    // Another client behind the same proxy has its own bucket, and so has the proxy itself.
    assert_eq!(from("203.0.113.8").get(&login).await.status, 302);
    assert_eq!(s.browser().get(&login).await.status, 302);
    // An address written in front of the proxy's entry changes nothing: the right-most
    // address that is not a trusted proxy counts.
    assert_eq!(
        from("198.51.100.1, 203.0.113.7").get(&login).await.status,
        429
    );
    // IPv6 clients count by their /64.
    assert_eq!(from("2001:db8:1:2::1").get(&login).await.status, 302);
    assert_eq!(from("2001:db8:1:2::2").get(&login).await.status, 302);
    assert_eq!(from("2001:db8:1:2::99").get(&login).await.status, 429);
    assert_eq!(from("2001:db8:1:3::1").get(&login).await.status, 302);
}

#[tokio::test]
async fn redemptions_beyond_the_bound_get_503_and_can_be_retried() {
    let s = SignIn::start(Setup {
        sign_in: format!("{GENEROUS_SIGN_IN}\nmax_concurrent_redemptions = 2"),
        ..Setup::default()
    })
    .await;
    // Five browsers, each back from Entra with a code.
    let mut back = Vec::new();
    for _ in 0..5 {
        let mut b = s.browser();
        let cb = callback_url(&s, &mut b).await;
        back.push((b, cb));
    }
    // Token calls are counted, then wait: the two admitted redemptions keep their slots.
    s.idp.hold_token_requests(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Browser, url::Url, Hop)>();
    for (mut b, cb) in back {
        let tx = tx.clone();
        tokio::spawn(async move {
            let hop = b.get(cb.as_str()).await;
            let _ = tx.send((b, cb, hop));
        });
    }
    drop(tx);
    let mut refused = Vec::new();
    for _ in 0..3 {
        let (b, cb, hop) = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("three answers while two redemptions are held")
            .unwrap();
        assert_eq!(hop.status, 503, "{}", hop.body);
        assert_eq!(hop.headers["retry-after"], "2");
        assert!(hop.body.contains("Load this page again"), "{}", hop.body);
        refused.push((b, cb));
    }
    assert!(
        eventually(LIMIT, || async {
            s.idp.token_calls().authorization_code == 2
        })
        .await,
        "two redemptions reached the token endpoint: {:?}",
        s.idp.token_calls().authorization_code
    );
    s.idp.hold_token_requests(false);
    for _ in 0..2 {
        let (_, _, hop) = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("the held redemptions finish")
            .unwrap();
        assert_eq!(hop.status, 302, "{}", hop.body);
    }
    // A refused callback spent nothing: loading it again signs in.
    for (mut b, cb) in refused {
        let hop = b.get(cb.as_str()).await;
        assert_eq!(hop.status, 302, "{}", hop.body);
    }
    assert_eq!(s.idp.token_calls().authorization_code, 5);
}
