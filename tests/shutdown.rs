//! Graceful shutdown: stop accepting, finish in-flight requests, return.

use std::time::Duration;

use crate::support::{eventually, Harness, Upstream};

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_connections() {
    let up = Upstream::start("a").await;
    let mut h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let client = h.client(&["app.example.test"]);
    assert_eq!(
        client
            .get(h.url("app.example.test", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The upstream sends its first bytes and holds the rest: once they are here, the request
    // is in flight.
    let key = "shutdown-in-flight";
    let mut slow = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", format!("hold={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(&slow.chunk().await.unwrap().unwrap()[..], b"first");
    let run = h.begin_stop();
    assert!(
        eventually(Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(h.https).await.is_err()
        })
        .await,
        "the listener is closed once shutdown begins"
    );
    assert!(!run.is_finished(), "the drain waits for the request");
    crate::upstream::release(key);
    let mut rest = Vec::new();
    while let Some(chunk) = slow.chunk().await.expect("the in-flight request completes") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"last");
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns after draining")
        .unwrap()
        .unwrap();
}
