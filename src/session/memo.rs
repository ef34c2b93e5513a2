//! What this process works out once per session value and keeps beside it (`Active`): the
//! identity headers, the policy decision per route, when the idle timeout was last pushed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::Denied;
use crate::route::Route;

/// What this process memoizes per session value; never stored.
#[derive(Default)]
pub struct Memo {
    /// Unix seconds when this instance last pushed the idle timeout forward in the store.
    pub(super) touched: AtomicU64,
    /// Identity headers per preset (`oauth2-proxy`, `easy-auth`).
    pub headers: [OnceLock<crate::headers::identity::Headers>; 3],
    /// Policy decisions for the last few routes used.
    pub(super) decisions: Mutex<Decisions>,
}

/// Most routes whose decisions one session value remembers.
pub(super) const DECISIONS: usize = 4;

/// The last [`DECISIONS`] routes a session value was judged for, and the answers. Held
/// inside the memo, not behind a pointer of their own: reading a decision then touches the
/// memo's memory, which the request has just read, rather than one more cold cache line per
/// signed-in request (profiled: nearly all of `Memo::decision`'s time was that load).
///
/// A route is known by its allocation: a reload builds new ones, and the `Weak` keeps an old
/// one's address from being reused. An empty slot holds `Weak::new()`, whose address is no
/// route's.
pub(super) struct Decisions {
    routes: [Weak<Route>; DECISIONS],
    answers: [Result<(), Denied>; DECISIONS],
    /// The slot the next new route takes: the oldest one once all are in use.
    next: usize,
}

impl Default for Decisions {
    fn default() -> Decisions {
        Decisions {
            routes: Default::default(),
            answers: std::array::from_fn(|_| Ok(())),
            next: 0,
        }
    }
}

impl Decisions {
    /// How many routes are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.routes.iter().filter(|r| r.strong_count() > 0).count()
    }
}

impl Memo {
    /// Notes that the idle timeout was pushed forward at `now` (unix seconds).
    pub(super) fn touched_at(&self, now: u64) {
        self.touched.store(now, Ordering::Relaxed);
    }

    /// `route`'s policy decision for this session value: remembered, or `judge`d now.
    pub fn decision(
        &self,
        route: &Arc<Route>,
        judge: impl FnOnce() -> Result<(), Denied>,
    ) -> Result<(), Denied> {
        let mut known = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
        let here = Arc::as_ptr(route);
        if let Some(i) = known
            .routes
            .iter()
            .position(|r| std::ptr::eq(r.as_ptr(), here))
        {
            return known.answers[i].clone();
        }
        let d = judge();
        let i = known.next;
        known.routes[i] = Arc::downgrade(route);
        known.answers[i] = d.clone();
        known.next = (i + 1) % DECISIONS;
        d
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}
