//! The upstream connection pool, seen from a raw HTTP/1.1 upstream that counts the
//! connections it accepts and notices when the proxy closes one: connections are reused
//! after every kind of finished response, never after one the upstream or the client cut
//! short, and idle ones close after `upstream.pool_idle_timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{eventually, Harness, Options};

const APP: &str = "app.example.test";

/// A hand-written HTTP/1.1 upstream. Its answer depends on the request path:
/// `/close` says `Connection: close` and closes; `/empty` is a 204; `/partial` promises a
/// megabyte and sends a kilobyte; anything else is a two-byte `ok` on a kept-alive connection
/// (a HEAD gets the head alone).
struct RawUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections the proxy closed (the upstream read EOF).
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, c.clone()));
            }
        });
        RawUpstream {
            addr,
            accepted,
            closed,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut tcp: TcpStream, closed: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let answer: Vec<u8> = match path {
            "/close" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec()
            }
            "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/partial" => {
                let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
                a.extend_from_slice(&[b'x'; 1024]);
                a
            }
            _ if method == "HEAD" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        };
        if tcp.write_all(&answer).await.is_err() {
            return;
        }
        if path == "/close" {
            return;
        }
        if path == "/partial" {
            // The rest never comes; wait for the proxy to give up on the connection.
            let mut sink = [0u8; 1024];
            while !matches!(tcp.read(&mut sink).await, Ok(0) | Err(_)) {}
            closed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

/// The body of `GET path` through the proxy.
async fn get(client: &reqwest::Client, h: &Harness, path: &str) -> String {
    client
        .get(h.url(APP, path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn start(up: &RawUpstream, pool_idle_timeout: &str) -> Harness {
    let routes = format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"{APP}\"\nupstream = \"http://{}\"\n",
        up.addr
    );
    let options = Options {
        extra: format!("[upstream]\npool_idle_timeout = \"{pool_idle_timeout}\"\n"),
        ..Options::default()
    };
    Harness::start_with(&routes, options).await
}

#[tokio::test]
async fn one_upstream_connection_serves_requests_in_turn_whatever_their_response() {
    let up = RawUpstream::start().await;
    let h = start(&up, "30s").await;
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    for (method, path, status) in [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/empty", 204),
        ("GET", "/a", 200),
        ("HEAD", "/b", 200),
        ("GET", "/", 200),
    ] {
        let resp = client
            .request(method.parse().unwrap(), h.url(APP, path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let body = resp.text().await.unwrap();
        assert_eq!(
            body,
            if method == "GET" && status == 200 {
                "ok"
            } else {
                ""
            }
        );
    }
    assert_eq!(
        up.accepted(),
        1,
        "every request went over the first connection"
    );
    assert_eq!(up.closed(), 0);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_not_used_again() {
    let up = RawUpstream::start().await;
    let h = start(&up, "30s").await;
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    for path in ["/close", "/", "/close", "/"] {
        let resp = client.get(h.url(APP, path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), "ok", "{path}");
    }
    // The first connection ended with `/close`; the second served `/` and `/close`; the
    // third serves the last `/`.
    assert_eq!(up.accepted(), 3);
}

#[tokio::test]
async fn a_response_the_client_abandons_closes_its_upstream_connection() {
    let up = RawUpstream::start().await;
    let h = start(&up, "30s").await;
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    let mut resp = client.get(h.url(APP, "/partial")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.chunk().await.unwrap().unwrap()[0], b'x');
    drop(resp);
    drop(client);
    assert!(
        eventually(Duration::from_secs(10), || async { up.closed() == 1 }).await,
        "the proxy closed the connection whose response was cut short"
    );
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    assert_eq!(get(&client, &h, "/").await, "ok");
    assert_eq!(up.accepted(), 2, "a new connection served the next request");
}

#[tokio::test]
async fn idle_connections_close_after_the_pool_idle_timeout() {
    let up = RawUpstream::start().await;
    let h = start(&up, "300ms").await;
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    assert_eq!(get(&client, &h, "/").await, "ok");
    assert!(
        eventually(Duration::from_secs(10), || async { up.closed() == 1 }).await,
        "the idle connection was closed by the proxy"
    );
    assert_eq!(get(&client, &h, "/").await, "ok");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn concurrent_requests_each_get_a_connection_and_leave_them_for_later() {
    let up = RawUpstream::start().await;
    let h = start(&up, "30s").await;
    let client = h.client_builder(&[APP]).http1_only().build().unwrap();
    let mut partials = Vec::new();
    // Two responses held open at once need two connections.
    for _ in 0..2 {
        let resp = client.get(h.url(APP, "/partial")).send().await.unwrap();
        partials.push(resp);
    }
    assert_eq!(up.accepted(), 2);
    drop(partials);
    assert!(eventually(Duration::from_secs(10), || async { up.closed() == 2 }).await);
    for _ in 0..3 {
        assert_eq!(get(&client, &h, "/").await, "ok");
    }
    assert_eq!(
        up.accepted(),
        3,
        "sequential requests share one new connection"
    );
}
