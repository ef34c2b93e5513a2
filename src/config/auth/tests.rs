use super::super::{load, Config, ConfigError};
use super::*;
use crate::config::StoreKind;

use std::fs;

use tempfile::TempDir;

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SECRET: &str = "0123456789abcdef0123456789abcdef-long-enough";

fn main_file(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:8443\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
         [routes]\nfile = \"routes.toml\"\n{extra}\n"
    )
}

fn oidc(extra: &str) -> String {
    format!(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/{TID}/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\n{extra}\n"
    )
}

fn load_text(
    text: &str,
    files: &[(&str, &str)],
) -> (TempDir, PathBuf, Result<Config, ConfigError>) {
    let dir = TempDir::new().unwrap();
    for (name, content) in files {
        fs::write(dir.path().join(name), content).unwrap();
    }
    let file = dir.path().join("portcullis.toml");
    fs::write(&file, text).unwrap();
    let r = load(&file);
    (dir, file, r)
}

fn ok(text: &str) -> Config {
    ok_with(text, &[])
}

fn ok_with(text: &str, files: &[(&str, &str)]) -> Config {
    match load_text(text, files).2 {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load: {e}"),
    }
}

/// The error names the file and `key`, and its text contains `part`.
fn invalid(text: &str, key: &str, part: &str) -> String {
    let (_d, file, r) = load_text(text, &[]);
    let e = match r {
        Ok(c) => panic!("expected `{key}` to be refused, got {c:?}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert!(shown.starts_with(&file.display().to_string()), "{shown}");
    match e {
        ConfigError::Invalid {
            key: k, expected, ..
        } => {
            assert_eq!(k, key, "{shown}");
            assert!(expected.contains(part), "{part:?} not in {expected:?}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    shown
}

#[test]
fn without_oidc_there_is_no_sign_in_and_sessions_default() {
    let c = ok(&main_file(""));
    assert!(c.oidc.is_none());
    assert_eq!(c.session.store, StoreKind::Memory);
    assert_eq!(c.session.cookie_name, "__Host-portcullis");
    assert_eq!(c.session.max_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.session.refresh_before, Duration::from_secs(300));
    assert!(c.session.secrets.is_empty());
}

#[test]
fn oidc_defaults_follow_the_documentation() {
    let c = ok(&main_file(&oidc("")));
    let o = c.oidc.unwrap();
    assert!(!o.multi_tenant);
    assert_eq!(o.scopes, ["openid", "profile", "email", "offline_access"]);
    assert_eq!(o.callback_path, "/.auth/callback");
    assert_eq!(
        o.audiences,
        [
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            "api://6731de76-14a6-49ae-97bc-6eba6914391e"
        ]
    );
    assert_eq!(o.clock_skew, Duration::from_secs(300));
    assert_eq!(o.graph_url, "https://graph.microsoft.com");
    assert_eq!(o.credential, Credential::None);
}

#[test]
fn client_secret_comes_from_a_file_and_is_never_printed() {
    let c = ok_with(
        &main_file(&oidc("client_secret_file = \"secret.txt\"")),
        &[("secret.txt", "s3cr3t-value\n")],
    );
    let o = c.oidc.unwrap();
    assert_eq!(
        o.credential,
        Credential::Secret(Secret::new("s3cr3t-value"))
    );
    assert!(!format!("{o:?}").contains("s3cr3t"));
}

#[test]
fn unreadable_secret_file_names_the_key() {
    let shown = invalid(
        &main_file(&oidc("client_secret_file = \"missing.txt\"")),
        "oidc.client_secret_file",
        "cannot be read",
    );
    assert!(shown.contains("missing.txt"));
}

#[test]
fn secret_and_secret_file_together_are_refused() {
    invalid(
        &main_file(&oidc("client_secret = \"a\"\nclient_secret_file = \"b\"")),
        "oidc.client_secret",
        "not both",
    );
}

#[test]
fn certificate_and_federated_credentials_resolve_their_files() {
    let c = ok(&main_file(&oidc(
        "client_certificate_file = \"c.pem\"\nclient_key_file = \"/k.pem\"",
    )));
    match c.oidc.unwrap().credential {
        Credential::Certificate {
            cert_file,
            key_file,
        } => {
            assert!(cert_file.ends_with("c.pem") && cert_file.is_absolute());
            assert_eq!(key_file, PathBuf::from("/k.pem"));
        }
        other => panic!("{other:?}"),
    }
    let c = ok(&main_file(&oidc(
        "client_assertion_file = \"/var/run/secrets/azure/tokens/azure-identity-token\"",
    )));
    assert_eq!(
        c.oidc.unwrap().credential,
        Credential::FederatedToken {
            file: "/var/run/secrets/azure/tokens/azure-identity-token".into()
        }
    );
}

#[test]
fn one_credential_at_most_and_certificates_come_with_keys() {
    invalid(
        &main_file(&oidc(
            "client_secret = \"s\"\nclient_assertion_file = \"t\"",
        )),
        "oidc.client_secret",
        "one credential",
    );
    invalid(
        &main_file(&oidc("client_certificate_file = \"c.pem\"")),
        "oidc.client_key_file",
        "private key",
    );
    invalid(
        &main_file(&oidc("client_key_file = \"k.pem\"")),
        "oidc.client_certificate_file",
        "certificate",
    );
}

#[test]
fn multi_tenant_authority_needs_allowed_tenants() {
    let text = main_file(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/organizations/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\n",
    );
    invalid(&text, "oidc.allowed_tenants", "any tenant");
    let text = main_file(&format!(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/common/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\nallowed_tenants = [\"{}\"]\n",
        TID.to_uppercase()
    ));
    let o = ok(&text).oidc.unwrap();
    assert!(o.multi_tenant);
    assert_eq!(o.allowed_tenants, [TID]);
}

#[test]
fn bad_oidc_values_are_refused_by_key() {
    invalid(
        &main_file(
            "[oidc]\nissuer = \"http://login.microsoftonline.com/x/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"",
        ),
        "oidc.issuer",
        "https",
    );
    invalid(
        &main_file("[oidc]\nissuer = \"https://login.microsoftonline.com/consumers/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\""),
        "oidc.issuer",
        "consumers",
    );
    invalid(
        &main_file(&oidc("allowed_tenants = [\"contoso\"]")),
        "oidc.allowed_tenants[0]",
        "GUID",
    );
    invalid(
        &main_file(&oidc("scopes = [\"profile\"]")),
        "oidc.scopes",
        "openid",
    );
    invalid(
        &main_file(&oidc("callback_path = \"callback\"")),
        "oidc.callback_path",
        "\"/\"",
    );
    invalid(
        &main_file(&oidc("post_logout_redirect_uri = \"http://x\"")),
        "oidc.post_logout_redirect_uri",
        "https",
    );
    invalid(
        &main_file(
            "[oidc]\nissuer = \"https://login.microsoftonline.com/contoso.com/v2.0\"\nclient_id = \" \"",
        ),
        "oidc.client_id",
        "client) ID",
    );
}

#[test]
fn plain_http_issuer_is_allowed_on_loopback_only() {
    let text = main_file("[oidc]\nissuer = \"http://127.0.0.1:9999/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\"\nclient_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"");
    assert!(ok(&text).oidc.is_some());
}

#[test]
fn session_secrets_must_be_long_and_from_one_source() {
    invalid(
        &main_file("[session]\nsecret = \"short\""),
        "session.secret",
        "at least 32 bytes",
    );
    invalid(
        &main_file(&format!(
            "[session]\nsecret = \"{SECRET}\"\nsecrets = [\"{SECRET}\"]"
        )),
        "session.secret",
        "only one",
    );
    let c = ok(&main_file(&format!(
        "[session]\nsecrets = [\"{SECRET}\", \"{SECRET}-old\"]"
    )));
    assert_eq!(c.session.secrets.len(), 2);
}

#[test]
fn secret_file_may_hold_several_secrets_one_per_line() {
    let c = ok_with(
        &main_file("[session]\nsecret_file = \"s.txt\""),
        &[("s.txt", &format!("{SECRET}-new\n\n{SECRET}-old\n"))],
    );
    assert_eq!(c.session.secrets.len(), 2);
    assert_eq!(c.session.secrets[0].expose(), format!("{SECRET}-new"));
}

#[test]
fn redis_store_needs_redis_and_a_shared_secret() {
    invalid(
        &main_file(&format!(
            "[session]\nstore = \"redis\"\nsecret = \"{SECRET}\""
        )),
        "redis.url",
        "[redis]",
    );
    invalid(
        &main_file("[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:6379\""),
        "session.secret_file",
        "shared by every instance",
    );
    let c = ok(&main_file(&format!(
        "[session]\nstore = \"redis\"\nsecret = \"{SECRET}\"\n[redis]\nurl = \"rediss://user:pw@cache:6380/0\"\nkey_prefix = \"p:\""
    )));
    let r = c.redis.unwrap();
    assert_eq!(r.key_prefix, "p:");
    assert_eq!(r.pool_size, 4);
    assert!(!format!("{r:?}").contains("pw"));
}

#[test]
fn bad_session_and_redis_values_are_refused_by_key() {
    invalid(
        &main_file("[session]\nstore = \"memcached\""),
        "session.store",
        "\"redis\"",
    );
    invalid(
        &main_file("[session]\ncookie_name = \"a b\""),
        "session.cookie_name",
        "letters",
    );
    invalid(
        &main_file("[session]\ncache_ttl = \"2h\"\nidle_timeout = \"1h\""),
        "session.cache_ttl",
        "shorter",
    );
    let shown = invalid(
        &main_file("[redis]\nurl = \"http://user:hunter2@cache\""),
        "redis.url",
        "redis://",
    );
    assert!(
        !shown.contains("hunter2"),
        "the URL's password must not be echoed: {shown}"
    );
    invalid(
        &main_file("[redis]\npool_size = 0"),
        "redis.pool_size",
        "greater than 0",
    );
}

#[test]
fn guid_shape_is_checked() {
    assert!(is_guid(TID));
    assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
    assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4g"));
}

#[test]
fn user_claim_names_one_of_the_documented_claims() {
    let c = ok(&main_file(&oidc("client_secret = \"s\"")));
    assert_eq!(c.oidc.unwrap().user_claim, UserClaim::PreferredUsername);
    for (value, claim) in [
        ("oid", UserClaim::Oid),
        ("upn", UserClaim::Upn),
        ("email", UserClaim::Email),
    ] {
        let c = ok(&main_file(&oidc(&format!(
            "client_secret = \"s\"\nuser_claim = \"{value}\""
        ))));
        assert_eq!(c.oidc.unwrap().user_claim, claim);
    }
    invalid(
        &main_file(&oidc("client_secret = \"s\"\nuser_claim = \"name\"")),
        "oidc.user_claim",
        "\"preferred_username\", \"oid\", \"upn\" or \"email\"",
    );
}

#[test]
fn the_shipped_placeholders_are_refused() {
    invalid(
        &main_file(
            "[oidc]\nissuer = \"https://login.microsoftonline.com/<tenant-id>/v2.0\"\n\
             client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"",
        ),
        "oidc.issuer",
        "<tenant-id>",
    );
    invalid(
        &main_file(&format!(
            "[oidc]\nissuer = \"https://login.microsoftonline.com/{TID}/v2.0\"\n\
             client_id = \"<application (client) id>\""
        )),
        "oidc.client_id",
        "<application (client) id>",
    );
}

#[test]
fn entra_tenant_and_client_must_be_ids() {
    invalid(
        &main_file(&format!(
            "[oidc]\nissuer = \"https://login.microsoftonline.com/{TID}/v2.0\"\nclient_id = \"app\""
        )),
        "oidc.client_id",
        "GUID",
    );
    invalid(
        &main_file(
            "[oidc]\nissuer = \"https://login.microsoftonline.com/my-tenant/v2.0\"\n\
             client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"",
        ),
        "oidc.issuer",
        "\"my-tenant\"",
    );
    // A verified domain names a tenant too.
    let c = ok(&main_file(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0\"\n\
         client_id = \"6731DE76-14A6-49AE-97BC-6EBA6914391E\"",
    ));
    assert_eq!(c.oidc.unwrap().provider, Provider::Entra);
}

#[test]
fn an_issuer_off_entra_needs_provider_other() {
    let other = "[oidc]\nissuer = \"https://idp.example/realms/staff\"\nclient_id = \"portal\"";
    invalid(&main_file(other), "oidc.issuer", "provider = \"other\"");
    let c = ok(&main_file(&format!("{other}\nprovider = \"other\"")));
    let o = c.oidc.unwrap();
    assert_eq!(o.provider, Provider::Other);
    assert_eq!(o.client_id, "portal");
    assert!(!o.multi_tenant);
    invalid(
        &main_file(&format!("{other}\nprovider = \"keycloak\"")),
        "oidc.provider",
        "\"other\"",
    );
    // Other national clouds and External ID are Entra hosts.
    for host in ["login.microsoftonline.us", "contoso.ciamlogin.com"] {
        ok(&main_file(&format!(
            "[oidc]\nissuer = \"https://{host}/{TID}/v2.0\"\n\
             client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\""
        )));
    }
}

#[test]
fn the_sign_in_host_is_a_plain_host_name() {
    let c = ok(&main_file(&oidc("signin_host = \"Auth.Example.com\"")));
    assert_eq!(
        c.oidc.unwrap().signin_host.as_deref(),
        Some("auth.example.com")
    );
    let c = ok(&main_file(&oidc("")));
    assert_eq!(c.oidc.unwrap().signin_host, None);
    for bad in [
        "https://auth.example.com",
        "auth.example.com:8443",
        "auth.example.com/",
        "*.example.com",
        "auth..example.com",
        "-auth.example.com",
        "auth example.com",
    ] {
        invalid(
            &main_file(&oidc(&format!("signin_host = \"{bad}\""))),
            "oidc.signin_host",
            "a host name",
        );
    }
}
