use std::fs;
use std::path::PathBuf;

use tempfile::TempDir;

use crate::config::{load_with_env, Config, ConfigError, EnvOverrides};

const SECRET: &str = "0123456789abcdef0123456789abcdef-long-enough";

fn main_file(dir: &TempDir, extra: &str) -> PathBuf {
    let file = dir.path().join("portcullis.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:8443\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
         [routes]\nfile = \"routes.toml\"\n{extra}\n"
    );
    fs::write(&file, text).unwrap();
    file
}

fn load(extra: &str, vars: &[(&str, &str)]) -> (TempDir, PathBuf, Result<Config, ConfigError>) {
    let dir = TempDir::new().unwrap();
    let file = main_file(&dir, extra);
    let r = load_with_env(&file, &EnvOverrides::from_vars(vars.iter().copied()));
    (dir, file, r)
}

fn env_error(extra: &str, vars: &[(&str, &str)]) -> (PathBuf, ConfigError) {
    match load(extra, vars) {
        (_d, file, Err(e)) => (file, e),
        (_d, _, Ok(c)) => panic!("expected an error, got {c:?}"),
    }
}

#[test]
fn string_values_from_the_environment_stay_exactly_as_given() {
    let (_d, _, r) = load(
        "[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"",
        &[
            ("PORTCULLIS__OIDC__PROVIDER", "other"),
            (
                "PORTCULLIS__OIDC__ISSUER",
                "https://idp.example/realms/staff",
            ),
            ("PORTCULLIS__OIDC__CLIENT_ID", "00042"),
            ("PORTCULLIS__OIDC__CLIENT_SECRET", "1e3"),
            ("PORTCULLIS__REDIS__PASSWORD", "0123456"),
            ("PORTCULLIS__REDIS__USERNAME", "true"),
            ("PORTCULLIS__REDIS__KEY_PREFIX", "-0.50"),
            ("PORTCULLIS__SESSION__SECRET", SECRET),
        ],
    );
    let c = r.unwrap();
    let o = c.oidc.unwrap();
    assert_eq!(o.client_id, "00042");
    match o.credential {
        crate::config::auth::Credential::Secret(s) => assert_eq!(s.expose(), "1e3"),
        other => panic!("expected a client secret, got {other:?}"),
    }
    let r = c.redis.unwrap();
    assert_eq!(r.password.unwrap().expose(), "0123456");
    assert_eq!(r.username.as_deref(), Some("true"));
    assert_eq!(r.key_prefix, "-0.50");
}

#[test]
fn numbers_and_lists_from_the_environment_are_parsed_where_the_key_wants_them() {
    let (_d, _, r) = load(
        "",
        &[
            ("PORTCULLIS__SERVER__MAX_CONNECTIONS", "00042"),
            (
                "PORTCULLIS__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8,192.168.1.1",
            ),
            ("OTHER__SERVER__MAX_CONNECTIONS", "7"),
        ],
    );
    let c = r.unwrap();
    assert_eq!(c.server.max_connections, 42);
    assert_eq!(c.server.trusted_proxies.len(), 2);
}

#[test]
fn session_tickets_are_on_unless_turned_off_in_the_file_or_the_environment() {
    let (_d, _, r) = load("", &[]);
    assert!(r.unwrap().tls.session_tickets);
    let (_d, _, r) = load("", &[("PORTCULLIS__TLS__SESSION_TICKETS", "false")]);
    assert!(!r.unwrap().tls.session_tickets);
    let (file, e) = env_error("", &[("PORTCULLIS__TLS__SESSION_TICKETS", "sometimes")]);
    let shown = format!("{:#}", anyhow::Error::from(e));
    assert!(
        shown.starts_with("environment variable PORTCULLIS__TLS__SESSION_TICKETS"),
        "{shown}"
    );
    assert!(!shown.contains(&file.display().to_string()), "{shown}");
}

#[test]
fn a_bad_type_from_the_environment_names_the_variable_not_the_file() {
    let (file, e) = env_error("", &[("PORTCULLIS__SERVER__MAX_CONNECTIONS", "many")]);
    let shown = format!("{:#}", anyhow::Error::from(e));
    assert!(
        shown.starts_with("environment variable PORTCULLIS__SERVER__MAX_CONNECTIONS"),
        "{shown}"
    );
    assert!(!shown.contains(&file.display().to_string()), "{shown}");
    assert_eq!(
        shown.matches("\"many\"").count(),
        1,
        "printed once: {shown}"
    );
}

#[test]
fn a_refused_value_from_the_environment_names_the_variable() {
    let (_, e) = env_error("", &[("PORTCULLIS__LOG__FORMAT", "yaml")]);
    match &e {
        ConfigError::Env { var, key, message } => {
            assert_eq!(var, "PORTCULLIS__LOG__FORMAT");
            assert_eq!(key, "log.format");
            assert!(message.contains("\"yaml\""), "{message}");
        }
        other => panic!("expected an Env error, got {other:?}"),
    }
    let shown = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(
        shown.matches("\"yaml\"").count(),
        1,
        "printed once: {shown}"
    );
}

#[test]
fn an_unknown_key_from_the_environment_names_the_variable() {
    let (_, e) = env_error(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/common/v2.0\"",
        &[("PORTCULLIS__OIDC__CLIENTID", "x")],
    );
    match e {
        ConfigError::Env { var, .. } => assert_eq!(var, "PORTCULLIS__OIDC__CLIENTID"),
        other => panic!("expected an Env error, got {other:?}"),
    }
}

#[test]
fn a_file_error_still_names_the_file_once() {
    let (file, e) = env_error("[sign_in]\nburst = \"many\"", &[]);
    let shown = format!("{:#}", anyhow::Error::from(e));
    assert!(shown.starts_with(&file.display().to_string()), "{shown}");
    assert_eq!(
        shown.matches("invalid type").count(),
        1,
        "printed once: {shown}"
    );
}

#[test]
fn the_standard_opentelemetry_variables_set_the_telemetry_keys() {
    let (_d, _, r) = load(
        "[telemetry]\notlp_endpoint = \"http://from-file:4318\"",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "edge-proxy"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ],
    );
    let t = r.unwrap().telemetry;
    assert_eq!(t.otlp_endpoint.as_deref(), Some("http://collector:4318"));
    assert_eq!(t.service_name, "edge-proxy");
    assert_eq!(
        t.sampler,
        crate::config::Sampler {
            parent_based: true,
            ratio: 0.25
        }
    );
    // Portcullis's own variable wins over the standard one.
    let (_d, _, r) = load(
        "",
        &[
            ("OTEL_SERVICE_NAME", "edge-proxy"),
            ("PORTCULLIS__TELEMETRY__SERVICE_NAME", "mine"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    let t = r.unwrap().telemetry;
    assert_eq!(t.service_name, "mine");
    assert_eq!(
        t.sampler,
        crate::config::Sampler {
            parent_based: false,
            ratio: 0.0
        }
    );
}

#[test]
fn a_bad_sampler_from_the_environment_names_the_variable() {
    let (_, e) = env_error(
        "",
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ],
    );
    match e {
        ConfigError::Env { var, .. } => assert_eq!(var, "OTEL_TRACES_SAMPLER_ARG"),
        other => panic!("expected an Env error, got {other:?}"),
    }
    let (_, e) = env_error("", &[("OTEL_TRACES_SAMPLER", "jaeger_remote")]);
    assert!(e.to_string().contains("OTEL_TRACES_SAMPLER"), "{e}");
}
