//! Where a browser goes after signing in or out: only ever back to this host.
//!
//! An open redirect on a sign-in proxy turns a trusted login page into a phishing hop. A
//! return target is accepted only as a path on the current host (`/wiki/page?x=1`), or an
//! absolute `https://` URL naming the current host and port, which is reduced to its path.
//! Rejected: scheme-relative `//evil`, `/\evil` (browsers read `\` as `/`), any backslash or
//! control character, and the same tricks percent-encoded (`/%2F%2Fevil`, `/%5Cevil`).

use http::uri::PathAndQuery;

/// The same-host path to send the browser to, or `None` if `target` could leave this host.
pub fn safe(target: &str, authority: &str) -> Option<String> {
    let path = if let Some(rest) = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
    {
        let (host, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !host.eq_ignore_ascii_case(authority) {
            return None;
        }
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        }
    } else {
        target.to_owned()
    };
    if !path.starts_with('/')
        || path
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ')
    {
        return None;
    }
    for candidate in [path.as_str(), &decode(&path), &decode(&decode(&path))] {
        let b = candidate.as_bytes();
        if b.get(1).is_some_and(|c| *c == b'/' || *c == b'\\') || candidate.contains('\\') {
            return None;
        }
        if candidate.bytes().any(|c| c.is_ascii_control()) {
            return None;
        }
    }
    PathAndQuery::try_from(path.as_str()).ok()?;
    Some(path)
}

/// One round of percent-decoding (invalid escapes are left as they are).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "wiki.example.com";

    #[test]
    fn same_host_paths_are_kept() {
        for ok in ["/", "/wiki/page?x=1&y=%2F", "/a%20b", "/search?q=a//b"] {
            assert_eq!(safe(ok, HOST).as_deref(), Some(ok), "{ok}");
        }
        assert_eq!(
            safe("https://wiki.example.com/x?y=1", HOST).as_deref(),
            Some("/x?y=1")
        );
        assert_eq!(safe("https://WIKI.example.com", HOST).as_deref(), Some("/"));
        assert_eq!(
            safe("https://wiki.example.com:8443/x", "wiki.example.com:8443").as_deref(),
            Some("/x")
        );
    }

    #[test]
    fn every_open_redirect_vector_is_refused() {
        for bad in [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https://evil.example/",
            "https://wiki.example.com.evil.example/",
            "https://wiki.example.com@evil.example/",
            "http://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "/%252F%252Fevil.example",
            "/\tevil",
            "/x\r\nSet-Cookie: a=b",
            "/%0d%0aSet-Cookie:a=b",
            "",
            " /x",
            "https://wiki.example.com:9999/x",
        ] {
            assert_eq!(safe(bad, HOST), None, "{bad:?} must be refused");
        }
    }
}
