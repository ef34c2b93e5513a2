//! Server limits from the `[server]` table, end to end: a client that never finishes its TLS
//! handshake or its headers is cut off, and the plain-HTTP redirect names `https_port`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Harness, Options, Upstream};

const HOST: &str = "app.example.test";

async fn harness(server: &str) -> (Harness, Upstream) {
    let up = Upstream::start("a").await;
    let h = Harness::start_with(
        &format!(
            "[[route]]\nname = \"app\"\nhost = \"{HOST}\"\nauth = \"public\"\nupstream = \"{}\"\n",
            up.url()
        ),
        Options {
            server: server.to_owned(),
            ..Options::default()
        },
    )
    .await;
    (h, up)
}

/// Reads until the peer closes; `None` if it is still open after 10 s.
async fn closed_within_bound(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

/// The listener still serves everyone else.
async fn assert_still_serves(h: &Harness) {
    let resp = h
        .client(&[HOST])
        .get(h.url(HOST, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_tls_handshake_is_cut_off() {
    let (h, _up) = harness("handshake_timeout = \"300ms\"").await;
    // TCP only, no ClientHello: only the handshake deadline can end this connection.
    let mut tcp = tokio::net::TcpStream::connect(h.https).await.unwrap();
    let seen = closed_within_bound(&mut tcp).await;
    assert_eq!(
        seen,
        Some(Vec::new()),
        "the silent connection was not closed"
    );
    assert_still_serves(&h).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (h, _up) = harness("header_read_timeout = \"300ms\"").await;
    let tcp = tokio::net::TcpStream::connect(h.https).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(h.pki.client_tls(&[b"http/1.1"])));
    let name = rustls_pki_types::ServerName::try_from(HOST.to_owned()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // Half a request head, and then nothing (a slowloris client).
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: 1\r\n").as_bytes())
        .await
        .unwrap();
    let seen = closed_within_bound(&mut tls).await;
    let seen = seen.expect("the half-sent request kept its connection open");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        !text.contains("\"upstream\""),
        "it reached the upstream: {text}"
    );
    assert_still_serves(&h).await;
}

#[tokio::test]
async fn the_plain_http_redirect_names_https_port() {
    for (https_port, expected) in [
        ("443", format!("https://{HOST}/x?y=1")),
        ("8443", format!("https://{HOST}:8443/x?y=1")),
    ] {
        let (h, _up) = harness(&format!("https_port = {https_port}")).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(HOST, h.http)
            .build()
            .unwrap();
        let resp = client
            .get(format!("http://{HOST}:{}/x?y=1", h.http.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], expected.as_str());
    }
}
