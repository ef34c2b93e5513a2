//! Forward-auth (`/.auth/verify`): an ingress asks whether the request it received may pass.
//! Judged here with the headers each ingress sends; `nginx` and `caddy` put the real servers
//! in front.

mod caddy;
mod ingress;
mod nginx;

use reqwest::header::HeaderMap;

use crate::support::signin::{login_route, Setup, SignIn, GROUP_ADMINS, HOST};

/// `/` signs in; `/admin` needs the admins group; `/public` is open; the proxy trusts
/// loopback callers as proxies.
pub fn setup() -> Setup {
    let admin = login_route(
        "admin",
        HOST,
        &format!("path_prefix = \"/admin\"\nallowed_groups = [\"{GROUP_ADMINS}\"]"),
    );
    let public = format!(
        "[[route]]\nname = \"public\"\nhost = \"{HOST}\"\npath_prefix = \"/public\"\n\
         upstream = \"{{upstream}}\"\nauth = \"public\"\n"
    );
    Setup {
        routes: format!("{admin}{public}{}", login_route("app", HOST, "")),
        server: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Setup::default()
    }
}

/// The session cookie of a browser signed in through the proxy itself.
pub async fn session_cookie(s: &SignIn) -> String {
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    let c = b.cookie(HOST, "__Host-portcullis").unwrap();
    format!("__Host-portcullis={}", c.value)
}

/// `GET /.auth/verify` with `headers`.
async fn verify(s: &SignIn, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    s.proxy
        .client(&["verify.example.test", HOST])
        .get(s.proxy.url("verify.example.test", "/.auth/verify"))
        .headers(h)
        .send()
        .await
        .unwrap()
}

fn traefik<'a>(uri: &'a str, cookie: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", HOST),
        ("x-forwarded-uri", uri),
        ("accept", "text/html"),
    ];
    if !cookie.is_empty() {
        h.push(("cookie", cookie));
    }
    h
}

#[tokio::test]
async fn a_signed_in_request_is_allowed_with_its_identity_headers() {
    let s = SignIn::start(setup()).await;
    let cookie = session_cookie(&s).await;
    let r = verify(&s, &traefik("/docs/a?x=1", &cookie)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-request-user"], "alice@contoso.example");
    assert!(r.headers().contains_key("x-auth-request-oid"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The same through nginx's headers.
    let url = format!("https://{HOST}/docs/a");
    let r = verify(&s, &[("x-original-url", &url), ("cookie", &cookie)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-request-user"], "alice@contoso.example");
}

#[tokio::test]
async fn without_a_session_browsers_are_sent_to_sign_in_and_nginx_gets_401() {
    let s = SignIn::start(setup()).await;
    let r = verify(&s, &traefik("/docs", "")).await;
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let redirect = to
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    // Back to the app's host, whose /.auth/ the ingress sends to Portcullis.
    assert!(
        redirect.starts_with(&format!("https://{HOST}")),
        "{redirect}"
    );
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("__Host-portcullis"));

    let url = format!("https://{HOST}/docs");
    let r = verify(&s, &[("x-original-url", &url), ("accept", "text/html")]).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("location").is_none());
    // An API call through Traefik: 401 too.
    let mut api = traefik("/docs", "");
    api.retain(|(k, _)| *k != "accept");
    assert_eq!(verify(&s, &api).await.status(), 401);
}

#[tokio::test]
async fn policy_no_route_reserved_paths_and_public_routes_are_judged_as_the_proxy_would() {
    let s = SignIn::start(setup()).await;
    let cookie = session_cookie(&s).await;
    // Alice is not an admin.
    assert_eq!(
        verify(&s, &traefik("/admin/x", &cookie)).await.status(),
        403
    );
    // Path spellings are judged canonically: no way around /admin.
    for sneaky in ["/ADMIN/x", "/x/../admin/x", "/%61dmin/x", "//admin/x"] {
        let status = verify(&s, &traefik(sneaky, &cookie)).await.status();
        assert!(status == 403 || status == 400, "{sneaky}: {status}");
    }
    // Public: allowed without a session and without identity headers.
    let r = verify(&s, &traefik("/public/x", "")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-auth-request-user").is_none());
    // A host with no route, and the reserved paths, are refused.
    let mut other = traefik("/", &cookie);
    other.retain(|(k, _)| *k != "x-forwarded-host");
    other.push(("x-forwarded-host", "elsewhere.example.test"));
    assert_eq!(verify(&s, &other).await.status(), 403);
    assert_eq!(
        verify(&s, &traefik("/.auth/me", &cookie)).await.status(),
        403
    );
    assert_eq!(
        verify(&s, &traefik("/.AUTH/callback", &cookie))
            .await
            .status(),
        403
    );
    // Without the forwarded request at all: 400.
    assert_eq!(verify(&s, &[("cookie", &cookie)]).await.status(), 400);
}

#[tokio::test]
async fn only_trusted_proxies_may_ask() {
    let s = SignIn::start(Setup {
        server: String::new(),
        ..setup()
    })
    .await;
    let cookie = session_cookie(&s).await;
    let r = verify(&s, &traefik("/docs", &cookie)).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-auth-request-user").is_none());
}

#[tokio::test]
async fn client_copies_of_identity_headers_never_come_back_as_the_answer() {
    let s = SignIn::start(setup()).await;
    let mut h = traefik("/public/x", "");
    h.push(("x-auth-request-user", "mallory"));
    let r = verify(&s, &h).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-auth-request-user").is_none());
}
