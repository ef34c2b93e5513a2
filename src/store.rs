//! (in progress) Session stores: the trait; implementations arrive separately.

use std::time::Duration;

/// Keys given to a store are logical ("session:<64 hex>", "login-state:<hex>", "lock:<hex>",
/// "sid:<hex>"); the Redis store prepends its configured key_prefix. Values are opaque bytes
/// (already encrypted by the caller).
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError>;
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation>;
    fn kind(&self) -> &'static str;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Key(String),
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store error: {0}")]
    Failed(String),
}
