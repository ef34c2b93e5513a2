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
//! no key from elsewhere in memory. An entry's deadline is checked as it is read. Past it, an
//! entry that knows the [`Fingerprint`] of the sealed value it came from is kept: the next
//! request reads the store again, and if the value there is the same one, keeps this copy
//! instead of opening and decoding it anew (`read.rs`). Entries left unread are evicted as the
//! cache fills, like any other cold entry.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Active, Sessions};
use crate::seal::Fingerprint;
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
    /// The sealed value `session` was opened from or saved as.
    sealed: Option<Fingerprint>,
}

/// What the cache holds for a slot.
pub(super) enum Lookup {
    /// Within its deadline: use it.
    Fresh(Arc<Active>),
    /// Past its deadline: read the store again; if the value there has this fingerprint, the
    /// session is this one.
    Stale(Arc<Active>, Fingerprint),
    Miss,
}

impl Cache {
    pub(super) fn new(ttl: Duration) -> Cache {
        Cache {
            sessions: quick_cache::sync::Cache::new(CAPACITY),
            ttl,
        }
    }

    /// What is cached under `slot` (the digest its store key names). An entry past its
    /// deadline that cannot be checked against the store (no fingerprint) is dropped.
    pub(super) fn lookup(&self, slot: &Slot) -> Lookup {
        let Some(entry) = self.sessions.get(slot) else {
            return Lookup::Miss;
        };
        if Instant::now() < entry.until {
            return Lookup::Fresh(entry.session);
        }
        match entry.sealed {
            Some(sealed) => Lookup::Stale(entry.session, sealed),
            None => {
                self.sessions.remove(slot);
                Lookup::Miss
            }
        }
    }

    /// The session cached under `slot` within its deadline.
    #[cfg(test)]
    pub(super) fn get(&self, slot: &Slot) -> Option<Arc<Active>> {
        match self.lookup(slot) {
            Lookup::Fresh(s) => Some(s),
            Lookup::Stale(..) | Lookup::Miss => None,
        }
    }

    /// Caches `session`, opened from or saved as the sealed value `sealed`, for `cache_ttl`.
    pub(super) fn insert(&self, slot: Slot, session: Arc<Active>, sealed: Option<Fingerprint>) {
        let until = Instant::now() + self.ttl;
        self.sessions.insert(
            slot,
            Entry {
                session,
                until,
                sealed,
            },
        );
    }

    /// A stale entry found unchanged in the store: fresh again for `cache_ttl`, unless the
    /// entry was replaced or dropped while the store was read.
    pub(super) fn renew(&self, slot: Slot, session: &Arc<Active>) {
        if let Some(entry) = self.sessions.get(&slot) {
            if Arc::ptr_eq(&entry.session, session) {
                self.insert(slot, entry.session, entry.sealed);
            }
        }
    }

    pub(super) fn remove(&self, slot: &Slot) {
        self.sessions.remove(slot);
    }

    /// [`Cache::insert`] by store key; any key but a session's is never cached.
    pub(super) fn insert_key(&self, key: &str, session: Arc<Active>, sealed: Option<Fingerprint>) {
        if let Some(slot) = slot(key) {
            self.insert(slot, session, sealed);
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
        cache.insert(a, s.clone(), None);
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
    fn past_its_deadline_an_entry_with_a_fingerprint_waits_to_be_checked() {
        let cache = Cache::new(Duration::from_millis(50));
        let s = active();
        let (a, b) = (session_slot("a"), session_slot("b"));
        cache.insert(a, s.clone(), Some([7; 28]));
        cache.insert(b, active(), None);
        std::thread::sleep(Duration::from_millis(60));
        match cache.lookup(&a) {
            Lookup::Stale(stale, sealed) => {
                assert!(Arc::ptr_eq(&stale, &s));
                assert_eq!(sealed, [7; 28]);
            }
            _ => panic!("a stale entry with a fingerprint is offered for checking"),
        }
        assert!(matches!(cache.lookup(&b), Lookup::Miss));
        assert_eq!(cache.sessions.len(), 1, "only the one without is dropped");
        // Found unchanged: fresh again, with the same fingerprint.
        cache.renew(a, &s);
        assert!(Arc::ptr_eq(&cache.get(&a).unwrap(), &s));
        // Replaced meanwhile: the newer entry stays.
        std::thread::sleep(Duration::from_millis(60));
        let newer = active();
        cache.insert(a, newer.clone(), Some([8; 28]));
        cache.renew(a, &s);
        assert!(Arc::ptr_eq(&cache.get(&a).unwrap(), &newer));
        // Dropped meanwhile (an invalidation): not brought back.
        cache.remove(&a);
        cache.renew(a, &newer);
        assert!(matches!(cache.lookup(&a), Lookup::Miss));
    }

    #[test]
    fn remove_and_clear_drop_entries() {
        let cache = Cache::new(Duration::from_secs(60));
        let (a, b) = (session_slot("a"), session_slot("b"));
        cache.insert(a, active(), None);
        cache.insert(b, active(), None);
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
        cache.insert_key(&store_key("a"), s.clone(), None);
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
            cache.insert_key(key, active(), None);
            assert!(cache.sessions.is_empty(), "{key}");
            cache.remove_key(key);
        }
    }
}
