//! The admin listener and the plain-HTTP redirect listener.

use crate::support::{Harness, Upstream};

#[tokio::test]
async fn admin_answers_healthz_and_readyz() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"app.example.test\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let client = reqwest::Client::new();
    for (path, status, body) in [
        ("/healthz", 200, "ok\n"),
        ("/readyz", 200, "ready\n"),
        ("/nope", 404, "not found\n"),
    ] {
        let resp = client
            .get(format!("http://{}{path}", h.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(resp.text().await.unwrap(), body, "{path}");
    }
    h.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_is_not_ready_without_routes() {
    let h = Harness::start("").await;
    let resp = reqwest::get(format!("http://{}/readyz", h.admin))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn plain_http_redirects_served_hosts_to_https_with_308() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"app.example.test\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.example.test", h.http)
        .resolve("evil.example.test", h.http)
        .build()
        .unwrap();
    let resp = client
        .post(format!(
            "http://app.example.test:{}/form?a=1",
            h.http.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308, "308 keeps the method and body");
    assert_eq!(
        resp.headers()["location"],
        format!("https://app.example.test:{}/form?a=1", h.https.port())
    );
    let resp = client
        .get(format!("http://evil.example.test:{}/", h.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        404,
        "hosts without a route are not redirected"
    );
}

#[tokio::test]
async fn while_entra_is_down_the_proxy_stays_ready_and_public_routes_serve() {
    use crate::support::signin::{login_route, Setup, SignIn, HOST};
    let s = SignIn::start(Setup {
        routes: format!(
            "[[route]]\nname = \"open\"\nhost = \"{HOST}\"\npath_prefix = \"/open\"\n\
             upstream = \"{{upstream}}\"\nauth = \"public\"\n\n{}",
            login_route("app", HOST, "")
        ),
        ..Setup::default()
    })
    .await;
    s.idp.set_discovery_available(false);
    let s = s.restart_proxy_without_waiting().await;
    let ready = reqwest::get(format!("http://{}/readyz", s.proxy.admin))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "an Entra outage must not pull the proxy out"
    );
    let text = ready.text().await.unwrap();
    assert!(text.contains("identity provider: not loaded"), "{text}");
    let mut b = s.browser();
    assert_eq!(b.get(&s.url("/open/page")).await.status, 200);
    assert_eq!(b.get(&s.url("/private")).await.status, 503);
    s.idp.set_discovery_available(true);
    s.wait_ready().await;
    let text = reqwest::get(format!("http://{}/readyz", s.proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("identity provider: loaded"), "{text}");
}
