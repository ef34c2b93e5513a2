use std::fs;
use std::path::PathBuf;

use tempfile::TempDir;

use super::*;
use crate::config::{load, Config, ConfigError};

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "5d1f4c1a-9a0e-4a43-a8a6-3b2f0f3a7e11";
const SECRET: &str = "0123456789abcdef0123456789abcdef-long-enough";

fn text(oidc: &str, redis: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:8443\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
         [routes]\nfile = \"routes.toml\"\n{oidc}\n[session]\nstore = \"redis\"\nsecret = \"{SECRET}\"\n\
         [redis]\n{redis}\n"
    )
}

fn oidc(credential: &str) -> String {
    format!(
        "[oidc]\nissuer = \"https://login.microsoftonline.com/{TID}/v2.0\"\n\
         client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\n{credential}\n"
    )
}

fn load_text(text: &str) -> (TempDir, PathBuf, Result<Config, ConfigError>) {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("portcullis.toml");
    fs::write(&file, text).unwrap();
    let r = load(&file);
    (dir, file, r)
}

fn ok(text: &str) -> RedisConfig {
    match load_text(text).2 {
        Ok(c) => c.redis.unwrap(),
        Err(e) => panic!("expected the config to load: {e}"),
    }
}

/// The error names the file and `key`, and says `part`.
fn refused(text: &str, key: &str, part: &str) {
    let (_d, file, r) = load_text(text);
    let e = r.expect_err(key);
    let shown = e.to_string();
    assert!(shown.starts_with(&file.display().to_string()), "{shown}");
    assert!(shown.contains(&format!("`{key}`")), "{shown}");
    assert!(shown.contains(part), "{shown}");
}

#[test]
fn password_is_the_default_and_entra_keys_need_auth_entra() {
    assert_eq!(
        ok(&text("", "url = \"redis://h:6379/0\"")).auth,
        RedisAuth::Password
    );
    refused(
        &text("", &format!("entra_object_id = \"{OID}\"")),
        "redis.auth",
        "\"entra\" when redis.entra_object_id is set",
    );
    refused(
        &text("", "auth = \"aad\""),
        "redis.auth",
        "\"password\" or \"entra\", got \"aad\"",
    );
}

#[test]
fn each_entra_credential_kind_loads() {
    let mi = ok(&text(
        "",
        &format!(
            "url = \"rediss://c.redis.cache.windows.net:6380/0\"\nauth = \"entra\"\n\
             entra_object_id = \"{}\"\nentra_credential = \"managed_identity\"\n\
             entra_client_id = \"0A1B2C3D-0000-0000-0000-000000000001\"\n\
             entra_imds_endpoint = \"http://127.0.0.1:9/metadata/identity/oauth2/token\"",
            OID.to_uppercase()
        ),
    ));
    let RedisAuth::Entra(e) = mi.auth else {
        panic!("not entra")
    };
    assert_eq!(e.object_id, OID);
    assert_eq!(
        e.credential,
        EntraCredential::ManagedIdentity(ManagedIdentityConfig {
            client_id: Some("0a1b2c3d-0000-0000-0000-000000000001".into()),
            imds_endpoint: Some("http://127.0.0.1:9/metadata/identity/oauth2/token".into()),
        })
    );
    let wi = ok(&text(
        "",
        &format!("auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"workload_identity\""),
    ));
    assert!(matches!(
        wi.auth,
        RedisAuth::Entra(EntraRedisAuth {
            credential: EntraCredential::WorkloadIdentity,
            ..
        })
    ));
    let app = ok(&text(
        &oidc("client_secret = \"s\""),
        &format!("auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"app\""),
    ));
    let RedisAuth::Entra(EntraRedisAuth {
        credential: EntraCredential::App(a),
        ..
    }) = app.auth
    else {
        panic!("not app")
    };
    assert_eq!(
        a.token_endpoint,
        format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/token")
    );
}

#[test]
fn entra_without_object_id_or_credential_is_refused_naming_the_key() {
    refused(
        &text(
            "",
            "auth = \"entra\"\nentra_credential = \"managed_identity\"",
        ),
        "redis.entra_object_id",
        "the object (principal) ID of the identity, a GUID",
    );
    refused(
        &text(
            "",
            "auth = \"entra\"\nentra_object_id = \"my-app\"\nentra_credential = \"app\"",
        ),
        "redis.entra_object_id",
        "got \"my-app\"",
    );
    refused(
        &text(
            "",
            &format!("auth = \"entra\"\nentra_object_id = \"{OID}\""),
        ),
        "redis.entra_credential",
        "\"managed_identity\", \"workload_identity\" or \"app\"",
    );
    refused(
        &text(
            "",
            &format!("auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"msi\""),
        ),
        "redis.entra_credential",
        "got \"msi\"",
    );
}

#[test]
fn entra_refuses_passwords_sentinel_and_stray_keys() {
    let entra = format!(
        "auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"managed_identity\""
    );
    refused(
        &text("", &format!("url = \"rediss://u:pw@h:6380/0\"\n{entra}")),
        "redis.url",
        "without user or password",
    );
    refused(
        &text("", &format!("password = \"pw\"\n{entra}")),
        "redis.password",
        "no password with auth = \"entra\"",
    );
    refused(
        &text(
            "",
            &format!("url = \"redis-sentinel://h:26379/0?sentinelServiceName=m\"\n{entra}"),
        ),
        "redis.url",
        "Sentinel",
    );
    refused(
        &text("", &format!("auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"app\"\nentra_client_id = \"{OID}\"")),
        "redis.entra_client_id",
        "managed_identity",
    );
    refused(
        &text(
            "",
            &format!("{entra}\nentra_imds_endpoint = \"169.254.169.254\""),
        ),
        "redis.entra_imds_endpoint",
        "an http(s) URL",
    );
    refused(
        &text("", &format!("{entra}\nentra_client_id = \"system\"")),
        "redis.entra_client_id",
        "user-assigned managed identity",
    );
}

#[test]
fn the_app_credential_needs_a_confidential_single_tenant_oidc_app() {
    let app = format!("auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"app\"");
    refused(
        &text("", &app),
        "redis.entra_credential",
        "an [oidc] section",
    );
    refused(
        &text(&oidc(""), &app),
        "redis.entra_credential",
        "a confidential [oidc] client",
    );
    let common = "[oidc]\nissuer = \"https://login.microsoftonline.com/common/v2.0\"\n\
                  client_id = \"6731de76-14a6-49ae-97bc-6eba6914391e\"\nclient_secret = \"s\"\n\
                  allowed_tenants = [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]\n";
    refused(
        &text(common, &app),
        "redis.entra_credential",
        "naming one tenant",
    );
}

#[test]
fn oidc_managed_identity_assertion_source_is_checked() {
    let cfg = |credential: &str| {
        load_text(&text(&oidc(credential), ""))
            .2
            .map(|c| c.oidc.unwrap().credential)
    };
    assert_eq!(
        cfg("client_assertion_source = \"managed_identity\"").unwrap(),
        Credential::ManagedIdentity(ManagedIdentityConfig::default())
    );
    let shown = |r: Result<Credential, ConfigError>| r.unwrap_err().to_string();
    assert!(
        shown(cfg("client_assertion_source = \"imds\"")).contains("`oidc.client_assertion_source`")
    );
    assert!(shown(cfg(
        "client_secret = \"s\"\nclient_assertion_source = \"managed_identity\""
    ))
    .contains("one credential"));
    assert!(shown(cfg(
        "managed_identity_client_id = \"0a1b2c3d-0000-0000-0000-000000000001\""
    ))
    .contains("`oidc.managed_identity_client_id`"));
    assert!(shown(cfg(
        "client_assertion_source = \"managed_identity\"\nmanaged_identity_imds_endpoint = \"ftp://x\""
    ))
    .contains("`oidc.managed_identity_imds_endpoint`"));
}
