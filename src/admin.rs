//! The admin listener: `/healthz` (the process answers), `/readyz` (configuration loaded
//! and every dependency the request path needs answering), `/metrics`, and, with
//! `server.admin_token_file`, the token-authenticated `POST /admin/sessions/revoke`
//! (`revoke.rs`). Bind it to loopback or a pod-only address: only the revoke API is
//! authenticated. `probe.rs` is the client side, `portcullis health`.

pub mod probe;
mod revoke;

use std::sync::Arc;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::proxy::Proxy;

/// Answers one admin request.
pub async fn handle(
    proxy: Arc<Proxy>,
    token_file: Option<Arc<std::path::PathBuf>>,
    ready_requires_store: bool,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.uri().path() == "/admin/sessions/revoke" {
        return revoke::handle(&proxy, token_file.as_deref().map(|p| p.as_path()), req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_owned(),
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        crate::assertion::JWKS_PATH if proxy.assertions().is_some() => proxy
            .assertions()
            .map(|a| crate::proxy::jwks(a))
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n".to_owned())),
        "/metrics" => {
            let mut resp = text(StatusCode::OK, crate::metrics::render());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/readyz" => match readiness(&proxy, ready_requires_store).await {
            Ok(status) => text(StatusCode::OK, format!("ready\n{status}")),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

/// Ready when routes are loaded and the session store answers. The identity provider is
/// reported but does not decide: pulling every replica out of a load balancer because Entra
/// blipped would turn a sign-in outage into a total one (signed-in users keep working). With
/// `server.ready_requires_store = false` the store is reported the same way, for the same
/// reason: every instance shares it, so it would take them all out together.
async fn readiness(proxy: &Proxy, requires_store: bool) -> Result<String, String> {
    if proxy.routes().is_empty() {
        return Err("no routes loaded".to_owned());
    }
    let Some(auth) = proxy.auth() else {
        return Ok(String::new());
    };
    let store = auth.sessions().store_kind();
    let ping =
        tokio::time::timeout(std::time::Duration::from_secs(2), auth.sessions().ping()).await;
    let store_status = match ping {
        Ok(Ok(())) => Ok("ok".to_owned()),
        Ok(Err(e)) => Err(format!("session store ({store}) does not answer: {e}")),
        Err(_) => Err(format!("session store ({store}) does not answer within 2s")),
    };
    let store_status = match store_status {
        Ok(s) => s,
        Err(why) if requires_store => return Err(why),
        Err(_) => "not answering (requests that need it answer 503; not required for \
                   readiness: server.ready_requires_store = false)"
            .to_owned(),
    };
    let provider = if auth.provider().is_ready() {
        "loaded"
    } else {
        "not loaded yet (sign-in answers 503)"
    };
    Ok(format!(
        "session store ({store}): {store_status}\nidentity provider: {provider}\n"
    ))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = text(status, format!("{value}\n"));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
