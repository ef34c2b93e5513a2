//! The downstream request: where it is going (host, path) and whether it is well-formed
//! enough to route at all.

use http::header::HOST;
use http::uri::Authority;
use http::{Method, Request};

use crate::error::ProxyError;

/// The host and path a request is routed by.
#[derive(Debug, Clone)]
pub struct Target {
    /// Lower case, without port or trailing dot: what routes match against.
    pub host: String,
    /// The authority as the client sent it (host and port), for `X-Forwarded-Host` and
    /// `preserve_host`.
    pub authority: Authority,
}

impl Target {
    /// Reads the target of `req`: the URI's authority (HTTP/2 `:authority`, HTTP/1 absolute
    /// form) or else the single `Host` header.
    pub fn of<B>(req: &Request<B>) -> Result<Target, ProxyError> {
        if req.method() == Method::CONNECT {
            return Err(ProxyError::BadRequest("CONNECT is not supported."));
        }
        let authority = match req.uri().authority() {
            Some(a) => a.clone(),
            None => {
                let mut hosts = req.headers().get_all(HOST).iter();
                let host = hosts
                    .next()
                    .ok_or(ProxyError::BadRequest("The request has no Host header."))?;
                if hosts.next().is_some() {
                    return Err(ProxyError::BadRequest(
                        "The request has more than one Host header.",
                    ));
                }
                Authority::try_from(host.as_bytes())
                    .map_err(|_| ProxyError::BadRequest("The Host header is malformed."))?
            }
        };
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(ProxyError::BadRequest("The Host header is malformed."));
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        check_path(req.uri().path())?;
        Ok(Target { host, authority })
    }
}

/// Rejects paths that would be read differently by the proxy and the upstream: anything but an
/// absolute path, and dot segments (`/public/../admin`), including their percent-encoded and
/// backslash forms, which upstreams may resolve after the proxy matched a more open route.
fn check_path(path: &str) -> Result<(), ProxyError> {
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest(
            "The request path must start with \"/\".",
        ));
    }
    if has_dot_segment(path) {
        return Err(ProxyError::BadRequest(
            "The request path contains \".\" or \"..\" segments.",
        ));
    }
    Ok(())
}

fn has_dot_segment(path: &str) -> bool {
    if !path.contains('.') && !path.contains('%') {
        return false;
    }
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        decoded.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).map(str::to_ascii_lowercase);
        match code.as_deref() {
            Some("2e") => decoded.push('.'),
            Some("2f") => decoded.push('/'),
            Some("5c") => decoded.push('\\'),
            _ => {
                decoded.push('%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 3..];
    }
    decoded.push_str(rest);
    decoded
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str, host: Option<&str>) -> Result<Target, ProxyError> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        Target::of(&b.body(()).expect("request"))
    }

    #[test]
    fn host_is_lowercased_without_port_or_trailing_dot() {
        let t = target("/x", Some("Wiki.Example.COM.:8443")).expect("target");
        assert_eq!(t.host, "wiki.example.com");
        assert_eq!(t.authority.as_str(), "Wiki.Example.COM.:8443");
    }

    #[test]
    fn absolute_uri_authority_wins_over_host_header() {
        let t = target("https://a.example.com/x", Some("b.example.com")).expect("target");
        assert_eq!(t.host, "a.example.com");
    }

    #[test]
    fn missing_duplicate_or_malformed_host_is_rejected() {
        assert!(target("/x", None).is_err());
        assert!(target("/x", Some("user@evil.example")).is_err());
        assert!(target("/x", Some("bad host")).is_err());
        let req = Request::builder()
            .uri("/x")
            .header(HOST, "a.example.com")
            .header(HOST, "b.example.com")
            .body(())
            .expect("request");
        assert!(Target::of(&req).is_err());
    }

    #[test]
    fn dot_segments_in_any_spelling_are_rejected() {
        for bad in [
            "/public/../admin",
            "/public/./x",
            "/..",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/public%2f..%2fadmin",
            "/public\\..\\admin",
            "/public%5c..%5cadmin",
        ] {
            assert!(has_dot_segment(bad), "{bad} should be rejected");
        }
        for good in [
            "/",
            "/a.b/c",
            "/.well-known/x",
            "/a/..b/c",
            "/100%25",
            "/a%2",
        ] {
            assert!(!has_dot_segment(good), "{good} should pass");
        }
    }
}
