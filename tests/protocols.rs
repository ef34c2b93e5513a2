//! Protocols: HTTP/1.1 and HTTP/2 over TLS, SNI, cleartext HTTP/2 upstreams with trailers.

use http::{Request, Version};
use http_body_util::BodyExt;

use crate::support::{echo_json, full, seen, Harness, Options, Upstream};

fn route(upstream: &Upstream, extra: &str) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\nupstream = \"{}\"\n{extra}\n",
        upstream.url()
    )
}

#[tokio::test]
async fn http1_and_http2_clients_are_both_served_over_tls() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up, "")).await;
    let h1 = h
        .client_builder(&["app.example.test"])
        .http1_only()
        .build()
        .unwrap();
    let resp = h1.get(h.url("app.example.test", "/")).send().await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(echo_json(resp).await["version"], "HTTP/1.1");

    let h2 = h.client(&["app.example.test"]);
    let resp = h2.get(h.url("app.example.test", "/")).send().await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2, "ALPN negotiates h2");
    let echo = echo_json(resp).await;
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "a plain http upstream is spoken to in HTTP/1.1"
    );
    assert_eq!(seen(&echo, "host"), [up.addr.to_string()]);
}

#[tokio::test]
async fn http2_cookie_fields_are_joined_for_an_http1_upstream() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up, "")).await;
    let mut send = h.h2("app.example.test").await;
    let req = Request::get(h.url("app.example.test", "/"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(full(""))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen(&echo, "cookie"), ["a=1; b=2"]);
}

#[tokio::test]
async fn sni_picks_the_certificate_for_the_name() {
    let up = Upstream::start("a").await;
    let options = Options {
        extra: "[[tls.certificates]]\ncert_file = \"other.pem\"\nkey_file = \"other-key.pem\"\nserver_names = [\"other.test\"]\n\
                [[tls.certificates]]\ncert_file = \"third.pem\"\nkey_file = \"third-key.pem\"\n"
            .into(),
        certs: vec![("other", vec!["other.test"]), ("third", vec!["third.test"])],
        ..Options::default()
    };
    let h = Harness::start_with(&route(&up, ""), options).await;
    let default = h.presented_cert("app.example.test").await.unwrap();
    let other = h
        .presented_cert("other.test")
        .await
        .expect("other.test gets a certificate valid for it");
    let third = h
        .presented_cert("third.test")
        .await
        .expect("a certificate without server_names is chosen by its own names");
    assert_ne!(default, other);
    assert_ne!(default, third);
    assert_ne!(other, third);
    assert!(
        h.presented_cert("unknown.test").await.is_err(),
        "an unknown name gets the default certificate, which does not cover it"
    );

    let client = h.client(&["other.test"]);
    let resp = client.get(h.url("other.test", "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn grpc_style_trailers_pass_through_to_an_h2c_upstream() {
    let up = Upstream::start("grpc").await;
    let h = Harness::start(&route(&up, "h2c = true")).await;
    let mut send = h.h2("app.example.test").await;
    let req = Request::post(h.url("app.example.test", "/pkg.Service/Method"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-test-action", "trailers")
        .body(full(&b"\0\0\0\0\0"[..]))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-trailer"], "yes");
    assert_eq!(collected.to_bytes(), "hi");
}

#[tokio::test]
async fn h2c_upstream_is_spoken_to_in_http2() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up, "h2c = true")).await;
    let client = h
        .client_builder(&["app.example.test"])
        .http1_only()
        .build()
        .unwrap();
    let resp = client
        .get(h.url("app.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(echo_json(resp).await["version"], "HTTP/2.0");
}

/// Request IDs are sent as never-indexed HPACK literals; over one HTTP/2 connection to the
/// client and one to an h2c upstream, every response and every upstream request still carries
/// its own ID, the same on both hops.
#[tokio::test]
async fn request_ids_stay_distinct_over_one_http2_connection_each_way() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up, "h2c = true")).await;
    let mut send = h.h2("app.example.test").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let req = Request::get(h.url("app.example.test", "/"))
            .body(full(""))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(seen(&echo, "x-request-id"), std::slice::from_ref(&id));
        assert_eq!(id.len(), 32, "{id}");
        assert!(!ids.contains(&id), "{id} repeated");
        ids.push(id);
    }
}
