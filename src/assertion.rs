//! Signed identity assertions for upstreams (`assertion = true` on a route): a short-lived
//! ES256 JWT in `X-Portcullis-Assertion` (`[assertion] header`), so an app can verify who is
//! asking instead of trusting whatever reaches it on the network.
//!
//! Claims: `iss` (`[assertion] issuer`), `aud` (the route's `assertion_audience`, else the
//! request's host), `sub` and `oid`, `tid`, `email`, `name`, `groups`, `roles`, `iat`, `exp`
//! (`[assertion] lifetime`, at most 5 minutes) and a random `jti`. The key set is served at
//! `/.well-known/portcullis/jwks.json` on every routed host and on the admin listener.
//!
//! Keys (`keys.rs`): from `[assertion] key_files`, or generated and shared through the session
//! store, sealed, so that every replica signs with the same set; each replica re-reads it every
//! [`REFRESH`] and the first to see the newest key due makes its successor (under a store
//! lock).

mod keys;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};

use crate::config::AssertionConfig;
use crate::identity::Identity;
use crate::primitives::{now, random_token};
use crate::session::Sessions;
use crate::store::StoreError;
pub use keys::{Key, KeySet};

/// The key set's path.
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";
/// How often a replica re-reads the shared key set.
pub const REFRESH: Duration = Duration::from_secs(30);
/// Store keys (after the store's prefix) of the shared key set and its rotation lock.
const STORE_KEY: &str = "assertion-keys";
const LOCK_KEY: &str = "assertion-keys-lock";

/// Why assertions could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("{}: not a P-256 private key in PEM (PKCS#8 or SEC1)", .0.display())]
    BadKey(std::path::PathBuf),
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("assertion keys in the store: {0}")]
    Store(#[from] StoreError),
}

/// The signer and its key set.
pub struct Assertions {
    config: AssertionConfig,
    keys: ArcSwap<KeySet>,
    /// Generated keys shared through the store; `None`: keys from files.
    shared: Option<Arc<Sessions>>,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl Assertions {
    /// Loads the key files, or reads (making it if needed) the shared key set.
    pub async fn new(
        config: AssertionConfig,
        sessions: Arc<Sessions>,
    ) -> Result<Arc<Assertions>, AssertionError> {
        let shared = config.key_files.is_empty().then_some(sessions);
        let mut set = KeySet::default();
        for f in &config.key_files {
            let pem = std::fs::read_to_string(f).map_err(|source| AssertionError::Read {
                file: f.clone(),
                source,
            })?;
            set.keys
                .push(Key::from_pem(&pem).ok_or_else(|| AssertionError::BadKey(f.clone()))?);
        }
        // The first file signs: list it last, as the newest key.
        set.keys.reverse();
        let a = Arc::new(Assertions {
            config,
            keys: ArcSwap::from_pointee(set),
            shared,
        });
        // Another replica may be making the first key: wait for it, briefly.
        for _ in 0..20 {
            a.sync().await?;
            if !a.keys.load().keys.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(a)
    }

    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// The key set, as served.
    pub fn jwks(&self) -> String {
        self.keys.load().jwks().to_string()
    }

    /// A signed assertion of `id` for `audience`; `None` only if signing failed (logged).
    pub fn sign(&self, id: &Identity, audience: &str) -> Option<HeaderValue> {
        let now = now();
        let set = self.keys.load();
        let key = set.signing(now)?;
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), self.config.issuer.clone().into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), id.oid().into());
        claims.insert("oid".into(), id.oid().into());
        claims.insert("tid".into(), id.tid().into());
        for c in ["email", "name", "preferred_username", "groups", "roles"] {
            if let Some(v) = id.claims.get(c) {
                claims.insert(c.into(), v.clone());
            }
        }
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.config.lifetime.as_secs()).into());
        claims.insert("jti".into(), random_token().into());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let signed = key
            .encoding_key()
            .and_then(|k| jsonwebtoken::encode(&header, &claims, &k).ok());
        match signed.and_then(|t| HeaderValue::from_str(&t).ok()) {
            Some(v) => Some(v),
            None => {
                tracing::error!(kid = %key.kid, "could not sign an identity assertion");
                None
            }
        }
    }

    /// Re-reads the shared key set, making the next key when the newest is due.
    async fn sync(&self) -> Result<(), AssertionError> {
        let Some(sessions) = &self.shared else {
            return Ok(());
        };
        let now = now();
        let stored = sessions.read_sealed(STORE_KEY).await?;
        let mut set = stored
            .as_deref()
            .and_then(KeySet::from_stored)
            .unwrap_or_default();
        if set.due(now, self.config.rotate_every)
            && sessions.try_lock(LOCK_KEY, Duration::from_secs(30)).await?
        {
            // Re-read under the lock: another replica may have just rotated.
            if let Some(s) = sessions
                .read_sealed(STORE_KEY)
                .await?
                .as_deref()
                .and_then(KeySet::from_stored)
            {
                set = s;
            }
            if set.due(now, self.config.rotate_every) {
                set.rotate(now, self.config.lifetime);
                // Kept past the next rotation: a stopped fleet finds its keys on restart.
                let ttl = self.config.rotate_every * 2 + keys::PUBLISH_AHEAD;
                sessions
                    .write_sealed(STORE_KEY, &set.to_stored(), ttl)
                    .await?;
                tracing::info!(kid = %set.keys.last().map_or("", |k| k.kid.as_str()), "identity assertion key generated");
            }
        }
        if !set.keys.is_empty() {
            self.keys.store(Arc::new(set));
        }
        Ok(())
    }

    /// Keeps the shared key set current until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.shared.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "could not refresh the identity assertion keys");
            }
        }
    }
}
