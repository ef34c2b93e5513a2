//! The per-instance session cache: decrypted sessions kept for `session.cache_ttl`, so most
//! requests cost no store round trip.
//!
//! Correctness does not rest on the TTL: every save or delete is published by the store
//! (`SessionStore::publish_invalidation`), and a listener task drops the named entry — or
//! everything, when the store reports that messages may have been missed (`Invalidation::All`
//! after a reconnect). The TTL only bounds the damage of a lost message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Active, Sessions};
use crate::store::Invalidation;

/// Most sessions one instance keeps decrypted.
const CAPACITY: u64 = 200_000;

pub(super) struct Cache {
    sessions: moka::future::Cache<String, Arc<Active>>,
}

impl Cache {
    pub(super) fn new(ttl: Duration) -> Cache {
        Cache {
            sessions: moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Option<Arc<Active>> {
        self.sessions.get(key).await
    }

    pub(super) async fn insert(&self, key: &str, s: Arc<Active>) {
        self.sessions.insert(key.to_owned(), s).await;
    }

    pub(super) async fn remove(&self, key: &str) {
        self.sessions.invalidate(key).await;
    }

    fn clear(&self) {
        self.sessions.invalidate_all();
    }
}

/// Drops cached sessions as the store reports changes; ends with the `Sessions`.
pub(super) fn listen(sessions: &Arc<Sessions>) {
    let mut rx = sessions.store.invalidations();
    let weak: Weak<Sessions> = Arc::downgrade(sessions);
    tokio::spawn(async move {
        loop {
            let msg = rx.recv().await;
            let Some(s) = weak.upgrade() else { return };
            match msg {
                Ok(Invalidation::Key(k)) => s.cache.remove(&k).await,
                Ok(Invalidation::All) => s.cache.clear(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => s.cache.clear(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
