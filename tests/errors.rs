//! Failure answers: status, format and request ID; nothing a client sends yields a 500.

use std::time::Duration;

use crate::support::{Harness, Upstream};

async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn unknown_host_gets_404_with_request_id() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"app.example.test\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let client = h.client(&["nothing.example.test"]);
    let resp = client
        .get(h.url("nothing.example.test", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["request_id"], id);
}

#[tokio::test]
async fn dead_upstream_gets_502_and_browsers_get_html() {
    let port = dead_port().await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"http://127.0.0.1:{port}\"\n"
    ))
    .await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = resp.text().await.unwrap();
    assert!(body.contains(&id), "the page shows the request ID");
    assert!(
        !body.contains("127.0.0.1"),
        "the page does not leak the upstream address"
    );
    assert!(
        !body.to_lowercase().contains("refused"),
        "the page does not leak the cause"
    );
}

/// One public route for every host, with the route `timeout` given.
fn route_with_timeout(up: &Upstream, timeout: &str) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\ntimeout = \"{timeout}\"\n",
        up.url()
    )
}

#[tokio::test]
async fn slow_upstream_gets_504_after_the_route_timeout() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route_with_timeout(&up, "300ms")).await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", "sleep=3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let ok = client
        .get(h.url("app.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        200,
        "a fast request on the same route still succeeds"
    );
}

#[tokio::test]
async fn the_route_timeout_holds_on_a_pooled_connection_whose_last_deadline_has_passed() {
    // Each pooled upstream connection keeps one response-head deadline and moves it on for
    // every request (forward/pool.rs): a deadline that passed while the connection sat idle
    // must neither fail the next request nor shorten its time.
    let up = Upstream::start("a").await;
    let h = Harness::start(&route_with_timeout(&up, "1s")).await;
    let client = h.client(&["app.example.test"]);
    let get = |action: &'static str| {
        let req = client.get(h.url("app.example.test", "/"));
        async move {
            let start = std::time::Instant::now();
            let resp = req.header("x-test-action", action).send().await.unwrap();
            (resp.status(), start.elapsed())
        }
    };
    assert_eq!(get("none").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        get("none").await.0,
        200,
        "a stale deadline failed a request"
    );
    assert_eq!(
        get("sleep=400").await.0,
        200,
        "a stale deadline cut a request short"
    );
    let (status, took) = get("sleep=5000").await;
    assert_eq!(status, 504);
    assert!(
        took >= Duration::from_millis(900),
        "timed out after {took:?}, before the route's 1 s"
    );
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", "status=500")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.text().await.unwrap(), "upstream error page");
}

#[tokio::test]
async fn malformed_requests_get_400_never_500() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let cases: [&[u8]; 6] = [
        b"GET /public/../admin HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n",
        b"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example.test\r\nHost: b.example.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@app.example.test\r\nConnection: close\r\n\r\n",
        b"CONNECT app.example.test:443 HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n",
    ];
    for raw in cases {
        let answer = h.raw_h1("app.example.test", raw).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let garbage = h
        .raw_h1("app.example.test", b"\x00\x01garbage\r\n\r\n")
        .await;
    assert!(!garbage.contains(" 500 "), "garbage got {garbage:?}");
}

#[tokio::test]
async fn oversized_request_headers_get_431() {
    let up = Upstream::start("a").await;
    let options = crate::support::Options {
        server: "max_header_bytes = 16384".into(),
        ..Default::default()
    };
    let h = Harness::start_with(
        &format!(
            "[[route]]\nauth = \"public\"\nname = \"a\"\nhost = \"*\"\nupstream = \"{}\"\n",
            up.url()
        ),
        options,
    )
    .await;
    let big = "x".repeat(32 * 1024);
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: app.example.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let answer = h.raw_h1("app.example.test", raw.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "got {:?}",
        &answer[..answer.len().min(80)]
    );

    // The same limit over HTTP/2: the client must have negotiated h2 for this to say anything.
    let client = h
        .client_builder(&["app.example.test"])
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let small = client
        .get(h.url("app.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(small.version(), http::Version::HTTP_2);
    assert_eq!(small.status(), 200);
    let resp = client
        .get(h.url("app.example.test", "/"))
        .header("x-big", &big)
        .send()
        .await;
    match resp {
        Ok(r) => {
            assert_eq!(r.version(), http::Version::HTTP_2);
            assert!(r.status().is_client_error(), "HTTP/2 got {}", r.status())
        }
        // h2 clients enforce the SETTINGS_MAX_HEADER_LIST_SIZE the proxy advertised, or the
        // proxy resets the stream: either way the request never reaches the upstream.
        Err(e) => assert!(e.is_request(), "HTTP/2 oversized headers refused: {e}"),
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it
/// hangs (as to a host that is down) instead of being refused. Returns the listener and the
/// connections that fill its queue.
async fn unanswering() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        let attempt = std::time::Duration::from_millis(500);
        match tokio::time::timeout(attempt, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("the full queue refused instead of dropping: {e}"),
            // This connect hangs: so will the proxy's.
            Err(_) => return (listener, fillers),
        }
    }
    panic!("the accept queue never filled");
}

#[tokio::test]
async fn an_upstream_that_never_answers_the_connect_is_a_502_at_connect_timeout() {
    let (listener, _fillers) = unanswering().await;
    // The route's own deadline (504) is far beyond connect_timeout: only the connect deadline
    // can answer 502 here.
    let h = crate::support::Harness::start_with(
        &format!(
            "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\ntimeout = \"20s\"\n\
             upstream = \"http://{}\"\n",
            listener.local_addr().unwrap()
        ),
        crate::support::Options {
            extra: "[upstream]\nconnect_timeout = \"300ms\"\n".into(),
            ..crate::support::Options::default()
        },
    )
    .await;
    let resp = h
        .client(&["app.example.test"])
        .get(h.url("app.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

/// `[pages]`: the deployment's name, logo and support contact on the proxy's own pages.
#[tokio::test]
async fn error_pages_carry_the_configured_branding() {
    let h = Harness::start_with(
        "[[route]]\nauth = \"public\"\nname = \"b\"\nhost = \"app.example.test\"\nupstream = \"http://127.0.0.1:9\"\n",
        crate::support::Options {
            extra: "[pages]\nproduct_name = \"Contoso Gate\"\nlogo_url = \"https://cdn.contoso.example/logo.svg\"\n\
                    support = \"help@contoso.example\"\n"
                .into(),
            ..Default::default()
        },
    )
    .await;
    let client = h.client(&["app.example.test", "nope.example.test"]);
    let page = client
        .get(h.url("nope.example.test", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(html.contains("Contoso Gate"), "{html}");
    assert!(
        html.contains("src=\"https://cdn.contoso.example/logo.svg\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"mailto:help@contoso.example\""),
        "{html}"
    );
    assert!(!html.contains(">Portcullis<"), "{html}");
    let body = client
        .get(h.url("nope.example.test", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["support"], "mailto:help@contoso.example");
}
