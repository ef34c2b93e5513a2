//! The proxy on multi-node Redis spawned on loopback (`support/topology.rs`): Sentinel
//! failover under load, and a three-primary Cluster.
//!
//! `cache_ttl = "1ms"` makes every request read the store, so what these tests see is the
//! store's behaviour, not the cache's. Error windows are measured by polling and held to a
//! generous bound (an availability promise, not a speed measurement).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use portcullis::store::{Invalidation, RedisConfig, RedisStore, SessionStore};

use crate::support::signin::{Setup, SignIn};
use crate::support::topology::{Cluster, Sentinel};

const HOUR: Duration = Duration::from_secs(3600);
/// Far more than any store operation or connection may take.
const STORE_BOUND: Duration = Duration::from_secs(10);
/// Fresh stores connected one after another to the same cluster.
const STARTS: usize = 6;
/// Clusters created, each used by a store at once.
const FRESH_CLUSTERS: usize = 4;
/// What tells the Sentinel ACL line of docs/operations.md from the others.
const SENTINEL_ACL_MARKER: &str = "+role";

/// How long the load runs after the primary dies.
const AFTER_KILL: Duration = Duration::from_secs(15);
/// Concurrent signed-in clients during the failover.
const CLIENTS: usize = 4;
/// The most a protected request may wait (a dead store must not hang it).
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// The promised bound on the failover's error window, with margin for a loaded 2-core
/// machine: sentinels need 1 s to call the primary down and about as long to promote the
/// replica, and the proxy must then find the new primary on its own.
const ERROR_WINDOW: Duration = Duration::from_secs(8);

/// What one request during the failover saw.
struct Outcome {
    at: Duration,
    status: u16,
    /// The upstream saw the signed-in user's identity.
    identified: bool,
}

/// How the primary goes away.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// SIGKILL: its connections are closed by the kernel at once.
    Killed,
    /// SIGSTOP: its connections stay open and nothing answers (a host that vanished).
    Frozen,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_after_the_primary_is_killed_recovers_under_load() {
    failover(Death::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_after_the_primary_freezes_recovers_under_load() {
    failover(Death::Frozen).await;
}

/// Signs in, runs a bounded load of signed-in requests, takes the primary away and checks
/// what the requests saw: only 200 with the user's identity or 503, a bounded error window,
/// and the session (written before the failover) serving again at the end.
async fn failover(death: Death) {
    let topology = tokio::task::spawn_blocking(Sentinel::start).await.unwrap();
    let s = SignIn::start(Setup {
        redis: Some(topology.url()),
        session: "cache_ttl = \"1ms\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    // The session reached the replica: it survives the primary.
    tokio::task::block_in_place(|| topology.wait_replicated());
    let old_primary = topology.primary.port;

    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let mut client = s.browser_at(&s.proxy, &b);
        let url = s.url(&format!("/load/{w}"));
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            // Bounded by time (the stop flag) and by count.
            for _ in 0..100_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let hop = tokio::time::timeout(REQUEST_LIMIT, client.api(&url))
                    .await
                    .expect("a protected request hung while Redis failed over");
                seen.push(Outcome {
                    at: start.elapsed(),
                    status: hop.status.as_u16(),
                    identified: hop.body.contains("alice@contoso.example"),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = start.elapsed();
    let mut topology = topology;
    match death {
        Death::Killed => topology.primary.kill(),
        Death::Frozen => topology.primary.signal("-STOP"),
    }
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.unwrap());
    }
    outcomes.sort_by_key(|o| o.at);

    let promoted = topology.primary_port();
    assert_eq!(
        promoted,
        Some(topology.replica.port),
        "the sentinels did not promote the replica (old primary {old_primary})"
    );
    for o in &outcomes {
        assert!(
            o.status == 200 || o.status == 503,
            "status {} at {:?}: only 200 (signed in) or 503 (store unavailable) may be seen",
            o.status,
            o.at
        );
        if o.status == 200 {
            assert!(
                o.identified,
                "a 200 without the user's identity at {:?}",
                o.at
            );
        }
    }
    let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    // From the primary's death to the last request that failed: the time the service was
    // degraded, including requests that waited out the command timeout.
    let window = errors
        .last()
        .map_or(Duration::ZERO, |o| o.at.saturating_sub(killed_at));
    let last_error = errors.last().map(|o| o.at);
    eprintln!(
        "failover ({death:?}): {} requests, {} answered 503, the last {window:?} after the primary died (primary killed at {killed_at:?}, last 503 at {last_error:?})",
        outcomes.len(),
        errors.len()
    );
    assert!(
        window <= ERROR_WINDOW,
        "503s for {window:?} (more than {ERROR_WINDOW:?})"
    );
    let tail: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.at > killed_at + AFTER_KILL - Duration::from_secs(3))
        .collect();
    assert!(
        !tail.is_empty() && tail.iter().all(|o| o.status == 200),
        "the proxy had not recovered 12 s after the primary died"
    );
}

/// The cluster every cluster test shares (started once per test binary; each test uses its
/// own key prefix). Its processes are killed when the binary exits.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    tokio::task::block_in_place(|| CLUSTER.get_or_init(Cluster::start))
}

fn cluster_options(prefix: &str) -> RedisConfig {
    let mut options = RedisConfig::new(cluster().url());
    options.key_prefix = prefix.into();
    options
}

/// A connected store, or a failed test: every client must come up within the bound.
async fn cluster_store(prefix: &str) -> RedisStore {
    let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(cluster_options(prefix)))
        .await
        .expect("connecting to the cluster hung")
        .expect("connecting to the cluster failed");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_on_a_cluster_serves_at_once() {
    // The reported bug struck one start in three: several starts in a row, each checked.
    for start in 0..STARTS {
        let store = cluster_store(&format!("starts{start}:")).await;
        for i in 0..20 {
            let key = format!("session:{start}-{i}");
            let result = tokio::time::timeout(STORE_BOUND, store.set(&key, b"v", HOUR)).await;
            assert!(
                matches!(result, Ok(Ok(()))),
                "start {start}, write {i}: {result:?}"
            );
        }
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_operation_works_on_a_cluster_without_cross_slot_errors() {
    let prefix = "ops:";
    let a = cluster_store(prefix).await;
    let b = cluster_store(prefix).await;
    let mut rx = b.invalidations();
    // Enough keys to land on all three primaries.
    for i in 0..30 {
        let session = format!("session:{i:064}");
        let index = format!("user:{i:064}");
        let lock = format!("lock:{i:064}");
        let marker = format!("signin:{i:064}");
        a.set(&session, b"sealed", HOUR).await.unwrap();
        assert_eq!(
            b.get(&session).await.unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        assert!(a.set_xx(&session, b"renewed", HOUR).await.unwrap());
        a.set_add(&index, &session, HOUR).await.unwrap();
        assert_eq!(b.set_members(&index).await.unwrap(), vec![session.clone()]);
        assert!(a.set_nx(&lock, b"holder", HOUR).await.unwrap());
        assert!(!b.set_nx(&lock, b"other", HOUR).await.unwrap());
        assert!(!b.delete_if(&lock, b"other").await.unwrap());
        assert!(a.delete_if(&lock, b"holder").await.unwrap());
        assert!(a.set_nx(&marker, b"1", HOUR).await.unwrap());
        assert!(a.expire(&session, HOUR).await.unwrap());
        assert!(a.ttl(&session).await.unwrap().is_some());
        a.set_remove(&index, &session).await.unwrap();
        a.delete(&session).await.unwrap();
        assert_eq!(b.get(&session).await.unwrap(), None);
    }
    // The keys really are spread over the primaries (else this proves nothing about slots).
    let holding = cluster()
        .nodes
        .iter()
        .filter(|n| !n.command(&format!("KEYS {prefix}*")).starts_with("*0"))
        .count();
    assert_eq!(holding, 3, "the test keys did not reach every primary");
    a.ping().await.unwrap();
    a.publish_invalidation("session:published").await.unwrap();
    let received = tokio::time::timeout(STORE_BOUND, async {
        loop {
            if let Ok(Invalidation::Key(k)) = rx.recv().await {
                return k;
            }
        }
    })
    .await
    .expect("no invalidation arrived through the cluster");
    assert_eq!(received, "session:published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_sign_out_on_a_cluster() {
    let s = SignIn::start(Setup {
        redis: Some(cluster().url()),
        session: "cache_ttl = \"1ms\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let hop = b.api(&s.url("/again")).await;
    assert_eq!(hop.status, 200, "{}", hop.body);
    assert_eq!(b.click(&s.url("/.auth/logout")).await.status, 302);
    assert_eq!(b.api(&s.url("/after")).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_started_on_a_fresh_cluster_serves() {
    for round in 0..FRESH_CLUSTERS {
        let fresh = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
        let mut options = RedisConfig::new(fresh.url());
        options.key_prefix = "fresh:".into();
        let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(options))
            .await
            .expect("connecting hung")
            .expect("connecting failed");
        for i in 0..20 {
            let result =
                tokio::time::timeout(STORE_BOUND, store.set(&format!("session:{i}"), b"v", HOUR))
                    .await;
            assert!(
                matches!(result, Ok(Ok(()))),
                "round {round}, write {i}: {result:?}"
            );
        }
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_cluster_acl_is_enough_for_the_store() {
    let rules = documented_acl("cluster|slots");
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start_with(
            &[
                "requirepass admin-pw".to_owned(),
                format!("user portcullis on >acl-pw {rules}"),
            ],
            &["-a", "admin-pw"],
        )
    })
    .await
    .unwrap();
    let mut options = RedisConfig::new(cluster.url());
    options.username = Some("portcullis".into());
    options.password = Some(portcullis::config::Secret::new("acl-pw"));
    // The documented user's prefix, exactly.
    options.key_prefix = "portcullis:".into();
    let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(options.clone()))
        .await
        .expect("connecting hung")
        .expect("the documented ACL user could not connect");
    let other = RedisStore::connect(options).await.unwrap();
    let mut rx = other.invalidations();
    for i in 0..30 {
        let session = format!("session:{i:064}");
        let lock = format!("lock:{i:064}");
        store.set(&session, b"sealed", HOUR).await.unwrap();
        assert!(store.set_xx(&session, b"renewed", HOUR).await.unwrap());
        assert_eq!(
            other.get(&session).await.unwrap().as_deref(),
            Some(&b"renewed"[..])
        );
        store
            .set_add(&format!("user:{i:064}"), &session, HOUR)
            .await
            .unwrap();
        assert_eq!(
            other
                .set_members(&format!("user:{i:064}"))
                .await
                .unwrap()
                .len(),
            1
        );
        store
            .set_remove(&format!("user:{i:064}"), &session)
            .await
            .unwrap();
        assert!(store.set_nx(&lock, b"me", HOUR).await.unwrap());
        assert!(store.delete_if(&lock, b"me").await.unwrap());
        assert!(store.expire(&session, HOUR).await.unwrap());
        assert!(store.ttl(&session).await.unwrap().is_some());
        store.delete(&session).await.unwrap();
    }
    store.ping().await.unwrap();
    store.publish_invalidation("session:acl").await.unwrap();
    let received = tokio::time::timeout(STORE_BOUND, async {
        loop {
            if let Ok(Invalidation::Key(k)) = rx.recv().await {
                return k;
            }
        }
    })
    .await
    .expect("no invalidation arrived for the ACL user");
    assert_eq!(received, "session:acl");
    // The user really is limited: another prefix is refused.
    let reply = cluster.nodes[0].command("AUTH portcullis acl-pw\r\nGET other:key");
    assert!(reply.contains("NOPERM"), "{reply}");
}

/// The rules of the ACL user in docs/operations.md whose line contains `marker`.
pub(crate) fn documented_acl(marker: &str) -> String {
    let doc = include_str!("../docs/operations.md");
    let line = doc
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("ACL SETUSER portcullis on >PASSWORD ") && l.contains(marker))
        .unwrap_or_else(|| panic!("docs/operations.md has an ACL SETUSER line with {marker}"));
    line["ACL SETUSER portcullis on >PASSWORD ".len()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_sentinel_acl_is_enough_for_the_store() {
    let rules = documented_acl(SENTINEL_ACL_MARKER);
    let topology = tokio::task::spawn_blocking(move || {
        Sentinel::start_with(&[format!("user portcullis on >acl-pw {rules}")], &[])
    })
    .await
    .unwrap();
    let mut options = RedisConfig::new(topology.url());
    options.username = Some("portcullis".into());
    options.password = Some(portcullis::config::Secret::new("acl-pw"));
    options.key_prefix = "portcullis:".into();
    let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(options))
        .await
        .expect("connecting hung")
        .expect("the documented ACL user could not connect through the sentinels");
    // The same rules without `+role`: refused at start, with the reason, instead of a store
    // that starts and answers 503 for ever.
    let without_role = topology.primary.command(&format!(
        "ACL SETUSER norole on >norole-pw {}",
        documented_acl(SENTINEL_ACL_MARKER).replace(" +role", "")
    ));
    assert!(without_role.starts_with("+OK"), "{without_role}");
    let mut norole = RedisConfig::new(topology.url());
    norole.username = Some("norole".into());
    norole.password = Some(portcullis::config::Secret::new("norole-pw"));
    norole.key_prefix = "portcullis:".into();
    let refused = tokio::time::timeout(STORE_BOUND, RedisStore::connect(norole))
        .await
        .expect("connecting hung");
    match refused {
        Err(e) => assert!(e.to_string().contains("+role"), "{e}"),
        Ok(_) => panic!("a user without +role was accepted through Sentinel"),
    }

    store.set("session:acl", b"sealed", HOUR).await.unwrap();
    assert!(store.set_nx("lock:acl", b"me", HOUR).await.unwrap());
    assert!(store.delete_if("lock:acl", b"me").await.unwrap());
    store
        .set_add("user:acl", "session:acl", HOUR)
        .await
        .unwrap();
    store.publish_invalidation("session:acl").await.unwrap();
    assert!(topology
        .primary
        .command("GET portcullis:session:acl")
        .contains("sealed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_naming_a_dead_seed_node_still_serves() {
    let nodes = &cluster().nodes;
    let dead = crate::support::free_port();
    let url = format!(
        "redis-cluster://127.0.0.1:{dead}?node=127.0.0.1:{}&node=127.0.0.1:{}",
        nodes[0].port, nodes[1].port
    );
    for start in 0..STARTS {
        let mut options = RedisConfig::new(url.clone());
        options.key_prefix = format!("seed{start}:");
        let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(options))
            .await
            .expect("connecting hung")
            .expect("connecting failed");
        let served = crate::support::eventually(STORE_BOUND, || async {
            store.set("session:x", b"v", HOUR).await.is_ok()
        })
        .await;
        assert!(served, "start {start}: never served");
        store.close().await;
    }
}
