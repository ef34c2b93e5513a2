//! Listener, optional TLS, HTTP/1.1 + HTTP/2 connections, and the path → endpoint table.
//!
//! The stand-in binds loopback only. Stopping closes the listener and asks open connections
//! to finish (giving them a second), so a dropped `StandIn` really stops answering — a test
//! for "identity provider down" can rely on it.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::aadsts::Diagnostics;
use super::http::{not_found, Resp};
use super::state::State;
use super::{authorize, discovery, graph, logout, managed_identity, token, StandInError};

/// Returned by a handler to drop the connection without answering (HTTP/1: the socket
/// closes; HTTP/2: the stream is reset), like a network fault between proxy and Entra.
#[derive(Debug, thiserror::Error)]
#[error("connection reset on purpose")]
pub(crate) struct Reset;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN: Duration = Duration::from_secs(1);

pub(crate) fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, StandInError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(StandInError::Certificate)?;
    if certs.is_empty() {
        return Err(StandInError::NoCertificate);
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(StandInError::PrivateKey)?;
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts until `stop` changes or its sender is dropped.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "stand-in: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let stop = stop.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(TokioIo::new(tcp), state, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve(TokioIo::new(tls), state, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "stand-in: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "stand-in: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve<I>(io: TokioIo<I>, state: Arc<State>, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { dispatch(&state, req).await }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "stand-in: connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
        }
    }
}

/// The endpoint table. `{t}` is the tenant segment; each endpoint checks it.
async fn dispatch(state: &State, req: Request<Incoming>) -> Result<Resp, Reset> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let diag = || Diagnostics::new(req.headers());
    Ok(match segments.as_slice() {
        ["graph", rest @ ..] => graph::handle(state, &state.graph_url, rest, req).await,
        rest @ (["v1.0", ..] | ["oidc", "userinfo"]) => {
            graph::handle(state, &state.base_url, rest, req).await
        }
        [t, "v2.0", ".well-known", "openid-configuration"] if get => {
            discovery::configuration(state, t, &diag())
        }
        [t, ".well-known", "openid-configuration"] if get => {
            discovery::configuration_v1(state, t, &diag())
        }
        [t, "discovery", "v2.0", "keys"] | [t, "discovery", "keys"] if get => {
            discovery::keys(state, t, &diag())
        }
        ["metadata", "identity", "oauth2", "token"] if get => {
            managed_identity::handle(state, req, false).await
        }
        ["msi", "token"] if get => managed_identity::handle(state, req, true).await,
        [t, "oauth2", "v2.0", "authorize"] => authorize::handle(state, t, req).await,
        [t, "oauth2", "v2.0", "token"] => return token::handle(state, t, req).await,
        [t, "oauth2", "v2.0", "logout"] => logout::handle(state, t, req).await,
        _ => not_found(),
    })
}
