use super::*;

const FILE: &str = "/etc/portcullis/routes.toml";

fn file() -> &'static Path {
    Path::new(FILE)
}

fn parse_ok(text: &str) -> Vec<RouteSpec> {
    match parse(text, file()) {
        Ok(routing) => routing.routes,
        Err(e) => panic!("expected the routes to parse, got: {e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text, file()) {
        Ok(specs) => panic!("expected an error, got {specs:?}"),
        Err(e) => e,
    }
}

/// One `[[route]]` named `r` with `extra` lines added; `upstream` defaults to plain HTTP.
fn route(extra: &str) -> String {
    let sets = |key: &str| extra.lines().any(|l| l.starts_with(&format!("{key} =")));
    let upstream = if sets("upstream") {
        String::new()
    } else {
        "upstream = \"http://127.0.0.1:3000\"\n".to_owned()
    };
    let host = if sets("host") {
        String::new()
    } else {
        "host = \"app.example.com\"\n".to_owned()
    };
    format!("[[route]]\nname = \"r\"\n{host}{upstream}{extra}\n")
}

fn one(extra: &str) -> RouteSpec {
    let mut specs = parse_ok(&route(extra));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

/// Checks an `Invalid` error names the file, the route and `key`, and says what was expected.
fn assert_invalid(text: &str, key: &str, expected_part: &str) {
    let err = parse_err(text);
    let shown = err.to_string();
    assert!(
        shown.starts_with(FILE),
        "error should start with the file: {shown}"
    );
    match err {
        ConfigError::Invalid {
            file: err_file,
            key: err_key,
            expected,
        } => {
            assert_eq!(err_file, file());
            assert!(
                err_key.starts_with("route \"r\" (line ")
                    && err_key.ends_with(&format!("): {key}")),
                "key should name the route, its line and `{key}`: {err_key:?}"
            );
            assert!(
                expected.contains(expected_part),
                "expected {expected_part:?} in {expected:?}"
            );
        }
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

fn parse_error_line(err: ConfigError) -> Option<usize> {
    match err {
        ConfigError::Parse { file: f, line, .. } => {
            assert_eq!(f, file());
            line
        }
        other => panic!("expected ConfigError::Parse, got {other:?}"),
    }
}

// --- the shipped example and defaults -------------------------------------------------------

#[test]
fn example_routes_file_parses() {
    let text = include_str!("../../../config/routes.toml");
    let specs = parse_ok(text);
    assert_eq!(specs.len(), 2);

    let wiki = &specs[0];
    assert_eq!(wiki.name, "wiki");
    assert_eq!(wiki.host, HostPattern::Exact("wiki.example.com".into()));
    assert_eq!(wiki.path_prefix, "/");
    assert_eq!(wiki.upstream.to_string(), "http://127.0.0.1:3000");
    assert!(!wiki.preserve_host);
    assert!(!wiki.strip_prefix);
    assert_eq!(wiki.timeout, Duration::from_secs(60));
    assert_eq!(wiki.auth, AuthMode::Public);
    assert_eq!(wiki.line, 8);

    let api = &specs[1];
    assert_eq!(api.name, "api");
    assert_eq!(api.host, HostPattern::Wildcard(".example.com".into()));
    assert_eq!(api.path_prefix, "/api");
    assert_eq!(api.upstream.base_path, "/v1");
    assert!(api.strip_prefix);
    assert_eq!(api.line, 18);
}

#[test]
fn empty_file_has_no_routes() {
    assert!(parse_ok("# nothing yet\n").is_empty());
}

#[test]
fn omitted_route_settings_take_their_defaults() {
    let spec = one("");
    assert_eq!(spec.path_prefix, "/");
    assert_eq!(spec.timeout, Duration::from_secs(60));
    assert_eq!(spec.auth, AuthMode::Login);
    assert_eq!(spec.headers, HeaderPreset::OAuth2Proxy);
    assert!(spec.policy.is_empty());
    assert!(spec.claims_headers.is_empty());
    assert!(!spec.pass_access_token);
    assert!(!spec.preserve_host);
    assert!(!spec.strip_prefix);
    assert!(!spec.h2c);
    assert_eq!(spec.ca_file, None);
    assert_eq!(spec.line, 1);
}

#[test]
fn explicit_route_settings_are_kept() {
    let spec = one(
        "path_prefix = \"/api/\"\npreserve_host = true\nstrip_prefix = true\n\
         timeout = \"1m 30s\"\nh2c = true\nauth = \"public\"",
    );
    assert_eq!(spec.path_prefix, "/api/");
    assert!(spec.preserve_host);
    assert!(spec.strip_prefix);
    assert!(spec.h2c);
    assert_eq!(spec.timeout, Duration::from_secs(90));
}

#[test]
fn auth_mode_has_its_file_spelling() {
    assert_eq!(AuthMode::Public.as_str(), "public");
    assert_eq!(AuthMode::Login.as_str(), "login");
    assert_eq!(AuthMode::Bearer.as_str(), "bearer");
    assert_eq!(AuthMode::LoginOrBearer.as_str(), "login_or_bearer");
    assert_eq!(
        one("auth = \"login_or_bearer\"").auth,
        AuthMode::LoginOrBearer
    );
    assert_eq!(one("auth = \"bearer\"").auth, AuthMode::Bearer);
    assert_eq!(one("auth = \"login\"").auth, AuthMode::Login);
}

// --- identity headers and policy ------------------------------------------------------------

const GUID: &str = "0f0e0d0c-0b0a-0908-0706-050403020100";

#[test]
fn header_presets_have_their_file_spelling() {
    assert_eq!(
        one("headers = \"easy-auth\"").headers,
        HeaderPreset::EasyAuth
    );
    assert_eq!(one("headers = \"none\"").headers, HeaderPreset::None);
    assert_invalid(&route("headers = \"pomerium\""), "headers", "\"easy-auth\"");
}

#[test]
fn claims_headers_map_header_names_to_claims() {
    let spec = one("[route.claims_headers]\n\"X-User-Upn\" = \"upn\"\n");
    assert_eq!(spec.claims_headers.len(), 1);
    assert_eq!(spec.claims_headers[0].0.as_str(), "x-user-upn");
    assert_eq!(spec.claims_headers[0].1, "upn");
}

#[test]
fn claims_headers_may_not_name_reserved_headers() {
    for name in [
        "Cookie",
        "Host",
        "X-Forwarded-For",
        "Authorization",
        "bad name",
    ] {
        assert_invalid(
            &route(&format!("[route.claims_headers]\n\"{name}\" = \"upn\"\n")),
            &format!("claims_headers.{name}"),
            "header name",
        );
    }
    assert_invalid(
        &route("[route.claims_headers]\n\"X-Upn\" = \" \"\n"),
        "claims_headers.X-Upn",
        "claim name",
    );
    for claim in ["sid", "login_hint"] {
        assert_invalid(
            &route(&format!("[route.claims_headers]\n\"X-S\" = \"{claim}\"\n")),
            "claims_headers.X-S",
            "never leave the proxy",
        );
    }
}

#[test]
fn multi_tenant_routes_deciding_by_roles_or_claims_must_name_their_tenants() {
    // Only the multi-tenant flag matters here (a real `organizations` authority also needs
    // `allowed_tenants` in the main file).
    let mut oidc = super::super::OidcConfig::new(
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
        "6731de76-14a6-49ae-97bc-6eba6914391e",
        Some("secret"),
    )
    .unwrap();
    oidc.multi_tenant = true;
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    for policy in [
        "allowed_roles = [\"Admin\"]",
        "require_claims = { wids = [\"x\"] }",
        "auth_context = \"c1\"",
    ] {
        let specs = parse_ok(&route(policy));
        let err = check_against_oidc(&specs, file(), Some(&oidc)).unwrap_err();
        assert!(err.to_string().contains("allowed_tenants"), "{err}");
        let scoped = parse_ok(&route(&format!(
            "{policy}\nallowed_tenants = [\"{tenant}\"]"
        )));
        check_against_oidc(&scoped, file(), Some(&oidc)).unwrap();
        oidc.multi_tenant = false;
        check_against_oidc(&specs, file(), Some(&oidc)).unwrap();
        oidc.multi_tenant = true;
    }
    let groups = parse_ok(&route(
        "allowed_groups = [\"9f8e7d6c-2222-4b5a-9c8d-1e2f3a4b5c6d\"]",
    ));
    check_against_oidc(&groups, file(), Some(&oidc)).unwrap();
    let err = check_against_oidc(&groups, file(), None).unwrap_err();
    assert!(err.to_string().contains("[oidc]"), "{err}");
}

#[test]
fn policy_lists_are_read_and_ids_lowercased() {
    let spec = one(&format!(
        "allowed_groups = [\"{}\"]\nallowed_roles = [\"Wiki.Edit\"]\nallowed_tenants = [\"{GUID}\"]\n\
         allowed_users = [\"{GUID}\"]\nallowed_email_domains = [\"@Contoso.com\"]\n\
         require_claims = {{ department = [\"R&D\"] }}",
        GUID.to_uppercase()
    ));
    assert_eq!(spec.policy.groups, [GUID]);
    assert_eq!(spec.policy.roles, ["Wiki.Edit"]);
    assert_eq!(spec.policy.tenants, [GUID]);
    assert_eq!(spec.policy.users, [GUID]);
    assert_eq!(spec.policy.email_domains, ["contoso.com"]);
    assert_eq!(
        spec.policy.claims,
        [("department".to_owned(), vec!["R&D".to_owned()])]
    );
}

#[test]
fn group_names_instead_of_object_ids_are_rejected() {
    assert_invalid(
        &route("allowed_groups = [\"Wiki Editors\"]"),
        "allowed_groups",
        "object IDs (GUIDs)",
    );
    assert_invalid(
        &route("allowed_users = [\"alice@contoso.com\"]"),
        "allowed_users",
        "GUIDs",
    );
    assert_invalid(
        &route("allowed_tenants = [\"contoso.com\"]"),
        "allowed_tenants",
        "GUIDs",
    );
}

#[test]
fn bad_roles_domains_and_claims_are_rejected() {
    assert_invalid(
        &route("allowed_roles = [\"\"]"),
        "allowed_roles",
        "app role",
    );
    assert_invalid(
        &route("allowed_email_domains = [\"*.contoso.com\"]"),
        "allowed_email_domains",
        "domains",
    );
    assert_invalid(
        &route("require_claims = { department = [] }"),
        "require_claims.department",
        "non-empty list",
    );
}

#[test]
fn public_routes_cannot_carry_identity_settings() {
    for extra in [
        format!("allowed_users = [\"{GUID}\"]"),
        "pass_access_token = true".to_owned(),
        "[route.claims_headers]\n\"X-Upn\" = \"upn\"".to_owned(),
    ] {
        let text = route(&format!("auth = \"public\"\n{extra}"));
        assert_invalid(&text, "auth", "need a signed-in user");
    }
}

#[test]
fn groups_filter_is_policy_or_group_ids_and_cors_preflight_allow_or_authenticate() {
    assert_eq!(
        one("groups_filter = \"policy\"").groups_filter,
        Some(crate::config::GroupsFilter::Policy)
    );
    assert_eq!(
        one(&format!("groups_filter = [\"{}\"]", GUID.to_uppercase())).groups_filter,
        Some(crate::config::GroupsFilter::Only(vec![
            GUID.to_ascii_lowercase()
        ]))
    );
    assert_invalid(
        &route("groups_filter = \"admins\""),
        "groups_filter",
        "group object IDs",
    );
    assert_invalid(
        &route("groups_filter = [\"Admins\"]"),
        "groups_filter",
        "group object IDs",
    );
    assert!(one("cors_preflight = \"allow\"").cors_preflight);
    assert!(!one("").cors_preflight);
    assert_invalid(
        &route("cors_preflight = \"yes\""),
        "cors_preflight",
        "\"allow\"",
    );
    assert_invalid(
        &route("auth = \"public\"\ncors_preflight = \"allow\""),
        "cors_preflight",
        "public route",
    );
    assert_invalid(
        &route("auth = \"public\"\nassertion = true"),
        "assertion",
        "signs users in",
    );
}

// --- host -----------------------------------------------------------------------------------

#[test]
fn host_patterns_are_exact_wildcard_or_any() {
    assert_eq!(
        one("host = \"app.example.com\"").host,
        HostPattern::Exact("app.example.com".into())
    );
    assert_eq!(
        one("host = \"*.example.com\"").host,
        HostPattern::Wildcard(".example.com".into())
    );
    assert_eq!(one("host = \"*\"").host, HostPattern::Any);
    assert_eq!(
        one("host = \"10.0.0.5\"").host,
        HostPattern::Exact("10.0.0.5".into())
    );
}

#[test]
fn host_is_lower_cased_and_loses_its_trailing_dot() {
    assert_eq!(
        one("host = \"App.Example.COM.\"").host,
        HostPattern::Exact("app.example.com".into())
    );
    assert_eq!(
        one("host = \"*.EXAMPLE.com.\"").host,
        HostPattern::Wildcard(".example.com".into())
    );
}

#[test]
fn host_patterns_display_as_written() {
    assert_eq!(
        HostPattern::Exact("a.example.com".into()).to_string(),
        "a.example.com"
    );
    assert_eq!(
        HostPattern::Wildcard(".example.com".into()).to_string(),
        "*.example.com"
    );
    assert_eq!(HostPattern::Any.to_string(), "*");
}

#[test]
fn malformed_hosts_are_rejected() {
    for bad in [
        "bad host",
        "*.*.com",
        "a..b",
        "",
        "app.example.com:8443",
        "a_b.example.com",
        "*example.com",
    ] {
        assert_invalid(
            &route(&format!("host = {bad:?}")),
            "host",
            &format!("got {bad:?}"),
        );
    }
}

#[test]
fn host_label_longer_than_63_bytes_is_rejected() {
    let host = format!("{}.example.com", "a".repeat(64));
    assert_invalid(&route(&format!("host = {host:?}")), "host", "a host like");
}

// --- path_prefix ----------------------------------------------------------------------------

#[test]
fn path_prefix_must_start_with_a_slash() {
    assert_invalid(
        &route("path_prefix = \"api\""),
        "path_prefix",
        "starting with \"/\"",
    );
    assert_invalid(
        &route("path_prefix = \"\""),
        "path_prefix",
        "starting with \"/\"",
    );
}

#[test]
fn path_prefix_must_not_contain_a_query_or_fragment() {
    assert_invalid(
        &route("path_prefix = \"/api?x=1\""),
        "path_prefix",
        "\"/api?x=1\"",
    );
    assert_invalid(
        &route("path_prefix = \"/api#top\""),
        "path_prefix",
        "\"/api#top\"",
    );
}

#[test]
fn path_prefix_is_kept_in_canonical_form() {
    assert_eq!(one("path_prefix = \"/%61pi//v1\"").path_prefix, "/api/v1");
    assert_eq!(
        one("path_prefix = \"/caf%c3%a9/\"").path_prefix,
        "/caf%C3%A9/"
    );
}

#[test]
fn path_prefix_no_canonical_path_could_match_is_rejected() {
    for prefix in [
        "/a;b",
        "/a%2Fb",
        "/a\\\\b",
        "/a/../b",
        "/a%zz",
        "/adm%C4%B1n",
    ] {
        assert_invalid(
            &route(&format!("path_prefix = {prefix:?}")),
            "path_prefix",
            "dot segments or escaped slashes",
        );
    }
}

#[test]
fn prefixes_differing_only_in_case_collide_unless_paths_are_case_sensitive() {
    let text = format!(
        "{}{}",
        route("path_prefix = \"/Admin\""),
        route("path_prefix = \"/admin\"").replace("name = \"r\"", "name = \"s\"")
    );
    assert!(parse_err(&text).to_string().contains("repeats host"));
    let sensitive = parse(&format!("case_sensitive_paths = true\n{text}"), file()).unwrap();
    assert!(sensitive.case_sensitive_paths);
    assert_eq!(sensitive.routes.len(), 2);
}

#[test]
fn request_hygiene_settings_default_to_strict_and_are_read() {
    let strict = one("");
    assert!(!strict.allow_encoded_slashes && !strict.allow_path_parameters);
    assert!(strict.allow_underscore_headers.is_empty());
    let relaxed = one(
        "allow_encoded_slashes = true\nallow_path_parameters = true\n\
         allow_underscore_headers = [\"X_Legacy_Tenant\"]",
    );
    assert!(relaxed.allow_encoded_slashes && relaxed.allow_path_parameters);
    assert_eq!(
        relaxed.allow_underscore_headers[0].as_str(),
        "x_legacy_tenant"
    );
    let file_level = parse(
        &format!("strip_headers = [\"X-Employee-Id\"]\n{}", route("")),
        file(),
    )
    .unwrap();
    assert_eq!(file_level.strip_headers[0].as_str(), "x-employee-id");
    assert!(!file_level.case_sensitive_paths);
}

#[test]
fn underscore_allowances_that_read_as_owned_headers_are_rejected() {
    for name in [
        "x_auth_request_email",
        "X_MS_CLIENT_PRINCIPAL_NAME",
        "x_forwarded_user",
        "x_forwarded_for",
        "remote_user",
        "x-no-underscore",
    ] {
        assert_invalid(
            &route(&format!("allow_underscore_headers = [{name:?}]")),
            "allow_underscore_headers",
            "header names with \"_\"",
        );
    }
    let claims =
        route("claims_headers = { \"X-Upn\" = \"upn\" }\nallow_underscore_headers = [\"x_upn\"]");
    assert_invalid(&claims, "allow_underscore_headers", "claims_headers");
}

#[test]
fn strip_headers_may_not_name_headers_the_proxy_needs() {
    for name in [
        "cookie",
        "authorization",
        "host",
        "x-forwarded-for",
        "bad name",
    ] {
        let err = parse_err(&format!("strip_headers = [{name:?}]\n{}", route("")));
        let shown = err.to_string();
        assert!(
            shown.contains("strip_headers") && shown.contains(name),
            "{shown}"
        );
    }
}

// --- upstream -------------------------------------------------------------------------------

#[test]
fn upstream_keeps_scheme_authority_and_base_path() {
    let spec = one("upstream = \"https://backend.internal:8443\"");
    assert_eq!(spec.upstream.scheme, Scheme::HTTPS);
    assert_eq!(spec.upstream.authority.as_str(), "backend.internal:8443");
    assert_eq!(spec.upstream.base_path, "");
}

#[test]
fn upstream_base_path_is_kept_without_trailing_slash() {
    let spec = one("upstream = \"http://h:8080/app/\"");
    assert_eq!(spec.upstream.base_path, "/app");
    assert_eq!(spec.upstream.to_string(), "http://h:8080/app");
    assert_eq!(one("upstream = \"http://h:8080/\"").upstream.base_path, "");
}

#[test]
fn upstream_other_than_http_or_https_is_rejected() {
    assert_invalid(
        &route("upstream = \"ftp://files.internal\""),
        "upstream",
        "an http:// or https:// URL",
    );
}

#[test]
fn upstream_with_query_is_rejected() {
    assert_invalid(
        &route("upstream = \"http://h:8080/app?x=1\""),
        "upstream",
        "without query",
    );
}

#[test]
fn upstream_with_userinfo_is_rejected() {
    assert_invalid(
        &route("upstream = \"http://u:p@h\""),
        "upstream",
        "\"http://u:p@h\"",
    );
}

#[test]
fn upstream_without_scheme_or_host_is_rejected() {
    for bad in [
        "127.0.0.1:3000",
        "/just/a/path",
        "http://",
        "http://:8080",
        "",
    ] {
        assert_invalid(
            &route(&format!("upstream = {bad:?}")),
            "upstream",
            &format!("got {bad:?}"),
        );
    }
}

#[test]
fn h2c_with_https_upstream_is_rejected() {
    assert_invalid(
        &route("upstream = \"https://h\"\nh2c = true"),
        "h2c",
        "http:// upstream",
    );
}

#[test]
fn h2c_with_http_upstream_is_accepted() {
    assert!(one("upstream = \"http://h:50051\"\nh2c = true").h2c);
}

// --- ca_file --------------------------------------------------------------------------------

#[test]
fn ca_file_with_http_upstream_is_rejected() {
    assert_invalid(
        &route("upstream = \"http://h\"\nca_file = \"ca.pem\""),
        "ca_file",
        "https:// upstream",
    );
}

#[test]
fn ca_file_resolves_against_the_routes_files_directory() {
    let spec = one("upstream = \"https://h\"\nca_file = \"certs/ca.pem\"");
    assert_eq!(
        spec.ca_file.as_deref(),
        Some(Path::new("/etc/portcullis/certs/ca.pem"))
    );
}

#[test]
fn absolute_ca_file_is_kept_as_written() {
    let spec = one("upstream = \"https://h\"\nca_file = \"/srv/ca.pem\"");
    assert_eq!(spec.ca_file.as_deref(), Some(Path::new("/srv/ca.pem")));
}

#[test]
fn empty_ca_file_means_none_even_with_http_upstream() {
    assert_eq!(one("upstream = \"http://h\"\nca_file = \"\"").ca_file, None);
}

// --- auth, timeout, name --------------------------------------------------------------------

#[test]
fn unknown_auth_mode_is_rejected_naming_the_accepted_values() {
    assert_invalid(
        &route("auth = \"entra\""),
        "auth",
        "\"login\", \"bearer\", \"login_or_bearer\" or \"public\", got \"entra\"",
    );
}

#[test]
fn bad_route_timeouts_are_rejected() {
    assert_invalid(&route("timeout = \"soon\""), "timeout", "\"soon\"");
    assert_invalid(&route("timeout = \"0s\""), "timeout", "\"0s\"");
}

#[test]
fn empty_route_name_is_rejected_with_its_line() {
    let text = format!(
        "{}[[route]]\nname = \" \"\nhost = \"b.example.com\"\nupstream = \"http://h\"\n",
        route("")
    );
    let err = parse_err(&text);
    assert!(err.to_string().starts_with(&format!("{FILE}:6: ")), "{err}");
    assert_eq!(parse_error_line(err), Some(6));
}

// --- duplicates -----------------------------------------------------------------------------

#[test]
fn duplicate_route_name_is_rejected_naming_the_second_line() {
    let text = "\
[[route]]
name = \"app\"
host = \"a.example.com\"
upstream = \"http://h\"

[[route]]
name = \"app\"
host = \"b.example.com\"
upstream = \"http://h\"
";
    let err = parse_err(text);
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{FILE}:6: ")), "{shown}");
    assert!(shown.contains("\"app\""), "{shown}");
    assert_eq!(parse_error_line(err), Some(6));
}

#[test]
fn duplicate_host_and_prefix_is_rejected_naming_the_second_line() {
    let text = "\
[[route]]
name = \"one\"
host = \"a.example.com\"
path_prefix = \"/api\"
upstream = \"http://h\"

[[route]]
name = \"two\"
host = \"A.Example.com.\"
path_prefix = \"/api\"
upstream = \"http://other\"
";
    let err = parse_err(text);
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{FILE}:7: ")), "{shown}");
    assert!(
        shown.contains("a.example.com") && shown.contains("\"/api\""),
        "{shown}"
    );
    assert_eq!(parse_error_line(err), Some(7));
}

#[test]
fn same_prefix_on_different_hosts_is_accepted() {
    let text = "\
[[route]]
name = \"one\"
host = \"a.example.com\"
upstream = \"http://h\"

[[route]]
name = \"two\"
host = \"*.example.com\"
upstream = \"http://h\"
";
    let specs = parse_ok(text);
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[1].line, 6);
}

// --- syntax and unknown keys ----------------------------------------------------------------

#[test]
fn unknown_key_in_a_route_is_rejected_with_its_line() {
    let text = "\
[[route]]
name = \"one\"
host = \"a.example.com\"
upstream = \"http://h\"

[[route]]
name = \"two\"
host = \"b.example.com\"
upstream = \"http://h\"
colour = \"blue\"
";
    let err = parse_err(text);
    let shown = err.to_string();
    assert!(
        shown.contains("colour"),
        "error should name the key: {shown}"
    );
    assert_eq!(parse_error_line(err), Some(10));
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let text = format!("default_timeout = \"5s\"\n\n{}", route(""));
    let err = parse_err(&text);
    assert!(err.to_string().contains("default_timeout"), "{err}");
    assert_eq!(parse_error_line(err), Some(1));
}

#[test]
fn missing_required_key_is_rejected() {
    let err = parse_err("[[route]]\nname = \"r\"\nhost = \"a.example.com\"\n");
    assert!(err.to_string().contains("upstream"), "{err}");
    assert!(parse_error_line(err).is_some());
}

#[test]
fn toml_syntax_error_carries_its_line() {
    let text = "[[route]]\nname = \"r\"\nhost = \"a.example.com\nupstream = \"http://h\"\n";
    let err = parse_err(text);
    assert!(err.to_string().starts_with(&format!("{FILE}:3: ")), "{err}");
    assert_eq!(parse_error_line(err), Some(3));
}

#[test]
fn wrong_value_type_carries_its_line() {
    let err = parse_err(&route("strip_prefix = \"yes\""));
    assert_eq!(parse_error_line(err), Some(5));
}

#[test]
fn every_error_starts_with_the_file_path() {
    let cases = [
        route("host = \"bad host\""),
        route("path_prefix = \"api\""),
        route("upstream = \"ftp://h\""),
        route("auth = \"nobody\""),
        route("timeout = \"soon\""),
        route("colour = \"blue\""),
        format!("{}{}", route(""), route("")),
        "[[route]\n".to_owned(),
    ];
    for text in cases {
        let shown = parse_err(&text).to_string();
        assert!(shown.starts_with(FILE), "{shown}");
    }
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        route("upstream = \"https://h\"\nca_file = \"ca.pem\""),
    )
    .unwrap();
    let specs = load(&path).unwrap();
    assert_eq!(specs.routes[0].ca_file, Some(dir.path().join("ca.pem")));

    let missing = dir.path().join("gone.toml");
    match load(&missing) {
        Err(ConfigError::Read { file, .. }) => assert_eq!(file, missing),
        other => panic!("expected ConfigError::Read, got {other:?}"),
    }
}
