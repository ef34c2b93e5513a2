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
    /// Policy decisions for the last few routes used. A route is known by its allocation: a
    /// reload builds new ones, and the `Weak` keeps an old one's address from being reused.
    pub(super) decisions: Mutex<Vec<Remembered>>,
}

/// A route, and its policy's decision for one session value.
type Remembered = (Weak<Route>, Result<(), Denied>);

/// Most routes whose decisions one session value remembers.
pub(super) const DECISIONS: usize = 4;

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
        if let Some((_, d)) = known
            .iter()
            .find(|(r, _)| std::ptr::eq(r.as_ptr(), Arc::as_ptr(route)))
        {
            return d.clone();
        }
        let d = judge();
        if known.len() == DECISIONS {
            known.drain(..1);
        }
        known.push((Arc::downgrade(route), d.clone()));
        d
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}
