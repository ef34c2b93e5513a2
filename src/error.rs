//! The one place where request-path failures become HTTP answers.
//!
//! Stages return `ProxyError`; `ProxyError::status` is the exhaustive error→status table (no
//! catch-all arm, so a new variant cannot ship without a status). Clients get a short page with
//! the request ID; the cause chain goes to the log only. No variant maps to 500: nothing a
//! client sends is an internal error.

use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

use crate::body::Body;

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
        }
    }

    /// What the client is told: safe, short, no internals.
    fn public_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(what) => what,
            ProxyError::NoRoute => "There is no application at this address.",
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                "The application behind this address is not answering. Try again in a moment."
            }
            ProxyError::UpstreamTimeout(_) => {
                "The application behind this address took too long to answer."
            }
        }
    }

    /// Renders the answer in the client's preferred format.
    pub fn to_response(&self, format: Format, request_id: &str) -> Response<Body> {
        page(self.status(), self.public_message(), format, request_id)
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
    let title = status.canonical_reason().unwrap_or("Error");
    let (content_type, body) = match format {
        Format::Json => (
            "application/json",
            serde_json::json!({
                "error": title,
                "status": status.as_u16(),
                "message": message,
                "request_id": request_id,
            })
            .to_string(),
        ),
        Format::Html => (
            "text/html; charset=utf-8",
            html(status, title, message, request_id),
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

fn html(status: StatusCode, title: &str, message: &str, request_id: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>\
body{{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1f2328;margin:0}}\
main{{max-width:36rem;margin:12vh auto;background:#fff;border-radius:8px;padding:2rem 2.5rem;box-shadow:0 1px 3px #0002}}\
h1{{font-size:1.4rem;margin:0 0 .5rem}}p{{margin:.5rem 0}}.id{{color:#656d76;font-size:.85rem;font-family:ui-monospace,monospace}}\
</style></head><body><main><h1>{code} {title}</h1><p>{message}</p><p class=\"id\">Request ID: {id}</p></main></body></html>",
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
        let page = html(StatusCode::NOT_FOUND, "Not Found", "m", "<script>");
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
