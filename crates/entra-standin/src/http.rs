//! Small HTTP helpers: answers, redirects, and reading query strings and form bodies.
//!
//! Every answer is a complete buffer; bodies are read with a cap so a test that posts
//! garbage gets an Entra-style error, never a hang or a panic.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

/// The answer type of every handler.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Largest form body accepted (Entra's requests are a few kilobytes).
const MAX_BODY: usize = 64 * 1024;

/// Decoded `name=value` pairs in order; the first occurrence of a name wins.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn from_query(uri: &http::Uri) -> Params {
        Params::parse(uri.query().unwrap_or("").as_bytes())
    }

    /// The value of `name`, treating an empty value as absent (as Entra does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A copy with `name` set to `value` (replacing every earlier occurrence).
    pub fn with(&self, name: &str, value: &str) -> Params {
        let mut pairs: Vec<_> = self.0.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.push((name.to_owned(), value.to_owned()));
        Params(pairs)
    }

    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the body could not be read")]
    Read,
}

/// Reads a form-encoded body, at most `MAX_BODY` bytes.
pub(crate) async fn read_form(body: Incoming) -> Result<Params, BodyError> {
    let bytes = read_body(body).await?;
    Ok(Params::parse(&bytes))
}

pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}

fn build(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub(crate) fn json(status: StatusCode, value: &Value) -> Resp {
    build(
        status,
        "application/json; charset=utf-8",
        value.to_string().into_bytes(),
    )
}

/// JSON that clients may cache, as Entra serves discovery documents and keys.
pub(crate) fn cacheable_json(value: &Value) -> Resp {
    let mut resp = json(StatusCode::OK, value);
    let h = resp.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, private"),
    );
    h.remove(PRAGMA);
    resp
}

pub(crate) fn html(status: StatusCode, page: String) -> Resp {
    build(status, "text/html; charset=utf-8", page.into_bytes())
}

/// A 302 to `location`; a location that is not a valid header value becomes a 400 page.
pub(crate) fn redirect(location: &str) -> Resp {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut resp = build(StatusCode::FOUND, "text/html; charset=utf-8", Bytes::new());
            resp.headers_mut().insert(LOCATION, v);
            resp
        }
        Err(_) => html(
            StatusCode::BAD_REQUEST,
            "<!doctype html><title>Bad request</title>".to_owned(),
        ),
    }
}

pub(crate) fn not_found() -> Resp {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "error": "not_found",
            "error_description": "The stand-in Entra ID has no such endpoint.",
        }),
    )
}

/// `name`'s value from the `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Appends `params` to `uri`'s query (`?` or `&`), or as its fragment.
pub(crate) fn append(uri: &str, params: &Params, fragment: bool) -> String {
    let encoded = params.encode();
    if fragment {
        return format!("{uri}#{encoded}");
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_treat_empty_values_as_absent_and_keep_the_first() {
        let p = Params::parse(b"a=&b=1&b=2&c=x%20y+z");
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("1"));
        assert_eq!(p.get("c"), Some("x y z"));
        assert_eq!(p.with("b", "3").get("b"), Some("3"));
    }

    #[test]
    fn append_respects_an_existing_query() {
        let p = Params(vec![("code".into(), "a b".into())]);
        assert_eq!(append("https://x/cb", &p, false), "https://x/cb?code=a+b");
        assert_eq!(
            append("https://x/cb?q=1", &p, false),
            "https://x/cb?q=1&code=a+b"
        );
        assert_eq!(append("https://x/cb", &p, true), "https://x/cb#code=a+b");
    }

    #[test]
    fn cookie_finds_the_named_value() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; ESTSAUTH=xyz"),
        );
        assert_eq!(cookie(&h, "ESTSAUTH").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
