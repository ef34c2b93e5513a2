//! Forward-auth: `/.auth/verify`, for an ingress that proxies to the app itself and asks
//! Portcullis only whether a request may pass (nginx `auth_request`, Traefik `forwardAuth`,
//! Caddy `forward_auth`, Envoy `ext_authz`).
//!
//! The request judged is the one the ingress received, rebuilt from its headers — and only
//! when the caller is one of `server.trusted_proxies`:
//!
//! - nginx: `X-Original-URL` (absolute) and `X-Original-Method`;
//! - Traefik, Caddy, Envoy: `X-Forwarded-Method`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
//!   `X-Forwarded-Uri`.
//!
//! Its other headers (cookies, `Authorization`, `Accept`) are the verify request's own, which
//! ingresses copy from the original. It goes through the same stages as a proxied request:
//! the canonical path rules, the route table, authentication (with step-up) and the route's
//! policy. Answers:
//!
//! - 200 with the identity headers (`auth_request_set` / `authResponseHeaders` /
//!   `copy_headers` hand them to the app);
//! - 401 when a sign-in is needed, with `WWW-Authenticate` naming the login URL — always for
//!   nginx, which redirects through `error_page 401`; for the others, only for requests that
//!   are not browser navigations;
//! - 302 to sign in, for a browser navigation through Traefik or Caddy (they pass the answer,
//!   with its pending sign-in cookie, to the browser);
//! - 403 for a policy refusal, a caller that is not a trusted proxy, a host and path with no
//!   route, or a reserved `/.auth/` path (the ingress must send those to Portcullis itself,
//!   never to the app).
//!
//! The sign-in endpoints (`/.auth/login`, the callback, `/.auth/logout`) live on the app's
//! host: the ingress routes `/.auth/` there to Portcullis.

use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::Proxy;
use crate::auth::Decision;
use crate::body::{self, Body};
use crate::config::AuthMode;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::headers::identity;
use crate::request::Target;

/// The verify endpoint's path (matched without ASCII case).
pub const PATH: &str = "/.auth/verify";

/// Which ingress asked: nginx never follows a redirect from its auth subrequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    Nginx,
    Forwarded,
}

/// oauth2-proxy's auth endpoint, with `oidc.oauth2_proxy_paths`.
pub const OAUTH2_AUTH: &str = "/oauth2/auth";

/// Whether `target` is the verify endpoint.
pub fn is_verify(target: &Target) -> bool {
    target.path().eq_ignore_ascii_case(PATH)
}

impl Proxy {
    /// Whether `target` is oauth2-proxy's `/oauth2/auth` and those paths are on.
    pub(super) fn is_oauth2_auth(&self, target: &Target) -> bool {
        self.auth()
            .is_some_and(|a| a.provider().config.oauth2_proxy_paths)
            && target.path().eq_ignore_ascii_case(OAUTH2_AUTH)
    }

    /// `/oauth2/auth` as oauth2-proxy answers it when the ingress names no original request:
    /// 202 with `X-Auth-Request-*` for a live session, 401 otherwise.
    async fn oauth2_auth<B>(
        &self,
        req: &Request<B>,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let auth = self.auth().ok_or(ProxyError::ProviderUnavailable)?;
        let mut resp = Response::new(body::empty());
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match auth.session(req.headers(), ctx).await? {
            Some(p) => {
                *resp.status_mut() = StatusCode::ACCEPTED;
                let preset = crate::config::HeaderPreset::OAuth2Proxy;
                identity::inject(
                    resp.headers_mut(),
                    p.identity(),
                    &p.preset_headers(preset, self.user_claim()),
                    &[],
                    None,
                );
            }
            None => *resp.status_mut() = StatusCode::UNAUTHORIZED,
        }
        Ok(resp)
    }

    /// Answers `/.auth/verify` (module docs).
    pub(crate) async fn verify<B>(
        &self,
        req: &Request<B>,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let names_original = req.headers().contains_key("x-original-url")
            || req.headers().contains_key("x-forwarded-uri");
        if req.uri().path().eq_ignore_ascii_case(OAUTH2_AUTH)
            && !(ctx.client().trusted && names_original)
        {
            return self.oauth2_auth(req, ctx).await;
        }
        if !ctx.client().trusted {
            return Err(ProxyError::VerifyRefused(
                "Forward-auth answers only the proxies listed in server.trusted_proxies.",
            ));
        }
        let (original, asker) = original(req)?;
        let target = Target::of(&original)?;
        if target.path().len() >= 7 && target.path()[..7].eq_ignore_ascii_case("/.auth/") {
            return Err(ProxyError::VerifyRefused(
                "Paths under /.auth/ are answered by Portcullis: route them to it, not to the application.",
            ));
        }
        let table = self.routes();
        let route = match table.resolve(&target) {
            Ok(r) => r.clone(),
            Err(ProxyError::NoRoute) => {
                return Err(ProxyError::VerifyRefused(
                    "No route serves this host and path.",
                ))
            }
            Err(e) => return Err(e),
        };
        drop(table);
        ctx.set_route(&route);
        let mut resp = Response::new(body::empty());
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if route.auth == AuthMode::Public
            || (route.cors_preflight && super::is_preflight(&original))
        {
            return Ok(resp);
        }
        let Some(auth) = self.auth() else {
            return Err(ProxyError::ProviderUnavailable);
        };
        let principal = match auth
            .authenticate(&route.spec, &original, &target, ctx)
            .await?
        {
            Decision::Proceed(Some(p)) => p,
            Decision::Proceed(None) => return Ok(resp),
            Decision::Respond(r) if asker == Asker::Nginx => {
                // Unreachable: nginx's requests are never navigations (`original`).
                *resp.status_mut() = StatusCode::UNAUTHORIZED;
                drop(r);
                return Ok(resp);
            }
            Decision::Respond(r) => return Ok(r),
        };
        super::authorize(&route, &principal, ctx)?;
        self.identify(&route, &principal, &target.host, resp.headers_mut())?;
        Ok(resp)
    }
}

/// The request the ingress received, rebuilt from the verify request's headers.
fn original<B>(req: &Request<B>) -> Result<(Request<()>, Asker), ProxyError> {
    let h = req.headers();
    let one = |name: &str| -> Result<Option<&str>, ProxyError> {
        let mut all = h.get_all(name).iter();
        let Some(v) = all.next() else {
            return Ok(None);
        };
        if all.next().is_some() {
            return Err(ProxyError::BadRequest(
                "A forward-auth header appears more than once.",
            ));
        }
        v.to_str()
            .map(Some)
            .map_err(|_| ProxyError::BadRequest("A forward-auth header is malformed."))
    };
    let (method, host, path, asker) = if let Some(url) = one("x-original-url")? {
        let url = url::Url::parse(url)
            .map_err(|_| ProxyError::BadRequest("X-Original-URL is not an absolute URL."))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(ProxyError::BadRequest("X-Original-URL has no host.")),
        };
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        (one("x-original-method")?, host, path, Asker::Nginx)
    } else {
        let (Some(host), Some(uri)) = (one("x-forwarded-host")?, one("x-forwarded-uri")?) else {
            return Err(ProxyError::BadRequest(
                "Forward-auth needs X-Original-URL (nginx) or X-Forwarded-Host and X-Forwarded-Uri.",
            ));
        };
        let (host, uri) = (host.to_owned(), uri.to_owned());
        (one("x-forwarded-method")?, host, uri, Asker::Forwarded)
    };
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest(
            "The forwarded URI is not an absolute path.",
        ));
    }
    let method = Method::from_bytes(method.unwrap_or("GET").as_bytes())
        .map_err(|_| ProxyError::BadRequest("The forwarded method is malformed."))?;
    let mut headers = HeaderMap::with_capacity(h.len());
    for (name, value) in h {
        let n = name.as_str();
        if n.starts_with("x-forwarded-") || n.starts_with("x-original-") || name == HOST {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if asker == Asker::Nginx {
        // nginx cannot pass a redirect on: a sign-in is always its 401 (`error_page 401`).
        headers.remove(ACCEPT);
    }
    headers.insert(
        HOST,
        HeaderValue::from_str(&host)
            .map_err(|_| ProxyError::BadRequest("The forwarded host is malformed."))?,
    );
    let mut original = Request::builder()
        .method(method)
        .uri(path.as_str())
        .body(())
        .map_err(|_| ProxyError::BadRequest("The forwarded URI is malformed."))?;
    *original.headers_mut() = headers;
    Ok((original, asker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/.auth/verify");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn nginx_headers_name_the_original_request_and_never_ask_for_a_redirect() {
        let (r, asker) = original(&verify_req(&[
            ("host", "portcullis.internal"),
            ("x-original-url", "https://App.example.com:8443/a/b?x=1"),
            ("x-original-method", "POST"),
            ("accept", "text/html"),
            ("cookie", "a=b"),
        ]))
        .unwrap();
        assert_eq!(asker, Asker::Nginx);
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "/a/b?x=1");
        assert_eq!(r.headers()[HOST], "app.example.com:8443");
        assert!(r.headers().get(ACCEPT).is_none());
        assert_eq!(r.headers()["cookie"], "a=b");
    }

    #[test]
    fn traefik_and_caddy_headers_name_the_original_request() {
        let (r, asker) = original(&verify_req(&[
            ("host", "portcullis.internal"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/x/../y?q"),
            ("x-forwarded-proto", "https"),
            ("accept", "text/html"),
        ]))
        .unwrap();
        assert_eq!(asker, Asker::Forwarded);
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "/x/../y?q");
        assert_eq!(r.headers()[HOST], "app.example.com");
        assert_eq!(r.headers()[ACCEPT], "text/html");
        assert!(r.headers().get("x-forwarded-uri").is_none());
    }

    #[test]
    fn missing_duplicated_or_malformed_headers_are_400() {
        for headers in [
            vec![],
            vec![("x-forwarded-host", "a.example")],
            vec![("x-original-url", "/relative")],
            vec![
                ("x-forwarded-host", "a.example"),
                ("x-forwarded-uri", "relative"),
            ],
            vec![
                ("x-forwarded-host", "a.example"),
                ("x-forwarded-uri", "/"),
                ("x-forwarded-method", "G T"),
            ],
            vec![
                ("x-forwarded-host", "a.example"),
                ("x-forwarded-host", "b.example"),
                ("x-forwarded-uri", "/"),
            ],
        ] {
            let err = original(&verify_req(&headers)).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        }
    }
}
