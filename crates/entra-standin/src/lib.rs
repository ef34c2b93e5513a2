//! A stand-in for Microsoft Entra ID: an in-process OpenID Connect provider for the
//! integration tests (which cannot reach Entra) and for `portcullis demo`.
//!
//! It behaves like Entra rather than like a stub, because the proxy's hard parts are Entra's
//! quirks: RS256 tokens with Entra's claims (pairwise `sub`, `tid`/`oid`, `sid`, opaque
//! `login_hint`, groups overage), discovery whose multi-tenant issuer is a `{tenantid}`
//! template, keys that rotate, single-use codes bound to PKCE, refresh tokens that rotate,
//! AADSTS-shaped errors, and a Graph endpoint to resolve overage. Each module cites the
//! Microsoft identity platform page (learn.microsoft.com/entra/identity-platform/…) behind
//! the behaviour it reproduces.
//!
//! It is as strict as Entra where a leniency would hide a relying-party bug: redirect URIs are
//! registered exactly (no "any https" client), a post-logout redirect is followed only for the
//! app the request names, only known tenants are served, optional claims (`sid`,
//! `login_hint`, `email`) come only if the registration asks for them, the token endpoint
//! reads only form bodies, and a refresh token stays with its client and tenant.
//!
//! Where Entra is lenient the stand-in is sometimes stricter, so that tests catch bugs that
//! Entra would let slide today: a used refresh token stops working at once, an authorize
//! request without `openid` or without an S256 PKCE challenge is refused, a `login_hint` that
//! names nobody is not replaced by another user, a certificate assertion is short-lived and in
//! one of the two documented header forms.
//!
//! Beyond sign-in it issues what an API behind the proxy meets: delegated and app-only
//! (client-credentials) access tokens, v1.0 or v2.0 by the API's registration, and Graph
//! app tokens that read any user's groups when the app holds the application permission.
//!
//! # Layout
//!
//! - this file: the [`StandIn`] handle and its test controls.
//! - `config`: [`StandInConfig`], [`TestUser`], [`TestClient`], [`OptionalClaims`];
//!   redirect-URI rules. `apps`: [`TokenVersion`], [`AppPermission`], service principals.
//! - `controls`: what tests inject and read back ([`TokenFailure`], [`TokenCalls`],
//!   [`LogoutRecord`]).
//! - `server`: listener, TLS, connections, the endpoint table.
//! - `discovery`: tenant segments, the metadata document, JWKS.
//! - `authorize` (+ `session`), `token` (+ `client_auth`, `assertion`, `scopes`, `issue`,
//!   `app_grant`), `logout`, `graph` (+ `graph_pages`): the endpoints.
//! - `keys`: signing keys and rotation; `claims` (ID tokens), `access` (access tokens).
//! - `managed_identity`: IMDS and App Service's identity endpoint, and first-party resource
//!   tokens (Azure's Redis) with a hook for the resource's emulation.
//! - `aadsts`: Entra's error format; `pages`: the HTML; `http`, `state`: plumbing.

mod aadsts;
mod access;
mod app_grant;
mod apps;
mod assertion;
mod authorize;
mod claims;
mod client_auth;
mod config;
mod controls;
mod discovery;
mod graph;
mod graph_pages;
mod http;
mod issue;
mod keys;
mod logout;
mod managed_identity;
mod pages;
mod scopes;
mod server;
mod session;
mod state;
mod token;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use apps::{service_principal_id, AppPermission, TokenVersion};
pub use config::{AssertionKey, OptionalClaims, StandInConfig, TestClient, TestUser};
pub use controls::{LogoutRecord, TokenCalls, TokenFailure};
pub use keys::KeyError;
pub use managed_identity::{IssuedResourceToken, TokenHook};

use keys::{KeySet, SigningKey};
use state::{lock, now, State};

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("stand-in configuration: {0}")]
    Config(String),
    #[error("stand-in cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("stand-in TLS certificate chain: {0}")]
    Certificate(rustls_pki_types::pem::Error),
    #[error("stand-in TLS certificate chain: no certificate in the PEM")]
    NoCertificate,
    #[error("stand-in TLS private key: {0}")]
    PrivateKey(rustls_pki_types::pem::Error),
    #[error("stand-in TLS set-up: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A running stand-in. Clones share the server; dropping the last clone (or calling
/// [`StandIn::shutdown`]) stops it.
#[derive(Clone)]
pub struct StandIn {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<State>,
    addr: SocketAddr,
    /// The plain-HTTP listener for the IMDS emulation.
    imds_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.inner.state.base_url)
            .field("tenant_id", &self.inner.state.config.tenant_id)
            .finish()
    }
}

impl StandIn {
    /// Validates `config`, generates a signing key and starts serving.
    pub async fn start(config: StandInConfig) -> Result<StandIn, StandInError> {
        config::validate(&config)?;
        let acceptor = match &config.tls {
            Some((cert, key)) => Some(server::tls_acceptor(cert, key)?),
            None => None,
        };
        let key = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|e| StandInError::Config(format!("key generation task failed: {e}")))??;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StandInError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StandInError::Bind {
            addr: config.listen,
            source,
        })?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let state = Arc::new(State::new(
            config,
            format!("{scheme}://{addr}"),
            KeySet::new(key),
        ));
        let imds = TcpListener::bind((addr.ip(), 0))
            .await
            .map_err(|source| StandInError::Bind { addr, source })?;
        let imds_addr = imds
            .local_addr()
            .map_err(|source| StandInError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(server::accept_loop(
            imds,
            None,
            state.clone(),
            stopped.clone(),
        ));
        let task = tokio::spawn(server::accept_loop(
            listener,
            acceptor,
            state.clone(),
            stopped,
        ));
        Ok(StandIn {
            inner: Arc::new(Inner {
                state,
                addr,
                imds_addr,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The Instance Metadata Service's token endpoint, on a plain-HTTP listener as the real
    /// one: `http://127.0.0.1:P/metadata/identity/oauth2/token`.
    pub fn imds_endpoint(&self) -> String {
        format!(
            "http://{}/metadata/identity/oauth2/token",
            self.inner.imds_addr
        )
    }

    /// App Service's identity endpoint and the `IDENTITY_HEADER` it wants.
    pub fn app_service_identity(&self) -> (String, String) {
        let secret = lock(&self.state().identities).header_secret.clone();
        (format!("http://{}/msi/token", self.inner.imds_addr), secret)
    }

    /// Gives the host a managed identity: user-assigned with `client_id`, or the
    /// system-assigned one with `None`. Its tokens carry `object_id` as `oid`.
    pub fn add_managed_identity(&self, client_id: Option<&str>, object_id: &str) {
        lock(&self.state().identities)
            .list
            .push(managed_identity::Identity {
                client_id: client_id.map(str::to_ascii_lowercase),
                object_id: object_id.to_owned(),
            });
    }

    /// How long managed-identity tokens and first-party resource tokens (Redis) live.
    pub fn set_resource_token_lifetime(&self, lifetime: std::time::Duration) {
        lock(&self.state().identities).lifetime = lifetime;
    }

    /// Runs `hook` with every managed-identity or first-party resource token before the
    /// caller receives it.
    pub fn set_token_hook(&self, hook: TokenHook) {
        lock(&self.state().identities).hook = Some(hook);
    }

    /// How many managed-identity and first-party resource tokens were issued.
    pub fn resource_tokens_issued(&self) -> usize {
        lock(&self.state().identities).issued
    }

    /// Adds a federated identity credential to `client_id`'s registration: tokens of the
    /// home tenant's v2 issuer about `subject` (a managed identity's object ID) with audience
    /// `api://AzureADTokenExchange`, signed with the stand-in's current key. `false` if there
    /// is no such client.
    pub fn add_federated_credential(&self, client_id: &str, subject: &str) -> bool {
        let key = AssertionKey::Federated {
            issuer: self.issuer(),
            subject: subject.to_owned(),
            public_key_pem: self.public_key_pem(),
        };
        self.state()
            .update_client(client_id, |c| c.assertion_keys.push(key))
    }

    /// `https://127.0.0.1:PORT` (or `http://…` without TLS).
    pub fn base_url(&self) -> String {
        self.state().base_url.clone()
    }

    pub fn tenant_id(&self) -> &str {
        &self.state().config.tenant_id
    }

    /// `{base}/{tenant}/v2.0`; `tenant` may be a GUID, `common` or `organizations`.
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.state().base_url)
    }

    /// The home tenant's v2 issuer.
    pub fn issuer(&self) -> String {
        self.state().issuer_for(&self.state().config.tenant_id)
    }

    /// Base of the emulated Microsoft Graph (`{base}/graph`; serves `/v1.0/...`).
    pub fn graph_url(&self) -> String {
        self.state().graph_url.clone()
    }

    /// Adds a new signing key and signs with it from now on; old keys stay in the JWKS.
    pub fn rotate_keys(&self) {
        match SigningKey::generate() {
            Ok(key) => self.state().keys_mut().rotate(key),
            Err(e) => tracing::error!(error = %e, "stand-in: key rotation failed"),
        }
    }

    /// Drops every key but the current one from the JWKS (an emergency rollover).
    pub fn retire_old_keys(&self) {
        self.state().keys_mut().retire_old();
    }

    /// Adds exact redirect URIs and post-logout redirect URIs to `client_id`'s registration,
    /// as an admin would on the app's Authentication page: for a client whose address is
    /// known only once it listens. `false` if there is no such client.
    pub fn register_redirect_uris(
        &self,
        client_id: &str,
        redirect_uris: &[String],
        post_logout_redirect_uris: &[String],
    ) -> bool {
        self.state().update_client(client_id, |c| {
            for (list, add) in [
                (&mut c.redirect_uris, redirect_uris),
                (&mut c.post_logout_redirect_uris, post_logout_redirect_uris),
            ] {
                for uri in add {
                    if !list.contains(uri) {
                        list.push(uri.clone());
                    }
                }
            }
        })
    }

    /// The v1 issuer of tenant `tid` (`https://sts.windows.net/{tid}/`).
    pub fn v1_issuer(&self, tid: &str) -> String {
        self.state().v1_issuer_for(tid)
    }

    /// The user called `username` as it is now (for its generated `oid`).
    pub fn user(&self, username: &str) -> Option<TestUser> {
        self.state().user(username)
    }

    /// The users as they are now (after `set_user_groups`).
    pub fn users(&self) -> Vec<TestUser> {
        self.state().users()
    }

    /// Replaces `username`'s groups; later tokens and Graph answers use them.
    pub fn set_user_groups(&self, username: &str, groups: Vec<String>) {
        if !self.state().update_user(username, |u| u.groups = groups) {
            tracing::warn!(username, "stand-in: set_user_groups for an unknown user");
        }
    }

    /// An RS256 JWT of `claims`, signed with the current key, or with the key `kid` if that key
    /// is published; an unpublished `kid` is put in the header of a token the current key
    /// signs. For forged-token tests. Empty if signing fails (it cannot with valid keys).
    pub fn mint_token(&self, claims: serde_json::Value, kid: Option<&str>) -> String {
        self.state()
            .keys()
            .sign(&claims, kid, None)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "stand-in: mint_token failed");
                String::new()
            })
    }

    /// The ID-token claims the stand-in would issue now for `user` and `client_id` (with a
    /// fresh `sid`, and the optional claims of that client's registration).
    pub fn id_token_claims(
        &self,
        user: &TestUser,
        client_id: &str,
        nonce: Option<&str>,
    ) -> serde_json::Value {
        let state = self.state();
        let times = claims::Times::from(now(), state.config.id_token_lifetime);
        let sid = uuid::Uuid::new_v4().to_string();
        let optional = state
            .client(client_id)
            .map(|c| c.optional_claims)
            .unwrap_or_default();
        claims::id_token(state, user, client_id, optional, nonce, &sid, times)
    }

    /// PEM (SPKI) of the current public key, e.g. for "HS256 keyed with the RSA public key"
    /// forgeries.
    pub fn public_key_pem(&self) -> String {
        self.state().keys().public_pem().to_owned()
    }

    pub fn current_kid(&self) -> String {
        self.state().keys().current().kid.clone()
    }

    /// Stops accepting, lets open connections finish (up to a second), and returns.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
