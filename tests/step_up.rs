//! Step-up per route (`auth_context`, Conditional Access authentication contexts): a session
//! without the route's context in `acrs` goes back through sign-in with the `claims` request
//! parameter and comes back upgraded in place; a sign-in that does not satisfy the context is
//! refused; API clients get 401 with the login URL that steps up.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

const COOKIE: &str = "__Host-portcullis";

/// `/` signs in; `/strong` requires authentication context `c1`.
fn routes() -> String {
    format!(
        "{}{}",
        login_route(
            "strong",
            HOST,
            "path_prefix = \"/strong\"\nauth_context = \"c1\""
        ),
        login_route("app", HOST, "")
    )
}

/// The `claims` request parameter of an authorize URL, parsed.
fn claims_of(url: &url::Url) -> Option<serde_json::Value> {
    url.query_pairs()
        .find(|(k, _)| k == "claims")
        .map(|(_, v)| serde_json::from_str(&v).unwrap())
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn signed_in(s: &SignIn) -> (Browser, String) {
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    let authorize = hops[0].location().unwrap();
    assert!(
        claims_of(&authorize).is_none(),
        "no step-up on a plain route: {authorize}"
    );
    let cookie = b.cookie(HOST, COOKIE).unwrap().value.clone();
    (b, cookie)
}

#[tokio::test]
async fn a_session_without_the_context_steps_up_and_keeps_its_cookie() {
    let s = SignIn::start(Setup {
        routes: routes(),
        ..Setup::default()
    })
    .await;
    let (mut b, cookie) = signed_in(&s).await;
    let me = b.api(&s.url("/.auth/me")).await.json();
    assert!(
        me[0]["user_claims"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["typ"] != "acrs"),
        "{me}"
    );

    // An API call cannot be redirected: 401, naming the login URL that steps up.
    let api = b.api(&s.url("/strong/data")).await;
    assert_eq!(api.status, 401, "{}", api.body);
    let challenge = api.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("auth_context=c1") && challenge.contains("rd=%2Fstrong%2Fdata"),
        "{challenge}"
    );

    // A navigation goes to Entra asking for c1, for the same account.
    let hops = b.navigate(&s.url("/strong/page")).await;
    let authorize = hops[0].location().unwrap();
    assert_eq!(hops[0].status, 302);
    assert_eq!(
        claims_of(&authorize),
        Some(serde_json::json!({"id_token": {"acrs": {"essential": true, "value": "c1"}}})),
        "{authorize}"
    );
    assert!(param(&authorize, "login_hint").is_some(), "{authorize}");
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.url.path(), "/strong/page");

    // Upgraded in place: the same cookie, now with acrs; both routes serve it.
    assert_eq!(
        b.cookie(HOST, COOKIE).unwrap().value,
        cookie,
        "same session ID"
    );
    let me = b.api(&s.url("/.auth/me")).await.json();
    let acrs: Vec<_> = me[0]["user_claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["typ"] == "acrs")
        .map(|c| c["val"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(acrs, ["c1"], "{me}");
    assert_eq!(b.api(&s.url("/strong/again")).await.status, 200);
    assert_eq!(b.api(&s.url("/plain")).await.status, 200);
    let authorizes = s.idp.authorize_requests().len();
    assert_eq!(authorizes, 2, "one sign-in, one step-up");
}

#[tokio::test]
async fn a_first_sign_in_on_a_step_up_route_asks_for_the_context_at_once() {
    let s = SignIn::start(Setup {
        routes: routes(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/strong/x")).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    let authorize = hops[0].location().unwrap();
    assert_eq!(
        claims_of(&authorize).unwrap()["id_token"]["acrs"]["value"],
        "c1"
    );
    assert_eq!(s.idp.authorize_requests().len(), 1, "no second round trip");
}

#[tokio::test]
async fn a_sign_in_that_does_not_satisfy_the_context_is_refused_and_changes_nothing() {
    let s = SignIn::start(Setup {
        routes: routes(),
        ..Setup::default()
    })
    .await;
    let (mut b, cookie) = signed_in(&s).await;
    // Entra returns a token without the context (the policy was not met).
    let idp = s.idp.clone();
    s.idp.rewrite_next_id_token(move |mut claims| {
        claims.as_object_mut().unwrap().remove("acrs");
        idp.mint_token(claims, None)
    });
    let hops = b.navigate(&s.url("/strong/page")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.url.path(), "/.auth/callback");
    assert_eq!(last.status, 403, "{}", last.body);
    assert!(
        last.body.contains("additional verification"),
        "{}",
        last.body
    );
    assert_eq!(b.cookie(HOST, COOKIE).unwrap().value, cookie);
    // The session is as it was: still fine on the plain route, still not on the strong one.
    assert_eq!(b.api(&s.url("/plain")).await.status, 200);
    assert_eq!(b.api(&s.url("/strong/page")).await.status, 401);
}

#[tokio::test]
async fn another_users_step_up_gets_a_fresh_session() {
    let mut bob = entra_standin::TestUser::new("bob@contoso.example", "Bob Example");
    bob.groups = Vec::new();
    let s = SignIn::start(Setup {
        routes: routes(),
        users: vec![crate::support::signin::alice(), bob],
        ..Setup::default()
    })
    .await;
    let (mut b, cookie) = signed_in(&s).await;
    // Alice's browser completes the step-up as Bob (another account at the picker).
    let login = "/.auth/login?rd=%2Fstrong&auth_context=c1&login_hint=bob%40contoso.example";
    let hops = b.navigate(&s.url(login)).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    let now = b.cookie(HOST, COOKIE).unwrap().value.clone();
    assert_ne!(now, cookie, "Alice's session is not turned into Bob's");
    let me = b.api(&s.url("/.auth/me")).await.json();
    assert_eq!(me[0]["user_id"], "bob@contoso.example", "{me}");
    // Alice's own session is untouched.
    let mut alice = s.browser();
    alice.jar = b.jar.clone();
    alice
        .jar
        .get_mut(HOST)
        .unwrap()
        .get_mut(COOKIE)
        .unwrap()
        .value = cookie;
    let me = alice.api(&s.url("/.auth/me")).await.json();
    assert_eq!(me[0]["user_id"], "alice@contoso.example", "{me}");
    assert_eq!(alice.api(&s.url("/strong")).await.status, 401);
}

#[tokio::test]
async fn the_context_survives_a_token_refresh() {
    let s = SignIn::start(Setup {
        routes: routes(),
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(
        b.navigate(&s.url("/strong")).await.last().unwrap().status,
        200
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(b.api(&s.url("/strong/after-refresh")).await.status, 200);
    assert_eq!(s.idp.token_calls().refresh_token, 1, "a refresh ran");
    assert_eq!(s.idp.authorize_requests().len(), 1, "no second step-up");
}

#[tokio::test]
async fn a_bad_auth_context_on_the_login_endpoint_is_a_400() {
    let s = SignIn::start(Setup {
        routes: routes(),
        ..Setup::default()
    })
    .await;
    let hop = s
        .browser()
        .get(&s.url("/.auth/login?auth_context=mfa"))
        .await;
    assert_eq!(hop.status, 400, "{}", hop.body);
    assert!(s.idp.authorize_requests().is_empty());
}
