//! Building sign-in from the configuration: the session store, the session secrets, the
//! provider client and its background discovery.

use std::sync::Arc;

use rand::RngCore;

use super::Auth;
use crate::config::{Config, StoreKind};
use crate::oidc::{OidcError, Provider};
use crate::session::Sessions;
use crate::store::instrumented::Instrumented;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::{SessionStore, StoreError};

/// Why sign-in could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// `None` when the main file has no `[oidc]` section (public routes only).
pub async fn build(config: &Config) -> Result<Option<Arc<Auth>>, SetupError> {
    let Some(oidc) = config.oidc.clone() else {
        return Ok(None);
    };
    let provider = Provider::new(oidc)?;
    let store = store(config).await?;
    let mut secrets: Vec<Vec<u8>> = config
        .session
        .secrets
        .iter()
        .map(|s| s.expose().as_bytes().to_vec())
        .collect();
    if secrets.is_empty() {
        // Memory store only (config refuses redis without a secret): sessions die with the
        // process, so a key that does too loses nothing.
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        secrets.push(key);
        tracing::info!(
            "no session secret configured: using a random one; sessions end when the process does"
        );
    }
    let sessions = Sessions::new(config.session.clone(), store, &secrets);
    Ok(Some(Arc::new(Auth::new(
        provider,
        sessions,
        &secrets,
        &config.sign_in,
    ))))
}

async fn store(config: &Config) -> Result<Arc<dyn SessionStore>, StoreError> {
    match (config.session.store, &config.redis) {
        (StoreKind::Redis, Some(r)) => Ok(Arc::new(Instrumented::new(
            RedisStore::connect(r.clone()).await?,
        ))),
        _ => Ok(Arc::new(Instrumented::new(MemoryStore::new(
            config.session.memory_max_entries,
        )))),
    }
}
