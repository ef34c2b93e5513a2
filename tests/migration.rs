//! Coming from oauth2-proxy: the `oauth2-proxy-forwarded` header preset and the `/oauth2/*`
//! paths (`oidc.oauth2_proxy_paths`).

use crate::support::seen;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

#[tokio::test]
async fn the_forwarded_preset_sends_oauth2_proxys_headers_and_never_a_clients() {
    let s = SignIn::start(Setup {
        routes: login_route(
            "app",
            HOST,
            "headers = \"oauth2-proxy-forwarded\"\npass_access_token = true",
        ),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    b.extra_headers
        .insert("x-forwarded-user", "mallory".parse().unwrap());
    b.extra_headers
        .insert("x-forwarded-access-token", "forged".parse().unwrap());
    let echo = b.get(&s.url("/echo")).await.json();
    assert_eq!(seen(&echo, "x-forwarded-user"), ["alice@contoso.example"]);
    assert_eq!(seen(&echo, "x-forwarded-email"), ["alice@contoso.example"]);
    assert_eq!(seen(&echo, "x-forwarded-groups").len(), 1);
    let token = seen(&echo, "x-forwarded-access-token");
    assert!(token.len() == 1 && token[0].starts_with("ey"), "{token:?}");
    assert!(seen(&echo, "authorization").is_empty());
    assert!(seen(&echo, "x-auth-request-user").is_empty());
}

#[tokio::test]
async fn oauth2_proxy_paths_answer_as_oauth2_proxy_does_when_turned_on() {
    let s = SignIn::start(Setup {
        oidc: "oauth2_proxy_paths = true".into(),
        ..Setup::default()
    })
    .await;
    // Sign in through /oauth2/start, back to rd.
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/oauth2/start?rd=/reports")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.url.path(), "/reports");

    let info = b.api(&s.url("/oauth2/userinfo")).await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["user"], "alice@contoso.example");
    assert_eq!(info["email"], "alice@contoso.example");
    assert!(info["groups"].as_array().is_some_and(|g| !g.is_empty()));

    // nginx `auth_request /oauth2/auth;` with the browser's cookie: 202 and the identity.
    let auth = b.api(&s.url("/oauth2/auth")).await;
    assert_eq!(auth.status, 202);
    assert_eq!(auth.headers["x-auth-request-user"], "alice@contoso.example");
    let anon = s.browser().api(&s.url("/oauth2/auth")).await;
    assert_eq!(anon.status, 401);
    assert!(anon.headers.get("x-auth-request-user").is_none());

    // Sign out from the app's own link.
    let out = b.click(&s.url("/oauth2/sign_out?rd=/bye")).await;
    assert!(out.status.is_redirection(), "{}", out.status);
    assert_eq!(b.api(&s.url("/oauth2/auth")).await.status, 401);
}

#[tokio::test]
async fn without_the_switch_oauth2_paths_are_the_apps() {
    let s = SignIn::start(Setup::default()).await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let hop = b.get(&s.url("/oauth2/userinfo")).await;
    assert_eq!(hop.status, 200);
    assert_eq!(
        hop.json()["uri"],
        "/oauth2/userinfo",
        "the upstream answered"
    );
}

#[tokio::test]
async fn groups_filter_sends_only_the_groups_a_route_needs() {
    use crate::support::signin::{jose, GROUP_ADMINS, GROUP_STAFF};
    let s = SignIn::start(Setup {
        users: vec![jose()],
        routes: format!(
            "{}{}{}{}",
            login_route(
                "admins",
                HOST,
                &format!("path_prefix = \"/admin\"\nallowed_groups = [\"{GROUP_ADMINS}\"]\ngroups_filter = \"policy\"")
            ),
            login_route(
                "staff-only",
                HOST,
                &format!("path_prefix = \"/staff\"\ngroups_filter = [\"{}\"]", GROUP_STAFF.to_uppercase())
            ),
            login_route("none", HOST, "path_prefix = \"/none\"\ngroups_filter = []"),
            login_route("all", HOST, "")
        ),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let groups = |echo: &serde_json::Value| seen(echo, "x-auth-request-groups");
    let all = groups(&b.get(&s.url("/")).await.json());
    assert!(
        all[0].contains(GROUP_STAFF) && all[0].contains(GROUP_ADMINS),
        "{all:?}"
    );
    assert_eq!(
        groups(&b.get(&s.url("/admin/x")).await.json()),
        [GROUP_ADMINS]
    );
    assert_eq!(
        groups(&b.get(&s.url("/staff/x")).await.json()),
        [GROUP_STAFF]
    );
    assert!(groups(&b.get(&s.url("/none/x")).await.json()).is_empty());
    // The session's own headers are untouched by a filtered route.
    assert_eq!(groups(&b.get(&s.url("/again")).await.json()), all);
}

#[tokio::test]
async fn oauth2_paths_in_other_spellings_never_reach_the_app() {
    let s = SignIn::start(Setup {
        oidc: "oauth2_proxy_paths = true".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    // Case and unreserved percent-escapes name the same endpoint, answered by the proxy.
    for path in ["/OAuth2/UserInfo", "/oauth2/%75serinfo"] {
        let hop = b.api(&s.url(path)).await;
        assert_eq!(hop.status, 200, "{path}: {}", hop.body);
        assert_eq!(hop.json()["user"], "alice@contoso.example", "{path}");
    }
    let hop = b.api(&s.url("/OAUTH2/AUTH")).await;
    assert_eq!(hop.status, 202);
}
