//! Resharding a Redis cluster under load: slots holding live keys move from one primary to
//! another by hand, with the protocol `redis-cli --cluster reshard` uses (CLUSTER SETSLOT
//! IMPORTING and MIGRATING, MIGRATE … KEYS in batches, CLUSTER SETSLOT NODE on every node),
//! slowly enough that clients meet both ASK (a key already moved while its slot migrates)
//! and MOVED (a slot that has moved). The test starts its own cluster: the shared one of
//! `redis_topologies.rs` must keep its slots where its tests expect them.
//!
//! The load is both the store API (workers that each own keys, write them and read them
//! back, so a reply handed to the wrong caller shows as a wrong value) and the proxy with
//! `cache_ttl = "1ms"` (every signed-in request reads its session from Redis). Everything is
//! bounded in count and in time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::store::{RedisConfig, RedisStore, SessionStore};

use crate::support::signin::{Setup, SignIn};
use crate::support::topology::{Cluster, Node};

const HOUR: Duration = Duration::from_secs(3600);
/// Far more than any store operation may take.
const STORE_BOUND: Duration = Duration::from_secs(10);
/// Hash tags: each puts its keys in one slot, so a slot holds many keys to move in batches.
const TAGS: [&str; 4] = ["{t0}", "{t1}", "{t2}", "{t3}"];
const KEYS_PER_TAG: usize = 40;
/// Store workers, each owning the keys whose number modulo WORKERS is its own.
const WORKERS: usize = 4;
/// Signed-in browsers hitting the proxy.
const BROWSERS: usize = 2;
/// Keys moved per MIGRATE, and the pause after each batch (keys of one slot then live on two
/// nodes, which is when ASK is answered).
const BATCH: usize = 8;
const BATCH_PAUSE: Duration = Duration::from_millis(40);
/// How long a slot stays migrating once its keys have all moved, and between telling the
/// new owner, the old one and the third node that it moved.
const SLOT_PAUSE: Duration = Duration::from_millis(150);
/// The most rounds a worker runs (the stop flag ends it sooner).
const MAX_ROUNDS: usize = 100_000;
/// How long the load runs after the last slot moved (clients with stale slot tables meet
/// MOVED then).
const AFTER: Duration = Duration::from_millis(500);
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// What the load saw.
#[derive(Default)]
struct Tally {
    operations: AtomicUsize,
    errors: AtomicUsize,
    /// The first few failures, to print.
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 10 {
            examples.push(what);
        }
    }

    fn ok(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_slots_under_load_gives_zero_errors_and_loses_no_key() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let s = SignIn::start(Setup {
        redis: Some(cluster.url()),
        session: "cache_ttl = \"1ms\"".into(),
        ..Setup::default()
    })
    .await;
    let mut browser = s.browser();
    assert_eq!(
        browser.navigate(&s.url("/")).await.last().unwrap().status,
        200
    );
    // The proxy's own keys (the session and the user's index), found on the nodes.
    let proxy_keys: Vec<String> = cluster
        .nodes
        .iter()
        .flat_map(|n| keys(&n.command("KEYS pc-test:*")))
        .collect();
    assert!(!proxy_keys.is_empty(), "the sign-in wrote nothing to Redis");

    // The store runs as the least-privilege user of docs/operations.md.
    let rules = crate::redis_topologies::documented_acl("cluster|slots");
    for node in &cluster.nodes {
        let mut setuser = vec!["ACL", "SETUSER", "portcullis", "on", ">acl-pw"];
        setuser.extend(rules.split_whitespace());
        let reply = node.command(&resp(&setuser));
        assert!(reply.starts_with("+OK"), "{reply}");
    }
    let mut options = RedisConfig::new(cluster.url());
    options.username = Some("portcullis".into());
    options.password = Some(portcullis::config::Secret::new("acl-pw"));
    options.key_prefix = "portcullis:".into();
    let stores: Vec<Arc<RedisStore>> = {
        let mut stores = Vec::new();
        for _ in 0..2 {
            let store = tokio::time::timeout(STORE_BOUND, RedisStore::connect(options.clone()))
                .await
                .expect("connecting hung")
                .expect("connecting failed");
            stores.push(Arc::new(store));
        }
        stores
    };
    let names: Vec<String> = (0..TAGS.len() * KEYS_PER_TAG)
        .map(|i| format!("session:{}:{i}", TAGS[i % TAGS.len()]))
        .collect();
    for name in &names {
        stores[0].set(name, b"v0", HOUR).await.unwrap();
    }

    // The slots to move: the tags' and the proxy's.
    let mut slots: BTreeSet<u16> = TAGS
        .iter()
        .map(|t| slot(&format!("portcullis:x:{t}")))
        .collect();
    slots.extend(proxy_keys.iter().map(|k| slot(k)));
    for node in &cluster.nodes {
        assert!(node.command("CONFIG RESETSTAT").starts_with("+OK"));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let store = stores[w % stores.len()].clone();
        let mine: Vec<String> = names.iter().skip(w).step_by(WORKERS).cloned().collect();
        let (stop, tally) = (stop.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            let mut written = vec![0usize; mine.len()];
            for round in 1..=MAX_ROUNDS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = round % mine.len();
                work(&store, w, round, &mine[i], &tally).await;
                written[i] = round;
            }
            (mine, written)
        }));
    }
    let mut browsers = Vec::new();
    for b in 0..BROWSERS {
        let mut client = s.browser_at(&s.proxy, &browser);
        let url = s.url(&format!("/load/{b}"));
        let (stop, tally) = (stop.clone(), tally.clone());
        browsers.push(tokio::spawn(async move {
            let mut requests = 0usize;
            for _ in 0..MAX_ROUNDS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let hop = tokio::time::timeout(REQUEST_LIMIT, client.api(&url))
                    .await
                    .expect("a signed-in request hung while slots moved");
                requests += 1;
                if hop.status != 200 || !hop.body.contains("alice@contoso.example") {
                    tally.fail(format!("proxy: {} {}", hop.status, hop.body));
                }
            }
            requests
        }));
    }

    let moving = slots.len();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        let ids: Vec<String> = cluster.nodes.iter().map(node_id).collect();
        for &slot in &slots {
            let from = owner(&cluster.nodes, &ids, slot);
            let to = (from + 1) % cluster.nodes.len();
            move_slot(&cluster.nodes, &ids, slot, from, to);
        }
        cluster
    })
    .await
    .unwrap();
    let moved_in = started.elapsed();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);

    let mut last = Vec::new();
    for w in workers {
        last.push(w.await.unwrap());
    }
    let mut requests = 0;
    for b in browsers {
        requests += b.await.unwrap();
    }
    let (asks, moveds, askings) = redirections(&cluster.nodes);
    let errors = tally.errors.load(Ordering::Relaxed);
    eprintln!(
        "reshard: {} slots moved in {moved_in:?}; {} store operations and {requests} proxy \
         requests; {errors} errors; the nodes answered ASK {asks} times and MOVED {moveds} \
         times, and ran ASKING {askings} times",
        moving,
        tally.operations.load(Ordering::Relaxed),
    );
    for example in tally.examples.lock().unwrap().iter() {
        eprintln!("  {example}");
    }

    assert_eq!(errors, 0, "errors while slots moved (examples above)");
    // Nothing lost: a fresh store reads every key as its owner last wrote it.
    let fresh = RedisStore::connect(options).await.unwrap();
    for (mine, written) in &last {
        for (name, round) in mine.iter().zip(written) {
            let expected = if *round == 0 {
                b"v0".to_vec()
            } else {
                format!("v{round}").into_bytes()
            };
            let value = fresh.get(name).await.unwrap();
            assert_eq!(value.as_deref(), Some(&expected[..]), "{name}");
        }
    }
    for key in &proxy_keys {
        let holders = cluster
            .nodes
            .iter()
            .filter(|n| n.command(&resp(&["EXISTS", key])).starts_with(":1"))
            .count();
        assert!(holders <= 1, "{key} is on {holders} nodes");
    }
    // The session moved with its slot and still serves.
    assert_eq!(browser.api(&s.url("/after")).await.status, 200);
    assert!(
        asks > 0 && moveds > 0,
        "the load met no ASK or no MOVED: it proved nothing"
    );
}

/// One round of worker `w` on its key `name`: write, read back, and the conditional writes,
/// scripts and sets, each checked.
async fn work(store: &RedisStore, w: usize, round: usize, name: &str, tally: &Tally) {
    let value = format!("v{round}");
    let check = |what: &str, ok: bool, detail: String| {
        if ok {
            tally.ok();
        } else {
            tally.fail(format!("{what} {name}: {detail}"));
        }
    };
    let r = bounded(store.set(name, value.as_bytes(), HOUR)).await;
    check("set", r.is_ok(), format!("{r:?}"));
    let r = bounded(store.get(name)).await;
    let read = matches!(&r, Ok(Some(v)) if v == value.as_bytes());
    check("get", read, format!("{r:?}"));
    let r = bounded(store.set_xx(name, value.as_bytes(), HOUR)).await;
    check("set_xx", matches!(r, Ok(true)), format!("{r:?}"));
    let r = bounded(store.expire(name, HOUR)).await;
    check("expire", matches!(r, Ok(true)), format!("{r:?}"));
    let r = bounded(store.ttl(name)).await;
    check("ttl", matches!(r, Ok(Some(_))), format!("{r:?}"));
    // A fresh lock next to the key (same slot): taken once, refused once, released once.
    let lock = format!("{name}:lock:{round}");
    let holder = format!("w{w}");
    let r = bounded(store.set_nx(&lock, holder.as_bytes(), HOUR)).await;
    check("set_nx", matches!(r, Ok(true)), format!("{r:?}"));
    let r = bounded(store.set_nx(&lock, b"other", HOUR)).await;
    check("set_nx again", matches!(r, Ok(false)), format!("{r:?}"));
    let r = bounded(store.delete_if(&lock, holder.as_bytes())).await;
    check("delete_if", matches!(r, Ok(true)), format!("{r:?}"));
    let index = format!("{name}:index");
    let r = bounded(store.set_add(&index, &value, HOUR)).await;
    check("set_add", r.is_ok(), format!("{r:?}"));
    let r = bounded(store.set_members(&index)).await;
    let member = matches!(&r, Ok(m) if m.contains(&value));
    check("set_members", member, format!("{r:?}"));
    let r = bounded(store.set_remove(&index, &value)).await;
    check("set_remove", r.is_ok(), format!("{r:?}"));
}

async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, portcullis::store::StoreError>>,
) -> Result<T, String> {
    match tokio::time::timeout(STORE_BOUND, op).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("hung".into()),
    }
}

fn slot(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

/// Moves `slot` from node `from` to node `to` as `redis-cli --cluster reshard` does.
fn move_slot(nodes: &[Node], ids: &[String], slot: u16, from: usize, to: usize) {
    let ok = |node: &Node, args: &[&str]| {
        let reply = node.command(&resp(args));
        assert!(reply.starts_with("+OK"), "{args:?}: {reply}");
    };
    let slot_s = slot.to_string();
    ok(
        &nodes[to],
        &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &ids[from]],
    );
    ok(
        &nodes[from],
        &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &ids[to]],
    );
    let port = nodes[to].port.to_string();
    for _ in 0..1000 {
        let batch = keys(&nodes[from].command(&format!("CLUSTER GETKEYSINSLOT {slot} {BATCH}")));
        if batch.is_empty() {
            break;
        }
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        migrate.extend(batch.iter().map(String::as_str));
        let reply = nodes[from].command(&resp(&migrate));
        // NOKEY: every key of the batch expired or was deleted meanwhile.
        assert!(
            reply.starts_with("+OK") || reply.starts_with("+NOKEY"),
            "MIGRATE: {reply}"
        );
        std::thread::sleep(BATCH_PAUSE);
    }
    std::thread::sleep(SLOT_PAUSE);
    let third = (0..nodes.len()).find(|&n| n != from && n != to).unwrap();
    for n in [to, from, third] {
        ok(
            &nodes[n],
            &["CLUSTER", "SETSLOT", &slot_s, "NODE", &ids[to]],
        );
        std::thread::sleep(SLOT_PAUSE);
    }
}

fn node_id(node: &Node) -> String {
    let reply = node.command("CLUSTER MYID");
    reply.lines().nth(1).unwrap().trim().to_owned()
}

/// The index in `nodes` of the primary serving `slot`, by the first node's CLUSTER NODES.
fn owner(nodes: &[Node], ids: &[String], slot: u16) -> usize {
    let reply = nodes[0].command("CLUSTER NODES");
    for line in reply.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let serves = fields.iter().skip(8).any(|range| {
            let mut ends = range.split('-').map(|n| n.parse::<u16>());
            match (ends.next(), ends.next()) {
                (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                (Some(Ok(a)), None) => a == slot,
                _ => false,
            }
        });
        if serves {
            if let Some(i) = ids
                .iter()
                .position(|id| Some(&id.as_str()) == fields.first())
            {
                return i;
            }
        }
    }
    panic!("no node serves slot {slot}:\n{reply}");
}

/// ASK and MOVED replies, and ASKING commands, counted by every node since CONFIG RESETSTAT.
fn redirections(nodes: &[Node]) -> (u64, u64, u64) {
    let count = |reply: &str, prefix: &str, field: &str| -> u64 {
        reply
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(field))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    let mut totals = (0, 0, 0);
    for node in nodes {
        let errors = node.command("INFO errorstats");
        let commands = node.command("INFO commandstats");
        totals.0 += count(&errors, "errorstat_ASK:", "count=");
        totals.1 += count(&errors, "errorstat_MOVED:", "count=");
        totals.2 += count(&commands, "cmdstat_asking:", "calls=");
    }
    totals
}

/// The keys in a RESP array reply of bulk strings (KEYS, CLUSTER GETKEYSINSLOT).
fn keys(reply: &str) -> Vec<String> {
    let mut lines = reply.lines();
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('$') {
            if let Some(key) = lines.next() {
                out.push(key.to_owned());
            }
        }
    }
    out
}

/// `args` as one RESP command (keys and the empty MIGRATE key need no quoting then), without
/// the final CRLF, which `command_on` adds.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}", args.len());
    for a in args {
        out.push_str(&format!("\r\n${}\r\n{a}", a.len()));
    }
    out
}

#[test]
fn a_resp_command_is_read_back_as_keys() {
    let reply = "*2\r\n$3\r\nabc\r\n$0\r\n\r\n";
    assert_eq!(keys(reply), ["abc", ""]);
    assert_eq!(resp(&["GET", "k"]), "*2\r\n$3\r\nGET\r\n$1\r\nk");
}
