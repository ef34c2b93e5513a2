use super::*;

use std::time::Duration;

use crate::config::AuthMode;
use crate::error::ProxyError;

use std::path::Path;

use crate::config::routes::parse;
use crate::config::UpstreamConfig;

fn clients() -> Clients {
    Clients::new(UpstreamConfig {
        connect_timeout: Duration::from_secs(5),
        pool_idle_timeout: Duration::from_secs(4),
        pool_max_idle_per_host: 8,
        ca_file: None,
    })
}

/// A routing file with one route per `(name, host, path_prefix)`, in the given order.
fn routes_toml(routes: &[(&str, &str, &str)]) -> String {
    routes
        .iter()
        .map(|(name, host, prefix)| {
            format!(
                "[[route]]\nname = {name:?}\nhost = {host:?}\npath_prefix = {prefix:?}\n\
                 upstream = \"http://127.0.0.1:3000\"\n\n"
            )
        })
        .collect()
}

fn build_toml(text: &str) -> RouteTable {
    let specs = parse(text, Path::new("/etc/portcullis/routes.toml")).unwrap();
    RouteTable::build(specs, &clients()).unwrap()
}

fn table(routes: &[(&str, &str, &str)]) -> RouteTable {
    build_toml(&routes_toml(routes))
}

/// The name of the route serving `host` and `path`, if any.
fn found<'t>(table: &'t RouteTable, host: &str, path: &str) -> Option<&'t str> {
    table.find(host, path).map(|r| r.name.as_str())
}

/// A single route on `app.example.com` with the given prefix, upstream and strip setting.
fn single(prefix: &str, upstream: &str, strip: bool) -> Arc<Route> {
    let text = format!(
        "[[route]]\nname = \"r\"\nhost = \"app.example.com\"\npath_prefix = {prefix:?}\n\
         upstream = {upstream:?}\nstrip_prefix = {strip}\n"
    );
    let table = build_toml(&text);
    Arc::clone(table.find("app.example.com", prefix).unwrap())
}

// --- hosts ----------------------------------------------------------------------------------

#[test]
fn exact_host_matches_only_itself() {
    let t = table(&[("app", "app.example.com", "/")]);
    assert_eq!(found(&t, "app.example.com", "/"), Some("app"));
    assert_eq!(found(&t, "other.example.com", "/"), None);
    assert_eq!(found(&t, "x.app.example.com", "/"), None);
}

#[test]
fn wildcard_matches_one_or_more_labels_but_not_the_bare_domain() {
    let t = table(&[("wild", "*.example.com", "/")]);
    assert_eq!(found(&t, "a.example.com", "/"), Some("wild"));
    assert_eq!(found(&t, "a.b.example.com", "/"), Some("wild"));
    assert_eq!(found(&t, "example.com", "/"), None);
    assert_eq!(found(&t, "badexample.com", "/"), None);
}

#[test]
fn exact_host_beats_wildcard() {
    let t = table(&[
        ("wild", "*.example.com", "/"),
        ("exact", "a.example.com", "/"),
    ]);
    assert_eq!(found(&t, "a.example.com", "/"), Some("exact"));
    assert_eq!(found(&t, "b.example.com", "/"), Some("wild"));
}

#[test]
fn longer_wildcard_suffix_beats_shorter() {
    let t = table(&[
        ("short", "*.example.com", "/"),
        ("long", "*.eu.example.com", "/"),
    ]);
    assert_eq!(found(&t, "a.eu.example.com", "/"), Some("long"));
    assert_eq!(found(&t, "a.us.example.com", "/"), Some("short"));
    assert_eq!(found(&t, "eu.example.com", "/"), Some("short"));
}

#[test]
fn any_host_catches_what_nothing_else_matches() {
    let t = table(&[
        ("exact", "a.example.com", "/"),
        ("wild", "*.example.org", "/"),
        ("rest", "*", "/"),
    ]);
    assert_eq!(found(&t, "a.example.com", "/"), Some("exact"));
    assert_eq!(found(&t, "b.example.org", "/"), Some("wild"));
    assert_eq!(found(&t, "elsewhere.net", "/x"), Some("rest"));
    assert_eq!(found(&t, "example.org", "/"), Some("rest"));
}

#[test]
fn only_the_most_specific_host_group_is_searched() {
    let t = table(&[
        ("api", "api.example.com", "/api"),
        ("wild-api", "*.example.com", "/api"),
        ("rest", "*", "/"),
    ]);
    assert_eq!(found(&t, "api.example.com", "/api/x"), Some("api"));
    assert_eq!(found(&t, "api.example.com", "/other"), None);
    assert_eq!(found(&t, "b.example.com", "/other"), None);
    assert_eq!(found(&t, "example.net", "/other"), Some("rest"));
}

#[test]
fn serves_host_follows_the_host_groups() {
    let t = table(&[
        ("api", "api.example.com", "/api"),
        ("wild", "*.example.org", "/"),
    ]);
    assert!(t.serves_host("api.example.com"));
    assert!(t.serves_host("x.example.org"));
    assert!(!t.serves_host("example.org"));
    assert!(!t.serves_host("other.example.com"));

    let with_any = table(&[("rest", "*", "/api")]);
    assert!(with_any.serves_host("anything.test"));
}

#[test]
fn names_host_never_counts_a_catch_all_route() {
    let t = table(&[
        ("api", "api.example.com", "/api"),
        ("wild", "*.example.org", "/"),
        ("rest", "*", "/"),
    ]);
    assert!(t.names_host("api.example.com"));
    assert!(t.names_host("x.example.org"));
    assert!(!t.names_host("example.org"));
    assert!(!t.names_host("evil.test"));
    assert!(t.serves_host("evil.test"));
}

#[test]
fn serves_host_is_true_even_when_no_path_matches() {
    let t = table(&[("api", "api.example.com", "/api")]);
    assert!(t.serves_host("api.example.com"));
    assert_eq!(found(&t, "api.example.com", "/"), None);
}

// --- paths ----------------------------------------------------------------------------------

#[test]
fn longest_prefix_wins_regardless_of_file_order() {
    let routes = [
        ("root", "app.example.com", "/"),
        ("api", "app.example.com", "/api"),
        ("v2", "app.example.com", "/api/v2"),
    ];
    let mut reversed = routes;
    reversed.reverse();
    for t in [table(&routes), table(&reversed)] {
        assert_eq!(found(&t, "app.example.com", "/api/v2/users"), Some("v2"));
        assert_eq!(found(&t, "app.example.com", "/api/v1/users"), Some("api"));
        assert_eq!(found(&t, "app.example.com", "/index.html"), Some("root"));
    }
}

#[test]
fn prefix_without_trailing_slash_matches_on_segment_boundaries() {
    let t = table(&[("api", "app.example.com", "/api")]);
    assert_eq!(found(&t, "app.example.com", "/api"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/api/"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/api/x"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/apix"), None);
    assert_eq!(found(&t, "app.example.com", "/ap"), None);
}

#[test]
fn prefix_with_trailing_slash_matches_below_it_and_itself_without_slash() {
    let t = table(&[("api", "app.example.com", "/api/")]);
    assert_eq!(found(&t, "app.example.com", "/api/x"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/api/"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/api"), Some("api"));
    assert_eq!(found(&t, "app.example.com", "/apix"), None);
}

#[test]
fn root_prefix_matches_every_path() {
    let t = table(&[("root", "app.example.com", "/")]);
    assert_eq!(found(&t, "app.example.com", "/"), Some("root"));
    assert_eq!(found(&t, "app.example.com", "/deep/path?q=1"), Some("root"));
}

#[test]
fn longer_prefix_wins_over_the_next_segment_miss() {
    let t = table(&[
        ("root", "app.example.com", "/"),
        ("api", "app.example.com", "/api"),
    ]);
    assert_eq!(found(&t, "app.example.com", "/apix"), Some("root"));
}

// --- upstream_path --------------------------------------------------------------------------

#[test]
fn upstream_path_is_the_request_path_without_strip_prefix() {
    let r = single("/api", "http://h", false);
    assert_eq!(r.upstream_path("/api/users"), "/api/users");
    assert_eq!(r.upstream_path("/api"), "/api");
}

#[test]
fn upstream_path_drops_the_prefix_with_strip_prefix() {
    let r = single("/api", "http://h", true);
    assert_eq!(r.upstream_path("/api/users"), "/users");
    assert_eq!(r.upstream_path("/api/"), "/");
}

#[test]
fn upstream_path_equal_to_the_prefix_becomes_root_with_strip_prefix() {
    assert_eq!(single("/api", "http://h", true).upstream_path("/api"), "/");
    assert_eq!(single("/api/", "http://h", true).upstream_path("/api"), "/");
}

#[test]
fn upstream_path_with_slash_terminated_prefix_keeps_the_leading_slash_when_stripping() {
    let r = single("/api/", "http://h", true);
    assert_eq!(r.upstream_path("/api/users"), "/users");
}

#[test]
fn upstream_path_goes_under_the_upstream_base_path() {
    let r = single("/api", "http://h:8080/v1/", false);
    assert_eq!(r.upstream_path("/api/users"), "/v1/api/users");

    let r = single("/api", "http://h:8080/v1", true);
    assert_eq!(r.upstream_path("/api/users"), "/v1/users");
    assert_eq!(r.upstream_path("/api"), "/v1/");
}

#[test]
fn upstream_path_with_root_prefix_and_strip_is_unchanged() {
    let r = single("/", "http://h", true);
    assert_eq!(r.upstream_path("/"), "/");
    assert_eq!(r.upstream_path("/users/1"), "/users/1");

    let r = single("/", "http://h/base", true);
    assert_eq!(r.upstream_path("/users/1"), "/base/users/1");
}

// --- build, len, is_empty -------------------------------------------------------------------

#[test]
fn default_table_is_empty_and_finds_nothing() {
    let t = RouteTable::default();
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(found(&t, "app.example.com", "/"), None);
    assert!(!t.serves_host("app.example.com"));
}

#[test]
fn table_from_an_empty_file_is_empty() {
    let t = build_toml("");
    assert!(t.is_empty());
}

#[test]
fn len_counts_every_route_across_host_groups() {
    let t = table(&[
        ("a", "a.example.com", "/"),
        ("a-api", "a.example.com", "/api"),
        ("wild", "*.example.com", "/"),
        ("wild-api", "*.example.com", "/api"),
        ("rest", "*", "/"),
    ]);
    assert_eq!(t.len(), 5);
    assert!(!t.is_empty());
}

#[test]
fn built_route_carries_its_spec() {
    let text = "[[route]]\nname = \"app\"\nhost = \"app.example.com\"\npath_prefix = \"/app\"\n\
                upstream = \"https://backend:8443/base\"\npreserve_host = true\n\
                strip_prefix = true\ntimeout = \"5s\"\n";
    let t = build_toml(text);
    let r = t.find("app.example.com", "/app/x").unwrap();
    assert_eq!(r.name, "app");
    assert_eq!(r.host, HostPattern::Exact("app.example.com".into()));
    assert_eq!(r.path_prefix, "/app");
    assert_eq!(r.upstream.to_string(), "https://backend:8443/base");
    assert!(r.preserve_host);
    assert!(r.strip_prefix);
    assert_eq!(r.timeout, Duration::from_secs(5));
    assert_eq!(r.auth, AuthMode::Login);
}

#[test]
fn build_fails_when_a_route_ca_file_is_missing() {
    let dir = tempfile::TempDir::new().unwrap();
    let text = "[[route]]\nname = \"r\"\nhost = \"a.example.com\"\n\
                upstream = \"https://h\"\nca_file = \"missing-ca.pem\"\n";
    let specs = parse(text, &dir.path().join("routes.toml")).unwrap();
    let err = RouteTable::build(specs, &clients()).unwrap_err();
    assert!(
        err.to_string().contains("missing-ca.pem"),
        "error should name the file: {err}"
    );
}

// --- canonical paths: case, escaped slashes, parameters -------------------------------------

/// The gate's usual shape: an open prefix, a group-limited prefix and everything else.
const GATE: &str = "[[route]]\nname = \"public\"\nhost = \"app.example.com\"\npath_prefix = \"/public\"\nupstream = \"http://127.0.0.1:3000\"\n\n\
                    [[route]]\nname = \"admin\"\nhost = \"app.example.com\"\npath_prefix = \"/admin\"\nupstream = \"http://127.0.0.1:3000\"\n\n\
                    [[route]]\nname = \"root\"\nhost = \"app.example.com\"\nupstream = \"http://127.0.0.1:3000\"\n";

fn resolved(table: &RouteTable, uri: &str) -> Result<String, ProxyError> {
    let req = http::Request::builder()
        .uri(uri)
        .header(http::header::HOST, "app.example.com")
        .body(())
        .unwrap();
    let target = Target::of(&req)?;
    table.resolve(&target).map(|r| r.name.clone())
}

#[test]
fn prefixes_match_without_ascii_case_by_default() {
    let t = build_toml(GATE);
    for path in ["/ADMIN/x", "/Admin", "/aDmIn/", "/%41dmin/x", "/%61dmin"] {
        assert_eq!(resolved(&t, path).unwrap(), "admin", "{path}");
    }
    assert_eq!(resolved(&t, "/ADMINX").unwrap(), "root");
}

#[test]
fn case_sensitive_paths_makes_the_match_exact() {
    let t = build_toml(&format!("case_sensitive_paths = true\n{GATE}"));
    assert_eq!(resolved(&t, "/admin/x").unwrap(), "admin");
    assert_eq!(resolved(&t, "/ADMIN/x").unwrap(), "root");
}

#[test]
fn strip_prefix_strips_the_prefix_in_whatever_case_it_matched() {
    let r = single("/app", "http://127.0.0.1:3000", true);
    assert_eq!(r.upstream_path("/APP/x"), "/x");
    assert_eq!(r.upstream_path("/App"), "/");
}

#[test]
fn escaped_slashes_and_parameters_are_refused_by_default() {
    let t = build_toml(GATE);
    for path in [
        "/admin%2fx",
        "/admin%5Cx",
        "/admin;x",
        "/admin%3Bx",
        "/public;x/y",
    ] {
        assert!(
            matches!(resolved(&t, path), Err(ProxyError::BadRequest(_))),
            "{path}"
        );
    }
}

#[test]
fn an_opt_in_serves_escapes_only_when_every_reading_picks_the_same_route() {
    let text = GATE
        .replace(
            "name = \"root\"",
            "name = \"root\"\nallow_encoded_slashes = true\nallow_path_parameters = true",
        )
        .replace(
            "name = \"public\"",
            "name = \"public\"\nallow_encoded_slashes = true\nallow_path_parameters = true",
        );
    let t = build_toml(&text);
    assert_eq!(resolved(&t, "/public/a%2Fb").unwrap(), "public");
    assert_eq!(resolved(&t, "/public/a;v=1/b").unwrap(), "public");
    assert_eq!(resolved(&t, "/docs;jsessionid=1").unwrap(), "root");
    // Decoded or without parameters, these name /admin: the opt-in on `root` cannot serve them.
    for path in ["/admin%2Fx", "/admin;x", "/admin%3bx/y", "/;x/admin"] {
        assert!(
            matches!(resolved(&t, path), Err(ProxyError::BadRequest(_))),
            "{path}"
        );
    }
}

#[test]
fn letters_that_fold_to_ascii_are_refused_while_matching_ignores_case() {
    let t = build_toml(GATE);
    assert!(matches!(
        resolved(&t, "/adm%C4%B1n/x"),
        Err(ProxyError::BadRequest(_))
    ));
    let exact = build_toml(&format!("case_sensitive_paths = true\n{GATE}"));
    assert_eq!(resolved(&exact, "/adm%C4%B1n/x").unwrap(), "root");
}

#[test]
fn claims_headers_and_strip_headers_are_removed_everywhere() {
    let text = format!(
        "strip_headers = [\"X-Employee-Id\"]\n{}",
        GATE.replace(
            "name = \"admin\"",
            "name = \"admin\"\nclaims_headers = { \"X-Upn\" = \"upn\" }"
        )
    );
    let t = build_toml(&text);
    let names: Vec<&str> = t.removed_headers().iter().map(|h| h.as_str()).collect();
    assert_eq!(names, ["x-employee-id", "x-upn"]);
}
