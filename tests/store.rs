//! The session stores. One behaviour suite, written once against `Arc<dyn SessionStore>`, runs
//! on the memory store and on the Redis store (a redis-server spawned per test); then the
//! Redis-only behaviour: key prefix, authentication, the least-privilege ACL, and a Redis that
//! is down, dies, or stops answering.
//!
//! Every wait is bounded (`eventually`, `within`) so a broken store fails a test instead of
//! hanging it; no assertion depends on how fast anything is.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use portcullis::config::Secret;
use portcullis::store::redis::{
    acl_rules, DELETE_IF_SCRIPT, DELETE_IF_SHA1, GET_TOUCH_SCRIPT, GET_TOUCH_SHA1, SET_ADD_SCRIPT,
    SET_ADD_SHA1,
};
use portcullis::store::{
    Invalidation, MemoryStore, RedisConfig, RedisStore, SessionStore, StoreError,
};
use rand::RngCore;

use crate::support::eventually;
use crate::support::redis::RedisServer;

type Store = Arc<dyn SessionStore>;

const HOUR: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_millis(300);
/// Far more than any store operation may take, even against a dead Redis.
const BOUND: Duration = Duration::from_secs(5);

/// Two handles on one shared store (two proxy instances; the same store twice for memory),
/// and whatever keeps it alive.
struct Backend {
    a: Store,
    b: Store,
    kind: &'static str,
    _server: Option<RedisServer>,
}

async fn memory() -> Backend {
    let store: Store = Arc::new(MemoryStore::new(10_000));
    Backend {
        a: store.clone(),
        b: store,
        kind: "memory",
        _server: None,
    }
}

async fn redis() -> Backend {
    let server = RedisServer::start();
    Backend {
        a: Arc::new(connect(options(&server)).await),
        b: Arc::new(connect(options(&server)).await),
        kind: "redis",
        _server: Some(server),
    }
}

fn options(server: &RedisServer) -> RedisConfig {
    let mut options = RedisConfig::new(server.url());
    options.key_prefix = "test:".into();
    options
}

async fn connect(options: RedisConfig) -> RedisStore {
    within(RedisStore::connect(options)).await.unwrap()
}

/// `future`'s output, or a panic if it takes longer than [`BOUND`].
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .expect("store operation did not finish within the bound")
}

/// A fresh logical key like the proxy's: `kind:<64 hex>`.
fn key(kind: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{kind}:{}", hex::encode(bytes))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// The next `Invalidation::Key`, skipping `All`s (sent on every subscriber connection).
async fn next_key(rx: &mut tokio::sync::broadcast::Receiver<Invalidation>) -> String {
    within(async {
        loop {
            match rx.recv().await.unwrap() {
                Invalidation::Key(k) => return k,
                Invalidation::All => continue,
            }
        }
    })
    .await
}

/// Runs each behaviour test against both backends, as `store::memory::NAME` and
/// `store::redis::NAME`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory().await).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::redis().await).await
                }
            )*
        }
    };
}

suite!(
    set_then_get_round_trips,
    set_replaces_value_and_ttl,
    entries_expire_after_their_ttl,
    set_nx_stores_only_when_absent,
    expire_resets_the_ttl_of_existing_keys_only,
    get_touch_reads_and_lengthens_existing_keys_only,
    ttl_reports_the_remaining_time,
    delete_removes_the_key,
    delete_if_needs_the_current_value,
    binary_values_round_trip,
    large_values_round_trip,
    concurrent_set_nx_has_exactly_one_winner,
    invalidations_reach_every_instance,
    zero_ttl_is_refused,
    ping_answers_and_kind_names_the_backend,
    set_xx_replaces_only_an_existing_key,
    sets_add_list_and_remove_members_across_instances,
    a_set_lives_as_long_as_its_longest_member_asked,
    a_key_holds_either_a_value_or_a_set,
);

async fn a_key_holds_either_a_value_or_a_set(s: Backend) {
    let set = key("user");
    s.a.set_add(&set, "session:1", HOUR).await.unwrap();
    let err = s.b.get(&set).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
    let value = key("session");
    s.a.set(&value, b"sealed", HOUR).await.unwrap();
    let err = s.b.set_add(&value, "session:2", HOUR).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
    assert_eq!(
        s.a.get(&value).await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    // A plain write replaces a set, as SET does in Redis.
    s.a.set(&set, b"replaced", HOUR).await.unwrap();
    assert_eq!(
        s.b.get(&set).await.unwrap().as_deref(),
        Some(&b"replaced"[..])
    );
}

async fn set_xx_replaces_only_an_existing_key(s: Backend) {
    let k = key("session");
    assert!(!s.a.set_xx(&k, b"renewed", HOUR).await.unwrap());
    assert_eq!(s.b.get(&k).await.unwrap(), None, "set_xx created a key");
    s.a.set(&k, b"first", HOUR).await.unwrap();
    assert!(s.b.set_xx(&k, b"renewed", SHORT).await.unwrap());
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"renewed"[..]));
    assert!(s.a.ttl(&k).await.unwrap().unwrap() <= SHORT);
    s.a.delete(&k).await.unwrap();
    assert!(!s.b.set_xx(&k, b"resurrected", HOUR).await.unwrap());
    assert_eq!(s.a.get(&k).await.unwrap(), None);
}

async fn sets_add_list_and_remove_members_across_instances(s: Backend) {
    let k = key("sid-set");
    assert!(s.a.set_members(&k).await.unwrap().is_empty());
    s.a.set_add(&k, "session:1", HOUR).await.unwrap();
    s.b.set_add(&k, "session:2", HOUR).await.unwrap();
    s.b.set_add(&k, "session:2", HOUR).await.unwrap();
    let mut members = s.a.set_members(&k).await.unwrap();
    members.sort();
    assert_eq!(members, ["session:1", "session:2"]);
    s.b.set_remove(&k, "session:1").await.unwrap();
    assert_eq!(s.a.set_members(&k).await.unwrap(), ["session:2"]);
    s.a.set_remove(&k, "session:2").await.unwrap();
    s.a.set_remove(&k, "absent").await.unwrap();
    assert!(s.b.set_members(&k).await.unwrap().is_empty());
}

async fn a_set_lives_as_long_as_its_longest_member_asked(s: Backend) {
    let k = key("user");
    s.a.set_add(&k, "session:long", HOUR).await.unwrap();
    s.a.set_add(&k, "session:short", SHORT).await.unwrap();
    assert!(
        s.a.ttl(&k).await.unwrap().unwrap() > Duration::from_secs(3000),
        "a shorter member cut the set's life"
    );
    let k = key("user");
    s.a.set_add(&k, "session:short", SHORT).await.unwrap();
    assert!(
        eventually(BOUND, || async {
            s.b.set_members(&k).await.unwrap().is_empty()
        })
        .await
    );
}

async fn set_then_get_round_trips(s: Backend) {
    let k = key("session");
    assert_eq!(s.a.get(&k).await.unwrap(), None);
    s.a.set(&k, b"sealed session", HOUR).await.unwrap();
    assert_eq!(
        s.a.get(&k).await.unwrap().as_deref(),
        Some(&b"sealed session"[..])
    );
    assert_eq!(
        s.b.get(&k).await.unwrap().as_deref(),
        Some(&b"sealed session"[..]),
        "the other instance does not see it"
    );
    assert_eq!(s.a.get(&key("session")).await.unwrap(), None);
}

async fn set_replaces_value_and_ttl(s: Backend) {
    let k = key("session");
    s.a.set(&k, b"one", HOUR).await.unwrap();
    s.b.set(&k, b"two", Duration::from_secs(60)).await.unwrap();
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"two"[..]));
    let ttl = s.a.ttl(&k).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(60), "old ttl kept: {ttl:?}");
}

async fn entries_expire_after_their_ttl(s: Backend) {
    let k = key("signin");
    let kept = key("session");
    s.a.set(&k, b"pending", SHORT).await.unwrap();
    s.a.set(&kept, b"kept", HOUR).await.unwrap();
    assert!(
        eventually(BOUND, || async { s.a.get(&k).await.unwrap().is_none() }).await,
        "never expired"
    );
    assert_eq!(s.b.get(&k).await.unwrap(), None);
    assert_eq!(s.a.ttl(&k).await.unwrap(), None);
    assert!(!s.a.expire(&k, HOUR).await.unwrap(), "expired key revived");
    assert!(!s.a.delete_if(&k, b"pending").await.unwrap());
    assert!(s.a.set_nx(&k, b"again", HOUR).await.unwrap());
    assert!(s.a.get(&kept).await.unwrap().is_some());
}

async fn set_nx_stores_only_when_absent(s: Backend) {
    let k = key("lock");
    assert!(s.a.set_nx(&k, b"first", HOUR).await.unwrap());
    assert!(!s.b.set_nx(&k, b"second", HOUR).await.unwrap());
    assert!(!s.a.set_nx(&k, b"third", HOUR).await.unwrap());
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"first"[..]));
    s.a.delete(&k).await.unwrap();
    assert!(s.b.set_nx(&k, b"fourth", SHORT).await.unwrap());
    let ttl = s.a.ttl(&k).await.unwrap().unwrap();
    assert!(ttl <= SHORT, "set_nx ignored the ttl: {ttl:?}");
}

async fn expire_resets_the_ttl_of_existing_keys_only(s: Backend) {
    let absent = key("session");
    assert!(!s.a.expire(&absent, HOUR).await.unwrap());
    assert_eq!(
        s.a.get(&absent).await.unwrap(),
        None,
        "expire created a key"
    );

    let k = key("session");
    s.a.set(&k, b"v", SHORT).await.unwrap();
    assert!(s.b.expire(&k, HOUR).await.unwrap());
    let ttl = s.a.ttl(&k).await.unwrap().unwrap();
    assert!(ttl > HOUR / 2, "not lengthened: {ttl:?}");
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"v"[..]));

    assert!(s.a.expire(&k, SHORT).await.unwrap());
    assert!(
        eventually(BOUND, || async { s.a.get(&k).await.unwrap().is_none() }).await,
        "shortened ttl never expired"
    );
}

async fn get_touch_reads_and_lengthens_existing_keys_only(s: Backend) {
    let absent = key("session");
    assert_eq!(s.a.get_touch(&absent, HOUR).await.unwrap(), None);
    assert_eq!(
        s.a.ttl(&absent).await.unwrap(),
        None,
        "get_touch created a key"
    );

    let k = key("session");
    s.a.set(&k, b"v", SHORT).await.unwrap();
    assert_eq!(
        s.b.get_touch(&k, HOUR).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let ttl = s.a.ttl(&k).await.unwrap().unwrap();
    assert!(ttl > HOUR / 2, "not lengthened: {ttl:?}");
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"v"[..]));
}

async fn ttl_reports_the_remaining_time(s: Backend) {
    assert_eq!(s.a.ttl(&key("session")).await.unwrap(), None);
    let k = key("session");
    s.a.set(&k, b"v", Duration::from_secs(60)).await.unwrap();
    let ttl = s.b.ttl(&k).await.unwrap().unwrap();
    assert!(
        ttl > Duration::from_secs(30) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
}

async fn delete_removes_the_key(s: Backend) {
    let k = key("session");
    s.a.set(&k, b"v", HOUR).await.unwrap();
    s.b.delete(&k).await.unwrap();
    assert_eq!(s.a.get(&k).await.unwrap(), None);
    assert_eq!(s.a.ttl(&k).await.unwrap(), None);
    s.a.delete(&k).await.unwrap();
    s.a.delete(&key("session")).await.unwrap();
}

async fn delete_if_needs_the_current_value(s: Backend) {
    let k = key("lock");
    assert!(s.a.set_nx(&k, b"token-a", HOUR).await.unwrap());
    assert!(!s.b.delete_if(&k, b"token-b").await.unwrap());
    assert!(!s.b.delete_if(&k, b"token-a\0").await.unwrap());
    assert!(!s.b.delete_if(&k, b"token-").await.unwrap());
    assert_eq!(s.a.get(&k).await.unwrap().as_deref(), Some(&b"token-a"[..]));
    assert!(s.a.delete_if(&k, b"token-a").await.unwrap());
    assert_eq!(s.a.get(&k).await.unwrap(), None);
    assert!(!s.a.delete_if(&k, b"token-a").await.unwrap());
    // A second round: on Redis the script is cached now (EVALSHA hits).
    assert!(s.b.set_nx(&k, b"token-b", HOUR).await.unwrap());
    assert!(s.b.delete_if(&k, b"token-b").await.unwrap());
}

async fn binary_values_round_trip(s: Backend) {
    let every_byte: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let nuls = b"\0\0sealed\0\xff\xfe\0".to_vec();
    for value in [every_byte, nuls, Vec::new(), b"\0".to_vec()] {
        let k = key("session");
        s.a.set(&k, &value, HOUR).await.unwrap();
        assert_eq!(s.b.get(&k).await.unwrap(), Some(value.clone()));
        assert!(!s
            .a
            .delete_if(&k, &[&value[..], b"\0"].concat())
            .await
            .unwrap());
        assert!(s.a.delete_if(&k, &value).await.unwrap());
    }
}

async fn large_values_round_trip(s: Backend) {
    let value = random_bytes(64 * 1024);
    let k = key("session");
    s.a.set(&k, &value, HOUR).await.unwrap();
    assert_eq!(s.b.get(&k).await.unwrap(), Some(value.clone()));
    let mut other = value.clone();
    other[64 * 1024 - 1] ^= 1;
    assert!(!s.a.delete_if(&k, &other).await.unwrap());
    assert!(s.a.delete_if(&k, &value).await.unwrap());
}

async fn concurrent_set_nx_has_exactly_one_winner(s: Backend) {
    let k = key("lock");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let store = if i % 2 == 0 { s.a.clone() } else { s.b.clone() };
        let k = k.clone();
        tasks.spawn(async move {
            let token = format!("token-{i}");
            let won = store.set_nx(&k, token.as_bytes(), HOUR).await.unwrap();
            (won, token)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = within(tasks.join_next()).await {
        let (won, token) = result.unwrap();
        if won {
            winners.push(token);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        s.a.get(&k).await.unwrap(),
        Some(winners[0].clone().into_bytes())
    );
}

async fn invalidations_reach_every_instance(s: Backend) {
    let mut at_a = s.a.invalidations();
    let mut at_b = s.b.invalidations();
    let first = key("session");
    let second = key("sid");
    s.a.publish_invalidation(&first).await.unwrap();
    s.b.publish_invalidation(&second).await.unwrap();
    for rx in [&mut at_a, &mut at_b] {
        assert_eq!(next_key(rx).await, first);
        assert_eq!(next_key(rx).await, second);
    }
}

async fn zero_ttl_is_refused(s: Backend) {
    let k = key("session");
    let refused = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Failed(_)));
    assert!(refused(s.a.set(&k, b"v", Duration::ZERO).await.map(|_| ())));
    assert!(refused(
        s.a.set_nx(&k, b"v", Duration::ZERO).await.map(|_| ())
    ));
    assert_eq!(s.a.get(&k).await.unwrap(), None);
    s.a.set(&k, b"v", HOUR).await.unwrap();
    assert!(refused(s.a.expire(&k, Duration::ZERO).await.map(|_| ())));
    assert!(s.a.get(&k).await.unwrap().is_some());
}

async fn ping_answers_and_kind_names_the_backend(s: Backend) {
    s.a.ping().await.unwrap();
    s.b.ping().await.unwrap();
    assert_eq!(s.a.kind(), s.kind);
}

mod redis_only {
    use super::*;

    /// A plain fred client on `server`, optionally as an ACL user.
    async fn raw(server: &RedisServer, user: Option<(&str, &str)>) -> Client {
        let mut config = Config::from_url(&server.url()).unwrap();
        // Database 0 anyway; SELECT is not in the least-privilege ACL.
        config.database = None;
        if let Some((name, password)) = user {
            config.username = Some(name.into());
            config.password = Some(password.into());
        }
        let client = Builder::from_config(config).build().unwrap();
        within(client.init()).await.unwrap();
        client
    }

    fn is_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Unavailable(_)))
    }

    #[tokio::test]
    async fn keys_and_channel_carry_the_prefix_in_redis() {
        let server = RedisServer::start();
        let store = connect(options(&server)).await;
        let raw = raw(&server, None).await;
        let k = key("session");
        store.set(&k, b"sealed", HOUR).await.unwrap();

        let stored: Option<Vec<u8>> = raw.get(format!("test:{k}")).await.unwrap();
        assert_eq!(stored.as_deref(), Some(&b"sealed"[..]));
        let unprefixed: Option<Vec<u8>> = raw.get(k.as_str()).await.unwrap();
        assert_eq!(unprefixed, None);
        let pttl: i64 = raw.pttl(format!("test:{k}")).await.unwrap();
        assert!(pttl > 0, "no expiry in redis: {pttl}");

        let listener = Builder::from_config(Config::from_url(&server.url()).unwrap())
            .build()
            .unwrap();
        within(listener.init()).await.unwrap();
        let mut messages = listener.message_rx();
        within(listener.subscribe("test:invalidate")).await.unwrap();
        store.publish_invalidation(&k).await.unwrap();
        let message = within(messages.recv()).await.unwrap();
        assert_eq!(message.value.as_string().as_deref(), Some(k.as_str()));

        store.delete(&k).await.unwrap();
        let gone: i64 = raw.exists(format!("test:{k}")).await.unwrap();
        assert_eq!(gone, 0);
    }

    #[tokio::test]
    async fn delete_if_script_hash_is_the_one_redis_computes() {
        let server = RedisServer::start();
        let raw = raw(&server, None).await;
        let sha: String = raw.script_load(DELETE_IF_SCRIPT).await.unwrap();
        assert_eq!(sha, DELETE_IF_SHA1);
        let sha: String = raw.script_load(SET_ADD_SCRIPT).await.unwrap();
        assert_eq!(sha, SET_ADD_SHA1);
        let sha: String = raw.script_load(GET_TOUCH_SCRIPT).await.unwrap();
        assert_eq!(sha, GET_TOUCH_SHA1);
    }

    #[tokio::test]
    async fn password_in_the_url_or_the_options_authenticates() {
        let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
        let mut in_url = options(&server);
        in_url.url = Secret::new(format!("redis://:s3cret-pw@127.0.0.1:{}/0", server.port));
        let mut in_options = options(&server);
        in_options.url = Secret::new(format!("redis://:wrong@127.0.0.1:{}/0", server.port));
        in_options.password = Some(Secret::new("s3cret-pw"));
        for options in [in_url, in_options] {
            let store = connect(options).await;
            let k = key("session");
            store.set(&k, b"v", HOUR).await.unwrap();
            assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v"[..]));
        }
    }

    #[tokio::test]
    async fn refused_credentials_fail_to_connect_without_echoing_them() {
        let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
        let mut wrong = options(&server);
        wrong.password = Some(Secret::new("not-the-pw"));
        let missing = options(&server);
        for options in [wrong, missing] {
            match within(RedisStore::connect(options)).await {
                Err(StoreError::Failed(message)) => {
                    assert!(
                        !message.contains("s3cret") && !message.contains("not-the"),
                        "{message}"
                    );
                }
                Err(e) => panic!("expected Failed, got {e}"),
                Ok(_) => panic!("connected with refused credentials"),
            }
        }
    }

    /// The ACL rules as each shipped document writes them: `(where, rules)`, quotes removed.
    fn documented_acl_rules() -> Vec<(&'static str, Vec<String>)> {
        let unquote = |t: &str| t.trim_matches('"').to_owned();
        let ops = include_str!("../docs/operations.md");
        let line = ops
            .lines()
            .find(|l| l.starts_with("ACL SETUSER portcullis on >PASSWORD "))
            .expect("docs/operations.md has the ACL SETUSER line");
        let docs = line.split_whitespace().skip(5).map(unquote).collect();
        // Everything from `resetkeys` to `+subscribe`, in the compose command and in the
        // Kubernetes container args.
        let between = |text: &str, item: fn(&str) -> Option<String>| -> Vec<String> {
            let tokens: Vec<String> = text
                .lines()
                .filter_map(item)
                .flat_map(|l| {
                    l.split_whitespace()
                        .map(|t| t.trim_matches('"').to_owned())
                        .collect::<Vec<_>>()
                })
                .collect();
            let start = tokens
                .iter()
                .position(|t| t == "resetkeys")
                .expect("resetkeys");
            let end = tokens
                .iter()
                .position(|t| t == "+subscribe")
                .expect("+subscribe");
            tokens[start..=end].to_vec()
        };
        let compose = between(include_str!("../deploy/docker-compose.yml"), |l| {
            Some(l.trim().to_owned())
        });
        let kubernetes = between(
            include_str!("../deploy/kubernetes/redis-dev/redis.yaml"),
            |l| l.trim().strip_prefix("- ").map(str::to_owned),
        );
        vec![
            ("docs/operations.md", docs),
            ("deploy/docker-compose.yml", compose),
            ("deploy/kubernetes/redis-dev/redis.yaml", kubernetes),
        ]
    }

    #[test]
    fn the_shipped_acl_rules_are_the_ones_the_store_needs() {
        let needed: Vec<String> = acl_rules("portcullis:")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for (file, rules) in documented_acl_rules() {
            assert_eq!(rules, needed, "{file}");
        }
    }

    #[tokio::test]
    async fn acl_user_with_the_documented_rules_runs_the_store() {
        let (_, rules) = documented_acl_rules().remove(0);
        let mut args = vec!["--user", "portcullis", "on", ">acl-pw"];
        args.extend(rules.iter().map(String::as_str));
        let server = RedisServer::start_with(&args);
        let acl_options = || {
            let mut o = options(&server);
            o.key_prefix = "portcullis:".into();
            o.username = Some("portcullis".into());
            o.password = Some(Secret::new("acl-pw"));
            o
        };
        let a = connect(acl_options()).await;
        let b = connect(acl_options()).await;

        let k = key("lock");
        assert!(a.set_nx(&k, b"token", HOUR).await.unwrap());
        assert!(!b.set_nx(&k, b"other", HOUR).await.unwrap());
        a.set(&k, b"token", HOUR).await.unwrap();
        assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"token"[..]));
        assert!(a.expire(&k, HOUR).await.unwrap());
        assert!(a.ttl(&k).await.unwrap().is_some());
        assert!(!a.delete_if(&k, b"other").await.unwrap());
        assert!(a.delete_if(&k, b"token").await.unwrap());
        a.set(&k, b"v", HOUR).await.unwrap();
        assert!(a.set_xx(&k, b"w", HOUR).await.unwrap());
        a.delete(&k).await.unwrap();
        let index = key("sid-set");
        a.set_add(&index, "session:x", HOUR).await.unwrap();
        assert_eq!(b.set_members(&index).await.unwrap(), ["session:x"]);
        b.set_remove(&index, "session:x").await.unwrap();
        a.ping().await.unwrap();
        let mut at_b = b.invalidations();
        a.publish_invalidation(&k).await.unwrap();
        assert_eq!(next_key(&mut at_b).await, k);

        // The same user is refused everything outside its prefix and command list.
        let raw = raw(&server, Some(("portcullis", "acl-pw"))).await;
        let outside: Result<Value, Error> = raw.set("other:key", "v", None, None, false).await;
        assert!(
            outside
                .as_ref()
                .is_err_and(|e| e.details().contains("NOPERM")),
            "{outside:?}"
        );
        let other_channel: Result<i64, Error> = raw.publish("other:invalidate", "k").await;
        assert!(other_channel.is_err(), "{other_channel:?}");
        let flush: Result<Value, Error> = raw
            .custom(fred::cmd!("FLUSHALL"), Vec::<String>::new())
            .await;
        assert!(flush.is_err(), "{flush:?}");
        let keys: Result<Value, Error> = raw.custom(fred::cmd!("KEYS"), vec!["*"]).await;
        assert!(keys.is_err(), "{keys:?}");

        // A store configured with another prefix is refused, and says so (not "unavailable").
        let mut wrong_prefix = acl_options();
        wrong_prefix.key_prefix = "other:".into();
        let wrong = connect(wrong_prefix).await;
        assert!(matches!(
            wrong.get(&key("session")).await,
            Err(StoreError::Failed(m)) if m.contains("NOPERM")
        ));
    }

    #[tokio::test]
    async fn dead_redis_fails_fast_and_the_store_recovers_after_restart() {
        let mut server = RedisServer::start();
        let a = connect(options(&server)).await;
        let b = connect(options(&server)).await;
        let k = key("session");
        a.set(&k, b"v", HOUR).await.unwrap();
        let mut at_a = a.invalidations();

        server.stop();
        // The first command may be the one that notices; every one returns within the bound.
        assert!(is_unavailable(within(a.get(&k)).await));
        assert!(is_unavailable(within(a.set(&k, b"v", HOUR)).await));
        assert!(is_unavailable(within(a.set_nx(&k, b"v", HOUR)).await));
        assert!(is_unavailable(within(a.expire(&k, HOUR)).await));
        assert!(is_unavailable(within(a.ttl(&k)).await));
        assert!(is_unavailable(within(a.delete(&k)).await));
        assert!(is_unavailable(within(a.delete_if(&k, b"v")).await));
        assert!(is_unavailable(within(a.publish_invalidation(&k)).await));
        assert!(is_unavailable(within(a.ping()).await));

        server.restart();
        assert!(
            eventually(Duration::from_secs(10), || async { a.ping().await.is_ok() }).await,
            "ping never recovered"
        );
        // No persistence: the restarted Redis is empty, and works.
        assert_eq!(a.get(&k).await.unwrap(), None);
        a.set(&k, b"again", HOUR).await.unwrap();
        assert!(
            eventually(Duration::from_secs(10), || async {
                b.get(&k).await.is_ok_and(|v| v.is_some())
            })
            .await,
            "the other instance never recovered"
        );

        // The subscriber came back too: it announced the gap, then hears other instances.
        assert_eq!(within(at_a.recv()).await.unwrap(), Invalidation::All);
        let published = key("session");
        assert!(
            eventually(Duration::from_secs(10), || async {
                b.publish_invalidation(&published).await.is_ok()
            })
            .await
        );
        assert_eq!(next_key(&mut at_a).await, published);
    }

    #[tokio::test]
    async fn redis_down_at_start_up_does_not_stop_connect() {
        let mut server = RedisServer::start();
        server.stop();
        let store = connect(options(&server)).await;
        let mut invalidations = store.invalidations();
        assert!(is_unavailable(within(store.ping()).await));
        assert!(is_unavailable(within(store.get(&key("session"))).await));

        server.restart();
        assert!(
            eventually(Duration::from_secs(10), || async {
                store.ping().await.is_ok()
            })
            .await,
            "never connected"
        );
        let k = key("session");
        store.set(&k, b"v", HOUR).await.unwrap();
        assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(
            within(invalidations.recv()).await.unwrap(),
            Invalidation::All
        );
    }

    #[tokio::test]
    async fn frozen_redis_times_out_and_the_store_recovers() {
        let mut server = RedisServer::start();
        let mut o = options(&server);
        o.command_timeout = Duration::from_millis(300);
        let store = connect(o).await;
        let k = key("session");
        store.set(&k, b"v", HOUR).await.unwrap();

        server.pause();
        assert!(is_unavailable(within(store.get(&k)).await));
        assert!(is_unavailable(within(store.set(&k, b"late", HOUR)).await));
        assert!(is_unavailable(within(store.ping()).await));

        server.resume();
        assert!(
            eventually(Duration::from_secs(10), || async {
                store.ping().await.is_ok()
            })
            .await,
            "never recovered"
        );
        // Every pooled connection is replaced in its own time: wait until reads work too.
        assert!(
            eventually(Duration::from_secs(10), || async {
                store.get(&k).await.is_ok() && store.set(&key("probe"), b"p", HOUR).await.is_ok()
            })
            .await,
            "reads and writes never recovered"
        );
        // The SET that timed out had reached Redis's socket and may have been applied on
        // resuming: a failed write is "unknown", never "not done".
        let value = store.get(&k).await.unwrap();
        assert!(
            matches!(value.as_deref(), Some(b"v" | b"late")),
            "{value:?}"
        );
        store.set(&k, b"after", HOUR).await.unwrap();
        assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"after"[..]));
    }

    #[tokio::test]
    async fn closed_store_answers_unavailable() {
        let server = RedisServer::start();
        let store = connect(options(&server)).await;
        store.ping().await.unwrap();
        within(store.close()).await;
        assert!(is_unavailable(within(store.get(&key("session"))).await));
    }

    #[tokio::test]
    async fn connect_to_a_silent_address_neither_hangs_nor_fails() {
        // Accepts connections and never answers: a Redis behind a dead network path.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                sockets.push(socket);
            }
        });
        let mut options = RedisConfig::new(format!("redis://127.0.0.1:{port}/0"));
        options.command_timeout = Duration::from_millis(300);
        let store = connect(options).await;
        assert!(is_unavailable(within(store.get(&key("session"))).await));
        assert!(is_unavailable(within(store.ping()).await));
        held.abort();
    }

    #[tokio::test]
    async fn rediss_trusts_the_ca_file_and_nothing_unknown() {
        let pki = crate::support::Pki::new();
        let (cert_pem, key_pem) = pki.leaf(&["127.0.0.1"]);
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str, pem: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let (cert, private_key, ca) = (
            path("redis.pem", &cert_pem),
            path("redis.key", &key_pem),
            path("ca.pem", &pki.ca_pem),
        );
        let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string();
        let server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            private_key.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ]);
        let url = format!("rediss://127.0.0.1:{tls_port}/0");

        let mut trusted = options(&server);
        trusted.url = Secret::new(url.clone());
        trusted.ca_file = Some(ca);
        let store = connect(trusted).await;
        let k = key("session");
        store.set(&k, b"over tls", HOUR).await.unwrap();
        let raw = raw(&server, None).await;
        let stored: Option<Vec<u8>> = raw.get(format!("test:{k}")).await.unwrap();
        assert_eq!(stored.as_deref(), Some(&b"over tls"[..]));

        let mut untrusted = options(&server);
        untrusted.url = Secret::new(url);
        match within(RedisStore::connect(untrusted)).await {
            Err(StoreError::Failed(m)) => assert!(m.contains("Certificate"), "{m}"),
            Err(e) => panic!("expected Failed, got {e}"),
            Ok(_) => panic!("trusted a certificate from an unknown CA"),
        }
    }
}
