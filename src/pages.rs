//! The pages the proxy answers with itself: one look for every sign-in error, access denial,
//! unavailable upstream or provider, in HTML for browsers, JSON for API clients and text for
//! everything else (`Accept`). Inline CSS only (no requests to anywhere), the request ID on
//! each, and one way out where there is one (sign in, use another account, try again).
//! Messages are the code's own text or escaped; nothing a client sent is echoed unescaped.

use http::header::{
    HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS,
};
use http::{HeaderMap, Response, StatusCode};

use crate::body::Body;
use crate::config::PagesConfig;
use crate::error::ProxyError;

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

pub use crate::error::Action;

impl Action<'_> {
    fn link(self) -> (&'static str, String) {
        match self {
            Action::SignIn(url) => ("Sign in", url.to_owned()),
            Action::SwitchAccount => ("Sign in with another account", "/.auth/logout".to_owned()),
            Action::Retry => ("Try again", String::new()),
        }
    }
}

impl ProxyError {
    /// Renders the error table's answer (`error.rs`) in the client's preferred format.
    pub fn to_response(
        &self,
        format: Format,
        request_id: &str,
        brand: &PagesConfig,
    ) -> Response<Body> {
        let mut resp = page_with(
            self.status(),
            &self.public_message(),
            format,
            request_id,
            self.action(),
            brand,
        );
        if let Some((name, value)) = self.challenge() {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// A small answer page in the client's format. `message` must be safe to show anyone.
pub fn page(
    status: StatusCode,
    message: &str,
    format: Format,
    request_id: &str,
    brand: &PagesConfig,
) -> Response<Body> {
    page_with(status, message, format, request_id, None, brand)
}

/// [`page`], with a way out.
pub fn page_with(
    status: StatusCode,
    message: &str,
    format: Format,
    request_id: &str,
    action: Option<Action<'_>>,
    brand: &PagesConfig,
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
            if let Some(Action::SignIn(l)) = action {
                v["login_url"] = l.into();
            }
            if let Some(s) = &brand.support_href {
                v["support"] = s.as_str().into();
            }
            ("application/json", v.to_string())
        }
        Format::Html => (
            "text/html; charset=utf-8",
            html(status, title, message, request_id, action, brand),
        ),
        Format::Text => (
            "text/plain; charset=utf-8",
            format!(
                "{} {title}\n{message}\nRequest ID: {request_id}\n{}",
                status.as_u16(),
                brand
                    .support_href
                    .as_deref()
                    .map_or(String::new(), |s| format!(
                        "Support: {}\n",
                        s.trim_start_matches("mailto:")
                    ))
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

/// The deployment's header (logo and product name) and support line, as escaped HTML.
fn brand_html(brand: &PagesConfig) -> (String, String) {
    let logo = brand.logo_url.as_deref().map_or(String::new(), |u| {
        format!("<img src=\"{}\" alt=\"\" height=\"28\"> ", escape(u))
    });
    let header = format!(
        "<p class=\"brand\">{logo}{}</p>",
        escape(&brand.product_name)
    );
    let support = brand.support_href.as_deref().map_or(String::new(), |h| {
        format!(
            "<p class=\"id\">Need help? <a href=\"{}\">Contact support</a></p>",
            escape(h)
        )
    });
    (header, support)
}

fn html(
    status: StatusCode,
    title: &str,
    message: &str,
    request_id: &str,
    action: Option<Action<'_>>,
    brand: &PagesConfig,
) -> String {
    let link = action.map_or(String::new(), |a| {
        let (label, href) = a.link();
        format!(
            "<p><a class=\"action\" href=\"{}\">{label}</a></p>",
            escape(&href)
        )
    });
    let heading = format!("{} {}", status.as_u16(), escape(title));
    document(
        &heading,
        &format!("<p>{}</p>{link}", escape(message)),
        request_id,
        brand,
    )
}

/// The one look: `heading` and `content` are HTML the caller has escaped.
fn document(heading: &str, content: &str, request_id: &str, brand: &PagesConfig) -> String {
    let (header, support) = brand_html(brand);
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{heading}</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>\
body{{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1f2328;margin:0}}\
main{{max-width:36rem;margin:12vh auto;background:#fff;border-radius:8px;padding:2rem 2.5rem;box-shadow:0 1px 3px #0002}}\
h1{{font-size:1.4rem;margin:0 0 .5rem}}p{{margin:.5rem 0}}.id{{color:#656d76;font-size:.85rem;font-family:ui-monospace,monospace}}\
.brand{{color:#656d76;font-size:.8rem;letter-spacing:.08em;text-transform:uppercase;margin:0 0 1.2rem}}.brand img{{vertical-align:middle}}\
a.action,button.action{{display:inline-block;margin-top:.5rem;padding:.45rem 1rem;border:0;border-radius:6px;background:#0969da;color:#fff;font:inherit;text-decoration:none;cursor:pointer}}\
</style></head><body><main>{header}<h1>{heading}</h1>{content}<p class=\"id\">Request ID: {id}</p>{support}</main></body></html>",
        id = escape(request_id),
    )
}

/// The page that asks before signing out (`auth/sign_out.rs`): one button that POSTs to
/// `action`, a same-origin path. It changes nothing itself, is never cached, and cannot be
/// framed, so another site cannot trick a click on its button (clickjacking).
pub fn sign_out_confirmation(
    action: &str,
    request_id: &str,
    brand: &PagesConfig,
) -> Response<Body> {
    let mut resp = Response::new(crate::body::full(sign_out_html(action, request_id, brand)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No script, no framing; `form-action` is left open because Chrome applies it to the
    // redirect that follows the POST (to Entra ID's sign-out page).
    h.insert(CONTENT_SECURITY_POLICY, csp(brand));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// No script, no framing; images only from where the logo is (`[pages] logo_url`).
fn csp(brand: &PagesConfig) -> HeaderValue {
    let img = match brand
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    {
        Some(u) => format!("; img-src {}", u.origin().ascii_serialization()),
        None if brand.logo_url.is_some() => "; img-src 'self'".to_owned(),
        None => String::new(),
    };
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'{img}"
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        )
    })
}

fn sign_out_html(action: &str, request_id: &str, brand: &PagesConfig) -> String {
    let content = format!(
        "<p>Do you want to sign out?</p><form method=\"post\" action=\"{}\">\
<button class=\"action\" type=\"submit\">Sign out</button></form>",
        escape(action)
    );
    document("Sign out", &content, request_id, brand)
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
    fn pages_carry_the_deployments_name_logo_and_support_escaped() {
        let brand = PagesConfig {
            product_name: "Contoso <Gate>".into(),
            logo_url: Some("https://cdn.contoso.example/logo.svg?a=1&b=\"2".into()),
            support_href: Some("mailto:help@contoso.example".into()),
        };
        let p = html(StatusCode::FORBIDDEN, "Forbidden", "m", "id", None, &brand);
        assert!(p.contains("Contoso &lt;Gate&gt;"), "{p}");
        assert!(!p.contains(">Portcullis<"), "{p}");
        assert!(p.contains("src=\"https://cdn.contoso.example/logo.svg?a=1&amp;b=&quot;2\""));
        assert!(p.contains("href=\"mailto:help@contoso.example\">Contact support"));
        let resp = page(StatusCode::NOT_FOUND, "m", Format::Json, "id", &brand);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let h = csp(&brand);
        assert!(h
            .to_str()
            .unwrap()
            .ends_with("img-src https://cdn.contoso.example"));
        let plain = html(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "m",
            "id",
            None,
            &PagesConfig::default(),
        );
        assert!(plain.contains(">Portcullis<") && !plain.contains("Contact support"));
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
    fn an_error_page_carries_the_tables_status_and_challenge() {
        let e = ProxyError::BearerRequired(None);
        let resp = e.to_response(Format::Json, "rid", &PagesConfig::default());
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(http::header::WWW_AUTHENTICATE));
        let e = ProxyError::NoRoute;
        let resp = e.to_response(Format::Html, "rid", &PagesConfig::default());
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(!resp.headers().contains_key(http::header::WWW_AUTHENTICATE));
    }

    #[test]
    fn the_sign_out_confirmation_escapes_its_action_and_cannot_be_framed_or_cached() {
        let resp = sign_out_confirmation(
            "/.auth/logout?rd=%2F\"><script>",
            "<id>",
            &PagesConfig::default(),
        );
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h[X_FRAME_OPTIONS], "DENY");
        assert!(h[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        let page = sign_out_html(
            "/.auth/logout?rd=%2F\"><script>",
            "<id>",
            &PagesConfig::default(),
        );
        assert!(page.contains("action=\"/.auth/logout?rd=%2F&quot;&gt;&lt;script&gt;\""));
        assert!(
            !page.contains("<script>") && !page.contains("<id>"),
            "{page}"
        );
        assert!(page.contains("method=\"post\""));
    }

    #[test]
    fn html_escapes_the_request_id() {
        let page = html(
            StatusCode::NOT_FOUND,
            "Not Found",
            "m",
            "<script>",
            None,
            &PagesConfig::default(),
        );
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn each_action_offers_its_link() {
        let p = html(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "m",
            "id",
            Some(Action::SwitchAccount),
            &PagesConfig::default(),
        );
        assert!(p.contains("href=\"/.auth/logout\""));
        let p = html(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            "m",
            "id",
            Some(Action::Retry),
            &PagesConfig::default(),
        );
        assert!(p.contains("Try again"));
        let p = html(
            StatusCode::UNAUTHORIZED,
            "x",
            "m",
            "id",
            Some(Action::SignIn("/.auth/login?rd=%2F\"x")),
            &PagesConfig::default(),
        );
        assert!(p.contains("/.auth/login?rd=%2F&quot;x"), "{p}");
    }
}
