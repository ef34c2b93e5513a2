//! The identity provider as the proxy sees it: discovery, signing keys, the authorize URL,
//! the token endpoint, token validation and Microsoft Graph for the groups overage.
//!
//! The proxy starts whether or not the provider answers: [`Provider::run`] retries discovery
//! with exponential backoff (1 s doubling to 60 s) while public routes serve and protected
//! routes answer 503; once metadata and keys are in, the keys are refreshed every
//! `oidc.jwks_refresh`, keeping the last good set when a fetch fails.
//!
//! Files: `metadata.rs` (discovery, issuer rules), `jwks.rs` (key cache), `verify.rs` (token
//! checks), `token.rs` (openidconnect calls, error classes), `credential.rs` (client
//! assertions), `graph.rs` (overage), `directory.rs` (Graph as the app itself, for bearer
//! tokens' overage), `resource_token.rs` and `managed_identity.rs` (tokens the proxy asks for
//! as itself: for Redis, and a managed identity's token as the client assertion).

pub mod credential;
pub mod directory;
pub mod graph;
pub mod jwks;
pub mod limited;
pub mod managed_identity;
pub mod metadata;
pub mod resource_token;
pub mod token;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::config::OidcConfig;
use directory::{Directory, DirectoryError};
use jwks::{Jwks, Lookup};
use metadata::Metadata;
pub use token::{AuthorizeParams, ProviderFault, TokenError, Tokens};
pub use verify::{Expect, VerifyError};

/// Set-up failures (bad `ca_file`).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{}: cannot read CA certificates: {source}", file.display())]
    CaFile {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no usable CA certificate in the file", file.display())]
    NoCa { file: std::path::PathBuf },
    #[error("identity provider HTTP client: {0}")]
    Http(String),
}

/// Why discovery or a key fetch failed. The provider keeps retrying; protected routes answer
/// 503 meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("GET {url} failed")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the answer was refused")]
    Body {
        url: String,
        #[source]
        source: limited::BodyError,
    },
    #[error("the discovery document was refused")]
    Metadata(#[from] metadata::MetadataError),
    #[error("the metadata's issuer is not a URL")]
    IssuerNotAUrl,
    #[error("the key set was refused")]
    Keys(#[from] jwks::JwksError),
    #[error("keys were fetched before the metadata")]
    NoMetadata,
}

struct Discovered {
    metadata: Metadata,
    client: token::Client,
}

/// The provider: configuration, an HTTP client, and what discovery found.
pub struct Provider {
    pub config: OidcConfig,
    http: reqwest::Client,
    loaded: ArcSwapOption<Discovered>,
    jwks: Jwks,
    /// Flips to `true` once discovery and the first key fetch have succeeded.
    ready: watch::Sender<bool>,
    /// App tokens for Graph and the groups read with them.
    directory: Directory,
    /// Signed client assertions, reused for most of their life.
    assertions: credential::Assertions,
    /// With `client_assertion_source = "managed_identity"`: the identity's token for
    /// `api://AzureADTokenExchange`, reused until near its expiry.
    managed: Option<resource_token::CachedToken>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.config.issuer)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// The provider has not answered discovery yet.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the identity provider's metadata is not loaded yet")]
pub struct NotReady;

impl Provider {
    pub fn new(config: OidcConfig) -> Result<Arc<Provider>, OidcError> {
        // Redirects are never followed: a provider answer that redirects is an error, not a
        // hop to wherever it points (SSRF).
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(file) = &config.ca_file {
            let pem = std::fs::read(file).map_err(|source| OidcError::CaFile {
                file: file.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| OidcError::NoCa { file: file.clone() })?;
            if certs.is_empty() {
                return Err(OidcError::NoCa { file: file.clone() });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| OidcError::Http(e.to_string()))?;
        let managed = match &config.credential {
            crate::config::auth::Credential::ManagedIdentity(m) => {
                let source = managed_identity::ManagedIdentity::new(m, config.http_timeout)
                    .map_err(|e| OidcError::Http(e.to_string()))?;
                Some(resource_token::CachedToken::new(
                    source,
                    resource_token::TOKEN_EXCHANGE_RESOURCE,
                ))
            }
            _ => None,
        };
        Ok(Arc::new(Provider {
            config,
            http,
            loaded: ArcSwapOption::empty(),
            jwks: Jwks::default(),
            ready: watch::Sender::new(false),
            directory: Directory::default(),
            assertions: credential::Assertions::default(),
            managed,
        }))
    }

    /// Metadata and keys are loaded: sign-in can work.
    pub fn is_ready(&self) -> bool {
        self.loaded.load().is_some() && self.jwks.is_loaded()
    }

    /// Resolves once metadata and keys have loaded (at once if they have).
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // `wait_for` fails only if the sender is gone, and `self` holds it.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Discovery with backoff, then periodic key refresh, until `stop` flips.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.discover().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer, error = %crate::error::chain(&e), retry_in = ?backoff, "identity provider discovery failed; protected routes answer 503 until it succeeds");
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
        tracing::info!(issuer = %self.config.issuer, "identity provider metadata and keys loaded");
        self.ready.send_replace(true);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(self.config.jwks_refresh) => {}
            }
            if let Err(e) = self.fetch_keys().await {
                tracing::warn!(error = %crate::error::chain(&e), "signing key refresh failed; keeping the last good keys");
            }
        }
    }

    async fn discover(&self) -> Result<(), DiscoveryError> {
        let url = metadata::discovery_url(&self.config);
        let body = self.get(&url).await?;
        let mut md = metadata::parse(&body, &self.config)?;
        let v1 = self.get(&metadata::v1_discovery_url(&self.config)).await?;
        md.v1_issuer = Some(metadata::parse_v1(&v1, &md)?);
        let client = token::client(&self.config, &md).ok_or(DiscoveryError::IssuerNotAUrl)?;
        self.loaded.store(Some(Arc::new(Discovered {
            metadata: md,
            client,
        })));
        self.fetch_keys().await
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, DiscoveryError> {
        let fetch = |source| DiscoveryError::Fetch {
            url: url.to_owned(),
            source,
        };
        let resp = self.http.get(url).send().await.map_err(fetch)?;
        if !resp.status().is_success() {
            return Err(DiscoveryError::Status {
                url: url.to_owned(),
                status: resp.status().as_u16(),
            });
        }
        limited::read(resp, limited::MAX_METADATA)
            .await
            .map_err(|source| DiscoveryError::Body {
                url: url.to_owned(),
                source,
            })
    }

    async fn fetch_keys(&self) -> Result<(), DiscoveryError> {
        let loaded = self.loaded.load_full().ok_or(DiscoveryError::NoMetadata)?;
        let body = self.get(loaded.metadata.jwks_uri.as_str()).await?;
        let n = self.jwks.replace(&body)?;
        tracing::debug!(keys = n, "signing keys fetched");
        Ok(())
    }

    fn loaded(&self) -> Result<Arc<Discovered>, NotReady> {
        self.loaded.load_full().ok_or(NotReady)
    }

    /// The authorize URL for one sign-in.
    pub fn authorize_url(&self, p: &AuthorizeParams<'_>) -> Result<url::Url, NotReady> {
        let l = self.loaded()?;
        token::authorize_url(&l.client, &self.config, p).ok_or(NotReady)
    }

    pub async fn redeem(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, TokenError> {
        let l = self
            .loaded()
            .map_err(|NotReady| TokenError::Unavailable(ProviderFault::NotReady))?;
        let assertion = self.assertion(l.metadata.token_endpoint.as_str()).await?;
        token::redeem(
            &l.client,
            &self.http,
            code,
            verifier,
            redirect_uri,
            assertion,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, TokenError> {
        let l = self
            .loaded()
            .map_err(|NotReady| TokenError::Unavailable(ProviderFault::NotReady))?;
        let assertion = self.assertion(l.metadata.token_endpoint.as_str()).await?;
        token::refresh(
            &l.client,
            &self.http,
            refresh_token,
            &self.config.scopes,
            assertion,
        )
        .await
    }

    /// The client assertion for the next token request to `token_endpoint` (certificate,
    /// federated token or managed identity).
    async fn assertion(&self, token_endpoint: &str) -> Result<Option<String>, TokenError> {
        if let Some(managed) = &self.managed {
            return match managed.get().await {
                Ok(t) => Ok(Some(t.secret().to_owned())),
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "the managed identity gave no client assertion");
                    Err(TokenError::Unavailable(ProviderFault::Other(
                        "the managed identity gave no client assertion".to_owned(),
                    )))
                }
            };
        }
        self.assertions
            .assertion(
                &self.config.credential,
                &self.config.client_id,
                token_endpoint,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "the client credential could not be prepared");
                TokenError::Misconfigured {
                    code: "client_credential".to_owned(),
                    aadsts: None,
                }
            })
    }

    /// Validates a token; an unknown `kid` refetches the keys once (rate-limited).
    pub async fn verify(
        &self,
        token: &str,
        expect: Expect<'_>,
    ) -> Result<Map<String, Value>, VerifyError> {
        let kid = verify::key_id(token)?;
        let l = self.loaded().map_err(|_| VerifyError::KeysUnavailable)?;
        let key = match self.jwks.lookup(&kid) {
            Lookup::Found(k) => k,
            Lookup::Unknown => return Err(VerifyError::UnknownKey),
            Lookup::Refetch => self.refetch_for(&kid).await?,
        };
        verify::verify(token, &key, &expect, &self.config, &l.metadata)
    }

    /// Fetches the keys again for an unknown `kid` (one fetch at a time; the rate limit is
    /// checked again once the fetch lock is held, as another task may just have fetched).
    async fn refetch_for(&self, kid: &str) -> Result<Arc<jsonwebtoken::DecodingKey>, VerifyError> {
        let _guard = self.jwks.fetch_guard().await;
        if let Lookup::Refetch = self.jwks.lookup(kid) {
            self.jwks.mark_refetched();
            if let Err(e) = self.fetch_keys().await {
                tracing::warn!(error = %crate::error::chain(&e), "signing key refetch for an unknown key ID failed");
            }
        }
        match self.jwks.lookup(kid) {
            Lookup::Found(k) => Ok(k),
            _ => Err(VerifyError::UnknownKey),
        }
    }

    /// Where to send the browser after a local sign-out, if the provider has an end-session
    /// endpoint (RP-initiated logout with `client_id`, `post_logout_redirect_uri` and
    /// `logout_hint`). `client_id` names the app whose registered URIs the provider checks
    /// the redirect against (OpenID Connect RP-Initiated Logout 1.0 §2); without it, or an ID
    /// token hint, Entra shows its signed-out page instead of redirecting.
    pub fn end_session_url(
        &self,
        post_logout_redirect_uri: Option<&str>,
        logout_hint: Option<&str>,
    ) -> Option<url::Url> {
        let l = self.loaded.load_full()?;
        let mut url = l.metadata.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.config.client_id);
            if let Some(p) = post_logout_redirect_uri {
                q.append_pair("post_logout_redirect_uri", p);
            }
            if let Some(h) = logout_hint {
                q.append_pair("logout_hint", h);
            }
        }
        Some(url)
    }

    /// The user's groups from Microsoft Graph, for an overage.
    pub async fn graph_groups(&self, access_token: &str) -> Result<Vec<String>, graph::GraphError> {
        graph::transitive_groups(&self.http, &self.config.graph_url, access_token).await
    }

    /// The groups of user `oid` in tenant `tid`, asked of Microsoft Graph as the app itself
    /// (a bearer token's overage): cached, fail-closed (see `directory.rs`).
    pub async fn app_groups(&self, tid: &str, oid: &str) -> Result<Arc<[String]>, DirectoryError> {
        if matches!(
            self.config.credential,
            crate::config::auth::Credential::None
        ) {
            return Err(DirectoryError::NoCredential);
        }
        self.directory
            .groups(tid, oid, || async {
                let token = self
                    .directory
                    .app_token(tid, || self.graph_app_token(tid))
                    .await?;
                let read = graph::user_groups(&self.http, &self.config.graph_url, &token, oid);
                match read.await {
                    Ok(groups) => Ok(groups),
                    Err(e) => {
                        if let graph::GraphError::Status(401) = e {
                            // Revoked or expired early: the next lookup asks for a new one.
                            self.directory.forget_token(tid).await;
                        }
                        Err(DirectoryError::Graph(Arc::new(e)))
                    }
                }
            })
            .await
    }

    /// A client-credentials token for Graph (`{graph_url}/.default`) from tenant `tid`.
    async fn graph_app_token(&self, tid: &str) -> Result<token::AppToken, DirectoryError> {
        let l = self.loaded()?;
        let endpoint = l
            .metadata
            .token_endpoint_for(tid)
            .ok_or_else(|| DirectoryError::Tenant(tid.to_owned()))?;
        let assertion = self
            .assertion(endpoint.as_str())
            .await
            .map_err(DirectoryError::Token)?;
        let scope = format!("{}/.default", self.config.graph_url);
        token::client_credentials(&l.client, &self.http, endpoint, &scope, assertion)
            .await
            .map_err(DirectoryError::Token)
    }
}
