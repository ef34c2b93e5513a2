//! An upstream test server on 127.0.0.1:0: answers with a JSON echo of what it received, and
//! on request (header `x-test-action`) sleeps, streams, counts an upload, sends trailers,
//! sends hop-by-hop headers or a header of the test's choice, or speaks WebSocket. It serves
//! HTTP/1.1 and cleartext HTTP/2, or (`start_tls`) HTTPS with the ALPN protocols it is given.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::support::{full, generated, BoxBody, Pki};

pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts an upstream that names itself `name` in its echoes.
    pub async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(name, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Upstream { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same echo over TLS with a certificate for 127.0.0.1 from `pki`, offering `alpn`
    /// (`h2`, `http/1.1`); its URL is `https://127.0.0.1:port`.
    pub async fn start_tls(name: &'static str, pki: &Pki, alpn: &[&[u8]]) -> Upstream {
        use rustls_pki_types::pem::PemObject;
        let (cert, key) = pki.leaf(&["127.0.0.1"]);
        let certs =
            vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| handle(name, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Upstream { addr, task }
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Bodies waiting for [`release`], by key.
static HELD: std::sync::Mutex<Vec<(String, tokio::sync::oneshot::Sender<()>)>> =
    std::sync::Mutex::new(Vec::new());

/// A body that sends `first`, then nothing until the test calls [`release`] with `key`, then
/// `last`: whoever sees `first` before the release has proof the body was streamed.
fn held(key: &str) -> BoxBody {
    let (tx, rx) = tokio::sync::oneshot::channel();
    HELD.lock().unwrap().push((key.to_owned(), tx));
    let first = futures_util::stream::once(async {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(b"first")))
    });
    let last = futures_util::stream::once(async move {
        let _ = rx.await;
        Ok(Frame::data(Bytes::from_static(b"last")))
    });
    BodyExt::boxed(StreamBody::new(first.chain(last)))
}

/// Lets the held body `key` finish.
pub fn release(key: &str) {
    let mut held = HELD.lock().unwrap();
    if let Some(i) = held.iter().position(|(k, _)| k == key) {
        let (_, tx) = held.remove(i);
        let _ = tx.send(());
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    let action = req
        .headers()
        .get("x-test-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return Ok(websocket(req));
    }
    if let Some(ms) = action.strip_prefix("sleep=") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    if let Some(n) = action.strip_prefix("stream=") {
        return Ok(Response::new(generated(n.parse().unwrap_or(0))));
    }
    if let Some(key) = action.strip_prefix("hold=") {
        return Ok(Response::new(held(key)));
    }
    if let Some((name, value)) = action
        .strip_prefix("header=")
        .and_then(|h| h.split_once(':'))
    {
        let mut resp = Response::new(full("with a header"));
        resp.headers_mut().insert(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
        return Ok(resp);
    }
    match action.as_str() {
        "count" => {
            let mut body = req.into_body();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => bytes += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            return Ok(Response::new(full(format!("{{\"bytes\":{bytes}}}"))));
        }
        "trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("x-trailer", HeaderValue::from_static("yes"));
            let frames = vec![
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(
                    b"hi",
                ))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(
                futures_util::stream::iter(frames),
            )));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            return Ok(resp);
        }
        "hop" => {
            let mut resp = Response::new(full("hop"));
            let h = resp.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-up-secret"));
            h.insert("x-up-secret", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
            h.insert("x-end-to-end", HeaderValue::from_static("kept"));
            return Ok(resp);
        }
        "plant-cookies" => {
            let mut resp = Response::new(full("planted"));
            let h = resp.headers_mut();
            for c in [
                "__Host-portcullis=planted; Path=/; Secure; HttpOnly",
                "__Host-portcullis-signin-0123456789ab=planted; Path=/; Secure",
                "app-pref=1; Path=/",
            ] {
                h.append("set-cookie", HeaderValue::from_static(c));
            }
            return Ok(resp);
        }
        "status=500" => {
            let mut resp = Response::new(full("upstream error page"));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(resp);
        }
        _ => {}
    }
    let headers: Vec<[String; 2]> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            [
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let echo = serde_json::json!({
        "upstream": name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut resp = Response::new(full(echo.to_string()));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Completes a WebSocket handshake and echoes every message.
fn websocket(mut req: Request<Incoming>) -> Response<BoxBody> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept).unwrap(),
    );
    resp
}
