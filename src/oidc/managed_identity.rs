//! Tokens from the host's managed identity (ENTRA.md §7).
//!
//! - Azure VMs, VM scale sets, AKS nodes, Container Instances: the Instance Metadata Service,
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true` (the header proves the request is not a forwarded one, SSRF).
//! - App Service, Functions, Container Apps: `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…`
//!   with `X-IDENTITY-HEADER: $IDENTITY_HEADER`, when both variables are set.
//!
//! A user-assigned identity is named by `client_id`; without it the system-assigned identity
//! answers. The client never goes through an HTTP proxy (`HTTPS_PROXY` must not see a request
//! to a link-local address) and never follows a redirect.

use std::time::Duration;

use super::resource_token::{fetch, AccessToken, ResourceTokenError};
use crate::config::ManagedIdentityConfig;

/// The Instance Metadata Service's token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

enum Endpoint {
    Imds(String),
    AppService { url: String, header: String },
}

/// A managed identity and where to ask it for tokens.
pub struct ManagedIdentity {
    http: reqwest::Client,
    endpoint: Endpoint,
    client_id: Option<String>,
}

impl ManagedIdentity {
    /// The endpoint is `config.imds_endpoint`, else App Service's (from the environment),
    /// else IMDS.
    pub fn new(
        config: &ManagedIdentityConfig,
        timeout: Duration,
    ) -> Result<ManagedIdentity, ResourceTokenError> {
        let app_service = || {
            let url = std::env::var("IDENTITY_ENDPOINT").ok()?;
            let header = std::env::var("IDENTITY_HEADER").ok()?;
            (!url.is_empty() && !header.is_empty()).then_some(Endpoint::AppService { url, header })
        };
        let endpoint = match &config.imds_endpoint {
            Some(e) => Endpoint::Imds(e.clone()),
            None => app_service().unwrap_or_else(|| Endpoint::Imds(IMDS_ENDPOINT.to_owned())),
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ResourceTokenError::Setup(format!("managed identity HTTP client: {e}")))?;
        Ok(ManagedIdentity {
            http,
            endpoint,
            client_id: config.client_id.clone(),
        })
    }

    /// A token for `resource` (`https://redis.azure.com`, `api://AzureADTokenExchange`).
    pub async fn token(&self, resource: &str) -> Result<AccessToken, ResourceTokenError> {
        let mut query = vec![("resource", resource)];
        if let Some(id) = &self.client_id {
            query.push(("client_id", id.as_str()));
        }
        let (url, request) = match &self.endpoint {
            Endpoint::Imds(url) => {
                query.push(("api-version", IMDS_API_VERSION));
                (url, self.http.get(url).header("Metadata", "true"))
            }
            Endpoint::AppService { url, header } => {
                query.push(("api-version", APP_SERVICE_API_VERSION));
                (
                    url,
                    self.http
                        .get(url)
                        .header("X-IDENTITY-HEADER", header.as_str()),
                )
            }
        };
        fetch(url, request.query(&query)).await
    }
}
