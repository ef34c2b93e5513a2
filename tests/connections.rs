//! Connection limits: idle HTTP/2, HTTP/1.1 and WebSocket connections are closed, busy ones
//! are not; tunnels hold connection slots, through a shutdown too; the per-client cap.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::{eventually, full, BoxBody, Harness, Options, Upstream};

/// Far longer than any timeout these tests configure: reaching it means "never".
const PATIENCE: Duration = Duration::from_secs(10);

const APP: &str = "app.example.test";

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"{APP}\"\nupstream = \"{}\"\n",
        upstream.url()
    )
}

async fn start(upstream: &Upstream, server: &str) -> Harness {
    let options = Options {
        server: server.to_owned(),
        ..Options::default()
    };
    Harness::start_with(&route(upstream), options).await
}

async fn tls(h: &Harness, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(h.https).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(h.pki.client_tls(&[alpn])));
    let name = rustls_pki_types::ServerName::try_from(APP).unwrap();
    connector.connect(name, tcp).await
}

type H2 = hyper::client::conn::http2::SendRequest<BoxBody>;

/// An HTTP/2 connection, and the task driving it: it ends when the connection closes.
async fn h2(h: &Harness) -> std::io::Result<(H2, JoinHandle<hyper::Result<()>>)> {
    let tls = tls(h, b"h2").await?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
    Ok((send, tokio::spawn(conn)))
}

fn get(path: &str, action: &str) -> Request<BoxBody> {
    Request::get(format!("https://{APP}{path}"))
        .header("x-test-action", action)
        .body(full(""))
        .unwrap()
}

/// Sends a request and reads the whole answer; the status.
async fn status(send: &mut H2) -> Result<u16, hyper::Error> {
    let resp = send.send_request(get("/", "")).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

async fn websocket(h: &Harness) -> WebSocketStream<TlsStream<TcpStream>> {
    let tls = tls(h, b"http/1.1").await.unwrap();
    let url = format!("wss://{APP}:{}/socket", h.https.port());
    let (ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

async fn echo(ws: &mut WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("an echo")
        .expect("the tunnel is open")
        .expect("a message");
    assert_eq!(back.into_text().unwrap().as_str(), text);
}

// --- idle connections ---------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_idle_timeout() {
    let up = Upstream::start("a").await;
    let h = start(&up, "idle_timeout = \"300ms\"").await;
    let (mut send, conn) = h2(&h).await.unwrap();
    assert_eq!(status(&mut send).await.unwrap(), 200);
    let ended = tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("the proxy closes the idle connection");
    assert!(ended.unwrap().is_ok(), "with a GOAWAY, not an error");
    assert!(status(&mut send).await.is_err());
}

#[tokio::test]
async fn an_http2_connection_with_a_request_in_flight_stays_open() {
    let up = Upstream::start("a").await;
    let h = start(&up, "idle_timeout = \"300ms\"").await;
    let (mut send, conn) = h2(&h).await.unwrap();
    let key = "connections-h2-in-flight";
    let resp = send
        .send_request(get("/held", &format!("hold={key}")))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!conn.is_finished(), "open while the answer streams");
    assert_eq!(
        status(&mut send)
            .await
            .expect("no GOAWAY: new requests are taken"),
        200
    );
    crate::upstream::release(key);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last");

    tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("closed once idle after the answer ended")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_idle_timeout() {
    let up = Upstream::start("a").await;
    // The header-read deadline, which also ends idle keep-alive, is far away.
    let h = start(
        &up,
        "idle_timeout = \"300ms\"\nheader_read_timeout = \"1h\"",
    )
    .await;
    let mut tls = tls(&h, b"http/1.1").await.unwrap();
    tls.write_all(format!("GET / HTTP/1.1\r\nhost: {APP}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, tls.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection after the answer")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        !out.contains("connection: close"),
        "a keep-alive answer: {out}"
    );
}

#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_after_websocket_idle_timeout() {
    let up = Upstream::start("ws").await;
    let h = start(&up, "websocket_idle_timeout = \"300ms\"").await;
    let mut ws = websocket(&h).await;
    echo(&mut ws, "hello").await;
    let next = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("the proxy closes the silent tunnel");
    assert!(
        !matches!(next, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{next:?}"
    );
}

#[tokio::test]
async fn an_active_websocket_tunnel_outlives_websocket_idle_timeout() {
    let up = Upstream::start("ws").await;
    let h = start(&up, "websocket_idle_timeout = \"500ms\"").await;
    let mut ws = websocket(&h).await;
    // Three timeouts' worth of messages, one every 100 ms.
    for i in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        echo(&mut ws, &format!("message {i}")).await;
    }
    ws.close(None).await.unwrap();
}

// --- connection slots -----------------------------------------------------------------------

#[tokio::test]
async fn open_websocket_tunnels_hold_their_connection_slots() {
    let up = Upstream::start("ws").await;
    let h = start(&up, "max_connections = 2").await;
    let mut first = websocket(&h).await;
    let mut second = websocket(&h).await;
    echo(&mut first, "one").await;
    echo(&mut second, "two").await;

    let client = h.client(&[APP]);
    let url = h.url(APP, "/");
    let mut third = tokio::spawn(async move { client.get(url).send().await });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "a third connection waits while two tunnels are open"
    );
    first.close(None).await.unwrap();
    drop(first);
    let resp = tokio::time::timeout(PATIENCE, third)
        .await
        .expect("served once a tunnel has closed")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    echo(&mut second, "still open").await;
}

#[tokio::test]
async fn shutdown_waits_for_an_open_tunnel_then_cuts_it_at_the_grace() {
    let up = Upstream::start("ws").await;
    // The harness's shutdown_grace is 5 s.
    let mut h = start(&up, "").await;
    let mut ws = websocket(&h).await;
    let run = h.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    echo(&mut ws, "during the drain").await;
    assert!(!run.is_finished(), "the drain waits for the tunnel");
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("run returns at the grace")
        .unwrap()
        .unwrap();
    let next = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("the tunnel was cut");
    assert!(
        !matches!(next, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{next:?}"
    );
}

/// `portcullis_connections_refused_total` for the HTTPS listener's per-client cap.
async fn refused(h: &Harness) -> u64 {
    let metrics = reqwest::get(format!("http://{}/metrics", h.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find(|l| {
            l.starts_with("portcullis_connections_refused_total{")
                && l.contains("listener=\"https\"")
                && l.contains("reason=\"per_client_cap\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_client_over_max_connections_per_client_is_closed_until_it_has_fewer() {
    let up = Upstream::start("a").await;
    let h = start(&up, "max_connections_per_client = 2").await;
    let before = refused(&h).await;
    let (mut one, one_conn) = h2(&h).await.unwrap();
    let (mut two, _two_conn) = h2(&h).await.unwrap();
    assert_eq!(status(&mut one).await.unwrap(), 200);
    assert_eq!(status(&mut two).await.unwrap(), 200);

    let third = tokio::time::timeout(PATIENCE, tls(&h, b"h2"))
        .await
        .expect("closed at once, not left waiting");
    assert!(third.is_err(), "the third connection is closed before TLS");
    assert!(refused(&h).await > before, "and counted");

    drop(one);
    tokio::time::timeout(PATIENCE, one_conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let served = eventually(PATIENCE, || async {
        match h2(&h).await {
            Ok((mut send, _conn)) => status(&mut send).await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    assert!(served, "a new connection is served once one has closed");
    assert_eq!(status(&mut two).await.unwrap(), 200);
}

#[tokio::test]
async fn trusted_proxies_are_exempt_from_max_connections_per_client() {
    let up = Upstream::start("a").await;
    let h = start(
        &up,
        "max_connections_per_client = 2\ntrusted_proxies = [\"127.0.0.0/8\"]",
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let (mut send, conn) = h2(&h).await.unwrap();
        assert_eq!(status(&mut send).await.unwrap(), 200);
        open.push((send, conn));
    }
}
