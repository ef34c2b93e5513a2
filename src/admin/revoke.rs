//! `POST /admin/sessions/revoke` with `{"oid": "<object id>"}`: ends every session of that
//! user on every instance (the store's per-user index, then one invalidation per session, so
//! every instance drops its cached copy). For an account that was disabled or compromised:
//! Entra's own revocation only stops new tokens, not a session the proxy already holds.
//!
//! Authenticated with `Authorization: Bearer <token>`, the token read from
//! `server.admin_token_file` at each call and compared in constant time. Without that key the
//! endpoint does not exist (404). Every call that gets past the token is audited.

use std::path::Path;

use http::header::AUTHORIZATION;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::json;
use crate::audit;
use crate::body::Body;
use crate::oidc::verify::constant_time_eq;
use crate::proxy::Proxy;

/// A request body larger than this is refused: `{"oid": "<guid>"}` is about 50 bytes.
const MAX_BODY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    oid: String,
}

pub async fn handle(
    proxy: &Proxy,
    token_file: Option<&Path>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(token_file) = token_file else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        );
    };
    if req.method() != Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "use POST"}),
        );
    }
    let expected = match std::fs::read_to_string(token_file) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        Ok(_) | Err(_) => {
            tracing::error!(file = %token_file.display(), "admin token file unreadable or empty");
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the admin token cannot be read"}),
            );
        }
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        tracing::warn!("admin API call with a wrong or missing token");
        let mut resp = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "a valid admin bearer token is required"}),
        );
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
        );
        return resp;
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "the body is limited to 4096 bytes"}),
            )
        }
    };
    let oid = match serde_json::from_slice::<Revoke>(&body) {
        Ok(r) if crate::config::is_guid(&r.oid.to_ascii_lowercase()) => r.oid.to_ascii_lowercase(),
        _ => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "expected {\"oid\": \"<user object id (GUID)>\"}"}),
            )
        }
    };
    let Some(auth) = proxy.auth() else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "sign-in is not configured: there are no sessions"}),
        );
    };
    match auth.sessions().delete_user(&oid).await {
        Ok(ended) => {
            audit::record(
                audit::Scope::NONE,
                audit::Event::SessionsRevoked,
                &oid,
                "",
                "admin_api",
            );
            tracing::info!(oid, sessions = ended, "sessions revoked by the admin API");
            json(
                StatusCode::OK,
                serde_json::json!({"oid": oid, "sessions_ended": ended}),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "revoking sessions failed: the session store does not answer");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the session store does not answer; try again"}),
            )
        }
    }
}
