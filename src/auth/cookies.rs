//! The proxy's cookies: the session cookie (`__Host-portcullis` by default) and one short-lived
//! cookie per sign-in in progress (`__Host-portcullis-signin-<12 hex>`).
//!
//! Every cookie is `Secure; HttpOnly; SameSite=Lax; Path=/` with no `Domain`, which is what the
//! `__Host-` prefix demands: the browser sends it only to this host over HTTPS and never lets
//! script read it. `SameSite=Lax` still sends it on the top-level GET that comes back from
//! Entra (`response_mode=query`). The upstream never sees the proxy's cookies; other cookies pass.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{HeaderValue, COOKIE, SET_COOKIE};
use http::HeaderMap;

/// Most sign-ins in progress one browser may hold (parallel tabs); older ones are dropped.
pub const MAX_PENDING: usize = 5;

/// The cookie-name suffix of a pending sign-in.
pub const SIGNIN_INFIX: &str = "-signin-";

/// Most distinct session IDs one request can make the proxy look up: a browser may hold a
/// stale copy beside the live one, never hundreds.
pub const MAX_SESSION_COPIES: usize = 3;

/// The `name=value` pairs of every `Cookie` header, in order. Read as bytes, so one cookie
/// that is not ASCII (some sites set them) never hides the others.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    pairs_of(headers.get_all(COOKIE).iter())
}

/// [`pairs`] of the given `Cookie` values.
fn pairs_of<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    values
        .flat_map(|v| pieces(v.as_bytes()))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = memchr::memchr(b'=', pair)?;
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            Some((pair[..eq].trim_ascii(), value))
        })
}

/// The `;`-separated pieces of a `Cookie` value, empty ones included, exactly as
/// `value.split(|b| *b == b';')` gives them. The separators are found in one `memchr` pass,
/// several bytes at a time: a browser's `Cookie` header often carries kilobytes of other
/// cookies for the same site, and every request to every route reads it (`strip_own`).
fn pieces(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut ends = memchr::memchr_iter(b';', value).chain(std::iter::once(value.len()));
    let mut start = 0;
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let piece = &value[start..end];
        start = end + 1;
        Some(piece)
    })
}

/// The value of cookie `name`. With several copies (a stale one from another path, or a
/// planted one), each is returned in order so the caller can try them.
///
/// The same reading as [`pairs`], but a pair is only looked into when it starts with `name`:
/// the other cookies of a long header cost a `;` search and a comparison each. Only a plain
/// name (no white space, `;` or `=`) can be read so; any other is read pair by pair.
pub fn get_all<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    // One lookup of the field, whichever way it is read.
    let values = headers.get_all(COOKIE);
    let plain = is_plain(name.as_bytes());
    let searched = plain.then(|| {
        values
            .iter()
            .flat_map(|v| pieces(v.as_bytes()))
            .filter_map(move |piece| value_named(piece, name.as_bytes()))
    });
    let read = (!plain).then(|| {
        pairs_of(values.iter())
            .filter(move |(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    });
    searched
        .into_iter()
        .flatten()
        .chain(read.into_iter().flatten())
        .filter_map(|v| std::str::from_utf8(v).ok())
}

/// A name [`value_named`] can look for: no byte a pair's name is trimmed of or split at, so
/// that a pair [`pairs`] reads as named `name` is exactly one that starts with it.
fn is_plain(name: &[u8]) -> bool {
    !name.is_empty()
        && !name
            .iter()
            .any(|b| b.is_ascii_whitespace() || *b == b';' || *b == b'=')
}

/// The value of one `;`-separated piece if its name is `name` (which must be
/// [plain](is_plain)), read as [`pairs`] reads it.
fn value_named<'a>(piece: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = piece.trim_ascii_start().strip_prefix(name)?;
    let value = rest.trim_ascii_start().strip_prefix(b"=")?.trim_ascii();
    Some(
        value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value),
    )
}

/// The distinct values of cookie `name` shaped like a session ID, in order, at most
/// [`MAX_SESSION_COPIES`]: what is worth a store lookup.
pub fn session_ids<'a>(headers: &'a HeaderMap, name: &'a str) -> SessionIds<'a> {
    let mut ids = SessionIds {
        ids: [""; MAX_SESSION_COPIES],
        len: 0,
    };
    for v in get_all(headers, name).filter(|v| looks_like_token(v)) {
        if !ids.contains(&v) {
            ids.ids[ids.len] = v;
            ids.len += 1;
            if ids.len == MAX_SESSION_COPIES {
                break;
            }
        }
    }
    ids
}

/// The IDs [`session_ids`] found, held inline: finding a request's session allocates nothing.
pub struct SessionIds<'a> {
    ids: [&'a str; MAX_SESSION_COPIES],
    len: usize,
}

impl<'a> std::ops::Deref for SessionIds<'a> {
    type Target = [&'a str];

    fn deref(&self) -> &[&'a str] {
        &self.ids[..self.len]
    }
}

impl<'a> IntoIterator for SessionIds<'a> {
    type Item = &'a str;
    type IntoIter = std::iter::Take<std::array::IntoIter<&'a str, MAX_SESSION_COPIES>>;

    fn into_iter(self) -> Self::IntoIter {
        self.ids.into_iter().take(self.len)
    }
}

/// A cookie value shaped like the proxy's IDs (43 base64url characters): anything else is not
/// worth a store lookup.
pub fn looks_like_token(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The names of the pending sign-in cookies the browser sent.
pub fn pending_names(headers: &HeaderMap, base: &str) -> Vec<String> {
    let prefix = format!("{base}{SIGNIN_INFIX}");
    let mut names: Vec<String> = pairs(headers)
        .filter(|(n, _)| n.starts_with(prefix.as_bytes()))
        .filter_map(|(n, _)| std::str::from_utf8(n).ok().map(str::to_owned))
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

/// Whether `name` is one of the proxy's cookies (`base`, or a pending sign-in's).
fn is_own(name: &[u8], base: &str) -> bool {
    name == base.as_bytes()
        || name
            .strip_prefix(base.as_bytes())
            .is_some_and(|rest| rest.starts_with(SIGNIN_INFIX.as_bytes()))
}

/// Removes the proxy's own cookies from the request before it goes upstream, whatever else
/// the header holds (non-ASCII cookies included).
pub fn strip_own(headers: &mut HeaderMap, base: &str) {
    fn name(pair: &[u8]) -> &[u8] {
        memchr::memchr(b'=', pair)
            .map_or(pair, |eq| &pair[..eq])
            .trim_ascii()
    }
    // Most requests to most routes carry none: leave their header as it is. Every own
    // cookie's name starts with `base`, so a header where no pair does holds none (the
    // names are plain: config/session.rs).
    let base_plain = is_plain(base.as_bytes());
    // One lookup of the field for every pass below.
    let field = headers.get_all(COOKIE);
    let values = || field.iter().map(HeaderValue::as_bytes);
    if base_plain
        && !values()
            .flat_map(pieces)
            .any(|p| p.trim_ascii_start().starts_with(base.as_bytes()))
    {
        return;
    }
    // Room for the longest result: a kept piece grows by at most one byte (its `; `), and
    // a piece is at least two bytes with its `;` (`a;a;a` becomes `a; a; a`).
    let len: usize = values().map(<[u8]>::len).sum();
    let mut joined = Vec::with_capacity(len + len / 2 + 2);
    let mut dropped = false;
    for pair in values()
        .flat_map(pieces)
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
    {
        // An own cookie's name starts the (trimmed) pair: only then is its name looked for.
        if pair.starts_with(base.as_bytes()) && is_own(name(pair), base) {
            dropped = true;
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(pair);
    }
    if !dropped {
        // A look-alike name (`__Host-portcullisX`): the header stays as the client sent it.
        return;
    }
    headers.remove(COOKIE);
    if !joined.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            headers.insert(COOKIE, v);
        }
    }
}

/// Removes an upstream's `Set-Cookie` for the proxy's own cookie names: an application must
/// not overwrite or delete the session (session fixation, forced sign-out).
pub fn drop_own_set_cookies(headers: &mut HeaderMap, base: &str) {
    let own = |v: &HeaderValue| {
        let b = v.as_bytes();
        let name = b.split(|c| *c == b'=').next().unwrap_or(b);
        is_own(name.trim_ascii(), base)
    };
    if !headers.get_all(SET_COOKIE).iter().any(own) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !own(v))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in kept {
        headers.append(SET_COOKIE, v);
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

    #[test]
    fn one_non_ascii_cookie_hides_neither_the_session_nor_its_removal() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"pref=caf\xc3\xa9; __Host-portcullis=abc; lang=de").unwrap(),
        );
        assert_eq!(get_all(&h, BASE).collect::<Vec<_>>(), ["abc"]);
        strip_own(&mut h, BASE);
        assert_eq!(
            h.get(COOKIE).unwrap().as_bytes(),
            b"pref=caf\xc3\xa9; lang=de"
        );
    }

    #[test]
    fn hundreds_of_session_copies_cost_at_most_a_few_lookups() {
        let id = "a".repeat(43);
        let mut many = vec![format!("__Host-portcullis={id}"); 300];
        many.push(format!("__Host-portcullis={}", "b".repeat(43)));
        many.extend((0..50).map(|i| format!("__Host-portcullis={i:0>43}")));
        let h = with_cookies(&[many.join("; ").as_str()]);
        let ids = session_ids(&h, BASE);
        assert_eq!(ids.len(), MAX_SESSION_COPIES);
        assert_eq!(ids[0], id);
        assert_eq!(ids[1], "b".repeat(43));
        let junk = with_cookies(&["__Host-portcullis=short; __Host-portcullis=also-not-an-id"]);
        assert!(session_ids(&junk, BASE).is_empty());
    }

    #[test]
    fn an_upstream_cannot_set_the_proxys_cookies() {
        let mut h = HeaderMap::new();
        for v in [
            "__Host-portcullis=planted; Path=/; Secure",
            "app=1; Path=/",
            "__Host-portcullis-signin-0123456789ab=x",
            " __Host-portcullis =spaced",
            "__Host-portcullisx=kept",
        ] {
            h.append(SET_COOKIE, HeaderValue::from_static(v));
        }
        drop_own_set_cookies(&mut h, BASE);
        let left: Vec<&str> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["app=1; Path=/", "__Host-portcullisx=kept"]);
    }
}
