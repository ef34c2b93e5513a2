//! The memory store's own behaviour (the shared suite is tests/store.rs).

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn full_store_evicts_the_entry_closest_to_expiry() {
    let store = MemoryStore::new(3);
    store.set("session:a", b"a", HOUR * 8).await.unwrap();
    store.set("signin:b", b"b", HOUR / 6).await.unwrap();
    store.set("session:c", b"c", HOUR * 4).await.unwrap();
    store.set("session:d", b"d", HOUR * 2).await.unwrap();

    assert_eq!(store.held(), 3);
    assert_eq!(store.get("signin:b").await.unwrap(), None);
    for key in ["session:a", "session:c", "session:d"] {
        assert!(store.get(key).await.unwrap().is_some(), "{key} evicted");
    }
}

#[tokio::test]
async fn replacing_a_key_in_a_full_store_evicts_nothing() {
    let store = MemoryStore::new(2);
    store.set("a", b"1", HOUR).await.unwrap();
    store.set("b", b"1", HOUR * 2).await.unwrap();
    store.set("a", b"2", HOUR * 3).await.unwrap();
    assert!(store.expire("b", HOUR).await.unwrap());
    assert_eq!(store.held(), 2);
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get("b").await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn set_nx_in_a_full_store_evicts_and_stores() {
    let store = MemoryStore::new(1);
    store.set("session:a", b"a", HOUR).await.unwrap();
    assert!(store.set_nx("lock:a", b"me", HOUR * 2).await.unwrap());
    assert_eq!(store.held(), 1);
    assert!(!store.set_nx("lock:a", b"you", HOUR).await.unwrap());
}

#[tokio::test]
async fn zero_capacity_still_holds_one_entry() {
    let store = MemoryStore::new(0);
    store.set("a", b"1", HOUR).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn expired_entries_are_purged_without_any_access() {
    let store = MemoryStore::new(100);
    store.set("a", b"1", HOUR).await.unwrap();
    store
        .set("b", b"1", Duration::from_millis(50))
        .await
        .unwrap();
    store
        .set("c", b"1", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(eventually(|| store.held() == 1).await, "not purged");
    assert!(store.get("a").await.unwrap().is_some());
}

#[tokio::test]
async fn an_earlier_deadline_wakes_the_purge_task() {
    let store = MemoryStore::new(100);
    // The task is now asleep until an hour from now.
    store.set("a", b"1", HOUR).await.unwrap();
    tokio::task::yield_now().await;
    store
        .set("b", b"1", Duration::from_millis(50))
        .await
        .unwrap();
    assert!(eventually(|| store.held() == 1).await, "not purged");
}

#[tokio::test]
async fn purge_task_ends_when_the_store_is_dropped() {
    let store = MemoryStore::new(10);
    store.set("a", b"1", HOUR).await.unwrap();
    let shared = Arc::downgrade(&store.shared);
    drop(store);
    assert!(
        eventually(|| shared.strong_count() == 0).await,
        "the purge task still holds the store"
    );
}

#[test]
fn a_store_outside_a_runtime_purges_on_write() {
    let store = MemoryStore::new(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        store
            .set("a", b"1", Duration::from_millis(1))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        store.set("b", b"1", HOUR).await.unwrap();
        assert_eq!(store.held(), 1);
    });
}

#[tokio::test]
async fn a_set_keeps_every_live_member_and_sheds_those_whose_keys_are_gone() {
    // Room for 20 entries: the set and at most 19 sessions. One user signs in 5,000 times;
    // older sessions are evicted as new ones arrive.
    let store = MemoryStore::new(20);
    let mut keys = Vec::new();
    for i in 0..5_000 {
        let key = format!("session:{i:064}");
        store.set(&key, b"sealed", HOUR).await.unwrap();
        store.set_add("user:u", &key, HOUR * 8).await.unwrap();
        keys.push(key);
    }
    let members: HashSet<String> = store
        .set_members("user:u")
        .await
        .unwrap()
        .into_iter()
        .collect();
    let live: Vec<&String> = {
        let state = store.shared.lock();
        keys.iter()
            .filter(|k| state.entries.contains_key(k.as_str()))
            .collect()
    };
    assert!(!live.is_empty());
    for key in &live {
        assert!(members.contains(*key), "live session {key} left the index");
    }
    assert!(
        members.len() <= 2 * live.len().max(COMPACT_FLOOR),
        "{} members for {} live sessions",
        members.len(),
        live.len()
    );
}

#[tokio::test]
async fn a_set_that_loses_its_last_member_is_gone() {
    let store = MemoryStore::new(10);
    store.set_add("sid-set:s", "session:a", HOUR).await.unwrap();
    store.set_remove("sid-set:s", "session:a").await.unwrap();
    assert_eq!(store.held(), 0);
    assert_eq!(store.ttl("sid-set:s").await.unwrap(), None);
}

#[tokio::test]
async fn too_long_a_ttl_is_refused() {
    let store = MemoryStore::new(10);
    let err = store.set("a", b"1", Duration::MAX).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)));
}
