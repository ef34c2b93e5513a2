//! `[redis] auth`: how the proxy proves itself to Redis — the password of the URL or
//! `redis.password` (the default), or Microsoft Entra ID (`auth = "entra"`), as Azure Cache
//! for Redis and Azure Managed Redis offer (ENTRA.md §8).
//!
//! With Entra ID the Redis user name is the identity's object ID and the password an access
//! token for `https://redis.azure.com`, got from one of three credentials:
//!
//! - `managed_identity`: the host's managed identity (IMDS, or App Service's endpoint);
//! - `workload_identity`: AKS workload identity (`AZURE_FEDERATED_TOKEN_FILE` and friends,
//!   read when the store starts);
//! - `app`: the proxy's own `[oidc]` application and its credential (client-credentials
//!   grant), which needs a tenant authority (a `common` endpoint names no tenant to ask).
//!
//! Refused with Entra ID: a password anywhere (it would never be sent, and a token is no
//! secret to write down), and `redis-sentinel://` (fred sends the credential provider's
//! token to the sentinels too, which are no Azure service and know no Entra user; Azure's
//! caches offer no Sentinel anyway).

use std::path::Path;

use super::auth::{is_guid, Credential, OidcConfig};
use super::managed_identity::{self, ManagedIdentityConfig};
use super::raw::RawRedis;
use super::session::{self, RedisConfig};
use super::ConfigError;
use crate::config::auth::Provider;

/// How the store authenticates to Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RedisAuth {
    /// The URL's `user:password@`, `redis.username` and `redis.password`, if any.
    #[default]
    Password,
    /// Microsoft Entra ID tokens as passwords.
    Entra(EntraRedisAuth),
}

/// `auth = "entra"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraRedisAuth {
    /// The identity's object (principal) ID: the Redis user name (lower case).
    pub object_id: String,
    pub credential: EntraCredential,
}

/// `entra_credential`: where the tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraCredential {
    ManagedIdentity(ManagedIdentityConfig),
    /// AKS workload identity: the `AZURE_*` variables are read when the store starts.
    WorkloadIdentity,
    /// The `[oidc]` application's own credential (client-credentials grant).
    App(AppCredential),
}

/// What the `app` credential takes from `[oidc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredential {
    /// `{authority host}/{tenant}/oauth2/v2.0/token`.
    pub token_endpoint: String,
    pub client_id: String,
    pub credential: Credential,
    pub ca_file: Option<std::path::PathBuf>,
    pub http_timeout: std::time::Duration,
}

/// `[redis]` with its `auth` keys; `oidc` is the validated `[oidc]`, for `entra_credential =
/// "app"`.
pub(super) fn redis(
    mut raw: RawRedis,
    file: &Path,
    base: &Path,
    oidc: Option<&OidcConfig>,
) -> Result<RedisConfig, ConfigError> {
    let bad = |key: &str, expected: String| ConfigError::invalid(file, key, expected);
    let auth = raw.auth.take();
    let object_id = raw.entra_object_id.take().filter(|s| !s.trim().is_empty());
    let credential = raw.entra_credential.take().filter(|s| !s.trim().is_empty());
    let client_id = raw.entra_client_id.take();
    let endpoint = raw.entra_imds_endpoint.take();
    let mut config = session::redis(raw, file, base)?;
    match auth.as_deref().map(str::trim).unwrap_or("password") {
        "password" => {
            let set = [
                ("redis.entra_object_id", object_id.is_some()),
                ("redis.entra_credential", credential.is_some()),
                ("redis.entra_client_id", client_id.is_some()),
                ("redis.entra_imds_endpoint", endpoint.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, s)| *s) {
                return Err(bad(
                    "redis.auth",
                    format!("\"entra\" when {key} is set (auth is \"password\" by default)"),
                ));
            }
            Ok(config)
        }
        "entra" => {
            if config.password.is_some() {
                return Err(bad(
                    "redis.password",
                    "no password with auth = \"entra\": the password is an Entra ID token"
                        .to_owned(),
                ));
            }
            if config.username.is_some() || url_has_credentials(config.url.expose()) {
                return Err(bad(
                    "redis.url",
                    "a URL without user or password with auth = \"entra\" (the user is \
                     redis.entra_object_id, the password an Entra ID token)"
                        .to_owned(),
                ));
            }
            if config.url.expose().contains("-sentinel://") {
                return Err(bad(
                    "redis.url",
                    "redis:// or rediss:// (or a cluster URL) with auth = \"entra\": Sentinel \
                     would be sent the Entra ID token too, and Azure offers no Sentinel"
                        .to_owned(),
                ));
            }
            let object_id = object_id.map(|o| o.trim().to_ascii_lowercase());
            let object_id = match object_id {
                Some(o) if is_guid(&o) => o,
                other => {
                    return Err(bad(
                        "redis.entra_object_id",
                        format!(
                            "the object (principal) ID of the identity, a GUID, with auth = \
                             \"entra\"{}",
                            other.map(|o| format!(", got {o:?}")).unwrap_or_default()
                        ),
                    ))
                }
            };
            let kind = credential.as_deref().map(str::trim);
            if kind != Some("managed_identity") {
                for (key, set) in [
                    ("redis.entra_client_id", client_id.is_some()),
                    ("redis.entra_imds_endpoint", endpoint.is_some()),
                ] {
                    if set {
                        return Err(bad(
                            key,
                            "nothing unless entra_credential = \"managed_identity\"".to_owned(),
                        ));
                    }
                }
            }
            let credential = match kind {
                Some("managed_identity") => {
                    EntraCredential::ManagedIdentity(managed_identity::parse(
                        file,
                        "redis.entra_client_id",
                        client_id,
                        "redis.entra_imds_endpoint",
                        endpoint,
                    )?)
                }
                Some("workload_identity") => EntraCredential::WorkloadIdentity,
                Some("app") => EntraCredential::App(app(file, oidc)?),
                other => {
                    return Err(bad(
                        "redis.entra_credential",
                        format!(
                            "\"managed_identity\", \"workload_identity\" or \"app\" with auth = \
                             \"entra\"{}",
                            other.map(|o| format!(", got {o:?}")).unwrap_or_default()
                        ),
                    ))
                }
            };
            config.auth = RedisAuth::Entra(EntraRedisAuth {
                object_id,
                credential,
            });
            Ok(config)
        }
        other => Err(bad(
            "redis.auth",
            format!("\"password\" or \"entra\", got {other:?}"),
        )),
    }
}

/// `entra_credential = "app"`: the `[oidc]` app, at its tenant's token endpoint.
fn app(file: &Path, oidc: Option<&OidcConfig>) -> Result<AppCredential, ConfigError> {
    let bad = |expected: &str| ConfigError::invalid(file, "redis.entra_credential", expected);
    let Some(oidc) = oidc else {
        return Err(bad(
            "an [oidc] section for entra_credential = \"app\" (the app's own credential)",
        ));
    };
    if oidc.provider != Provider::Entra || oidc.multi_tenant {
        return Err(bad(
            "an Entra ID [oidc] issuer naming one tenant for entra_credential = \"app\" \
             (a common or organizations authority names no tenant to ask for a token)",
        ));
    }
    if matches!(oidc.credential, Credential::None) {
        return Err(bad(
            "a confidential [oidc] client (a secret, certificate, federated token or managed \
             identity) for entra_credential = \"app\"",
        ));
    }
    let authority = oidc.issuer.strip_suffix("/v2.0").unwrap_or(&oidc.issuer);
    Ok(AppCredential {
        token_endpoint: format!("{authority}/oauth2/v2.0/token"),
        client_id: oidc.client_id.clone(),
        credential: oidc.credential.clone(),
        ca_file: oidc.ca_file.clone(),
        http_timeout: oidc.http_timeout,
    })
}

/// Whether `redis://user:pw@host` carries a user or password (cluster URLs parse too).
fn url_has_credentials(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => !u.username().is_empty() || u.password().is_some(),
        // session::redis checked the shape; an unparsable authority with '@' is refused too.
        Err(_) => url.split("://").nth(1).is_some_and(|r| {
            r.split(['/', '?'])
                .next()
                .is_some_and(|auth| auth.contains('@'))
        }),
    }
}

#[cfg(test)]
mod tests;
