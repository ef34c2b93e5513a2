//! The proxy's cookies: the session cookie (`__Host-portcullis` by default) and one short-lived
//! cookie per sign-in in progress (`__Host-portcullis-signin-<12 hex>`).
//!
//! Every cookie is `Secure; HttpOnly; SameSite=Lax; Path=/` with no `Domain`, which is what the
//! `__Host-` prefix demands: the browser sends it only to this host over HTTPS and never lets
//! script read it. `SameSite=Lax` still sends it on the top-level GET that comes back from
//! Entra (`response_mode=query`). The upstream never sees the proxy's cookies; other cookies pass.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;

/// Most sign-ins in progress one browser may hold (parallel tabs); older ones are dropped.
pub const MAX_PENDING: usize = 5;

/// The cookie-name suffix of a pending sign-in.
pub const SIGNIN_INFIX: &str = "-signin-";

/// The `name=value` pairs of every `Cookie` header, in order.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some((n.trim(), v.trim().trim_matches('"')))
        })
}

/// The value of cookie `name`. With several copies (a stale one from another path, or a
/// planted one), each is returned in order so the caller can try them.
pub fn get_all<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    pairs(headers)
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The names of the pending sign-in cookies the browser sent.
pub fn pending_names(headers: &HeaderMap, base: &str) -> Vec<String> {
    let prefix = format!("{base}{SIGNIN_INFIX}");
    let mut names: Vec<String> = pairs(headers)
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(n, _)| n.to_owned())
        .collect();
    names.dedup();
    names
}

/// A `Set-Cookie` value with the proxy's attributes.
pub fn set(name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    // Names are validated at config load and values are base64url: always a valid header.
    HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear(name: &str) -> HeaderValue {
    set(name, "", Duration::ZERO)
}

/// Removes the proxy's own cookies from the request before it goes upstream.
pub fn strip_own(headers: &mut HeaderMap, base: &str) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let own = |name: &str| {
        name == base
            || name
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with(SIGNIN_INFIX))
    };
    fn name(pair: &str) -> &str {
        pair.split_once('=').map_or(pair, |(n, _)| n.trim())
    }
    let pairs = || {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    };
    // Most requests to most routes carry none: leave their header as it is.
    if !pairs().any(|p| own(name(p))) {
        return;
    }
    let kept: Vec<&str> = pairs().filter(|p| !own(name(p))).collect();
    let joined = kept.join("; ");
    headers.remove(COOKIE);
    if !joined.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "__Host-portcullis";

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn session_cookie_is_found_among_others_and_across_headers() {
        let h = with_cookies(&["a=1; __Host-portcullis=abc", "b=2"]);
        assert_eq!(get_all(&h, BASE).collect::<Vec<_>>(), ["abc"]);
        let h = with_cookies(&["__Host-portcullis=one; __Host-portcullis=two"]);
        assert_eq!(get_all(&h, BASE).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(get_all(&with_cookies(&["x=1"]), BASE).count(), 0);
    }

    #[test]
    fn own_cookies_are_stripped_and_others_kept_verbatim() {
        let mut h = with_cookies(&[
            "theme=dark; __Host-portcullis=secret; __Host-portcullis-signin-0123456789ab=p",
            "csrftoken=a=b==; __Host-portcullisx=keep",
        ]);
        strip_own(&mut h, BASE);
        assert_eq!(
            h.get(COOKIE).unwrap(),
            "theme=dark; csrftoken=a=b==; __Host-portcullisx=keep"
        );
        let mut only = with_cookies(&["__Host-portcullis=secret"]);
        strip_own(&mut only, BASE);
        assert!(only.get(COOKIE).is_none());
    }

    #[test]
    fn set_cookie_has_host_prefix_attributes() {
        let v = set(BASE, "abc", Duration::from_secs(3600));
        let s = v.to_str().unwrap();
        for part in [
            "__Host-portcullis=abc",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=3600",
        ] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        assert!(!s.contains("Domain"));
        assert!(clear(BASE).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn pending_names_are_listed_once() {
        let h = with_cookies(&[
            "__Host-portcullis-signin-aaaaaaaaaaaa=1; __Host-portcullis-signin-bbbbbbbbbbbb=2; __Host-portcullis=s",
        ]);
        assert_eq!(pending_names(&h, BASE).len(), 2);
    }
}
