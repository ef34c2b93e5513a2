//! Header hygiene end to end: hop-by-hop removal both ways, forwarded headers, request IDs.

use crate::support::{echo_json, seen, Harness, Options, Upstream};

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"app.example.test\"\nupstream = \"{}\"\n",
        upstream.url()
    )
}

#[tokio::test]
async fn hop_by_hop_request_headers_do_not_reach_the_upstream() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    let client = h
        .client_builder(&["app.example.test"])
        .http1_only()
        .build()
        .unwrap();
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("connection", "keep-alive, X-Secret-Hop")
        .header("x-secret-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    let echo = echo_json(resp).await;
    for gone in [
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(seen(&echo, gone).is_empty(), "{gone} reached the upstream");
    }
    assert_eq!(seen(&echo, "x-end-to-end"), ["kept"]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    let client = h
        .client_builder(&["app.example.test"])
        .http1_only()
        .build()
        .unwrap();
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", "hop")
        .send()
        .await
        .unwrap();
    let headers = resp.headers();
    assert!(headers.get("x-up-secret").is_none());
    assert!(headers.get("keep-alive").is_none());
    assert!(headers.get("proxy-connection").is_none());
    assert_eq!(headers.get("x-end-to-end").unwrap(), "kept");
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_client_are_replaced() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("x-real-ip", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-request-id", "chosen-by-attacker")
        .send()
        .await
        .unwrap();
    let returned_id = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let echo = echo_json(resp).await;
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(
        seen(&echo, "x-forwarded-host"),
        [format!("app.example.test:{}", h.https.port())]
    );
    assert_eq!(seen(&echo, "x-real-ip"), ["127.0.0.1"]);
    assert!(seen(&echo, "forwarded").is_empty());
    let ids = seen(&echo, "x-request-id");
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], "chosen-by-attacker");
    assert_eq!(
        ids[0], returned_id,
        "the client gets the ID the upstream saw"
    );
    assert_eq!(returned_id.len(), 32);
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_forwarding_headers_and_request_id() {
    let up = Upstream::start("a").await;
    let options = Options {
        server: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Options::default()
    };
    let h = Harness::start_with(&route(&up), options).await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example.com")
        .header("x-request-id", "edge-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "edge-1234");
    let echo = echo_json(resp).await;
    assert_eq!(seen(&echo, "x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["public.example.com"]);
    assert_eq!(seen(&echo, "x-real-ip"), ["198.51.100.7"]);
    assert_eq!(seen(&echo, "x-request-id"), ["edge-1234"]);
}
