//! Session stores: where sessions, pending logins, refresh locks and one-time markers live
//! between requests, and how proxy instances tell each other to drop cached copies.
//!
//! Two implementations pass one behaviour suite (`tests/store.rs`):
//!
//! - [`MemoryStore`]: embedded, bounded, for a single instance.
//! - [`RedisStore`]: shared by every instance, through a pool of connections to Redis (or a
//!   Redis cluster or sentinel set-up) that reconnects on its own.
//!
//! # Invariants
//!
//! - The session module (`session.rs`) is the one caller: it owns the key namespace, the TTLs
//!   and the sealing. Keys are logical (`session:<64 hex>`, `sid:<hex>`, `lock:<hex>`, and
//!   `signin:<hex>` one-time sign-in markers); a store may namespace them (Redis prepends its
//!   `key_prefix`). Keys are hashes, so they may appear in errors and logs.
//! - Values are opaque bytes, already sealed by the caller. They are secrets: no error message
//!   and no log line contains one.
//! - Every entry expires. A TTL is kept with millisecond precision: a sub-millisecond TTL
//!   rounds up to 1 ms, a zero TTL is refused (Redis would refuse it too).
//! - `set_nx`, `set_xx`, `set_add` and `delete_if` are atomic, across instances for Redis: a
//!   refresh lock has at most one holder, only the holder releases it, and a renewal never
//!   brings back a session deleted while it ran.
//! - Sets (`sid-set:<hex>`, `user:<hex>`) index session keys; a member may outlive its
//!   session (readers skip members that are gone), never the other way round. A store may
//!   drop a member whose key it no longer holds (the memory store does, to stay bounded).
//! - A store that cannot be reached answers [`StoreError::Unavailable`] quickly instead of
//!   hanging the request; the proxy maps that to 503 on protected routes and to a failing
//!   `/readyz` (through [`SessionStore::ping`]).
//! - A write that failed with `Unavailable` may still take effect: it can have reached Redis
//!   before the connection died or froze. Treat its outcome as unknown (a lock that `set_nx`
//!   could not confirm is not known to be free; it expires with its TTL).

pub mod instrumented;
pub mod memory;
pub mod redis;
mod redis_entra;
mod redis_errors;
mod redis_events;
mod redis_options;
mod redis_redirect;

use std::time::Duration;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisConfig, RedisStore};

/// Keys given to a store are logical (see the module doc); the Redis store prepends its
/// configured `key_prefix`. Values are opaque bytes (already encrypted by the caller).
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads `key` and, if it exists, resets its time to live to `ttl`: a session read from
    /// the store that also pushes its idle timeout forward. One round trip on Redis (a
    /// script); by default a `get` then an `expire`.
    async fn get_touch(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.get(key).await?;
        if value.is_some() {
            self.expire(key, ttl).await?;
        }
        Ok(value)
    }
    /// Stores `value` under `key`, replacing any value, expiring after `ttl` (ms precision, ttl > 0).
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    /// Stores only if `key` is absent; true if stored. Used for refresh locks and one-time markers.
    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    /// Replaces the value only if `key` exists (`SET XX`); false if absent. A renewed session
    /// is written this way, so a sign-out during the renewal is not undone.
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    /// Adds `member` to the set at `key` and makes the set live at least `ttl` from now (an
    /// index: the sessions of a `sid`, of a user).
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// The members of the set at `key`; empty if absent.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Removes `member` from the set at `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// Resets the time to live of an existing key; false if the key is absent.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Remaining time to live, None if absent.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes `key` only if its value is still `value` (compare-and-delete; Lua on Redis): releasing a lock we hold.
    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Answers whether the store is reachable (for /readyz).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Tells every proxy instance sharing this store that `key` changed or was deleted, so they drop
    /// any locally cached copy. Memory store: delivers to its own subscribers. Redis: PUBLISH on a
    /// channel named `{key_prefix}invalidate`.
    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError>;
    /// Receives invalidations published by any instance (including this one). A `None`/lagged receiver or a
    /// reconnect means messages may have been missed: `Invalidation::All` is sent after every (re)connection
    /// of the subscriber so caches can flush.
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation>;
    /// "memory" | "redis"
    fn kind(&self) -> &'static str;
}

/// A message on the invalidation channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// This logical key changed or was deleted.
    Key(String),
    /// Messages may have been missed: drop everything cached.
    All,
}

pub use crate::error::StoreError;

/// How many messages a slow invalidation receiver may fall behind before it sees `Lagged`
/// (and must flush its cache).
const INVALIDATION_CAPACITY: usize = 1024;

/// The TTL in whole milliseconds, rounded up so that a tiny TTL still stores something.
fn ttl_millis(ttl: Duration) -> Result<u64, StoreError> {
    if ttl.is_zero() {
        return Err(StoreError::Failed("a time to live must be positive".into()));
    }
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    // Redis keeps expiry times as signed 64-bit milliseconds; anything longer is a bug.
    match i64::try_from(millis) {
        Ok(m) => Ok(m as u64),
        Err(_) => Err(StoreError::Failed("time to live too long".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_nanos(1)).unwrap(), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)).unwrap(), 2);
        assert_eq!(ttl_millis(Duration::from_millis(300)).unwrap(), 300);
        assert!(matches!(
            ttl_millis(Duration::ZERO),
            Err(StoreError::Failed(_))
        ));
        assert!(matches!(
            ttl_millis(Duration::MAX),
            Err(StoreError::Failed(_))
        ));
    }
}
