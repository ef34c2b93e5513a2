//! The downstream request: where it is going (host, canonical path) and whether it is
//! well-formed enough to route at all.

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::Request;

use crate::error::ProxyError;

pub mod path;

pub use path::Notes;

/// The host and path a request is routed by.
#[derive(Debug, Clone)]
pub struct Target {
    /// Lower case, without port or trailing dot: what routes match against.
    pub host: String,
    /// The authority as the client sent it (host and port), for `X-Forwarded-Host` and
    /// `preserve_host`.
    pub authority: Authority,
    /// The canonical path (`path.rs`) with the client's query, untouched: what routes match,
    /// policy judges and the upstream receives.
    pub path_and_query: PathAndQuery,
    /// What the matched route must allow for this path to be served.
    pub notes: Notes,
    /// Whether the canonical path differs from the client's spelling.
    pub rewritten: bool,
}

impl Target {
    /// Reads the target of `req`: the URI's authority (HTTP/2 `:authority`, HTTP/1 absolute
    /// form) or else the single `Host` header, and the canonical path.
    pub fn of<B>(req: &Request<B>) -> Result<Target, ProxyError> {
        check_method(req)?;
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
        let named = host_of(authority.as_str());
        if authority.as_str().contains('@') || named.is_empty() {
            return Err(ProxyError::BadRequest("The Host header is malformed."));
        }
        let host = named.trim_end_matches('.').to_ascii_lowercase();
        let (path, notes) = path::canonicalize(req.uri().path()).map_err(ProxyError::BadRequest)?;
        let rewritten = matches!(path, std::borrow::Cow::Owned(_));
        let path_and_query = match (rewritten, req.uri().path_and_query()) {
            (false, Some(pq)) => pq.clone(),
            _ => {
                let mut pq = path.into_owned();
                if let Some(q) = req.uri().query() {
                    pq.push('?');
                    pq.push_str(q);
                }
                PathAndQuery::try_from(pq)
                    .map_err(|_| ProxyError::BadRequest("The request target is malformed."))?
            }
        };
        Ok(Target {
            host,
            authority,
            path_and_query,
            notes,
            rewritten,
        })
    }

    /// The canonical path.
    pub fn path(&self) -> &str {
        self.path_and_query.path()
    }
}

/// The host of an authority that holds no `@` (one that does is refused), read as
/// `Authority::host` reads it: up to the first `]` for an IP literal, else up to the first
/// `:`. `Authority::host` goes through the generic string-pattern searchers (`rsplit('@')`,
/// `split(':')`), about 360 instructions per request; this is a byte search.
fn host_of(authority: &str) -> &str {
    let b = authority.as_bytes();
    let end = match b.first() {
        Some(b'[') => memchr::memchr(b']', b).map(|i| i + 1),
        _ => memchr::memchr(b':', b),
    };
    end.map_or(authority, |i| &authority[..i])
}

/// Methods no upstream should see. `CONNECT` would make the proxy a tunnel to anywhere;
/// `TRACE`/`TRACK` reflect the request, identity headers and cookies included (cross-site
/// tracing).
///
/// Framing is settled before a request gets here: for a request with both `Content-Length`
/// and `Transfer-Encoding` (request smuggling, RFC 9112 §6.3), hyper's HTTP/1 parser drops
/// `Content-Length`, reads the chunked body and closes the connection after the answer, so
/// bytes past the chunked body are never read as another request; HTTP/2 forbids
/// `Transfer-Encoding`.
fn check_method(req: &Request<impl Sized>) -> Result<(), ProxyError> {
    match req.method().as_str() {
        "CONNECT" => Err(ProxyError::BadRequest("CONNECT is not supported.")),
        "TRACE" | "TRACK" => Err(ProxyError::MethodNotAllowed),
        _ => Ok(()),
    }
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// `host_of` reads every authority without `@` as `Authority::host` does: IP
        /// literals, ports, empty hosts, percent signs, a `:` or `]` anywhere.
        #[test]
        fn host_of_agrees_with_http(s in "\\[?[a-zA-Z0-9.:%\\[\\]_~-]{0,24}(:[0-9]{0,6})?") {
            if let Ok(a) = s.parse::<Authority>() {
                proptest::prop_assert_eq!(host_of(a.as_str()), a.host());
            }
        }
    }

    #[test]
    fn host_of_reads_literals_ports_and_bare_hosts() {
        for (authority, host) in [
            ("example.com", "example.com"),
            ("example.com:8443", "example.com"),
            ("[::1]:443", "[::1]"),
            ("[fe80::1%25eth0]", "[fe80::1%25eth0]"),
            ("127.0.0.1:1", "127.0.0.1"),
            (":443", ""),
        ] {
            let a: Authority = authority.parse().expect(authority);
            assert_eq!(host_of(a.as_str()), a.host(), "{authority}");
            assert_eq!(host_of(a.as_str()), host, "{authority}");
        }
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
}
