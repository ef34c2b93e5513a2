//! Which requests to `/.auth/logout` may sign out (logout CSRF).
//!
//! Signing out ends the session here and, with `post_logout_redirect_uri`, the user's Entra ID
//! session too. Another site must not be able to do that to a visitor: the session cookie is
//! `SameSite=Lax`, which browsers still send on a cross-site top-level GET, and Entra's
//! sign-out needs no cookie of ours at all. The rule reads Fetch Metadata (`Sec-Fetch-Site`,
//! sent by every current browser since 2020–2023) and `Origin`:
//!
//! - `Origin`, when present, must be this host's own origin (`https://host[:port]`);
//!   `Origin: null` is not.
//! - A GET signs out only with `Sec-Fetch-Site: same-origin` (a link or script on this host)
//!   or `none` (typed, bookmarked). A GET without the header comes from an old browser, which
//!   may be following a link from anywhere, or from a program, which can POST.
//! - A POST signs out unless `Sec-Fetch-Site` names another site (`cross-site`, `same-site`):
//!   a form on another site is refused, while programs that send neither header still work.
//!
//! Every other request gets a confirmation page whose one button POSTs to `/.auth/logout`
//! with the same (checked) `rd`. App Service apps that link to `GET /.auth/logout` from their
//! own pages keep working: those links are same-origin. `same-site` is refused because a
//! sibling host may be another team's application, or anyone's.

use http::header::{HeaderValue, ORIGIN};
use http::{Method, Request, Response};

use super::return_to;
use crate::body::Body;
use crate::context::RequestCtx;
use crate::request::Target;

/// Fetch Metadata's request header (W3C Fetch Metadata Request Headers §2.4).
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Whether `req` (a GET or POST) may sign out without asking.
pub(super) fn may_sign_out<B>(req: &Request<B>, target: &Target) -> bool {
    let h = req.headers();
    if h.get(ORIGIN).is_some_and(|o| !is_own_origin(o, target)) {
        return false;
    }
    match h.get(SEC_FETCH_SITE).map(HeaderValue::as_bytes) {
        Some(b"same-origin" | b"none") => true,
        Some(_) => false,
        None => req.method() == Method::POST,
    }
}

/// The confirmation page: a form that POSTs to `/.auth/logout` with the request's `rd` if it
/// is a safe return target (`/` otherwise). It signs nobody out itself.
pub(super) fn confirmation<B>(
    req: &Request<B>,
    target: &Target,
    ctx: &RequestCtx<'_>,
) -> Response<Body> {
    let rd = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "rd")
        .and_then(|(_, v)| return_to::safe(&v, target.authority.as_str()))
        .unwrap_or_else(|| "/".into());
    let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    tracing::debug!(request_id = ctx.id_str(), "sign-out asks for confirmation");
    crate::metrics::auth("sign_out_confirmation", "");
    crate::pages::sign_out_confirmation(
        &format!("/.auth/logout?rd={rd}"),
        ctx.id_str(),
        ctx.pages(),
    )
}

/// `Origin` names the scheme, host and port the browser used for this request.
fn is_own_origin(origin: &HeaderValue, target: &Target) -> bool {
    let Some(url) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return false;
    };
    url.scheme() == "https"
        && url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&target.host))
        && url.port_or_known_default() == Some(target.authority.port_u16().unwrap_or(443))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> (Request<()>, Target) {
        let mut b = Request::builder()
            .method(method)
            .uri("/.auth/logout")
            .header("host", "app.example.com:8443");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(()).unwrap();
        let target = Target::of(&req).unwrap();
        (req, target)
    }

    fn allowed(method: Method, headers: &[(&str, &str)]) -> bool {
        let (req, target) = request(method, headers);
        may_sign_out(&req, &target)
    }

    const OWN: &str = "https://app.example.com:8443";

    #[test]
    fn a_get_signs_out_only_from_this_origin_or_the_user_themselves() {
        assert!(allowed(Method::GET, &[("sec-fetch-site", "same-origin")]));
        assert!(allowed(Method::GET, &[("sec-fetch-site", "none")]));
        for site in ["cross-site", "same-site", "whatever"] {
            assert!(!allowed(Method::GET, &[("sec-fetch-site", site)]), "{site}");
        }
        assert!(!allowed(Method::GET, &[]), "no Fetch Metadata: ask");
    }

    #[test]
    fn a_post_signs_out_unless_it_says_it_comes_from_elsewhere() {
        assert!(allowed(Method::POST, &[]));
        assert!(allowed(
            Method::POST,
            &[("sec-fetch-site", "same-origin"), ("origin", OWN)]
        ));
        assert!(!allowed(Method::POST, &[("sec-fetch-site", "cross-site")]));
        assert!(!allowed(Method::POST, &[("sec-fetch-site", "same-site")]));
        assert!(!allowed(
            Method::POST,
            &[("origin", "https://evil.example")]
        ));
    }

    #[test]
    fn only_this_hosts_exact_origin_counts_as_its_own() {
        for other in [
            "https://evil.example",
            "https://app.example.com",
            "https://app.example.com:9443",
            "http://app.example.com:8443",
            "https://app.example.com.evil.example:8443",
            "null",
            "",
        ] {
            assert!(
                !allowed(
                    Method::POST,
                    &[("sec-fetch-site", "same-origin"), ("origin", other)]
                ),
                "{other:?}"
            );
        }
        assert!(allowed(
            Method::POST,
            &[("origin", "https://APP.example.com:8443")]
        ));
    }

    #[test]
    fn the_default_port_is_the_same_origin_written_or_not() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/.auth/logout")
            .header("host", "app.example.com")
            .header("origin", "https://app.example.com")
            .body(())
            .unwrap();
        let target = Target::of(&req).unwrap();
        assert!(may_sign_out(&req, &target));
    }
}
