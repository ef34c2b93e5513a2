//! Which managed identity the proxy asks for tokens, shared by `[oidc]`
//! (`client_assertion_source = "managed_identity"`) and `[redis]`
//! (`entra_credential = "managed_identity"`).
//!
//! Without a client ID the host's system-assigned identity answers; with one, the
//! user-assigned identity of that client ID. The endpoint is the Instance Metadata Service
//! (IMDS, ENTRA.md §7) unless App Service's `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` are set at
//! run time; an explicit endpoint overrides both (for tests and unusual hosts).

use std::path::Path;

use super::auth::is_guid;
use super::ConfigError;

/// A managed identity: which one, and where to ask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManagedIdentityConfig {
    /// A user-assigned identity's client ID (lower case); `None`: the system-assigned one.
    pub client_id: Option<String>,
    /// The token endpoint to use instead of IMDS or App Service's, e.g.
    /// `http://127.0.0.1:8080/metadata/identity/oauth2/token`.
    pub imds_endpoint: Option<String>,
}

/// Checks the two optional keys (`client_id_key`, `endpoint_key` name them in errors).
pub(super) fn parse(
    file: &Path,
    client_id_key: &str,
    client_id: Option<String>,
    endpoint_key: &str,
    endpoint: Option<String>,
) -> Result<ManagedIdentityConfig, ConfigError> {
    let client_id = match client_id.map(|c| c.trim().to_ascii_lowercase()) {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) if is_guid(&c) => Some(c),
        Some(c) => {
            return Err(ConfigError::invalid(
                file,
                client_id_key,
                format!(
                    "the client ID (GUID) of a user-assigned managed identity, or nothing for \
                     the system-assigned one, got {c:?}"
                ),
            ))
        }
    };
    let imds_endpoint = match endpoint.map(|e| e.trim().to_owned()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) => match url::Url::parse(&e) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                Some(e)
            }
            _ => {
                return Err(ConfigError::invalid(
                    file,
                    endpoint_key,
                    format!(
                        "an http(s) URL without query, like \
                         \"http://169.254.169.254/metadata/identity/oauth2/token\", got {e:?}"
                    ),
                ))
            }
        },
    };
    Ok(ManagedIdentityConfig {
        client_id,
        imds_endpoint,
    })
}
