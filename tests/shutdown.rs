//! Graceful shutdown: stop accepting, finish in-flight requests, return; a request still
//! running at `shutdown_grace` is cut there.

use std::time::Duration;

use crate::support::{eventually, Harness, Options, Upstream};

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

#[tokio::test]
async fn a_request_still_running_at_the_shutdown_grace_is_cut() {
    let up = Upstream::start("a").await;
    let mut h = Harness::start_with(
        &format!(
            "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\n",
            up.url()
        ),
        Options {
            server: "shutdown_grace = \"1s\"".into(),
            ..Options::default()
        },
    )
    .await;
    let client = h.client(&["app.example.test"]);
    // The upstream holds the rest of its answer until released, which this test never does
    // before the end: only the grace can end the drain.
    let key = "shutdown-grace";
    let mut held = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", format!("hold={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(&held.chunk().await.unwrap().unwrap()[..], b"first");
    let run = h.begin_stop();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns at the grace though the request is unfinished")
        .unwrap()
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), held.chunk())
        .await
        .expect("the client learns of the cut");
    assert!(
        rest.is_err(),
        "a cut answer must not look complete: {rest:?}"
    );
    crate::upstream::release(key);
}
