//! Where the Redis tokens come from, per `entra_credential`.

use std::sync::Arc;
use std::time::Duration;

use super::super::StoreError;
use super::TOKEN_TIMEOUT;
use crate::config::{EntraCredential, EntraRedisAuth};
use crate::oidc::credential::Assertions;
use crate::oidc::managed_identity::ManagedIdentity;
use crate::oidc::resource_token::{
    CachedToken, ClientAuth, ClientCredentials, ResourceTokenError, TokenSource,
    TOKEN_EXCHANGE_RESOURCE,
};

/// The source for `entra.credential`; workload identity reads its variables now.
pub(super) fn token_source(entra: &EntraRedisAuth) -> Result<TokenSource, StoreError> {
    let failed = |e: ResourceTokenError| StoreError::Failed(format!("redis entra: {e}"));
    match &entra.credential {
        EntraCredential::ManagedIdentity(m) => Ok(TokenSource::ManagedIdentity(
            ManagedIdentity::new(m, TOKEN_TIMEOUT).map_err(failed)?,
        )),
        EntraCredential::WorkloadIdentity => workload_identity(&|name| std::env::var(name).ok()),
        EntraCredential::App(app) => app_source(app),
    }
}

/// AKS workload identity, from the variables its webhook sets (`env` reads one).
fn workload_identity(env: &dyn Fn(&str) -> Option<String>) -> Result<TokenSource, StoreError> {
    let var = |name: &str| {
        env(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            StoreError::Failed(format!(
                "redis entra_credential = \"workload_identity\": {name} is not set \
                         (is the pod labelled azure.workload.identity/use: \"true\"?)"
            ))
        })
    };
    let file = var("AZURE_FEDERATED_TOKEN_FILE")?;
    let client_id = var("AZURE_CLIENT_ID")?;
    let tenant = var("AZURE_TENANT_ID")?;
    let host = var("AZURE_AUTHORITY_HOST")
        .unwrap_or_else(|_| "https://login.microsoftonline.com/".to_owned());
    let credential = crate::config::auth::Credential::FederatedToken { file: file.into() };
    Ok(TokenSource::ClientCredentials(ClientCredentials {
        http: http_client(None)?,
        token_endpoint: format!("{}/{tenant}/oauth2/v2.0/token", host.trim_end_matches('/')),
        client_id,
        auth: ClientAuth::Assertion(credential, Assertions::default()),
        kind: "workload identity",
    }))
}

/// The `[oidc]` app's own credential, with the client-credentials grant.
fn app_source(app: &crate::config::AppCredential) -> Result<TokenSource, StoreError> {
    let failed = |e: ResourceTokenError| StoreError::Failed(format!("redis entra: {e}"));
    use crate::config::auth::Credential;
    let auth = match &app.credential {
        Credential::Secret(s) => ClientAuth::Secret(s.clone()),
        c @ (Credential::Certificate { .. } | Credential::FederatedToken { .. }) => {
            ClientAuth::Assertion(c.clone(), Assertions::default())
        }
        Credential::ManagedIdentity(m) => {
            let source = ManagedIdentity::new(m, TOKEN_TIMEOUT).map_err(failed)?;
            ClientAuth::ManagedIdentity(Arc::new(CachedToken::new(source, TOKEN_EXCHANGE_RESOURCE)))
        }
        Credential::None => {
            return Err(StoreError::Failed(
                "redis entra_credential = \"app\" needs a confidential [oidc] client".into(),
            ))
        }
    };
    Ok(TokenSource::ClientCredentials(ClientCredentials {
        http: http_client(app.ca_file.as_deref())?,
        token_endpoint: app.token_endpoint.clone(),
        client_id: app.client_id.clone(),
        auth,
        kind: "app",
    }))
}

/// A client for Entra's token endpoint: no redirects, bounded, `ca_file` trusted besides the
/// system's roots.
fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, StoreError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TOKEN_TIMEOUT)
        .connect_timeout(Duration::from_secs(5));
    if let Some(file) = ca_file {
        let pem = std::fs::read(file).map_err(|e| {
            StoreError::Failed(format!("redis entra: {}: cannot read: {e}", file.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
            StoreError::Failed(format!(
                "redis entra: {}: no usable CA certificate",
                file.display()
            ))
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| StoreError::Failed(format!("redis entra HTTP client: {e}")))
}

#[cfg(test)]
mod tests;
