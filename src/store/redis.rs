//! The shared store: Redis through fred, for any number of proxy instances.
//!
//! Commands go round-robin over a fred [`Pool`] of `pool_size` multiplexed, auto-pipelined
//! connections, skipping any that is down; invalidations arrive on one more connection that
//! only subscribes. A logical key `k` is stored as `{key_prefix}k`; invalidations travel on
//! the channel `{key_prefix}invalidate`. How the connections are configured, and why, is in
//! `redis_options.rs`.
//!
//! Why a pool rather than one multiplexed connection: measured on a 2-core machine with
//! Redis on the same host, one connection was as fast as four for 512-byte values and up to
//! ~15% slower for 8 KiB values at 128 concurrent requests. The pool is kept because a large
//! reply holds up only the requests queued behind it on its own connection, and because one
//! dropped connection leaves the others serving while it reconnects.
//!
//! # Availability
//!
//! [`RedisStore::connect`] fails on a bad URL or configuration, or when the first connection
//! is refused for good (credentials, an untrusted certificate), never because Redis is down:
//! the connections then retry in the background, and each command fails at once with
//! [`StoreError::Unavailable`] while no connection is up. A command on a connection that
//! looks up but does not answer fails after `command_timeout`, and that connection is
//! replaced. Once Redis is back, commands work again without a restart.
//!
//! # Least privilege
//!
//! The store uses GET, SET (PX, NX), PEXPIRE, PTTL, DEL, EVALSHA falling back to EVAL (the
//! compare-and-delete script, which itself runs GET and DEL), PING, PUBLISH and SUBSCRIBE,
//! nothing else. [`acl_rules`] gives the rules of a least-privilege ACL user for a
//! `key_prefix`; docs/operations.md ("Redis") and the deploy files ship them for
//! `portcullis:`, and a test holds those copies to this function and runs the store as such
//! a user.
//!
//! Database 0 needs nothing more (a URL ending in `/0` sends no SELECT); another database
//! needs `+select`, a Redis cluster `+cluster|slots +cluster|info +multi +exec +discard
//! +asking` (`redis_redirect.rs`), Sentinel `+role` (fred
//! checks the named primary's ROLE), `min_replicas_ack` `+wait`. fred also asks for
//! `CLIENT ID` and `INFO server` after connecting and copes with being refused. Glob
//! characters in the prefix widen `~prefix*`: keep prefixes plain. On Azure the same rules
//! go into a data access policy; Entra ID tokens as passwords are in `redis_entra.rs`.
//!
//! # Topologies
//!
//! Every command names one key (the scripts touch only `KEYS[1]`), so a cluster never sees a
//! cross-slot command and no hash tags are needed. `tests/redis_topologies.rs` runs the store
//! and the proxy on a three-primary cluster and through a Sentinel failover.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::*;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::redis_errors::{
    first_outcome, is_certificate_error, is_permission_error, is_unreachable, store_error,
    FirstConnection,
};
use super::redis_events::{forward_invalidations, watch_connection, Liveness};
pub use super::redis_options::RedisConfig;
use super::redis_redirect::{self, KeyCommand};
use super::INVALIDATION_CAPACITY;
use super::{redis_options, ttl_millis, Invalidation, SessionStore, StoreError};

/// Deletes `KEYS[1]` if its value is `ARGV[1]`; returns 1 if deleted. Lua compares bytes.
pub const DELETE_IF_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
/// SHA-1 of [`DELETE_IF_SCRIPT`], for EVALSHA (checked against Redis's `SCRIPT LOAD` in the
/// tests).
pub const DELETE_IF_SHA1: &str = "d02e481a9c91ceec59c5822a58a49d5d5d7ac80b";

/// Adds `ARGV[1]` to the set `KEYS[1]` and makes it live at least `ARGV[2]` ms more.
pub const SET_ADD_SCRIPT: &str = "redis.call('SADD', KEYS[1], ARGV[1]) if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1";
/// SHA-1 of [`SET_ADD_SCRIPT`].
pub const SET_ADD_SHA1: &str = "cdda7b58ced424af407171c1b3327d51d692215f";

/// Reads a key and, if it exists, sets its time to live (`ARGV[1]`, ms): GET + PEXPIRE in one
/// round trip, on any Redis version with scripting (GETEX needs 6.2).
pub const GET_TOUCH_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return v";
/// SHA-1 of [`GET_TOUCH_SCRIPT`].
pub const GET_TOUCH_SHA1: &str = "9164c35d1ff0fc340f328e34147bd5b328ee9822";

/// See [`RedisStore::run`].
const OUTER_TIMEOUT_MARGIN: Duration = Duration::from_millis(250);

/// The ACL rules (everything after the user name and password) that are enough for a store
/// using `key_prefix` on database 0.
pub fn acl_rules(key_prefix: &str) -> String {
    format!(
        "resetkeys ~{key_prefix}* resetchannels &{key_prefix}invalidate -@all \
         +get +set +del +pexpire +pttl +sadd +srem +smembers +eval +evalsha +ping +publish \
         +subscribe"
    )
}

/// The Redis-backed [`SessionStore`].
pub struct RedisStore {
    pool: Pool,
    /// Per pool client: no recent connection error (see [`Liveness`]).
    up: Vec<Arc<Liveness>>,
    /// Round-robin position in the pool.
    next: AtomicUsize,
    subscriber: Client,
    key_prefix: String,
    channel: String,
    timeout: Duration,
    /// Replicas that must acknowledge a write (`WAIT`); 0: no wait.
    min_replicas_ack: i64,
    invalidations: broadcast::Sender<Invalidation>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisStore {
    /// Builds the clients and starts connecting. Fails on a bad URL or configuration, or when
    /// the first connection is refused for good (wrong password, unknown user, a database the
    /// user may not select, an untrusted TLS certificate); succeeds while Redis is down.
    pub async fn connect(options: RedisConfig) -> Result<RedisStore, StoreError> {
        let mut builder = redis_options::builder(&options)?;
        let entra = super::redis_entra::install(&mut builder, &options)?;
        let build = |e: Error| StoreError::Failed(format!("redis client: {}", e.details()));
        let pool = builder.build_pool(options.pool_size).map_err(build)?;
        let subscriber = builder.build().map_err(build)?;

        let (invalidations, _) = broadcast::channel(INVALIDATION_CAPACITY);
        let channel = format!("{}invalidate", options.key_prefix);
        let healthy = Arc::new(AtomicBool::new(true));
        let up: Vec<_> = (0..pool.size())
            .map(|_| Arc::new(Liveness::new()))
            .collect();
        let (forwarder, subscribed) =
            forward_invalidations(&subscriber, channel.clone(), invalidations.clone());
        let mut tasks = vec![forwarder];
        if let Some(entra) = &entra {
            let all = pool.clients().iter().chain([&subscriber]).cloned();
            tasks.push(entra.spawn_renewal(all.collect()));
        }
        for (client, up) in pool.clients().iter().zip(&up) {
            tasks.push(watch_connection(client, up.clone(), healthy.clone()));
        }
        let subscriber_up = Arc::new(Liveness::new());
        tasks.push(watch_connection(&subscriber, subscriber_up, healthy));
        let clients: Vec<&Client> = pool.clients().iter().chain([&subscriber]).collect();
        let limit = options.command_timeout * 2 + Duration::from_millis(100);
        let outcomes: Vec<_> = clients.iter().map(|c| first_outcome(c, limit)).collect();

        let store = RedisStore {
            up,
            next: AtomicUsize::new(0),
            key_prefix: options.key_prefix,
            channel,
            timeout: options.command_timeout,
            min_replicas_ack: i64::try_from(options.min_replicas_ack).unwrap_or(i64::MAX),
            invalidations,
            tasks,
            pool,
            subscriber,
        };
        // The handles are not needed: the connection tasks run until `quit`.
        drop(store.pool.connect_pool());
        drop(store.subscriber.connect());
        let mut reachable = true;
        for outcome in futures_util::future::join_all(outcomes).await {
            match outcome {
                FirstConnection::Connected => {}
                FirstConnection::Failed(e)
                    if !is_unreachable(e.kind())
                        || is_certificate_error(&e)
                        || is_permission_error(&e) =>
                {
                    // fred checks a primary named by sentinels with ROLE.
                    let hint = if e.details().contains("'role'") {
                        " (through Sentinel, the Redis user needs +role)"
                    } else {
                        ""
                    };
                    // Dropping the store closes its connections in the background.
                    return Err(StoreError::Failed(format!(
                        "redis refused the connection: {}{hint}",
                        e.details()
                    )));
                }
                FirstConnection::Failed(_) | FirstConnection::Pending => reachable = false,
            }
        }
        if reachable {
            // Invalidations published before the subscription would be lost: a store is
            // ready once it listens (or has logged why it cannot).
            let _ = tokio::time::timeout(limit, subscribed).await;
        } else {
            tracing::warn!(
                "redis is unreachable; starting anyway and reconnecting in the background"
            );
        }
        Ok(store)
    }

    /// Closes every connection, waiting at most `command_timeout`; the store answers
    /// `Unavailable` afterwards. Dropping the store does the same without waiting.
    pub async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = futures_util::future::join(self.pool.quit(), self.subscriber.quit()).await;
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// The next connected client in turn, or `Unavailable` at once while all are down.
    fn client(&self) -> Result<&Client, StoreError> {
        let clients = self.pool.clients();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..clients.len())
            .map(|i| (start + i) % clients.len())
            .find(|&i| self.up[i].usable() && clients[i].is_connected())
            .map(|i| &clients[i])
            .ok_or_else(|| StoreError::Unavailable("not connected to redis".into()))
    }

    /// Runs one command. fred bounds it by `command_timeout` and then marks it so that it is
    /// not sent later if it is still queued (one already written may still be applied); the
    /// outer bound, a little longer so as not to pre-empt that mark, is for the paths fred's
    /// bound might miss.
    fn run<'a, T: 'a>(
        &self,
        command: impl std::future::Future<Output = Result<T, Error>> + Send + 'a,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a {
        let bounded = self.bounded(command);
        async move { bounded.await?.map_err(|e| store_error(&e)) }
    }

    /// `SET key value PX ttl [NX|XX]`: true when written (Redis answers OK), false when the
    /// condition kept it from being written (nil).
    async fn set_with(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        condition: Option<&'static str>,
    ) -> Result<bool, StoreError> {
        let millis = ttl_millis(ttl)?;
        let client = self.client()?;
        let key = self.key(key);
        let mut set = KeyCommand::new("SET", &key)
            .arg(Bytes::copy_from_slice(value))
            .arg("PX")
            .arg(millis.to_string());
        if let Some(condition) = condition {
            set = set.arg(condition);
        }
        let reply: Value = self.run(set.run(client)).await?;
        if !reply.is_null() {
            self.acknowledged(client, &key).await?;
        }
        Ok(!reply.is_null())
    }

    /// With `min_replicas_ack`, waits until that many replicas have every write this
    /// connection made (`WAIT`), so that a failover right after cannot lose it; sent on the
    /// connection (in a cluster, to the node) that took the write, which is what WAIT counts.
    /// Too few acknowledgements within half the command timeout make the write `Unavailable`:
    /// it happened on the primary, but is not known to be safe.
    async fn acknowledged(&self, client: &Client, key: &str) -> Result<(), StoreError> {
        if self.min_replicas_ack == 0 {
            return Ok(());
        }
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let wait = fred::types::CustomCommand::new_static("WAIT", Some(slot), false);
        let millis = i64::try_from((self.timeout / 2).as_millis()).unwrap_or(i64::MAX);
        let acked: i64 = self
            .run(client.custom(wait, vec![self.min_replicas_ack, millis.max(1)]))
            .await?;
        if acked < self.min_replicas_ack {
            return Err(StoreError::Unavailable(format!(
                "redis: {acked} of {} replicas acknowledged a write",
                self.min_replicas_ack
            )));
        }
        Ok(())
    }

    /// Runs a Lua script by its hash, loading it with EVAL when Redis does not have it (after
    /// a restart or SCRIPT FLUSH).
    async fn script<R: FromValue>(
        &self,
        client: &Client,
        script: &'static str,
        sha1: &'static str,
        key: String,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        match self
            .bounded(KeyCommand::script("EVALSHA", sha1, &key, args.clone()).run(client))
            .await?
        {
            Ok(n) => Ok(n),
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                self.run(KeyCommand::script("EVAL", script, &key, args).run(client))
                    .await
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    /// [`run`](Self::run), handing back fred's error for a closer look.
    ///
    /// fred's command futures are several kilobytes: `KeyCommand` boxes each where it is made,
    /// and `command` is boxed here (one more pointer for those; the whole future for the few
    /// sent straight to fred, `PING` and `PUBLISH`), so the futures around it (this one, `run`,
    /// `script`, the store call) hold a pointer and moving them copies a few bytes.
    fn bounded<'a, T: 'a>(
        &self,
        command: impl std::future::Future<Output = Result<T, Error>> + Send + 'a,
    ) -> impl std::future::Future<Output = Result<Result<T, Error>, StoreError>> + Send + 'a {
        let limit = self.timeout;
        let command = tokio::time::timeout(limit + OUTER_TIMEOUT_MARGIN, Box::pin(command));
        async move {
            command.await.map_err(|_| {
                StoreError::Unavailable(format!("redis did not answer within {limit:?}"))
            })
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Connection tasks live until `quit`; without a runtime they are gone already.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            let subscriber = self.subscriber.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
                let _ = subscriber.quit().await;
            });
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client()?;
        let key = self.key(key);
        let retry = || KeyCommand::new("GET", &key);
        let get = redis_redirect::run_as(client, Box::pin(client.get(&key)), retry);
        let value: Option<Bytes> = self.run(get).await?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn get_touch(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        let args = vec![Value::from(ttl_millis(ttl)?.to_string())];
        let client = self.client()?;
        let value: Option<Bytes> = self
            .script(
                client,
                GET_TOUCH_SCRIPT,
                GET_TOUCH_SHA1,
                self.key(key),
                args,
            )
            .await?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.set_with(key, value, ttl, None).await.map(|_| ())
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.set_with(key, value, ttl, Some("NX")).await
    }

    async fn set_xx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.set_with(key, value, ttl, Some("XX")).await
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let millis = ttl_millis(ttl)?;
        let args = vec![Value::from(member), Value::from(millis.to_string())];
        let client = self.client()?;
        let key = self.key(key);
        let _: i64 = self
            .script(client, SET_ADD_SCRIPT, SET_ADD_SHA1, key.clone(), args)
            .await?;
        self.acknowledged(client, &key).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client()?;
        self.run(KeyCommand::new("SMEMBERS", &self.key(key)).run(client))
            .await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        let key = self.key(key);
        let srem = KeyCommand::new("SREM", &key).arg(member);
        let _: i64 = self.run(srem.run(client)).await?;
        self.acknowledged(client, &key).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let millis = ttl_millis(ttl)?;
        let client = self.client()?;
        let pexpire = KeyCommand::new("PEXPIRE", &self.key(key)).arg(millis.to_string());
        let set: i64 = self.run(pexpire.run(client)).await?;
        Ok(set == 1)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let client = self.client()?;
        let pttl = KeyCommand::new("PTTL", &self.key(key));
        let millis: i64 = self.run(pttl.run(client)).await?;
        Ok(match millis {
            -2 => None,
            // No expiry: not something this store writes, but the truth is "forever".
            -1 => Some(Duration::MAX),
            m => Some(Duration::from_millis(m.max(0) as u64)),
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        let key = self.key(key);
        let _: i64 = self.run(KeyCommand::new("DEL", &key).run(client)).await?;
        self.acknowledged(client, &key).await
    }

    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let value = Value::Bytes(Bytes::copy_from_slice(value));
        let client = self.client()?;
        let deleted: i64 = self
            .script(
                client,
                DELETE_IF_SCRIPT,
                DELETE_IF_SHA1,
                self.key(key),
                vec![value],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client()?;
        let _: Value = self.run(client.ping(None)).await?;
        Ok(())
    }

    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        let _: i64 = self.run(client.publish(self.channel.as_str(), key)).await?;
        Ok(())
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.invalidations.subscribe()
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_configuration_fails_to_connect() {
        for (url, tweak) in [
            ("http://localhost:6379", None),
            ("redis://localhost:6379/not-a-db", None),
            ("redis://localhost:6379", Some("pool")),
            ("redis://localhost:6379", Some("ca")),
            ("redis://localhost:6379", Some("timeout")),
        ] {
            let mut options = RedisConfig::new(url);
            match tweak {
                Some("pool") => options.pool_size = 0,
                Some("ca") => options.ca_file = Some("/nonexistent.pem".into()),
                Some("timeout") => options.command_timeout = Duration::ZERO,
                _ => {}
            }
            let result = RedisStore::connect(options).await;
            assert!(
                matches!(result, Err(StoreError::Failed(_))),
                "{url} {tweak:?}"
            );
        }
    }
}
