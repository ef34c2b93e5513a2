//! `https://` upstreams: trust from `ca_file` (per route, or `[upstream]` for all), refusal of
//! an untrusted certificate, and the protocol ALPN picks.

use std::sync::Arc;

use crate::support::{echo_json, Harness, Options, Pki, Upstream};

const APP: &str = "app.example.test";

fn route(upstream: &Upstream, extra: &str) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\nupstream = \"{}\"\n{extra}\n",
        upstream.https_url()
    )
}

/// A proxy whose test CA (`ca.pem` in its directory) also signed the upstream's certificate.
async fn start(routes: &str, pki: Arc<Pki>, extra: &str) -> Harness {
    Harness::start_with(
        routes,
        Options {
            pki: Some(pki),
            extra: extra.to_owned(),
            ..Options::default()
        },
    )
    .await
}

async fn get(h: &Harness) -> reqwest::Response {
    h.client(&[APP]).get(h.url(APP, "/")).send().await.unwrap()
}

#[tokio::test]
async fn an_https_upstream_trusted_through_the_routes_ca_file_is_spoken_to_in_http2() {
    let pki = Arc::new(Pki::new());
    let up = Upstream::start_tls("tls", &pki, &[b"h2", b"http/1.1"]).await;
    let h = start(&route(&up, "ca_file = \"ca.pem\""), pki, "").await;
    let resp = get(&h).await;
    assert_eq!(resp.status(), 200);
    let echo = echo_json(resp).await;
    assert_eq!(echo["upstream"], "tls");
    assert_eq!(echo["version"], "HTTP/2.0", "ALPN chose h2 upstream");
}

#[tokio::test]
async fn an_https_upstream_offering_only_http1_is_spoken_to_in_http1() {
    let pki = Arc::new(Pki::new());
    let up = Upstream::start_tls("tls", &pki, &[b"http/1.1"]).await;
    let h = start(&route(&up, ""), pki, "[upstream]\nca_file = \"ca.pem\"\n").await;
    let resp = get(&h).await;
    assert_eq!(resp.status(), 200);
    let echo = echo_json(resp).await;
    assert_eq!(echo["upstream"], "tls", "[upstream] ca_file is trusted");
    assert_eq!(echo["version"], "HTTP/1.1");
}

#[tokio::test]
async fn an_https_upstream_with_an_untrusted_certificate_is_a_502() {
    let pki = Arc::new(Pki::new());
    // The upstream's certificate comes from a CA the proxy was never told about.
    let stranger = Pki::new();
    let up = Upstream::start_tls("tls", &stranger, &[b"h2", b"http/1.1"]).await;
    let h = start(&route(&up, "ca_file = \"ca.pem\""), pki, "").await;
    let resp = get(&h).await;
    assert_eq!(resp.status(), 502);
    assert!(!resp.text().await.unwrap().contains("\"upstream\""));
}
