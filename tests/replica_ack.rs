//! `[redis] min_replicas_ack`: a write counts once that many replicas have it (`WAIT`), so a
//! failover right after it cannot lose a fresh sign-in. Real primary and replica processes.

use std::time::{Duration, Instant};

use portcullis::store::{RedisConfig, RedisStore, SessionStore, StoreError};

use crate::support::eventually;
use crate::support::redis::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);
const BOUND: Duration = Duration::from_secs(10);
/// Writes timed with and without the wait (a figure printed, never asserted).
const TIMED_WRITES: u32 = 200;

async fn store(primary: &RedisServer, acks: usize) -> RedisStore {
    let mut options = RedisConfig::new(primary.url());
    options.key_prefix = format!("ack{acks}:");
    options.min_replicas_ack = acks;
    options.command_timeout = Duration::from_secs(1);
    RedisStore::connect(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_replica_and_fail_without_one() {
    let primary = RedisServer::start();
    let port = primary.port.to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    assert!(
        eventually(BOUND, || async {
            replica
                .command("INFO replication")
                .contains("master_link_status:up")
        })
        .await,
        "the replica did not sync"
    );
    let acked = store(&primary, 1).await;
    let plain = store(&primary, 0).await;

    for i in 0..20 {
        acked
            .set(&format!("session:{i}"), b"sealed", HOUR)
            .await
            .unwrap();
        // No polling: the write is on the replica when `set` returns.
        assert!(
            replica
                .command(&format!("GET ack1:session:{i}"))
                .contains("sealed"),
            "write {i} was not on the replica when it returned"
        );
    }
    time(&plain, "min_replicas_ack = 0").await;
    time(&acked, "min_replicas_ack = 1").await;

    // A replica that stops answering: the write is not known to be safe, and says so.
    replica.pause();
    let result = tokio::time::timeout(BOUND, acked.set("session:late", b"sealed", HOUR))
        .await
        .expect("a write waiting for a frozen replica hung");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    // Without the setting, the same write succeeds at once.
    plain.set("session:late", b"sealed", HOUR).await.unwrap();
    replica.resume();
}

async fn time(store: &RedisStore, name: &str) {
    let start = Instant::now();
    for i in 0..TIMED_WRITES {
        store
            .set(&format!("timed:{i}"), b"sealed", HOUR)
            .await
            .unwrap();
    }
    eprintln!(
        "{name}: {:?} per write ({TIMED_WRITES} sequential writes)",
        start.elapsed() / TIMED_WRITES
    );
}
