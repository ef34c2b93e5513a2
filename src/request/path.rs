//! The canonical request path: one spelling per resource, so that the route, the policy and the
//! upstream agree on which resource a request names.
//!
//! Web servers read a path in different ways: they decode percent-escapes (once, or twice),
//! fold case (ASP.NET Core, IIS), merge `//`, resolve `..`, drop `;` parameters (Tomcat,
//! Jetty, Spring) or treat `\` as `/` (Windows). A proxy that routes on the raw bytes while
//! its upstream reads them another way can be walked around (`/%61dmin`, `/admin;x`,
//! `/public/..%2fadmin`). So the proxy routes on, authorizes, and forwards one canonical
//! spelling, and refuses (400) spellings whose reading differs between common servers:
//!
//! - escapes of unreserved characters are decoded (`%61` → `a`, RFC 3986 §2.3), the hex of
//!   every other escape is upper case (§6.2.2.1), bytes outside ASCII are escaped, and
//!   repeated slashes are merged;
//! - refused: control characters (raw or escaped), a raw `\`, a malformed escape (`%zz`,
//!   `%u0061`), an escaped `%` before two hex digits (`%252e`, decoded twice to `.`), and dot
//!   segments (`.`, `..`) in any spelling;
//! - noted, and refused unless the matched route opts in: escaped `/` or `\` (`%2F`, `%5C`;
//!   `allow_encoded_slashes`) and `;` path parameters (raw or `%3B`; `allow_path_parameters`);
//! - noted, and refused while routes match without case: escapes of the few non-ASCII letters
//!   that .NET's case-insensitive comparison folds to ASCII (`ı` → `I`, `ſ` → `S`, `K` → `k`,
//!   `İ` → `i`).
//!
//! The query string is never touched; routing does not read it.

use std::borrow::Cow;

/// What canonicalization noticed in a path that only the matched route can allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notes {
    /// Holds `%2F` or `%5C`, which an upstream may decode into a segment separator.
    pub encoded_slash: bool,
    /// Holds a `;` (or `%3B`), which some upstreams strip with what follows in its segment.
    pub parameters: bool,
    /// Holds an escaped non-ASCII letter that case-insensitive matching folds to ASCII.
    pub case_trap: bool,
}

/// Escaped non-ASCII letters whose .NET (ordinal, ignore-case) or Unicode case mapping is an
/// ASCII letter: `ı` U+0131, `İ` U+0130, `ſ` U+017F, `K` U+212A.
const CASE_TRAPS: [&str; 4] = ["%C4%B1", "%C4%B0", "%C5%BF", "%E2%84%AA"];

/// Canonicalizes `raw` (the path of a request target, without query), or says in a short,
/// client-safe sentence why it is refused. The result is ASCII; it borrows `raw` when
/// `raw` is already canonical (the common case).
pub fn canonicalize(raw: &str) -> Result<(Cow<'_, str>, Notes), &'static str> {
    if !raw.starts_with('/') {
        return Err("The request path must start with \"/\".");
    }
    let path = if is_canonical(raw.as_bytes()) {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(rewrite(raw.as_bytes())?)
    };
    let notes = Notes {
        encoded_slash: contains_escape(&path, &["%2F", "%5C"]),
        parameters: path.contains(';') || contains_escape(&path, &["%3B"]),
        case_trap: contains_escape(&path, &CASE_TRAPS),
    };
    if has_dot_segment(&path) {
        return Err("The request path contains \".\" or \"..\" segments.");
    }
    Ok((path, notes))
}

/// A canonical path as an upstream that decodes `%2F` and `%5C` into separators reads it
/// (slashes merged); for routes that allow encoded slashes.
pub fn slashes_decoded(path: &str) -> String {
    merge_slashes(&path.replace("%2F", "/").replace("%5C", "/"))
}

/// A canonical path as Tomcat or Spring read it: each segment without its `;` parameters.
pub fn parameters_dropped(path: &str) -> String {
    let plain = path.replace("%3B", ";");
    let segments: Vec<&str> = plain.split('/').map(without_parameters).collect();
    merge_slashes(&segments.join("/"))
}

fn without_parameters(segment: &str) -> &str {
    segment.split_once(';').map_or(segment, |(kept, _)| kept)
}

/// Dot segments, with `%2F`/`%5C` as separators too and `;` parameters ignored: some
/// upstream reading could resolve them.
fn has_dot_segment(path: &str) -> bool {
    let is_dot = |segment: &str| matches!(without_parameters(segment), "." | "..");
    if !path.contains('.') {
        return false;
    }
    if !path.contains('%') {
        // No escaped separators or parameters to decode: read the path as it is, without
        // allocating (most paths with a dot are file names like `/app.js`).
        return path.split('/').any(is_dot);
    }
    slashes_decoded(path)
        .replace("%3B", ";")
        .split('/')
        .any(is_dot)
}

/// The common case, answered without allocating: only plain characters, no `//`.
fn is_canonical(raw: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in raw {
        let plain = b.is_ascii_graphic() && b != b'%' && b != b'\\';
        if !plain || (b == b'/' && prev == b'/') {
            return false;
        }
        prev = b;
    }
    true
}

fn rewrite(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        match b {
            b'%' => {
                let v = match (raw.get(i).and_then(hex), raw.get(i + 1).and_then(hex)) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err("The request path holds a malformed percent-escape."),
                };
                i += 2;
                if v.is_ascii_control() {
                    return Err("The request path holds a control character.");
                }
                if is_unreserved(v) {
                    push_plain(&mut out, v);
                } else {
                    push_escaped(&mut out, v);
                }
            }
            b'\\' => return Err("The request path holds a \"\\\"."),
            b if b.is_ascii_control() => return Err("The request path holds a control character."),
            b' ' => push_escaped(&mut out, b),
            b if b.is_ascii() => push_plain(&mut out, b),
            b => push_escaped(&mut out, b),
        }
    }
    if encoded_twice(&out) {
        return Err("The request path is percent-encoded twice.");
    }
    Ok(out)
}

/// An escaped `%` before two hex digits (`%252e`, or `%25%32%65` once its unreserved escapes
/// are decoded): a server that decodes twice reads another character there.
fn encoded_twice(out: &str) -> bool {
    out.match_indices("%25").any(|(i, _)| {
        let next = out.as_bytes().get(i + 3..i + 5);
        next.is_some_and(|n| n.iter().all(u8::is_ascii_hexdigit))
    })
}

fn push_plain(out: &mut String, b: u8) {
    if b == b'/' && out.ends_with('/') {
        return;
    }
    out.push(char::from(b));
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

fn hex(b: &u8) -> Option<u8> {
    char::from(*b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// RFC 3986 §2.3: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether canonical `path` holds one of `escapes` (upper-case hex, as canonical paths are).
fn contains_escape(path: &str, escapes: &[&str]) -> bool {
    path.contains('%') && escapes.iter().any(|e| path.contains(e))
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
