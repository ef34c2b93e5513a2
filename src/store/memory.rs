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
//! - Sets are native sets: adding, removing and testing a member cost the same however large
//!   the set. A set's members are keys of this store (see `store.rs`), so when a set has doubled
//!   since it was last compacted, members naming keys the store no longer holds are dropped.
//!   A set therefore stays within twice the live sessions it indexes (plus a small floor),
//!   however often one user signs in: the store's bound covers its sets too.
//! - As in Redis, a key holds either a value or a set: reading a set as a value, or adding to
//!   a value as a set, is an error.
//! - Invalidations go to this store's own receivers only; there is no connection to lose, so
//!   [`Invalidation::All`] is never sent.

use std::collections::{BTreeSet, HashMap, HashSet};
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
    value: Value,
    deadline: Instant,
}

enum Value {
    Bytes(Vec<u8>),
    Set(Members),
}

struct Members {
    members: HashSet<String>,
    /// Size after the last compaction: the next one runs when the set has doubled.
    compacted: usize,
}

/// A set smaller than this is never compacted.
const COMPACT_FLOOR: usize = 64;

impl Value {
    fn bytes(&self) -> Result<&[u8], StoreError> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Set(_) => Err(wrong_type("a set", "read as a value")),
        }
    }
}

fn wrong_type(holds: &str, asked: &str) -> StoreError {
    StoreError::Failed(format!("wrong type: the key holds {holds}, {asked}"))
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
    fn insert(&mut self, key: &str, value: Value, deadline: Instant) -> bool {
        if let Some(old) = self.entries.get(key) {
            self.deadlines.remove(&(old.deadline, key.to_owned()));
        } else if self.entries.len() >= self.max_entries {
            if let Some((_, victim)) = self.deadlines.pop_first() {
                self.entries.remove(&victim);
            }
        }
        let earliest = self.deadlines.first().is_none_or(|(d, _)| deadline < *d);
        self.deadlines.insert((deadline, key.to_owned()));
        self.entries
            .insert(key.to_owned(), Entry { value, deadline });
        earliest
    }

    /// Drops the members of the set at `key` that name keys no longer live, once the set has
    /// doubled since the last time: each member is looked at a bounded number of times.
    fn compact(&mut self, key: &str, now: Instant) {
        let due = matches!(
            self.entries.get(key),
            Some(Entry { value: Value::Set(set), .. })
                if set.members.len() >= COMPACT_FLOOR.max(set.compacted * 2)
        );
        // Out of the map while it is read, then back; its deadline is unchanged.
        let Some(mut entry) = due.then(|| self.entries.remove(key)).flatten() else {
            return;
        };
        if let Value::Set(set) = &mut entry.value {
            let entries = &self.entries;
            set.members
                .retain(|m| entries.get(m.as_str()).is_some_and(|e| e.deadline > now));
            set.compacted = set.members.len();
        }
        self.entries.insert(key.to_owned(), entry);
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.deadlines.remove(&(old.deadline, key.to_owned()));
        }
    }
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
        match state.live(key, Instant::now()) {
            Some(e) => Ok(Some(e.value.bytes()?.to_vec())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let deadline = deadline(now, ttl)?;
        let wake = {
            let mut state = self.shared.lock();
            state.purge(now);
            state.insert(key, Value::Bytes(value.to_vec()), deadline)
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
            state.insert(key, Value::Bytes(value.to_vec()), deadline)
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
            state.insert(key, Value::Bytes(value.to_vec()), deadline)
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
            let wake = match state.entries.get_mut(key) {
                Some(Entry {
                    value: Value::Set(set),
                    deadline,
                }) => {
                    set.members.insert(member.to_owned());
                    if *deadline < wanted {
                        let old = std::mem::replace(deadline, wanted);
                        state.deadlines.remove(&(old, key.to_owned()));
                        state.deadlines.insert((wanted, key.to_owned()));
                    }
                    // A deadline moved later is never a new earliest: the purge task need not
                    // hear of it.
                    false
                }
                Some(_) => return Err(wrong_type("a value", "added to as a set")),
                None => {
                    let set = Members {
                        members: HashSet::from([member.to_owned()]),
                        compacted: 0,
                    };
                    state.insert(key, Value::Set(set), wanted)
                }
            };
            state.compact(key, now);
            wake
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let state = self.shared.lock();
        match state.live(key, Instant::now()) {
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => Ok(set.members.iter().cloned().collect()),
            Some(_) => Err(wrong_type("a value", "read as a set")),
            None => Ok(Vec::new()),
        }
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        let now = Instant::now();
        let emptied = match state.entries.get_mut(key) {
            Some(Entry {
                value: Value::Set(set),
                deadline,
            }) if *deadline > now => {
                set.members.remove(member);
                set.members.is_empty()
            }
            Some(e) if e.deadline > now => {
                return Err(wrong_type("a value", "removed from as a set"))
            }
            _ => false,
        };
        if emptied {
            // As in Redis, a set with no members is no key at all.
            state.remove(key);
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
            state.insert(key, entry.value, deadline)
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
            .is_some_and(|e| matches!(&e.value, Value::Bytes(v) if v == value))
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
mod tests;
