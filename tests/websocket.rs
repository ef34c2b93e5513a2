//! WebSocket (HTTP/1.1 Upgrade) through the proxy.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Harness, Upstream};

#[tokio::test]
async fn websocket_messages_echo_through_the_proxy() {
    let up = Upstream::start("ws").await;
    let h = Harness::start(&format!(
        "[[route]]\nauth = \"public\"\nname = \"ws\"\nhost = \"*\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await;
    let tcp = tokio::net::TcpStream::connect(h.https).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(h.pki.client_tls(&[b"http/1.1"])));
    let name = rustls_pki_types::ServerName::try_from("app.example.test").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let url = format!("wss://app.example.test:{}/socket", h.https.port());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "wörld", &"x".repeat(100_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        [0u8, 1, 2, 255]
    );
    ws.close(None).await.unwrap();
}
