//! Reading a session for a request: from the cache, from the store, or both.
//!
//! A fresh cache entry answers alone. An entry past `session.cache_ttl` is checked with a plain
//! `GET`: if the store still holds the sealed value the entry came from (same
//! [`Fingerprint`]), the entry is kept, with its decoded claims, rendered headers and memo;
//! otherwise the value is opened anew, or the session has ended. With no entry, the value is
//! read and its idle timeout pushed forward in one round trip.

use std::sync::Arc;

use super::cache::{Lookup, Slot};
use super::{codec, key_of, Active, Sessions};
use crate::primitives::now;
use crate::seal::{self, Fingerprint};
use crate::store::StoreError;

impl Sessions {
    /// The session under `slot` for a request at `now`: `None` if it is absent, unreadable or
    /// past its hard end as stored (`load` checks the end of a cached one).
    pub(super) async fn fetch(
        &self,
        slot: Slot,
        now: u64,
    ) -> Result<Option<Arc<Active>>, StoreError> {
        let lookup = self.cache.lookup(&slot);
        crate::metrics::session_cache(matches!(lookup, Lookup::Fresh(_)));
        match lookup {
            Lookup::Fresh(session) => Ok(Some(session)),
            Lookup::Stale(session, sealed) => self.revalidate(slot, session, sealed).await,
            Lookup::Miss => {
                let Some((session, sealed)) = self.read_touching(&key_of(&slot), now).await? else {
                    return Ok(None);
                };
                self.cache.insert(slot, session.clone(), Some(sealed));
                Ok(Some(session))
            }
        }
    }

    /// A cached session past `cache_ttl`, against the store: the same sealed value keeps the
    /// cached copy, a changed one is opened, none ends it. A plain `GET` (which the Redis
    /// client pipelines with other requests' commands): the idle timeout is pushed forward by
    /// `load`, once per interval, as for a fresh entry.
    async fn revalidate(
        &self,
        slot: Slot,
        cached: Arc<Active>,
        sealed: Fingerprint,
    ) -> Result<Option<Arc<Active>>, StoreError> {
        let key = key_of(&slot);
        let Some(bytes) = self.store.get(&key).await? else {
            self.cache.remove(&slot);
            return Ok(None);
        };
        if seal::fingerprint(&bytes) == Some(sealed) {
            self.cache.renew(slot, &cached);
            return Ok(Some(cached));
        }
        match self.open(&key, bytes) {
            Some((session, sealed)) => {
                self.cache.insert(slot, session.clone(), Some(sealed));
                Ok(Some(session))
            }
            None => {
                self.cache.remove(&slot);
                Ok(None)
            }
        }
    }

    /// Reads from the store, bypassing the cache (and not extending the idle timeout). `None`
    /// for absent, expired or unreadable.
    pub(crate) async fn read(&self, key: &str) -> Result<Option<Arc<Active>>, StoreError> {
        let bytes = self.store.get(key).await?;
        Ok(bytes
            .and_then(|b| self.open(key, b))
            .map(|(session, _)| session))
    }

    /// [`read`](Self::read) for a request: the same store round trip pushes the idle timeout
    /// forward, so the value starts out touched.
    async fn read_touching(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Option<(Arc<Active>, Fingerprint)>, StoreError> {
        let idle = self.config.idle_timeout;
        let Some(bytes) = self.store.get_touch(key, idle).await? else {
            return Ok(None);
        };
        let Some((session, sealed)) = self.open(key, bytes) else {
            return Ok(None);
        };
        session.memo.touched_at(now);
        // Within `idle_timeout` of its hard end, the key keeps that end, not `idle_timeout`.
        if let Some(ttl) = self.ttl(&session, now).filter(|ttl| *ttl < idle) {
            match self.store.expire(key, ttl).await {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => tracing::warn!(error = %e, "could not set a session's time to live"),
            }
        }
        Ok(Some((session, sealed)))
    }

    /// A stored value, opened, with its fingerprint: `None` for ended or unreadable.
    fn open(&self, key: &str, bytes: Vec<u8>) -> Option<(Arc<Active>, Fingerprint)> {
        let Some(plain) = self.sealer.open(&bytes, key.as_bytes()) else {
            // Sealed under a retired secret, or tampered with in the store.
            tracing::warn!(key, "session value does not open; treating it as absent");
            return None;
        };
        // Some for every value that opens (the same format check).
        let sealed = seal::fingerprint(&bytes)?;
        match codec::decode(&plain) {
            Ok(s) if s.expires_at > now() => Some((Arc::new(Active::new(s)), sealed)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "session value does not parse; treating it as absent");
                None
            }
        }
    }
}
