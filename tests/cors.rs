//! `cors_preflight = "allow"`: CORS preflights reach the upstream without authentication on
//! the routes that say so (oauth2-proxy's `skip_auth_preflight`), and only there.

use crate::support::signin::{login_route, Setup, SignIn, HOST};

#[tokio::test]
async fn cors_preflights_pass_unauthenticated_only_where_the_route_allows_them() {
    let s = SignIn::start(Setup {
        routes: format!(
            "{}{}",
            login_route(
                "api",
                HOST,
                "path_prefix = \"/api\"\ncors_preflight = \"allow\""
            ),
            login_route("app", HOST, "")
        ),
        ..Setup::default()
    })
    .await;
    let http = s.proxy.client(&[HOST]);
    let preflight = |path: &str| {
        http.request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", "https://spa.example.test")
            .header("access-control-request-method", "POST")
            .header("x-auth-request-user", "mallory")
    };
    let r = preflight("/api/items").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echo = crate::support::echo_json(r).await;
    assert_eq!(echo["method"], "OPTIONS", "{echo}");
    assert!(crate::support::seen(&echo, "x-auth-request-user").is_empty());
    // Elsewhere, or not a preflight: authentication as usual.
    assert_eq!(preflight("/other").send().await.unwrap().status(), 401);
    let plain = http
        .request(reqwest::Method::OPTIONS, s.url("/api/items"))
        .header("origin", "https://spa.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    let get = http
        .get(s.url("/api/items"))
        .header("origin", "https://spa.example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);
}
