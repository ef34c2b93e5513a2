//! Sign-in and sign-out under attack: what an unauthenticated client can make the proxy
//! spend (store writes, token calls), the per-address rate limit, the bound on redemptions in
//! flight, and sign-out requests from other sites (logout CSRF).

use std::time::Duration;

use reqwest::Method;

use crate::observability::metrics;
use crate::support::browser::{Browser, Hop};
use crate::support::eventually;
use crate::support::redis::RedisServer;
use crate::support::signin::{Setup, SignIn, GENEROUS_SIGN_IN, HOST};

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

// Sign-out.

async fn signed_in(s: &SignIn) -> Browser {
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "sign-in completes: {}", last.body);
    b
}

fn own_origin(s: &SignIn) -> String {
    format!("https://{HOST}:{}", s.proxy.https.port())
}

/// A request from `b` with these extra headers (for this request only).
async fn send(b: &mut Browser, method: Method, url: &str, headers: &[(&str, &str)]) -> Hop {
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
        b.extra_headers.insert(name, v.parse().unwrap());
    }
    let hop = b.request(method, url, "text/html").await;
    b.extra_headers.clear();
    hop
}

/// The confirmation page's form target, as the browser would read it.
fn form_action(hop: &Hop) -> String {
    assert_eq!(hop.status, 200, "{}", hop.body);
    assert!(hop.body.contains("method=\"post\""), "{}", hop.body);
    let start = hop.body.find("action=\"").expect("a form") + "action=\"".len();
    let end = start + hop.body[start..].find('"').unwrap();
    hop.body[start..end].replace("&amp;", "&")
}

async fn still_signed_in(s: &SignIn, b: &mut Browser) -> bool {
    match b.api(&s.url("/.auth/me")).await.status.as_u16() {
        200 => true,
        401 => false,
        other => panic!("/.auth/me answered {other}"),
    }
}

fn with_entra_sign_out() -> Setup {
    Setup {
        oidc: "post_logout_redirect_uri = \"/\"".into(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_cross_site_get_to_logout_keeps_the_session_and_asks_first() {
    let s = SignIn::start(with_entra_sign_out()).await;
    let mut b = signed_in(&s).await;
    let logout = s.url("/.auth/logout?rd=%2Fbye");
    let page = send(
        &mut b,
        Method::GET,
        &logout,
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(form_action(&page), "/.auth/logout?rd=%2Fbye");
    let h = &page.headers;
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());

    // From a sibling host, and from a browser that sends no Fetch Metadata: the same page.
    let page = send(
        &mut b,
        Method::GET,
        &logout,
        &[("sec-fetch-site", "same-site")],
    )
    .await;
    assert_eq!(form_action(&page), "/.auth/logout?rd=%2Fbye");
    let page = b.get(&s.url("/.auth/logout")).await;
    assert_eq!(form_action(&page), "/.auth/logout?rd=%2F");

    assert!(still_signed_in(&s, &mut b).await);
    assert!(s.idp.logouts().is_empty(), "Entra's session was not ended");
}

#[tokio::test]
async fn the_confirmation_pages_button_signs_out() {
    let s = SignIn::start(with_entra_sign_out()).await;
    let mut b = signed_in(&s).await;
    let page = send(
        &mut b,
        Method::GET,
        &s.url("/.auth/logout?rd=%2Fbye"),
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    let action = form_action(&page);
    // The form's POST, as a browser sends it from the page.
    let origin = own_origin(&s);
    let out = send(
        &mut b,
        Method::POST,
        &s.url(&action),
        &[("sec-fetch-site", "same-origin"), ("origin", &origin)],
    )
    .await;
    assert_eq!(out.status, 302, "{}", out.body);
    let to = out.location().unwrap();
    assert!(
        to.as_str().starts_with(&format!(
            "{}/{}/oauth2/v2.0/logout",
            s.idp.base_url(),
            s.idp.tenant_id()
        )),
        "{to}"
    );
    assert!(!still_signed_in(&s, &mut b).await);
}

/// A request's method and extra headers.
type Attempt<'a> = (Method, &'a [(&'a str, &'a str)]);

#[tokio::test]
async fn same_origin_gets_typed_urls_and_plain_posts_sign_out_where_their_cross_site_twins_do_not()
{
    let s = SignIn::start(Setup::default()).await;
    let logout = s.url("/.auth/logout?rd=%2Fbye");
    let evil = [("origin", "https://evil.example")];
    // (refused, then accepted): method and headers of each.
    let cases: [(Attempt, Attempt); 3] = [
        // A link on another site; a link on this one.
        (
            (Method::GET, &[("sec-fetch-site", "cross-site")]),
            (Method::GET, &[("sec-fetch-site", "same-origin")]),
        ),
        // A browser that does not say where the link was; the address bar or a bookmark.
        (
            (Method::GET, &[]),
            (Method::GET, &[("sec-fetch-site", "none")]),
        ),
        // Another site's form; a program, with neither Fetch Metadata nor Origin.
        ((Method::POST, &evil), (Method::POST, &[])),
    ];
    for ((refused, refused_headers), (accepted, accepted_headers)) in cases {
        let mut b = signed_in(&s).await;
        let page = send(&mut b, refused.clone(), &logout, refused_headers).await;
        assert_eq!(
            form_action(&page),
            "/.auth/logout?rd=%2Fbye",
            "{refused} {refused_headers:?}"
        );
        assert!(
            still_signed_in(&s, &mut b).await,
            "{refused} {refused_headers:?}"
        );
        let out = send(&mut b, accepted.clone(), &logout, accepted_headers).await;
        assert_eq!(
            out.status, 302,
            "{accepted} {accepted_headers:?}: {}",
            out.body
        );
        assert_eq!(out.headers["location"], "/bye");
        assert!(
            !still_signed_in(&s, &mut b).await,
            "{accepted} {accepted_headers:?}"
        );
    }
}

#[tokio::test]
async fn a_cross_site_post_does_not_sign_out() {
    let s = SignIn::start(with_entra_sign_out()).await;
    let mut b = signed_in(&s).await;
    let logout = s.url("/.auth/logout?rd=%2Fbye");
    for headers in [
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ][..],
        // A browser without Fetch Metadata still names the form's origin.
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "same-site")][..],
    ] {
        let page = send(&mut b, Method::POST, &logout, headers).await;
        assert_eq!(form_action(&page), "/.auth/logout?rd=%2Fbye", "{headers:?}");
        assert!(page.set_cookies().is_empty(), "{headers:?}");
    }
    assert!(still_signed_in(&s, &mut b).await);
    assert!(s.idp.logouts().is_empty(), "Entra's session was not ended");
}

#[tokio::test]
async fn the_confirmation_page_carries_only_a_safe_rd_and_escapes_it() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    for (rd, action) in [
        ("%2F%2Fevil.example", "/.auth/logout?rd=%2F"),
        ("https%3A%2F%2Fevil.example%2F", "/.auth/logout?rd=%2F"),
        (
            "%2Fwiki%3Fa%3D1%26b%3D2",
            "/.auth/logout?rd=%2Fwiki%3Fa%3D1%26b%3D2",
        ),
    ] {
        let page = b.get(&s.url(&format!("/.auth/logout?rd={rd}"))).await;
        assert_eq!(form_action(&page), action, "rd={rd}");
    }
    let page = b
        .get(&s.url(
            "/.auth/logout?rd=%2Fx%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%3Cform%20action%3D%22",
        ))
        .await;
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert_eq!(page.body.matches("<form").count(), 1, "{}", page.body);
    assert!(form_action(&page).starts_with("/.auth/logout?rd=%2F"));
}
