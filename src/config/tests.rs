use super::*;

use std::fs;

use tempfile::TempDir;

const LISTEN: &str = r#"listen = "0.0.0.0:8443""#;
const PEM_PAIR: &str = "cert_file = \"tls/cert.pem\"\nkey_file = \"tls/key.pem\"";

/// A main file with the given `[server]` body, `[tls]` body and anything after `[routes]`.
fn config_text(server: &str, tls: &str, tail: &str) -> String {
    format!("[server]\n{server}\n\n[tls]\n{tls}\n\n[routes]\nfile = \"routes.toml\"\n\n{tail}\n")
}

/// Writes `text` as `portcullis.toml` in a fresh directory and loads it.
fn load_text(text: &str) -> (TempDir, PathBuf, Result<Config, ConfigError>) {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("portcullis.toml");
    fs::write(&file, text).unwrap();
    let result = load(&file);
    (dir, file, result)
}

fn load_ok(text: &str) -> (TempDir, Config) {
    let (dir, _, result) = load_text(text);
    match result {
        Ok(config) => (dir, config),
        Err(e) => panic!("expected the config to load, got: {e}"),
    }
}

/// Loads `text` and checks the error names the file and `key` and says what was expected.
fn assert_invalid(text: &str, key: &str, expected_part: &str) {
    let (_dir, file, result) = load_text(text);
    let err = match result {
        Ok(config) => panic!("expected `{key}` to be rejected, got {config:?}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert!(
        shown.starts_with(&file.display().to_string()),
        "error should start with the file name: {shown}"
    );
    assert!(
        shown.contains(&format!("`{key}`")),
        "error should name `{key}`: {shown}"
    );
    assert!(
        shown.contains("expected"),
        "error should say what was expected: {shown}"
    );
    match err {
        ConfigError::Invalid {
            file: err_file,
            key: err_key,
            expected,
        } => {
            assert_eq!(err_file, file);
            assert_eq!(err_key, key);
            assert!(
                expected.contains(expected_part),
                "expected {expected_part:?} in {expected:?}"
            );
        }
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// Loads `text` and returns the error's text, which must start with the file name.
fn load_error_text(text: &str) -> String {
    let (_dir, file, result) = load_text(text);
    let shown = match result {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        shown.starts_with(&file.display().to_string()),
        "error should start with the file name: {shown}"
    );
    shown
}

fn minimal() -> String {
    config_text(LISTEN, PEM_PAIR, "")
}

fn with_server(extra: &str) -> String {
    config_text(&format!("{LISTEN}\n{extra}"), PEM_PAIR, "")
}

// --- the shipped example --------------------------------------------------------------------

#[test]
fn example_config_and_routes_load() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("portcullis.toml");
    fs::copy(repo.join("portcullis.toml"), &file).unwrap();
    fs::copy(repo.join("routes.toml"), dir.path().join("routes.toml")).unwrap();

    let config = load(&file).unwrap();

    assert_eq!(config.file, file);
    assert_eq!(config.server.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(
        config.server.http_listen,
        Some("0.0.0.0:8080".parse().unwrap())
    );
    assert_eq!(
        config.server.admin_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert!(config.server.trusted_proxies.is_empty());
    assert_eq!(config.tls.certificates.len(), 1);
    assert_eq!(config.routes_file, Some(dir.path().join("routes.toml")));

    let routes = routes::load(config.routes_file.as_deref().unwrap()).unwrap();
    let names: Vec<&str> = routes.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["wiki", "api"]);
}

// --- defaults -------------------------------------------------------------------------------

#[test]
fn omitted_settings_take_their_documented_defaults() {
    let (_dir, config) = load_ok(&minimal());
    let s = &config.server;
    assert_eq!(s.http_listen, None);
    assert_eq!(s.admin_listen, None);
    assert!(s.trusted_proxies.is_empty());
    assert_eq!(s.max_connections, 10_000);
    assert_eq!(s.max_header_bytes, 65_536);
    assert_eq!(s.handshake_timeout, Duration::from_secs(10));
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    assert_eq!(s.max_connections_per_client, 256);
    assert_eq!(s.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.websocket_idle_timeout, Duration::from_secs(600));
    assert_eq!(s.hsts.as_ref().unwrap(), "max-age=31536000");
    let u = &config.upstream;
    assert_eq!(u.connect_timeout, Duration::from_secs(5));
    assert_eq!(u.pool_idle_timeout, Duration::from_secs(4));
    assert_eq!(u.pool_max_idle_per_host, 256);
    assert_eq!(u.ca_file, None);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
}

#[test]
fn https_port_defaults_to_the_listen_port() {
    let (_dir, config) = load_ok(&config_text(r#"listen = "[::]:9443""#, PEM_PAIR, ""));
    assert_eq!(config.server.https_port, 9443);
}

#[test]
fn explicit_https_port_overrides_the_listen_port() {
    let (_dir, config) = load_ok(&with_server("https_port = 443"));
    assert_eq!(config.server.listen.port(), 8443);
    assert_eq!(config.server.https_port, 443);
}

#[test]
fn empty_optional_listeners_mean_no_listener() {
    let (_dir, config) = load_ok(&with_server("http_listen = \"\"\nadmin_listen = \"\""));
    assert_eq!(config.server.http_listen, None);
    assert_eq!(config.server.admin_listen, None);
}

#[test]
fn explicit_settings_replace_the_defaults() {
    let text = config_text(
        &format!(
            "{LISTEN}\nmax_connections = 50\nmax_header_bytes = 16384\n\
             handshake_timeout = \"3s\"\nheader_read_timeout = \"1m\"\nshutdown_grace = \"1h 30m\""
        ),
        PEM_PAIR,
        "[upstream]\nconnect_timeout = \"250ms\"\npool_idle_timeout = \"2s\"\n\
         pool_max_idle_per_host = 4\n\n[log]\nformat = \"json\"\nlevel = \"portcullis=debug,info\"",
    );
    let (_dir, config) = load_ok(&text);
    let s = &config.server;
    assert_eq!(s.max_connections, 50);
    assert_eq!(s.max_header_bytes, 16_384);
    assert_eq!(s.handshake_timeout, Duration::from_secs(3));
    assert_eq!(s.header_read_timeout, Duration::from_secs(60));
    assert_eq!(s.shutdown_grace, Duration::from_secs(90 * 60));
    assert_eq!(config.upstream.connect_timeout, Duration::from_millis(250));
    assert_eq!(config.upstream.pool_idle_timeout, Duration::from_secs(2));
    assert_eq!(config.upstream.pool_max_idle_per_host, 4);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "portcullis=debug,info");
}

// --- relative paths -------------------------------------------------------------------------

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let (dir, config) = load_ok(&config_text(
        LISTEN,
        PEM_PAIR,
        "[upstream]\nca_file = \"ca/upstream.pem\"",
    ));
    let base = dir.path();
    assert_eq!(config.routes_file, Some(base.join("routes.toml")));
    let cert = &config.tls.certificates[0];
    assert_eq!(cert.cert_file, base.join("tls/cert.pem"));
    assert_eq!(cert.key_file, base.join("tls/key.pem"));
    assert!(cert.server_names.is_empty());
    assert_eq!(config.upstream.ca_file, Some(base.join("ca/upstream.pem")));
}

#[test]
fn absolute_paths_are_kept_as_written() {
    let (_dir, config) = load_ok(&config_text(
        LISTEN,
        "cert_file = \"/etc/ssl/cert.pem\"\nkey_file = \"/etc/ssl/key.pem\"",
        "[upstream]\nca_file = \"/etc/ssl/ca.pem\"",
    ));
    let cert = &config.tls.certificates[0];
    assert_eq!(cert.cert_file, Path::new("/etc/ssl/cert.pem"));
    assert_eq!(cert.key_file, Path::new("/etc/ssl/key.pem"));
    assert_eq!(
        config.upstream.ca_file.as_deref(),
        Some(Path::new("/etc/ssl/ca.pem"))
    );
}

#[test]
fn empty_upstream_ca_file_means_none() {
    let (_dir, config) = load_ok(&config_text(LISTEN, PEM_PAIR, "[upstream]\nca_file = \"\""));
    assert_eq!(config.upstream.ca_file, None);
}

#[test]
fn sni_certificates_follow_the_default_one_with_resolved_paths_and_normalised_names() {
    let tls = format!(
        "{PEM_PAIR}\n\n[[tls.certificates]]\ncert_file = \"other.pem\"\nkey_file = \"other-key.pem\"\n\
         server_names = [\"Other.Example.COM.\", \"*.other.example.com\"]"
    );
    let (dir, config) = load_ok(&config_text(LISTEN, &tls, ""));
    let certs = &config.tls.certificates;
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].cert_file, dir.path().join("tls/cert.pem"));
    assert_eq!(certs[1].cert_file, dir.path().join("other.pem"));
    assert_eq!(certs[1].key_file, dir.path().join("other-key.pem"));
    assert_eq!(
        certs[1].server_names,
        ["other.example.com", "*.other.example.com"]
    );
}

#[test]
fn certificates_list_alone_is_enough() {
    let tls = "[[tls.certificates]]\ncert_file = \"a.pem\"\nkey_file = \"a-key.pem\"";
    let (dir, config) = load_ok(&config_text(LISTEN, tls, ""));
    assert_eq!(config.tls.certificates.len(), 1);
    assert_eq!(
        config.tls.certificates[0].key_file,
        dir.path().join("a-key.pem")
    );
}

// --- server ---------------------------------------------------------------------------------

#[test]
fn listen_that_is_not_a_socket_address_is_rejected() {
    for bad in ["not-an-address", "0.0.0.0", "0.0.0.0:99999"] {
        let text = config_text(&format!("listen = {bad:?}"), PEM_PAIR, "");
        assert_invalid(&text, "server.listen", &format!("{bad:?}"));
    }
}

#[test]
fn http_listen_that_is_not_a_socket_address_is_rejected() {
    assert_invalid(
        &with_server("http_listen = \"8080\""),
        "server.http_listen",
        "a socket address",
    );
}

#[test]
fn admin_listen_that_is_not_a_socket_address_is_rejected() {
    assert_invalid(
        &with_server("admin_listen = \"localhost:9090\""),
        "server.admin_listen",
        "\"localhost:9090\"",
    );
}

#[test]
fn bad_trusted_proxy_is_rejected_naming_its_index() {
    assert_invalid(
        &with_server("trusted_proxies = [\"10.0.0.0/8\", \"not-a-cidr\"]"),
        "server.trusted_proxies[1]",
        "\"not-a-cidr\"",
    );
}

#[test]
fn trusted_proxy_with_an_impossible_prefix_length_is_rejected() {
    assert_invalid(
        &with_server("trusted_proxies = [\"10.0.0.0/33\"]"),
        "server.trusted_proxies[0]",
        "a CIDR",
    );
}

#[test]
fn trusted_proxies_accept_cidrs_and_bare_addresses_as_single_hosts() {
    let (_dir, config) = load_ok(&with_server(
        "trusted_proxies = [\"10.0.0.0/8\", \" 192.0.2.7 \", \"2001:db8::1\", \"fd00::/8\"]",
    ));
    let nets: Vec<String> = config
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        nets,
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128", "fd00::/8"]
    );
}

#[test]
fn zero_max_connections_is_rejected() {
    assert_invalid(
        &with_server("max_connections = 0"),
        "server.max_connections",
        "greater than 0",
    );
}

#[test]
fn max_header_bytes_below_8_kib_is_rejected() {
    assert_invalid(
        &with_server("max_header_bytes = 8191"),
        "server.max_header_bytes",
        "8192 to 1048576",
    );
}

#[test]
fn max_header_bytes_above_1_mib_is_rejected() {
    assert_invalid(
        &with_server("max_header_bytes = 1048577"),
        "server.max_header_bytes",
        "got 1048577",
    );
}

#[test]
fn max_header_bytes_accepts_both_ends_of_its_range() {
    for n in [8192, 1_048_576] {
        let (_dir, config) = load_ok(&with_server(&format!("max_header_bytes = {n}")));
        assert_eq!(config.server.max_header_bytes, n);
    }
}

#[test]
fn duration_that_does_not_parse_is_rejected() {
    assert_invalid(
        &with_server("handshake_timeout = \"soon\""),
        "server.handshake_timeout",
        "\"soon\"",
    );
}

#[test]
fn zero_duration_is_rejected() {
    assert_invalid(
        &with_server("shutdown_grace = \"0s\""),
        "server.shutdown_grace",
        "\"0s\"",
    );
}

#[test]
fn connection_limits_and_hsts_can_be_set() {
    let (_dir, config) = load_ok(&with_server(
        "max_connections_per_client = 0
idle_timeout = \"90s\"
\
         websocket_idle_timeout = \"1h\"
hsts = \"max-age=63072000; includeSubDomains; preload\"",
    ));
    let s = &config.server;
    assert_eq!(s.max_connections_per_client, 0, "0: no cap");
    assert_eq!(s.worker_threads, 0, "default: one per CPU");
    assert_eq!(s.idle_timeout, Duration::from_secs(90));
    assert_eq!(s.websocket_idle_timeout, Duration::from_secs(3600));
    assert_eq!(
        s.hsts.as_ref().unwrap(),
        "max-age=63072000; includeSubDomains; preload"
    );
}

#[test]
fn empty_hsts_means_none_is_sent() {
    let (_dir, config) = load_ok(&with_server("hsts = \"\""));
    assert_eq!(config.server.hsts, None);
}

#[test]
fn hsts_without_max_age_is_rejected() {
    for bad in ["includeSubDomains", "max-age=1y", "max-age=60; always"] {
        assert_invalid(
            &with_server(&format!("hsts = {bad:?}")),
            "server.hsts",
            &format!("\"max-age=<seconds>\", optionally followed by \"; includeSubDomains\" and \"; preload\", or \"\" to send none; got {bad:?}"),
        );
    }
}

#[test]
fn bad_idle_timeouts_are_rejected_under_their_own_key() {
    assert_invalid(
        &with_server("idle_timeout = \"0s\""),
        "server.idle_timeout",
        "a duration",
    );
    assert_invalid(
        &with_server("websocket_idle_timeout = \"forever\""),
        "server.websocket_idle_timeout",
        "\"forever\"",
    );
}

#[test]
fn bad_upstream_durations_are_rejected_under_their_own_key() {
    assert_invalid(
        &config_text(LISTEN, PEM_PAIR, "[upstream]\nconnect_timeout = \"soon\""),
        "upstream.connect_timeout",
        "a duration",
    );
    assert_invalid(
        &config_text(LISTEN, PEM_PAIR, "[upstream]\npool_idle_timeout = \"0s\""),
        "upstream.pool_idle_timeout",
        "a duration",
    );
}

// --- tls ------------------------------------------------------------------------------------

#[test]
fn cert_file_without_key_file_is_rejected() {
    assert_invalid(
        &config_text(LISTEN, "cert_file = \"tls/cert.pem\"", ""),
        "tls.key_file",
        "tls.cert_file",
    );
}

#[test]
fn key_file_without_cert_file_is_rejected() {
    assert_invalid(
        &config_text(LISTEN, "key_file = \"tls/key.pem\"", ""),
        "tls.cert_file",
        "tls.key_file",
    );
}

#[test]
fn config_without_any_certificate_is_rejected() {
    assert_invalid(
        &config_text(LISTEN, "certificates = []", ""),
        "tls.cert_file",
        "a certificate",
    );
}

#[test]
fn bad_certificate_server_names_are_rejected_naming_the_entry() {
    for bad in ["bad host", "*.*.com", "a..b", "*", ""] {
        let tls = format!(
            "{PEM_PAIR}\n\n[[tls.certificates]]\ncert_file = \"a.pem\"\nkey_file = \"a-key.pem\"\n\
             \n[[tls.certificates]]\ncert_file = \"b.pem\"\nkey_file = \"b-key.pem\"\n\
             server_names = [\"ok.example.com\", {bad:?}]"
        );
        assert_invalid(
            &config_text(LISTEN, &tls, ""),
            "tls.certificates[1].server_names",
            "host names like",
        );
    }
}

// --- log ------------------------------------------------------------------------------------

#[test]
fn unknown_log_format_is_rejected() {
    assert_invalid(
        &config_text(LISTEN, PEM_PAIR, "[log]\nformat = \"xml\""),
        "log.format",
        "\"text\" or \"json\", got \"xml\"",
    );
}

#[test]
fn unparsable_log_level_is_rejected() {
    assert_invalid(
        &config_text(LISTEN, PEM_PAIR, "[log]\nlevel = \"portcullis=loud\""),
        "log.level",
        "\"portcullis=loud\"",
    );
}

// --- unknown keys and unreadable files ------------------------------------------------------

#[test]
fn unknown_top_level_key_is_rejected_by_name() {
    let shown = load_error_text(&config_text(LISTEN, PEM_PAIR, "[metrics]\nport = 9100"));
    assert!(
        shown.contains("metrics"),
        "error should name the key: {shown}"
    );
}

#[test]
fn unknown_key_in_server_is_rejected_by_name() {
    let shown = load_error_text(&with_server("listn_backlog = 128"));
    assert!(
        shown.contains("listn_backlog"),
        "error should name the key: {shown}"
    );
}

#[test]
fn unknown_key_in_tls_is_rejected_by_name() {
    let shown = load_error_text(&config_text(
        LISTEN,
        &format!("{PEM_PAIR}\nchain_file = \"x.pem\""),
        "",
    ));
    assert!(
        shown.contains("chain_file"),
        "error should name the key: {shown}"
    );
}

#[test]
fn missing_listen_is_rejected_by_name() {
    let shown = load_error_text(&config_text("", PEM_PAIR, ""));
    assert!(
        shown.contains("listen"),
        "error should name the key: {shown}"
    );
}

#[test]
fn toml_syntax_error_is_a_load_error_naming_the_file() {
    let (_dir, file, result) = load_text("[server\nlisten = \"0.0.0.0:8443\"\n");
    match result {
        Err(ConfigError::Load { file: err_file, .. }) => assert_eq!(err_file, file),
        other => panic!("expected ConfigError::Load, got {other:?}"),
    }
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("nope.toml");
    let err = load(&file).unwrap_err();
    assert!(err.to_string().contains(&file.display().to_string()));
    match err {
        ConfigError::Read {
            file: err_file,
            error,
        } => {
            assert_eq!(err_file, file);
            assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected ConfigError::Read, got {other:?}"),
    }
}

#[test]
fn a_configuration_built_in_code_has_the_files_defaults() {
    let (dir, from_file) = load_ok(&config_text(
        "listen = \"127.0.0.1:9443\"",
        "cert_file = \"/pki/c.pem\"\nkey_file = \"/pki/k.pem\"",
        "[oidc]\nissuer = \"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0\"\n\
         client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\nclient_secret = \"s\"",
    ));
    let mut in_code = Config::new(
        "127.0.0.1:9443".parse().unwrap(),
        "/pki/c.pem",
        "/pki/k.pem",
    )
    .unwrap();
    assert!(in_code.routes_file.is_none() && in_code.oidc.is_none());
    in_code.oidc = Some(
        OidcConfig::new(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            Some("s"),
        )
        .unwrap(),
    );
    let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    };
    same(&in_code.server, &from_file.server);
    same(&in_code.tls, &from_file.tls);
    same(&in_code.upstream, &from_file.upstream);
    same(&in_code.log, &from_file.log);
    same(&in_code.oidc, &from_file.oidc);
    same(&in_code.session, &from_file.session);
    same(&in_code.redis, &from_file.redis);
    same(&in_code.sign_in, &from_file.sign_in);
    same(&in_code.telemetry, &from_file.telemetry);
    assert_eq!(from_file.routes_file, Some(dir.path().join("routes.toml")));
}

#[test]
fn a_configuration_built_in_code_is_checked_like_a_file() {
    let err = OidcConfig::new("ftp://login.example/tenant/v2.0", "c", None).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("built in code") && shown.contains("oidc.issuer"),
        "{shown}"
    );
}

#[test]
fn a_main_file_without_a_routing_file_is_refused() {
    assert_invalid(
        &format!("[server]\n{LISTEN}\n\n[tls]\n{PEM_PAIR}\n"),
        "routes.file",
        "routing file",
    );
}

#[test]
fn a_redis_configuration_built_in_code_has_the_files_defaults() {
    let (_dir, from_file) = load_ok(&config_text(
        LISTEN,
        PEM_PAIR,
        "[session]\nstore = \"redis\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\n\
         [redis]\nurl = \"redis://u:pw@redis:6379/0\"",
    ));
    let in_code = RedisConfig::new("redis://u:pw@redis:6379/0");
    let from_file = from_file.redis.unwrap();
    assert_eq!(format!("{in_code:?}"), format!("{from_file:?}"));
    assert!(!format!("{in_code:?}").contains(":pw@"), "{in_code:?}");
}

#[test]
fn sign_in_limits_are_read_from_the_file_and_checked() {
    let (_dir, c) = load_ok(&config_text(
        LISTEN,
        PEM_PAIR,
        "[sign_in]\nrate_limit = \"5/s\"\nburst = 3\nmax_concurrent_redemptions = 4",
    ));
    let rate = c.sign_in.rate_limit.unwrap();
    assert_eq!((rate.count, rate.per), (5, Duration::from_secs(1)));
    assert_eq!(
        (c.sign_in.burst, c.sign_in.max_concurrent_redemptions),
        (3, 4)
    );
    assert_invalid(
        &config_text(LISTEN, PEM_PAIR, "[sign_in]\nrate_limit = \"lots\""),
        "sign_in.rate_limit",
        "a rate like \"30/min\"",
    );
    let shown = load_error_text(&config_text(LISTEN, PEM_PAIR, "[sign_in]\nbursts = 3"));
    assert!(shown.contains("bursts"), "{shown}");
}

#[test]
fn worker_threads_is_a_count_up_to_1024() {
    let (_dir, config) = load_ok(&with_server("worker_threads = 1"));
    assert_eq!(config.server.worker_threads, 1);
    let err = load_error_text(&with_server("worker_threads = 5000"));
    assert!(
        err.contains("server.worker_threads") && err.contains("up to 1024"),
        "{err}"
    );
}

#[test]
fn a_redis_client_certificate_needs_its_key_and_the_other_way_round() {
    let redis = |lines: &str| {
        config_text(
            LISTEN,
            PEM_PAIR,
            &format!(
                "[session]\nstore = \"redis\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\n\
                 [redis]\nurl = \"rediss://redis:6380/0\"\n{lines}"
            ),
        )
    };
    assert_invalid(
        &redis("client_cert_file = \"c.pem\""),
        "redis.client_key_file",
        "the key of redis.client_cert_file",
    );
    assert_invalid(
        &redis("client_key_file = \"c.key\""),
        "redis.client_cert_file",
        "the certificate chain of redis.client_key_file",
    );
    let (dir, c) = load_ok(&redis(
        "client_cert_file = \"c.pem\"\nclient_key_file = \"c.key\"",
    ));
    let (cert, key) = c.redis.unwrap().client_cert.unwrap();
    assert!(cert.ends_with("c.pem") && key.ends_with("c.key"));
    drop(dir);
}

#[test]
fn a_redis_url_still_holding_the_shipped_placeholder_is_refused_without_echoing_it() {
    let text = config_text(
        LISTEN,
        PEM_PAIR,
        "[session]\nstore = \"redis\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\n\
         [redis]\nurl = \"rediss://:s3cret-pass@<cache-name>.redis.cache.windows.net:6380/0\"\n",
    );
    assert_invalid(&text, "redis.url", "placeholder <cache-name>");
    let err = load_error_text(&text);
    assert!(!err.contains("s3cret-pass"), "{err}");
}
