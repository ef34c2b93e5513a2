//! A store wrapper that times every operation and counts failures
//! (`portcullis_session_store_duration_seconds`, `portcullis_session_store_errors_total`).

use std::time::{Duration, Instant};

use super::{Invalidation, SessionStore, StoreError};

pub struct Instrumented<S> {
    inner: S,
}

impl<S: SessionStore> Instrumented<S> {
    pub fn new(inner: S) -> Instrumented<S> {
        // The error series exists at zero from the start, for dashboards and alerts.
        metrics::counter!("portcullis_session_store_errors_total", "store" => inner.kind(), "op" => "get")
            .increment(0);
        Instrumented { inner }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let r = f.await;
        crate::metrics::store_op(self.inner.kind(), op, start.elapsed(), r.is_ok());
        r
    }
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for Instrumented<S> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("get", self.inner.get(key)).await
    }
    /// Counted as `get`: it is the request path's session read, which dashboards and the
    /// documented alert (`op="get"`) watch.
    async fn get_touch(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("get", self.inner.get_touch(key, ttl)).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.timed("set", self.inner.set(key, value, ttl)).await
    }
    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.timed("set_nx", self.inner.set_nx(key, value, ttl))
            .await
    }
    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.timed("set_xx", self.inner.set_xx(key, value, ttl))
            .await
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        self.timed("set_add", self.inner.set_add(key, member, ttl))
            .await
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.timed("set_members", self.inner.set_members(key)).await
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.timed("set_remove", self.inner.set_remove(key, member))
            .await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.timed("expire", self.inner.expire(key, ttl)).await
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        self.timed("ttl", self.inner.ttl(key)).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.timed("delete", self.inner.delete(key)).await
    }
    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        self.timed("delete_if", self.inner.delete_if(key, value))
            .await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        self.timed("publish", self.inner.publish_invalidation(key))
            .await
    }
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<Invalidation> {
        self.inner.invalidations()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
