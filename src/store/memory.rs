//! The embedded store: a bounded map with per-entry expiry, for one proxy instance.
//!
//! Entries live in a `HashMap` beside a `BTreeSet` ordered by deadline (the layout of
//! mini-redis's `db.rs`), both behind one mutex that is never held across an `.await`, which
//! makes `set_nx` and `delete_if` atomic for free.
//!
//! # Invariants
//!
//! - An expired entry is never returned: every read checks the deadline.
//! - Expired entries are purged by a background task that sleeps until the next deadline, and
//!   also on every write. The task ends when the store is dropped. A store built outside a
//!   Tokio runtime has no task and relies on the purge on write.
//! - At most `max_entries` entries are held. When a new key arrives at a full store, the entry
//!   closest to its deadline goes first (expired ones are at the front anyway). That choice
//!   protects the long-lived entries: pending logins (minutes) are evicted before sessions
//!   (hours), so a flood of anonymous `/login` hits cannot push signed-in users out before it
//!   has pushed out its own older entries. Replacing an existing key never evicts.
//! - Invalidations go to this store's own receivers only; there is no connection to lose, so
//!   [`Invalidation::All`] is never sent.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, Notify};

use super::{ttl_millis, Invalidation, SessionStore, StoreError, INVALIDATION_CAPACITY};

/// The embedded, bounded, single-instance store.
pub struct MemoryStore {
    shared: Arc<Shared>,
    invalidations: broadcast::Sender<Invalidation>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the purge task: a new earliest deadline, or shutdown.
    wake: Notify,
}

struct State {
    entries: HashMap<String, Entry>,
    /// (deadline, key) for every entry: the front is the next to expire.
    deadlines: BTreeSet<(Instant, String)>,
    max_entries: usize,
    shutdown: bool,
}

struct Entry {
    value: Vec<u8>,
    deadline: Instant,
}

impl MemoryStore {
    /// A store holding at most `max_entries` entries (at least 1).
    pub fn new(max_entries: usize) -> MemoryStore {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries: HashMap::new(),
                deadlines: BTreeSet::new(),
                max_entries: max_entries.max(1),
                shutdown: false,
            }),
            wake: Notify::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(purge_task(shared.clone()));
        }
        let (invalidations, _) = broadcast::channel(INVALIDATION_CAPACITY);
        MemoryStore {
            shared,
            invalidations,
        }
    }

    /// Entries held, expired or not (for tests of the purge).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.shared.lock().entries.len()
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the two maps disagreeing in a way that
        // breaks a later caller worse than losing the store would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The live entry under `key`, if any.
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.deadline > now)
    }

    /// Removes every expired entry; returns the next deadline, if any.
    fn purge(&mut self, now: Instant) -> Option<Instant> {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                return Some(*deadline);
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.entries.remove(&key);
            }
        }
        None
    }

    /// Inserts or replaces; true if the purge task should look at the new deadline.
    fn insert(&mut self, key: &str, value: &[u8], deadline: Instant) -> bool {
        if let Some(old) = self.entries.get(key) {
            self.deadlines.remove(&(old.deadline, key.to_owned()));
        } else if self.entries.len() >= self.max_entries {
            if let Some((_, victim)) = self.deadlines.pop_first() {
                self.entries.remove(&victim);
            }
        }
        let earliest = self.deadlines.first().is_none_or(|(d, _)| deadline < *d);
        self.deadlines.insert((deadline, key.to_owned()));
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                deadline,
            },
        );
        earliest
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.deadlines.remove(&(old.deadline, key.to_owned()));
        }
    }
}

/// A set's members: kept as one value, newline-separated (members are store keys).
fn members(value: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(value)
        .split('\n')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

fn deadline(now: Instant, ttl: Duration) -> Result<Instant, StoreError> {
    let ttl = Duration::from_millis(ttl_millis(ttl)?);
    now.checked_add(ttl)
        .ok_or_else(|| StoreError::Failed("time to live too long".into()))
}

/// Sleeps until the next deadline (or a wake-up), purges, repeats; ends on shutdown.
async fn purge_task(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut state = shared.lock();
            if state.shutdown {
                return;
            }
            state.purge(Instant::now())
        };
        match next {
            Some(when) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(when.into()) => {}
                    _ = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.shared.lock();
        Ok(state.live(key, Instant::now()).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let deadline = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            state.insert(key, value, deadline)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let deadline = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            if state.live(key, now).is_some() {
                return Ok(false);
            }
            state.insert(key, value, deadline)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(true)
    }

    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let deadline = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            if state.live(key, now).is_none() {
                return Ok(false);
            }
            state.insert(key, value, deadline)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(true)
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let wanted = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            let (mut members, deadline) = match state.live(key, now) {
                Some(e) => (members(&e.value), e.deadline.max(wanted)),
                None => (Vec::new(), wanted),
            };
            if !members.iter().any(|m| m == member) {
                members.push(member.to_owned());
            }
            state.insert(key, members.join("\n").as_bytes(), deadline)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let state = self.shared.lock();
        Ok(state
            .live(key, Instant::now())
            .map(|e| members(&e.value))
            .unwrap_or_default())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        let now = Instant::now();
        let Some(entry) = state.live(key, now) else {
            return Ok(());
        };
        let deadline = entry.deadline;
        let left: Vec<String> = members(&entry.value)
            .into_iter()
            .filter(|m| m != member)
            .collect();
        if left.is_empty() {
            state.remove(key);
        } else {
            state.insert(key, left.join("\n").as_bytes(), deadline);
        }
        Ok(())
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let deadline = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            let Some(entry) = state.entries.remove(key) else {
                return Ok(false);
            };
            state.deadlines.remove(&(entry.deadline, key.to_owned()));
            state.insert(key, &entry.value, deadline)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(true)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let state = self.shared.lock();
        Ok(state.live(key, now).map(|e| e.deadline - now))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.shared.lock().remove(key);
        Ok(())
    }

    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let mut state = self.shared.lock();
        if state
            .live(key, Instant::now())
            .is_some_and(|e| e.value == value)
        {
            state.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        // No receiver is not an error: nobody caches anything yet.
        let _ = self.invalidations.send(Invalidation::Key(key.to_owned()));
        Ok(())
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.invalidations.subscribe()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        for _ in 0..200 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    #[tokio::test]
    async fn full_store_evicts_the_entry_closest_to_expiry() {
        let store = MemoryStore::new(3);
        store.set("session:a", b"a", HOUR * 8).await.unwrap();
        store.set("signin:b", b"b", HOUR / 6).await.unwrap();
        store.set("session:c", b"c", HOUR * 4).await.unwrap();
        store.set("session:d", b"d", HOUR * 2).await.unwrap();

        assert_eq!(store.held(), 3);
        assert_eq!(store.get("signin:b").await.unwrap(), None);
        for key in ["session:a", "session:c", "session:d"] {
            assert!(store.get(key).await.unwrap().is_some(), "{key} evicted");
        }
    }

    #[tokio::test]
    async fn replacing_a_key_in_a_full_store_evicts_nothing() {
        let store = MemoryStore::new(2);
        store.set("a", b"1", HOUR).await.unwrap();
        store.set("b", b"1", HOUR * 2).await.unwrap();
        store.set("a", b"2", HOUR * 3).await.unwrap();
        assert!(store.expire("b", HOUR).await.unwrap());
        assert_eq!(store.held(), 2);
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(store.get("b").await.unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[tokio::test]
    async fn set_nx_in_a_full_store_evicts_and_stores() {
        let store = MemoryStore::new(1);
        store.set("session:a", b"a", HOUR).await.unwrap();
        assert!(store.set_nx("lock:a", b"me", HOUR * 2).await.unwrap());
        assert_eq!(store.held(), 1);
        assert!(!store.set_nx("lock:a", b"you", HOUR).await.unwrap());
    }

    #[tokio::test]
    async fn zero_capacity_still_holds_one_entry() {
        let store = MemoryStore::new(0);
        store.set("a", b"1", HOUR).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[tokio::test]
    async fn expired_entries_are_purged_without_any_access() {
        let store = MemoryStore::new(100);
        store.set("a", b"1", HOUR).await.unwrap();
        store
            .set("b", b"1", Duration::from_millis(50))
            .await
            .unwrap();
        store
            .set("c", b"1", Duration::from_millis(100))
            .await
            .unwrap();
        assert!(eventually(|| store.held() == 1).await, "not purged");
        assert!(store.get("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_purge_task() {
        let store = MemoryStore::new(100);
        // The task is now asleep until an hour from now.
        store.set("a", b"1", HOUR).await.unwrap();
        tokio::task::yield_now().await;
        store
            .set("b", b"1", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(eventually(|| store.held() == 1).await, "not purged");
    }

    #[tokio::test]
    async fn purge_task_ends_when_the_store_is_dropped() {
        let store = MemoryStore::new(10);
        store.set("a", b"1", HOUR).await.unwrap();
        let shared = Arc::downgrade(&store.shared);
        drop(store);
        assert!(
            eventually(|| shared.strong_count() == 0).await,
            "the purge task still holds the store"
        );
    }

    #[test]
    fn a_store_outside_a_runtime_purges_on_write() {
        let store = MemoryStore::new(10);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            store
                .set("a", b"1", Duration::from_millis(1))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            store.set("b", b"1", HOUR).await.unwrap();
            assert_eq!(store.held(), 1);
        });
    }

    #[tokio::test]
    async fn too_long_a_ttl_is_refused() {
        let store = MemoryStore::new(10);
        let err = store.set("a", b"1", Duration::MAX).await.unwrap_err();
        assert!(matches!(err, StoreError::Failed(_)));
    }
}
