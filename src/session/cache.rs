//! The per-instance session cache: decrypted sessions kept for `session.cache_ttl`, so most
//! requests cost no store round trip.
//!
//! Correctness does not rest on the TTL: every save or delete is published by the store
//! (`SessionStore::publish_invalidation`), and a listener task drops the named entry — or
//! everything, when the store reports that messages may have been missed (`Invalidation::All`
//! after a reconnect). The TTL only bounds the damage of a lost message.
//!
//! A lookup sits on every signed-in request, so the cache is a plain sharded map with no
//! background work (`quick_cache`): a read takes one shard's read lock and clones an `Arc`.
//! Entries are keyed by the 32 bytes of the store key's digest, held inline, so a lookup reads
//! no key from elsewhere in memory. An entry's deadline is checked as it is read; expired
//! entries left unread are evicted as the cache fills, like any other cold entry.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Active, Sessions};
use crate::store::Invalidation;

/// Most sessions one instance keeps decrypted.
const CAPACITY: usize = 200_000;

pub(super) struct Cache {
    sessions: quick_cache::sync::Cache<Slot, Entry>,
    ttl: Duration,
}

#[derive(Clone)]
struct Entry {
    session: Arc<Active>,
    until: Instant,
}

impl Cache {
    pub(super) fn new(ttl: Duration) -> Cache {
        Cache {
            sessions: quick_cache::sync::Cache::new(CAPACITY),
            ttl,
        }
    }

    /// The session cached under `slot` (the digest its store key names), if its deadline
    /// has not passed.
    pub(super) fn get(&self, slot: &Slot) -> Option<Arc<Active>> {
        let entry = self.sessions.get(slot)?;
        if Instant::now() < entry.until {
            return Some(entry.session);
        }
        self.sessions.remove(slot);
        None
    }

    pub(super) fn insert(&self, slot: Slot, session: Arc<Active>) {
        let until = Instant::now() + self.ttl;
        self.sessions.insert(slot, Entry { session, until });
    }

    pub(super) fn remove(&self, slot: &Slot) {
        self.sessions.remove(slot);
    }

    /// [`Cache::insert`] by store key; any key but a session's is never cached.
    pub(super) fn insert_key(&self, key: &str, session: Arc<Active>) {
        if let Some(slot) = slot(key) {
            self.insert(slot, session);
        }
    }

    /// [`Cache::remove`] by store key (what the store's invalidations name).
    pub(super) fn remove_key(&self, key: &str) {
        if let Some(slot) = slot(key) {
            self.remove(&slot);
        }
    }

    fn clear(&self) {
        self.sessions.clear();
    }
}

/// What an entry is cached under: the SHA-256 of the session ID, whose hex the store key is.
pub(super) type Slot = [u8; 32];

/// The digest a session's store key (`session:` + 64 hex digits) names; `None` for any other
/// key (an invalidation of an index key, say), which no entry has.
fn slot(key: &str) -> Option<Slot> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(key.strip_prefix("session:")?, &mut out).ok()?;
    Some(out)
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
                Ok(Invalidation::Key(k)) => s.cache.remove_key(&k),
                Ok(Invalidation::All) => s.cache.clear(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => s.cache.clear(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{session_slot, store_key};

    fn active() -> Arc<Active> {
        let session: super::super::Session = serde_json::from_value(serde_json::json!({
            "identity": {"claims": {"oid": "o"}},
            "access_token": null,
            "refresh_token": null,
            "access_expires_at": 0,
            "created_at": 0,
            "expires_at": u64::MAX,
        }))
        .unwrap();
        Arc::new(Active::new(session))
    }

    #[test]
    fn an_entry_is_served_until_its_deadline_then_dropped() {
        let cache = Cache::new(Duration::from_millis(50));
        let s = active();
        let (a, b) = (session_slot("a"), session_slot("b"));
        cache.insert(a, s.clone());
        assert!(Arc::ptr_eq(&cache.get(&a).unwrap(), &s));
        assert!(cache.get(&b).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&a).is_none());
        assert!(
            cache.sessions.is_empty(),
            "an expired entry is removed as it is read"
        );
    }

    #[test]
    fn remove_and_clear_drop_entries() {
        let cache = Cache::new(Duration::from_secs(60));
        let (a, b) = (session_slot("a"), session_slot("b"));
        cache.insert(a, active());
        cache.insert(b, active());
        cache.remove(&a);
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());
        cache.clear();
        assert!(cache.get(&b).is_none());
    }

    #[test]
    fn a_store_key_names_the_slot_its_session_is_cached_under() {
        let cache = Cache::new(Duration::from_secs(60));
        let s = active();
        cache.insert_key(&store_key("a"), s.clone());
        assert!(Arc::ptr_eq(&cache.get(&session_slot("a")).unwrap(), &s));
        assert!(cache.get(&session_slot("b")).is_none());
        // What the store's invalidation of that key drops.
        cache.remove_key(&store_key("a"));
        assert!(cache.get(&session_slot("a")).is_none());
    }

    #[test]
    fn keys_other_than_session_keys_are_never_cached() {
        let cache = Cache::new(Duration::from_secs(60));
        let (short, long) = (
            format!("session:{}", "0".repeat(63)),
            format!("session:{}", "0".repeat(66)),
        );
        let keys = [
            "sid-set:ab",
            "session:not-hex",
            "session:",
            "user:00",
            &short,
            &long,
        ];
        for key in keys {
            cache.insert_key(key, active());
            assert!(cache.sessions.is_empty(), "{key}");
            cache.remove_key(key);
        }
    }
}
