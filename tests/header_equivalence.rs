//! Differential property tests: the request path's fast header and cookie handling against
//! plain reference implementations that read one field, or one byte, at a time.
//!
//! - `remove_hop_by_hop` reads the names once and looks up only the fields it found; the
//!   reference looks up every fixed hop-by-hop field.
//! - The cookie readers find `;` and `=` with `memchr`, and a cookie by searching for its
//!   name (`memmem`); the reference splits every pair byte by byte.
//! - `X-Forwarded-For` and `X-Real-IP` write IPv4 addresses octet by octet; the reference is
//!   `Display`.
//!
//! Any difference, for any generated input, is a way to make the proxy and the reference
//! reading disagree, so each test asserts the outputs are identical, not merely similar.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{HeaderName, HeaderValue, CONNECTION, COOKIE, TE};
use http::HeaderMap;
use proptest::prelude::*;

use portcullis::auth::cookies;
use portcullis::headers::{self, ClientAddr};

/// `remove_hop_by_hop` as it read before the single pass over names: every fixed field
/// looked up and removed.
fn reference_remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
    for name in named
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
    {
        if !name.eq_ignore_ascii_case(b"te") {
            if let Ok(name) = std::str::from_utf8(name) {
                headers.remove(name);
            }
        }
    }
    let keeps_trailers = headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if keeps_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Names: the hop-by-hop fields in any case, end-to-end fields, and arbitrary tokens.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Connection",
            "connection",
            "Keep-Alive",
            "Proxy-Connection",
            "TE",
            "Transfer-Encoding",
            "Upgrade",
            "Trailer",
            "X-Hop",
            "x_hop",
            "Host",
            "Cookie",
            "Accept",
        ])
        .prop_map(str::to_owned),
        "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}",
    ]
}

/// Values: lists of names (for `Connection`), `TE` spellings, and arbitrary bytes.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(
            prop::sample::select(vec![
                "keep-alive",
                "close",
                "te",
                "TE",
                "x-hop",
                "X-HOP",
                "upgrade",
                "trailers",
                " trailers ",
                "gzip",
                "host",
                "",
                "\u{e9}",
            ]),
            0..5,
        )
        .prop_map(|names| names.join(",").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..24),
    ]
}

fn map_of(fields: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// Every field's values in order, by name: equal maps read the same to any upstream.
fn fields(map: &HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out: Vec<_> = map
        .keys()
        .map(|k| {
            let values = map.get_all(k).iter().map(|v| v.as_bytes().to_vec());
            (k.as_str().to_owned(), values.collect())
        })
        .collect();
    out.sort();
    out
}

/// The `name=value` pairs as the cookie readers read them before `memchr`.
fn reference_pairs(headers: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            Some((pair[..eq].trim_ascii().to_vec(), value.to_vec()))
        })
        .collect()
}

/// `strip_own` as it read before `memchr`.
fn reference_strip_own(headers: &mut HeaderMap, base: &str) {
    let is_own = |name: &[u8]| {
        name == base.as_bytes()
            || name
                .strip_prefix(base.as_bytes())
                .is_some_and(|rest| rest.starts_with(b"-signin-"))
    };
    let name = |pair: &[u8]| -> Vec<u8> {
        pair.split(|b| *b == b'=')
            .next()
            .unwrap_or(pair)
            .trim_ascii()
            .to_vec()
    };
    let pairs: Vec<Vec<u8>> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if !pairs.iter().any(|p| is_own(&name(p))) {
        return;
    }
    let kept: Vec<&[u8]> = pairs
        .iter()
        .filter(|p| !is_own(&name(p)))
        .map(Vec::as_slice)
        .collect();
    let joined = kept.join(&b"; "[..]);
    headers.remove(COOKIE);
    if !joined.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            headers.insert(COOKIE, v);
        }
    }
}

const BASE: &str = "__Host-portcullis";

/// Cookie headers: pieces built from the proxy's names, look-alikes, quotes, stray `;`, `=`
/// and white space, and arbitrary bytes.
fn cookie_value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(vec![
            "__Host-portcullis=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "__Host-portcullis=\"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\"",
            " __Host-portcullis = CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC ",
            "__Host-portcullis-signin-0123456789ab=x",
            "__Host-portcullisX=y",
            "__host-portcullis=z",
            "__Host-portcullis",
            "a=b=c",
            "\t__Host-portcullis=DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",
            "x=__Host-portcullis=y",
            "__Host-portcullis__Host-portcullis=q",
            "__Host-portcullis\u{a0}=nbsp",
            "__Host-portcullis=",
            "a=__Host-portcullis",
            "__Host-portcullis=padded==",
            "=",
            "",
            " ",
            "\t",
            "theme=dark",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.join(&b';'))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hop_by_hop_removal_matches_the_field_by_field_reference(
        given in prop::collection::vec((field_name(), field_value()), 0..10),
    ) {
        let mut fast = map_of(&given);
        let mut reference = fast.clone();
        headers::remove_hop_by_hop(&mut fast);
        reference_remove_hop_by_hop(&mut reference);
        prop_assert_eq!(fields(&fast), fields(&reference));
    }

    #[test]
    fn cookie_readers_match_the_byte_by_byte_reference(
        values in prop::collection::vec(cookie_value(), 0..3),
    ) {
        let mut map = HeaderMap::new();
        for v in &values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                map.append(COOKIE, v);
            }
        }
        // The session name, a pending sign-in's, a short one, and names that cannot be
        // searched for (read pair by pair).
        for name in [BASE, "__Host-portcullis-signin-0123456789ab", "a", "a b", "a=b", ""] {
            let pairs = reference_pairs(&map);
            let expected: Vec<&str> = pairs
                .iter()
                .filter(|(n, _)| n == name.as_bytes())
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .collect();
            prop_assert_eq!(cookies::get_all(&map, name).collect::<Vec<_>>(), expected, "name {:?}", name);
        }

        let mut fast = map.clone();
        let mut reference = map;
        cookies::strip_own(&mut fast, BASE);
        reference_strip_own(&mut reference, BASE);
        prop_assert_eq!(fields(&fast), fields(&reference));
    }

    #[test]
    fn forwarded_addresses_read_as_display_writes_them(
        v4 in any::<u32>(),
        v6 in any::<u128>(),
        trusted in any::<bool>(),
    ) {
        for ip in [IpAddr::V4(Ipv4Addr::from(v4)), IpAddr::V6(Ipv6Addr::from(v6))] {
            let mut map = HeaderMap::new();
            let addr = ClientAddr { peer: ip, trusted, client: ip };
            headers::set_forwarded(&mut map, &addr, "app.example.com");
            let text = ip.to_string();
            prop_assert_eq!(map.get(headers::X_FORWARDED_FOR).map(HeaderValue::as_bytes), Some(text.as_bytes()));
            prop_assert_eq!(map.get(headers::X_REAL_IP).map(HeaderValue::as_bytes), Some(text.as_bytes()));
        }
    }
}

/// Guards the cookie test against vacuity: the generated headers often hold the session
/// cookie, and `strip_own` often has something to remove.
#[test]
fn generated_cookie_headers_often_name_the_session() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = cookie_value();
    let (mut named, total) = (0, 1000);
    for _ in 0..total {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            map.append(COOKIE, v);
        }
        named += usize::from(cookies::get_all(&map, BASE).next().is_some());
    }
    println!("{named} of {total} named the session");
    assert!(
        named * 4 > total,
        "only {named} of {total} named the session"
    );
}
