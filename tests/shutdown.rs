//! Graceful shutdown: stop accepting, finish in-flight requests, return.

use std::time::Duration;

use crate::support::{Harness, Upstream};

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

    let slow = {
        let url = h.url("app.example.test", "/");
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .header("x-test-action", "sleep=1000")
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = h.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(h.https).await.is_err(),
        "the listener is closed once shutdown begins"
    );
    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("\"upstream\":\"a\""));
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns after draining")
        .unwrap()
        .unwrap();
}
