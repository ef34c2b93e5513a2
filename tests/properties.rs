//! Property tests (proptest): generated inputs against the promises the fixed-case tests make
//! one example at a time.
//!
//! - A differential test of routing: for any path spelled from escapes, case variants, `;`,
//!   `//`, `.` and `%`, the route the proxy picks for the canonical path is the route that
//!   owns the resource every common upstream reading names (decode once or twice; drop `;`
//!   parameters; `\` as `/`; fold case; merge slashes; resolve dot segments), or the request
//!   is refused.
//! - No panic, and no identity header through, for arbitrary header names, values and cookies.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use proptest::prelude::*;

use portcullis::auth::cookies;
use portcullis::config::routes::parse;
use portcullis::config::UpstreamConfig;
use portcullis::forward::Clients;
use portcullis::headers::client::{self, Rules};
use portcullis::request::Target;
use portcullis::route::RouteTable;

const HOST: &str = "app.example.com";

fn table(file_rules: &str, opt_ins: &str) -> RouteTable {
    let route = |name: &str, prefix: &str, extra: &str| {
        format!(
            "[[route]]\nname = {name:?}\nhost = {HOST:?}\npath_prefix = {prefix:?}\n\
             upstream = \"http://127.0.0.1:3000\"\nauth = \"public\"\n{extra}\n"
        )
    };
    let text = [
        file_rules.to_owned(),
        route("public", "/public", opt_ins),
        route("admin", "/admin", ""),
        route("settings", "/admin/settings", ""),
        route("api", "/api/", ""),
        route("kb", "/kb", ""),
        route("root", "/", opt_ins),
    ]
    .concat();
    let routing = parse(&text, Path::new("routes.toml")).unwrap();
    let clients = Clients::new(UpstreamConfig {
        connect_timeout: Duration::from_secs(1),
        pool_idle_timeout: Duration::from_secs(1),
        pool_max_idle_per_host: 1,
        ca_file: None,
    });
    RouteTable::build(routing, &clients).unwrap()
}

static STRICT: LazyLock<RouteTable> = LazyLock::new(|| table("", ""));
static OPT_INS: LazyLock<RouteTable> = LazyLock::new(|| {
    table(
        "",
        "allow_encoded_slashes = true\nallow_path_parameters = true",
    )
});
static CASE_SENSITIVE: LazyLock<RouteTable> =
    LazyLock::new(|| table("case_sensitive_paths = true\n", ""));

/// Pieces of paths that servers read in different ways.
const ALPHABET: &[&str] = &[
    "/",
    "//",
    "admin",
    "ADMIN",
    "Admin",
    "public",
    "api",
    "settings",
    "kb",
    "x",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    ";",
    ";x=1",
    "%3b",
    "%3B",
    "%61",
    "%41",
    "%64",
    "%6D",
    "%25",
    "%252e",
    "%252F",
    "%00",
    "%0a",
    "%",
    "%zz",
    "%u0061",
    "a",
    "d",
    "m",
    "i",
    "n",
    "s",
    "k",
    "b",
    "~",
    "%7e",
    "-",
    "_",
    "%20",
    "%C4%B1",
    "%c4%b0",
    "%C5%BF",
    "%E2%84%AA",
    "%C3%9F",
    "%EF%AC%81",
    "%C3%A9",
    "?",
    "?a=%2F",
];

/// Spellings of the routes' first segments, so that many paths start near a route.
const HEADS: &[&str] = &[
    "",
    "admin",
    "ADMIN",
    "aDmin",
    "%61dmin",
    "%41DMIN",
    "adm%69n",
    "admin/settings",
    "Admin/Settings",
    "public",
    "PUBLIC",
    "api",
    "api/",
    "Api/",
    "kb",
    "KB",
    "%6bb",
];

fn spelled_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(HEADS),
        prop::collection::vec(prop::sample::select(ALPHABET), 0..8),
    )
        .prop_map(|(head, parts)| format!("/{head}{}", parts.concat()))
}

/// The route the proxy serves `uri` with, or `None` if it refuses the request.
fn proxy_route(table: &RouteTable, uri: &str) -> Option<(String, String)> {
    let req = Request::builder()
        .uri(uri)
        .header(http::header::HOST, HOST)
        .body(())
        .ok()?;
    let target = Target::of(&req).ok()?;
    let route = table.resolve(&target).ok()?;
    Some((route.name.clone(), target.path().to_owned()))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap());
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One character's simple case mapping (.NET's and Java's `equalsIgnoreCase` map characters
/// one to one).
fn fold(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Box<dyn Iterator<Item = char>> = if upper {
                Box::new(c.to_uppercase())
            } else {
                Box::new(c.to_lowercase())
            };
            let first = m.next().unwrap_or(c);
            // A mapping to several characters (`ß` → `SS`) is not a simple one, except
            // `İ` → `i̇`, whose simple lower case is `i`.
            if m.next().is_some() && c != '\u{130}' {
                c
            } else {
                first
            }
        })
        .collect()
}

/// Structural readings: `\` as `/`, `;` parameters dropped, slashes merged, dot segments
/// resolved.
fn structural(path: &str) -> Vec<String> {
    let slashes = path.replace('\\', "/");
    let without_params = slashes
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/");
    let mut out = Vec::new();
    for p in [slashes.clone(), without_params] {
        let mut segs: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    segs.pop();
                }
                s => segs.push(s),
            }
        }
        let trailing = if p.ends_with('/') && !segs.is_empty() {
            "/"
        } else {
            ""
        };
        out.push(format!("/{}{trailing}", segs.join("/")));
        out.push(p);
    }
    out
}

/// Every way a common upstream could read the forwarded path.
fn readings(forwarded: &str, fold_case: bool) -> Vec<String> {
    let once = percent_decode(forwarded);
    let twice = percent_decode(&once);
    let mut out = Vec::new();
    for decoded in [forwarded.to_owned(), once, twice] {
        for s in structural(&decoded) {
            if fold_case {
                out.push(fold(&s, true));
                out.push(fold(&s, false));
            }
            out.push(s);
        }
    }
    out
}

fn assert_agrees(table: &RouteTable, path: &str, fold_case: bool) -> Result<(), TestCaseError> {
    let Some((route, forwarded)) = proxy_route(table, path) else {
        return Ok(());
    };
    for reading in readings(&forwarded, fold_case) {
        let owner = table.find(HOST, &reading).map(|r| r.name.clone());
        prop_assert_eq!(
            owner.as_deref(),
            Some(route.as_str()),
            "{} was served by {} as {}, but an upstream reads {}",
            path,
            route,
            forwarded,
            reading
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_reading_of_a_served_path_names_the_route_that_served_it(path in spelled_path()) {
        assert_agrees(&STRICT, &path, true)?;
    }

    #[test]
    fn opt_ins_never_let_a_reading_reach_another_route(path in spelled_path()) {
        assert_agrees(&OPT_INS, &path, true)?;
    }

    #[test]
    fn case_sensitive_routing_agrees_with_case_sensitive_upstreams(path in spelled_path()) {
        assert_agrees(&CASE_SENSITIVE, &path, false)?;
    }
}

/// Header names: arbitrary tokens, and the spellings of identity headers.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,24}",
        prop::sample::select(vec![
            "X-Auth-Request-Email",
            "X_Auth_Request_Email",
            "x-auth-request_groups",
            "X-MS-CLIENT-PRINCIPAL",
            "X_MS_CLIENT_PRINCIPAL_NAME",
            "X-Forwarded-User",
            "Remote-User",
            "Connection",
            "Cookie",
            "Upgrade",
            "TE",
        ])
        .prop_map(str::to_owned),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "[ -~]{0,64}".prop_map(String::into_bytes),
        Just(b"x-auth-request-email, te, cookie".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_panic_and_never_carry_identity(
        headers in prop::collection::vec((header_name(), header_value()), 0..16),
        trusted in any::<bool>(),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                map.append(n, v);
            }
        }
        client::clean(&mut map, &Rules {
            removed: &[],
            underscore_allowed: &[],
            trusted_peer: trusted,
            owns_authorization: false,
        });
        for name in map.keys() {
            let n = name.as_str();
            prop_assert!(!n.contains('_'), "{} passed", n);
            prop_assert!(!n.starts_with("x-auth-request-") && !n.starts_with("x-ms-client-principal"), "{} passed", n);
            prop_assert!(n != "connection" && n != "upgrade" && n != "x-forwarded-user" && n != "remote-user", "{} passed", n);
        }
    }

    #[test]
    fn arbitrary_cookies_never_panic_and_the_session_never_passes(
        cookie in prop::collection::vec(any::<u8>(), 0..256),
        id in "[A-Za-z0-9_-]{43}",
    ) {
        let mut headers = HeaderMap::new();
        let mut with_session = cookie.clone();
        with_session.extend_from_slice(format!("; __Host-portcullis={id}; ").as_bytes());
        with_session.extend_from_slice(&cookie);
        for v in [cookie.as_slice(), with_session.as_slice()] {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                headers.append(http::header::COOKIE, v);
            }
        }
        let has_session = HeaderValue::from_bytes(&with_session).is_ok();
        let ids = cookies::session_ids(&headers, "__Host-portcullis");
        prop_assert!(ids.len() <= cookies::MAX_SESSION_COPIES);
        if has_session && ids.len() < cookies::MAX_SESSION_COPIES {
            prop_assert!(ids.contains(&id.as_str()), "the session cookie was not found in {:?}", with_session);
        }
        cookies::strip_own(&mut headers, "__Host-portcullis");
        let session = format!("__Host-portcullis={}", id);
        for v in headers.get_all(http::header::COOKIE) {
            let left = String::from_utf8_lossy(v.as_bytes()).into_owned();
            prop_assert!(!left.contains(&session), "the session passed in {}", left);
        }
        let mut set = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&with_session) {
            set.append(http::header::SET_COOKIE, v);
        }
        cookies::drop_own_set_cookies(&mut set, "__Host-portcullis");
    }

    #[test]
    fn arbitrary_request_targets_never_panic(path in prop::collection::vec(any::<u8>(), 0..64)) {
        let uri = format!("/{}", String::from_utf8_lossy(&path));
        if let Ok(req) = Request::builder().uri(uri.as_str()).header(http::header::HOST, HOST).body(()) {
            if let Ok(target) = Target::of(&req) {
                prop_assert!(target.path().is_ascii());
                prop_assert!(target.path().starts_with('/'));
                let _ = STRICT.resolve(&target);
            }
        }
    }
}

/// Guards the differential tests against vacuity: a fair share of the generated spellings is
/// served (and so checked against every reading), not refused.
#[test]
fn a_fair_share_of_generated_paths_is_served_and_checked() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = spelled_path();
    let (mut served, mut by_admin, total) = (0, 0, 2000);
    for _ in 0..total {
        let path = strategy.new_tree(&mut runner).unwrap().current();
        if let Some((route, _)) = proxy_route(&STRICT, &path) {
            served += 1;
            by_admin += usize::from(route == "admin" || route == "settings");
        }
    }
    println!("{served} of {total} served, {by_admin} by /admin or /admin/settings");
    assert!(served * 5 > total, "only {served} of {total} served");
    assert!(
        by_admin * 10 > total,
        "only {by_admin} of {total} reached /admin"
    );
}
