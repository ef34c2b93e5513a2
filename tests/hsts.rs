//! `Strict-Transport-Security` on every answer of the HTTPS listener, never on the plain-HTTP
//! or admin listener; the upstream's own value wins; `server.hsts = ""` turns it off.

use crate::support::signin::{Setup, SignIn, HOST};
use crate::support::{Harness, Options, Upstream};

const APP: &str = "app.example.test";

async fn start(upstream: &Upstream, server: &str) -> Harness {
    let routes = format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"{APP}\"\nupstream = \"{}\"\n",
        upstream.url()
    );
    let options = Options {
        server: server.to_owned(),
        ..Options::default()
    };
    Harness::start_with(&routes, options).await
}

fn hsts(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("strict-transport-security")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_https_answer_carries_hsts() {
    let up = Upstream::start("a").await;
    let h = start(&up, "").await;
    let client = h.client(&[APP, "other.example.test"]);
    let proxied = client.get(h.url(APP, "/")).send().await.unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(hsts(&proxied), ["max-age=31536000"]);
    let no_route = client
        .get(h.url("other.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_route.status(), 404);
    assert_eq!(hsts(&no_route), ["max-age=31536000"]);
}

#[tokio::test]
async fn the_upstreams_own_hsts_is_kept() {
    let up = Upstream::start("a").await;
    let h = start(&up, "hsts = \"max-age=63072000; includeSubDomains\"").await;
    let client = h.client(&[APP]);
    let own = client
        .get(h.url(APP, "/"))
        .header(
            "x-test-action",
            "header=strict-transport-security: max-age=60",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hsts(&own), ["max-age=60"]);
    let configured = client.get(h.url(APP, "/")).send().await.unwrap();
    assert_eq!(hsts(&configured), ["max-age=63072000; includeSubDomains"]);
}

#[tokio::test]
async fn an_empty_hsts_sends_none() {
    let up = Upstream::start("a").await;
    let h = start(&up, "hsts = \"\"").await;
    let resp = h.client(&[APP]).get(h.url(APP, "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(hsts(&resp).is_empty());
}

#[tokio::test]
async fn plain_http_and_admin_answers_carry_no_hsts() {
    let up = Upstream::start("a").await;
    let h = start(&up, "").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(APP, h.http)
        .build()
        .unwrap();
    let redirect = client
        .get(format!("http://{APP}:{}/", h.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert!(hsts(&redirect).is_empty());
    let health = client
        .get(format!("http://{}/healthz", h.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(hsts(&health).is_empty());
}

#[tokio::test]
async fn sign_in_redirects_and_auth_endpoints_carry_hsts() {
    let s = SignIn::start(Setup::default()).await;
    let client = s.proxy.client(&[HOST]);
    let to_sign_in = client
        .get(s.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(to_sign_in.status(), 302);
    assert_eq!(hsts(&to_sign_in), ["max-age=31536000"]);
    let me = client.get(s.url("/.auth/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(hsts(&me), ["max-age=31536000"]);
}
