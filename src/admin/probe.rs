//! `portcullis health`: one `GET` to the admin listener, for container health checks. The
//! image has no shell and no curl, so the binary probes itself.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {address}: {error}")]
    Connect {
        address: String,
        error: std::io::Error,
    },
    #[error("{address} did not answer over HTTP/1.1: {error}")]
    Http {
        address: String,
        error: hyper::Error,
    },
    #[error("the path must start with \"/\", got {0:?}")]
    Path(String),
    #[error("no answer from {address} within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
}

/// `GET http://{address}{path}` (`address` as `host:port`); the answer's status.
pub async fn probe(address: &str, path: &str, timeout: Duration) -> Result<StatusCode, ProbeError> {
    if !path.starts_with('/') {
        return Err(ProbeError::Path(path.to_owned()));
    }
    tokio::time::timeout(timeout, get(address, path))
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::Timeout {
                address: address.to_owned(),
                timeout,
            })
        })
}

async fn get(address: &str, path: &str) -> Result<StatusCode, ProbeError> {
    let http = |error| ProbeError::Http {
        address: address.to_owned(),
        error,
    };
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| ProbeError::Connect {
            address: address.to_owned(),
            error,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let driver = tokio::spawn(conn);
    let req = Request::get(path)
        .header(http::header::HOST, address)
        .header(http::header::USER_AGENT, "portcullis-health")
        .body(Empty::<bytes::Bytes>::new());
    // Only a path that is not a valid URI fails here, and it was checked to start with '/'.
    let Ok(req) = req else {
        return Err(ProbeError::Path(path.to_owned()));
    };
    let status = sender.send_request(req).await.map_err(http)?.status();
    driver.abort();
    Ok(status)
}
