//! The one place where request-path failures become HTTP answers.
//!
//! Stages return `ProxyError`; `ProxyError::status` is the exhaustive error→status table (no
//! catch-all arm, so a new variant cannot ship without a status). Clients get a short page with
//! the request ID; the cause chain goes to the log only. No variant maps to 500: nothing a
//! client sends is an internal error.

use http::header::{
    HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Response, StatusCode};

use crate::auth::SignInError;
use crate::body::Body;
use crate::oidc::VerifyError;
use crate::policy::Denied;
use crate::store::StoreError;

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request itself is malformed (bad Host, dot segments, …).
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream could not be reached (connect refused, DNS, TLS handshake).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(#[source] BoxError),
    /// The upstream connected but broke the exchange (reset, protocol error).
    #[error("upstream failed: {0}")]
    UpstreamFailed(#[source] BoxError),
    /// The upstream did not answer within the route's timeout.
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    /// A protected route without a session, from a client that is not a browser navigation.
    #[error("sign-in required")]
    SignInRequired { login_url: String },
    /// A bearer route without a valid access token (`None`: no token at all).
    #[error("bearer token required{}", .0.map(|e| format!(": {e}")).unwrap_or_default())]
    BearerRequired(Option<VerifyError>),
    /// Signed in, but the route's policy refuses this user.
    #[error("access denied by {req}: {0}", req = .0.requirement())]
    Forbidden(Denied),
    /// Signing in failed at the callback or before.
    #[error("sign-in failed: {0}")]
    SignIn(SignInError),
    /// The identity provider's metadata has not loaded yet.
    #[error("identity provider not ready")]
    ProviderUnavailable,
    /// The session store does not answer.
    #[error("{0}")]
    StoreUnavailable(StoreError),
    /// The session's token has expired and could not be renewed just now.
    #[error("session renewal unavailable: {0}")]
    RenewalUnavailable(String),
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyError {
    /// The error→status table.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::SignInRequired { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::BearerRequired(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::SignIn(e) => e.status(),
            ProxyError::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RenewalUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::NoRoute => "no_route",
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamFailed(_) => "upstream_failed",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::SignInRequired { .. } => "sign_in_required",
            ProxyError::BearerRequired(_) => "bearer_required",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::SignIn(e) => e.kind(),
            ProxyError::ProviderUnavailable => "provider_unavailable",
            ProxyError::StoreUnavailable(_) => "store_unavailable",
            ProxyError::RenewalUnavailable(_) => "renewal_unavailable",
        }
    }

    /// What the client is told: safe, short, no internals.
    fn public_message(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        match self {
            ProxyError::SignInRequired { .. } => "Sign-in required.".into(),
            ProxyError::BearerRequired(None) => {
                "This API needs an access token in the Authorization header.".into()
            }
            ProxyError::BearerRequired(Some(e)) => {
                Cow::Owned(format!("The access token was not accepted: {e}."))
            }
            ProxyError::Forbidden(d) => Cow::Owned(format!(
                "You are signed in, but {d}. Ask the application's owner for access."
            )),
            ProxyError::SignIn(e) => Cow::Owned(e.public_message()),
            ProxyError::ProviderUnavailable => {
                "Sign-in is not available yet: Microsoft Entra ID has not answered. Try again in a moment.".into()
            }
            ProxyError::StoreUnavailable(_) | ProxyError::RenewalUnavailable(_) => {
                "Your session cannot be checked right now. Try again in a moment.".into()
            }
            other => other.gateway_message().into(),
        }
    }

    fn gateway_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(what) => what,
            ProxyError::NoRoute => "There is no application at this address.",
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                "The application behind this address is not answering. Try again in a moment."
            }
            ProxyError::UpstreamTimeout(_) => {
                "The application behind this address took too long to answer."
            }
            _ => "The request could not be completed.",
        }
    }

    /// Renders the answer in the client's preferred format.
    pub fn to_response(&self, format: Format, request_id: &str) -> Response<Body> {
        let login_url = match self {
            ProxyError::SignInRequired { login_url } => Some(login_url.as_str()),
            ProxyError::SignIn(e) if e.retryable() => Some("/.auth/login"),
            _ => None,
        };
        let mut resp = page_with(
            self.status(),
            &self.public_message(),
            format,
            request_id,
            login_url,
        );
        let h = resp.headers_mut();
        match self {
            // RFC 9110 §11.6.1: a 401 names how to authenticate. Cookie sessions have no
            // registered scheme; the parameter tells API clients where a browser signs in.
            ProxyError::SignInRequired { login_url } => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Portcullis realm=\"portcullis\", login_url=\"{login_url}\""
                )) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            ProxyError::BearerRequired(None) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
            }
            // RFC 6750 §3.1.
            ProxyError::BearerRequired(Some(e)) => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{e}\""
                )) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            ProxyError::ProviderUnavailable
            | ProxyError::StoreUnavailable(_)
            | ProxyError::RenewalUnavailable(_) => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

/// The body formats clients can get, chosen from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
}

impl Format {
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accept = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("text/html") {
            Format::Html
        } else if accept.contains("application/json") || accept.contains("+json") {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// A small answer page in the client's format. `message` must be safe to show anyone.
pub fn page(status: StatusCode, message: &str, format: Format, request_id: &str) -> Response<Body> {
    page_with(status, message, format, request_id, None)
}

/// [`page`], with a sign-in link where signing in (again) is the way out.
pub fn page_with(
    status: StatusCode,
    message: &str,
    format: Format,
    request_id: &str,
    login_url: Option<&str>,
) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let (content_type, body) = match format {
        Format::Json => {
            let mut v = serde_json::json!({
                "error": title,
                "status": status.as_u16(),
                "message": message,
                "request_id": request_id,
            });
            if let Some(l) = login_url {
                v["login_url"] = l.into();
            }
            ("application/json", v.to_string())
        }
        Format::Html => (
            "text/html; charset=utf-8",
            html(status, title, message, request_id, login_url),
        ),
        Format::Text => (
            "text/plain; charset=utf-8",
            format!(
                "{} {title}\n{message}\nRequest ID: {request_id}\n",
                status.as_u16()
            ),
        ),
    };
    let mut resp = Response::new(crate::body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html(
    status: StatusCode,
    title: &str,
    message: &str,
    request_id: &str,
    login_url: Option<&str>,
) -> String {
    let link = login_url.map_or(String::new(), |l| {
        format!("<p><a href=\"{}\">Sign in</a></p>", escape(l))
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>\
body{{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1f2328;margin:0}}\
main{{max-width:36rem;margin:12vh auto;background:#fff;border-radius:8px;padding:2rem 2.5rem;box-shadow:0 1px 3px #0002}}\
h1{{font-size:1.4rem;margin:0 0 .5rem}}p{{margin:.5rem 0}}.id{{color:#656d76;font-size:.85rem;font-family:ui-monospace,monospace}}\
</style></head><body><main><h1>{code} {title}</h1><p>{message}</p>{link}<p class=\"id\">Request ID: {id}</p></main></body></html>",
        code = status.as_u16(),
        title = escape(title),
        message = escape(message),
        id = escape(request_id),
    )
}

/// Minimal HTML escaping for text placed in element content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_client_or_gateway_status() {
        let errors = [
            ProxyError::BadRequest("x"),
            ProxyError::NoRoute,
            ProxyError::UpstreamUnreachable("refused".into()),
            ProxyError::UpstreamFailed("reset".into()),
            ProxyError::UpstreamTimeout(std::time::Duration::from_secs(1)),
        ];
        let statuses: Vec<u16> = errors.iter().map(|e| e.status().as_u16()).collect();
        assert_eq!(statuses, [400, 404, 502, 502, 504]);
    }

    #[test]
    fn format_follows_accept() {
        let mut h = HeaderMap::new();
        assert_eq!(Format::from_headers(&h), Format::Text);
        h.insert(
            ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert_eq!(Format::from_headers(&h), Format::Html);
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(Format::from_headers(&h), Format::Json);
    }

    #[test]
    fn html_escapes_the_request_id() {
        let page = html(StatusCode::NOT_FOUND, "Not Found", "m", "<script>", None);
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
