//! Values other than sessions that the proxy seals into the store under the session secret
//! (the identity assertion keys, the sign-in hand-off tickets), and the short store lock that guards their rotation.

use std::time::Duration;

use super::Sessions;
use crate::store::StoreError;

impl Sessions {
    /// Reads a value this proxy sealed under `key` (not a session: the assertion keys).
    pub(crate) async fn read_sealed(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|bytes| self.sealer.open(&bytes, key.as_bytes())))
    }

    /// Seals `plain` under `key` (bound to it) for `ttl`.
    pub(crate) async fn write_sealed(
        &self,
        key: &str,
        plain: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.store
            .set(key, &self.sealer.seal(plain, key.as_bytes()), ttl)
            .await
    }

    /// Deletes a value this proxy sealed (a redeemed sign-in ticket).
    pub(crate) async fn delete_sealed(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }

    /// Takes a short store lock: `true` if this caller got it.
    pub(crate) async fn try_lock(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store.set_nx(key, b"1", ttl).await
    }
}
