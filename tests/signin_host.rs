//! One sign-in host for many app hosts (`oidc.signin_host`): the app registration names only
//! the sign-in host's callback, app hosts get their session through a one-time ticket, and
//! each keeps its own `__Host-` cookie for one shared session.

use crate::support::browser::{Browser, Hop};
use crate::support::redis::RedisServer;
use crate::support::seen;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

const AUTH: &str = "auth.example.test";
const OTHER: &str = "other.example.test";
const UNROUTED: &str = "unrouted.example.test";
const COOKIE: &str = "__Host-portcullis";

async fn start() -> SignIn {
    start_with(None).await
}

/// With the memory store, or the Redis at `redis`.
async fn start_with(redis: Option<String>) -> SignIn {
    SignIn::start(Setup {
        redis,
        routes: format!(
            "{}{}",
            login_route("app", HOST, ""),
            login_route("other", OTHER, "")
        ),
        oidc: format!("signin_host = \"{AUTH}\"\npost_logout_redirect_uri = \"/\""),
        registered_host: Some(AUTH),
        ..Setup::default()
    })
    .await
}

fn chain(hops: &[Hop]) -> Vec<(u16, String)> {
    hops.iter()
        .map(|h| (h.status.as_u16(), h.url.to_string()))
        .collect()
}

/// Follows redirects from `url` until the next hop would redeem a ticket on an app host, and
/// returns that ticket URL without loading it.
async fn until_ticket(b: &mut Browser, url: &str) -> String {
    let mut next = url.to_owned();
    for _ in 0..10 {
        let hop = b.get(&next).await;
        assert!(
            hop.status.is_redirection(),
            "{} {}: {}",
            hop.status,
            hop.url,
            hop.body
        );
        let loc = hop.location().unwrap();
        if loc.path() == "/.auth/ticket" {
            return loc.to_string();
        }
        next = loc.to_string();
    }
    panic!("no ticket within 10 redirects from {url}");
}

/// A second browser holding the cookies `b` holds.
fn copy_of(s: &SignIn, b: &Browser) -> Browser {
    let mut c = s.browser();
    c.jar = b.jar.clone();
    c
}

#[tokio::test]
async fn two_app_hosts_sign_in_through_the_one_registered_callback() {
    let s = start().await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/wiki?x=1")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", chain(&hops));
    assert_eq!(last.url.host_str(), Some(HOST));
    assert_eq!(last.url.path(), "/wiki");
    assert_eq!(last.url.query(), Some("x=1"));
    let user = s.idp.user("alice@contoso.example").unwrap();
    assert_eq!(
        seen(&last.json(), "x-auth-request-oid"),
        [user.oid.as_str()]
    );

    // The app host handed off to the sign-in host, whose callback is the one Entra saw.
    assert_eq!(hops[0].location().unwrap().host_str(), Some(AUTH));
    let authorize = hops
        .iter()
        .filter_map(Hop::location)
        .find(|l| l.as_str().starts_with(&s.idp.base_url()))
        .expect("a redirect to the provider");
    let redirect_uri = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    let port = s.proxy.https.port();
    assert_eq!(
        redirect_uri.as_deref(),
        Some(format!("https://{AUTH}:{port}/.auth/callback").as_str())
    );
    // One session, a cookie per host; the hand-off cookie is gone.
    let on_app = b
        .cookie(HOST, COOKIE)
        .expect("a session cookie on the app host")
        .value
        .clone();
    let on_auth = b
        .cookie(AUTH, COOKIE)
        .expect("a session cookie on the sign-in host")
        .value
        .clone();
    assert_eq!(on_app, on_auth);
    assert_eq!(b.cookie_names(HOST), [COOKIE]);

    // The second app host: the sign-in host's session hands back at once, no provider trip.
    let hops = b.navigate(&s.url_on(OTHER, "/reports")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", chain(&hops));
    assert_eq!(last.url.host_str(), Some(OTHER));
    assert!(
        hops.iter()
            .all(|h| !h.url.as_str().starts_with(&s.idp.base_url())),
        "{:?}",
        chain(&hops)
    );
    assert_eq!(s.idp.token_calls().authorization_code, 1);
    assert_eq!(b.cookie(OTHER, COOKIE).unwrap().value, on_app);
}

#[tokio::test]
async fn a_ticket_is_redeemed_once_even_by_racing_copies_of_one_browser() {
    // Redis, where the read and the delete of a ticket are separate round trips.
    let redis = RedisServer::start();
    let s = start_with(Some(redis.url())).await;
    let mut b = s.browser();
    let ticket = until_ticket(&mut b, &s.url("/page")).await;
    // Eight copies of the same browser state redeem the ticket at once: one wins.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let mut c = copy_of(&s, &b);
            let ticket = ticket.clone();
            tokio::spawn(async move {
                let hop = c.get(&ticket).await;
                (hop.status.as_u16(), c.cookie(HOST, COOKIE).is_some())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    let won: Vec<_> = outcomes
        .iter()
        .filter(|(status, _)| *status == 302)
        .collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(won[0].1, "the winner got the session cookie");
    assert!(
        outcomes
            .iter()
            .all(|(status, cookie)| *status == 302 || (*status == 400 && !cookie)),
        "{outcomes:?}"
    );

    // A later replay from the same browser state fails too, and says nothing of the ticket.
    // Oversized and doubled parameters are refused before any store lookup.
    let long = s.url(&format!(
        "/.auth/ticket?state={}&ticket={}",
        "A".repeat(5000),
        "B".repeat(43)
    ));
    assert_eq!(b.get(&long).await.status, 400);
    let doubled = format!("{ticket}&ticket={}", "C".repeat(43));
    assert_eq!(b.get(&doubled).await.status, 400);
    let again = b.get(&ticket).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(!again.body.contains("ticket="), "{}", again.body);
    assert!(b.cookie(HOST, COOKIE).is_none());
    assert_eq!(b.api(&s.url("/page")).await.status, 401);
}

#[tokio::test]
async fn a_ticket_is_useless_in_a_browser_that_did_not_start_the_hand_off() {
    let s = start().await;
    let mut attacker = s.browser();
    let ticket = until_ticket(&mut attacker, &s.url("/")).await;
    // Login CSRF: the victim is sent the attacker's ticket link.
    let mut victim = s.browser();
    let hop = victim.get(&ticket).await;
    assert_eq!(hop.status, 400, "{}", hop.body);
    assert!(victim.cookie(HOST, COOKIE).is_none());
    // Refused before it cost the ticket: its own browser still redeems it.
    assert_eq!(attacker.get(&ticket).await.status, 302);
    assert_eq!(attacker.get(&s.url("/")).await.status, 200);
}

#[tokio::test]
async fn a_ticket_for_one_app_host_is_refused_on_another() {
    let s = start().await;
    let port = s.proxy.https.port();
    let mut b = s.browser();
    let for_app = until_ticket(&mut b, &s.url("/")).await;
    // A hand-off of the other host's own, so its state cookie is in this browser.
    let for_other = until_ticket(&mut b, &s.url_on(OTHER, "/")).await;
    let state = param(&for_other, "state");
    // A ticket minted for the app host under the other host's state.
    let rd: String = url::form_urlencoded::byte_serialize(
        format!("https://{HOST}:{port}/.auth/ticket?state={state}").as_bytes(),
    )
    .collect();
    let hop = b
        .get(&s.url_on(AUTH, &format!("/.auth/login?rd={rd}")))
        .await;
    let minted = hop.location().expect("a hand-back").to_string();
    assert_eq!(url::Url::parse(&minted).unwrap().host_str(), Some(HOST));
    let forged = s.url_on(
        OTHER,
        &format!(
            "/.auth/ticket?state={state}&ticket={}",
            param(&minted, "ticket")
        ),
    );
    let hop = b.get(&forged).await;
    assert_eq!(hop.status, 400, "{}", hop.body);
    assert!(b.cookie(OTHER, COOKIE).is_none());
    // Under another state, a ticket fails even on its own host.
    let hop = b
        .get(&s.url(&format!(
            "/.auth/ticket?state={}&ticket={}",
            param(&for_app, "state"),
            param(&minted, "ticket")
        )))
        .await;
    assert_eq!(hop.status, 400, "{}", hop.body);
    // Each ticket still works where it belongs.
    assert_eq!(b.get(&for_app).await.status, 302);
    assert_eq!(b.get(&for_other).await.status, 302);
    assert_eq!(b.get(&s.url_on(OTHER, "/")).await.status, 200);
}

fn param(u: &str, name: &str) -> String {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn the_sign_in_host_hands_back_only_to_hosts_a_route_names() {
    let s = start().await;
    let port = s.proxy.https.port();
    let state = "A".repeat(43);
    let mut b = s.browser();
    // Sign in on the sign-in host first, so a hand-back would be immediate.
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200, "{:?}", chain(&hops));
    for rd in [
        format!("https://{UNROUTED}:{port}/.auth/ticket?state={state}"),
        format!("http://{HOST}:{port}/.auth/ticket?state={state}"),
        format!("https://{HOST}:1/.auth/ticket?state={state}"),
        format!("https://x@{HOST}:{port}/.auth/ticket?state={state}"),
        format!("https://127.0.0.1:{port}/.auth/ticket?state={state}"),
        format!("//{UNROUTED}:{port}/.auth/ticket?state={state}"),
        format!("https://UNROUTED.example.test:{port}/.auth/ticket?state={state}"),
        format!("https://%75nrouted.example.test:{port}/.auth/ticket?state={state}"),
        format!("https://{UNROUTED}.:{port}/.auth/ticket?state={state}"),
        format!("https://{HOST}@{UNROUTED}:{port}/.auth/ticket?state={state}"),
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let hop = b
            .get(&s.url_on(AUTH, &format!("/.auth/login?rd={enc}")))
            .await;
        let to = hop.location().map(|l| l.to_string()).unwrap_or_default();
        assert!(
            !to.contains(UNROUTED) && !to.contains("ticket="),
            "{rd} sent the browser to {to}"
        );
    }
    // The proxy does not answer for a host no route names, ticket path or not.
    let hop = b
        .get(&s.url_on(
            UNROUTED,
            &format!("/.auth/ticket?state={state}&ticket={state}"),
        ))
        .await;
    assert_eq!(hop.status, 404);
    // The sign-in host answers its sign-in paths and nothing else.
    assert_eq!(b.get(&s.url_on(AUTH, "/anything")).await.status, 404);
}

#[tokio::test]
async fn signing_out_on_one_host_ends_the_session_on_every_host() {
    let s = start().await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    assert_eq!(
        b.navigate(&s.url_on(OTHER, "/"))
            .await
            .last()
            .unwrap()
            .status,
        200
    );
    let out = b.click(&s.url_on(OTHER, "/.auth/logout")).await;
    assert_eq!(out.status, 302, "{}", out.body);
    // Entra is asked to come back to the sign-in host, the only one registered.
    let end = out.location().unwrap();
    let after = end
        .query_pairs()
        .find(|(k, _)| k == "post_logout_redirect_uri")
        .map(|(_, v)| v.into_owned());
    let port = s.proxy.https.port();
    assert_eq!(after, Some(format!("https://{AUTH}:{port}/")));
    // The app host still holds its cookie, but its session is gone.
    assert!(b.cookie(HOST, COOKIE).is_some());
    assert_eq!(b.api(&s.url("/")).await.status, 401);
    assert_eq!(b.api(&s.url_on(OTHER, "/")).await.status, 401);
}

#[tokio::test]
async fn a_step_up_on_an_app_host_is_asked_for_on_the_sign_in_host() {
    let s = SignIn::start(Setup {
        routes: format!(
            "{}{}",
            login_route("app", HOST, ""),
            login_route("other", OTHER, "auth_context = \"c1\"")
        ),
        oidc: format!("signin_host = \"{AUTH}\""),
        registered_host: Some(AUTH),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    // The session lacks c1: the other host's hand-off makes the sign-in host ask Entra for it.
    let hops = b.navigate(&s.url_on(OTHER, "/")).await;
    let asked = hops
        .iter()
        .filter_map(Hop::location)
        .find(|l| l.as_str().starts_with(&s.idp.base_url()))
        .expect("a second trip to the provider");
    assert!(
        asked
            .query_pairs()
            .any(|(k, v)| k == "claims" && v.contains("c1")),
        "{asked}"
    );
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", chain(&hops));
    assert_eq!(last.url.host_str(), Some(OTHER));
    // Upgraded in place: still one session for both hosts.
    assert_eq!(
        b.cookie(OTHER, COOKIE).unwrap().value,
        b.cookie(HOST, COOKIE).unwrap().value
    );
}

#[tokio::test]
async fn forward_auth_hands_a_browser_to_the_sign_in_host_and_then_allows_it() {
    let s = SignIn::start(Setup {
        routes: login_route("app", HOST, ""),
        oidc: format!("signin_host = \"{AUTH}\""),
        registered_host: Some(AUTH),
        server: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Setup::default()
    })
    .await;
    let port = s.proxy.https.port();
    let app = format!("{HOST}:{port}");
    let verify = |cookie: Option<String>| {
        let mut req = s
            .proxy
            .client(&["verify.example.test"])
            .get(s.proxy.url("verify.example.test", "/.auth/verify"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", app.as_str())
            .header("x-forwarded-uri", "/docs?x=1")
            .header("accept", "text/html");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    // An ingress asks for a browser without a session: off to the sign-in host.
    let r = verify(None).await.unwrap();
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(to.host_str(), Some(AUTH));
    assert_eq!(to.path(), "/.auth/login");
    let handoff = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (name, rest) = handoff.split_once('=').unwrap();
    let value = rest.split(';').next().unwrap();

    // The browser holds the hand-off cookie the ingress passed on, and follows.
    let mut b = s.browser();
    b.jar.entry(HOST.to_owned()).or_default().insert(
        name.to_owned(),
        crate::support::browser::Cookie {
            value: value.to_owned(),
        },
    );
    let hops = b.navigate(to.as_str()).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", chain(&hops));
    assert_eq!(last.url.host_str(), Some(HOST));
    assert_eq!(last.url.path(), "/docs");
    let cookie = b.cookie(HOST, COOKIE).unwrap().value.clone();
    let r = verify(Some(format!("{COOKIE}={cookie}"))).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-request-user"], "alice@contoso.example");
}
