use super::*;

use crate::config::{SessionConfig, StoreKind};
use crate::store::MemoryStore;

use super::memo::DECISIONS;
use crate::error::Denied;
use crate::route::Route;

fn config() -> SessionConfig {
    SessionConfig {
        store: StoreKind::Memory,
        secrets: Vec::new(),
        cookie_name: "__Host-portcullis".into(),
        max_lifetime: Duration::from_secs(12 * 3600),
        idle_timeout: Duration::from_secs(3600),
        refresh_before: Duration::from_secs(300),
        cache_ttl: Duration::from_secs(10),
        memory_max_entries: 100,
    }
}

fn sessions() -> (Arc<Sessions>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(100));
    let s = Sessions::new(config(), store.clone(), &[b"k".repeat(32)]);
    (s, store)
}

fn session(expires_in: u64) -> Session {
    let now = now();
    let mut claims = serde_json::Map::new();
    claims.insert("oid".into(), "o-1".into());
    claims.insert("tid".into(), "t-1".into());
    claims.insert("iss".into(), "https://issuer.example/t-1/v2.0".into());
    Session {
        identity: Identity::from_claims(claims),
        access_token: Some("access-token-value".into()),
        refresh_token: Some("refresh-token-value".into()),
        access_expires_at: now + 3600,
        created_at: now,
        expires_at: now + expires_in,
        sid: Some("sid-1".into()),
        login_hint: None,
    }
}

#[tokio::test]
async fn a_created_session_loads_by_its_cookie_value_only() {
    let (s, store) = sessions();
    let id = s.create(session(3600)).await.unwrap();
    assert_eq!(id.len(), 43);
    let loaded = s.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.key(), store_key(&id));
    assert_eq!(loaded.session.identity.oid(), "o-1");
    assert!(s.load(&random_token()).await.unwrap().is_none());
    // The stored value is sealed: no claim or token in the clear, and not under the raw ID.
    let raw = store.get(&store_key(&id)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw);
    // (Markers long enough that random ciphertext cannot hold them by chance.)
    for clear in [
        "issuer.example",
        "access-token-value",
        "refresh-token-value",
    ] {
        assert!(!text.contains(clear), "{clear} is in the clear");
    }
    assert!(store.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn the_store_ttl_is_the_idle_timeout_capped_by_the_hard_end() {
    let (s, store) = sessions();
    let long = s.create(session(12 * 3600)).await.unwrap();
    let ttl = store.ttl(&store_key(&long)).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(3600) && ttl > Duration::from_secs(3590));
    let short = s.create(session(120)).await.unwrap();
    let ttl = store.ttl(&store_key(&short)).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(120));
    assert!(
        s.create(session(0)).await.is_err(),
        "an already ended session is not stored"
    );
}

#[tokio::test]
async fn a_value_moved_to_another_key_or_sealed_with_another_secret_does_not_load() {
    let (s, store) = sessions();
    let a = s.create(session(3600)).await.unwrap();
    let b = random_token();
    let sealed = store.get(&store_key(&a)).await.unwrap().unwrap();
    store
        .set(&store_key(&b), &sealed, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s.load(&b).await.unwrap().is_none());
    let other = Sessions::new(config(), store.clone(), &[b"z".repeat(32)]);
    assert!(other.load(&a).await.unwrap().is_none());
}

#[tokio::test]
async fn delete_by_sid_ends_the_session_everywhere() {
    let (s, _) = sessions();
    let id = s.create(session(3600)).await.unwrap();
    assert!(s.load(&id).await.unwrap().is_some());
    assert_eq!(s.delete_by_sid("sid-1", None).await.unwrap(), 1);
    assert!(
        s.load(&id).await.unwrap().is_none(),
        "the cached copy went too"
    );
    assert_eq!(s.delete_by_sid("sid-1", None).await.unwrap(), 0);
}

#[tokio::test]
async fn every_session_of_a_sid_ends_and_only_for_its_issuer() {
    let (s, _) = sessions();
    let first = s.create(session(3600)).await.unwrap();
    let second = s.create(session(3600)).await.unwrap();
    let other = s.create(Session {
        sid: Some("sid-2".into()),
        ..session(3600)
    });
    let other = other.await.unwrap();
    assert_eq!(
        s.delete_by_sid("sid-1", Some("https://evil.example/t-1/v2.0"))
            .await
            .unwrap(),
        0,
        "another issuer's front-channel request ends nothing"
    );
    assert!(s.load(&first).await.unwrap().is_some());
    assert_eq!(
        s.delete_by_sid("sid-1", Some("https://issuer.example/t-1/v2.0"))
            .await
            .unwrap(),
        2
    );
    assert!(s.load(&first).await.unwrap().is_none());
    assert!(s.load(&second).await.unwrap().is_none());
    assert!(s.load(&other).await.unwrap().is_some());
}

#[tokio::test]
async fn a_sid_indexed_the_earlier_way_is_still_found() {
    let (s, store) = sessions();
    let id = s.create(session(3600)).await.unwrap();
    store
        .set_remove(&sid_key("sid-1"), &store_key(&id))
        .await
        .unwrap();
    store
        .set(
            &legacy_sid_key("sid-1"),
            store_key(&id).as_bytes(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(s.delete_by_sid("sid-1", None).await.unwrap(), 1);
    assert!(store.get(&legacy_sid_key("sid-1")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_renewal_written_after_a_sign_out_does_not_bring_the_session_back() {
    let (s, store) = sessions();
    let id = s.create(session(3600)).await.unwrap();
    let key = store_key(&id);
    let loaded = s.load(&id).await.unwrap().unwrap();
    // A refresh read the session, then a sign-out ended it, then the refresh wrote.
    s.delete(&key, Some(&**loaded.session)).await.unwrap();
    let renewed = Session::clone(&loaded.session);
    assert!(s.save(&key, renewed).await.unwrap().is_none());
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(s.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn every_session_of_a_user_ends_at_once() {
    let (s, _) = sessions();
    let a = s.create(session(3600)).await.unwrap();
    let b = s.create(session(600)).await.unwrap();
    let mut someone_else = session(3600);
    someone_else
        .identity
        .claims
        .insert("oid".into(), "o-2".into());
    let c = s.create(someone_else).await.unwrap();
    assert_eq!(
        s.delete_user("O-1").await.unwrap(),
        2,
        "oids compare without case"
    );
    assert!(s.load(&a).await.unwrap().is_none());
    assert!(s.load(&b).await.unwrap().is_none());
    assert!(s.load(&c).await.unwrap().is_some());
    assert_eq!(s.delete_user("o-1").await.unwrap(), 0);
}

/// Sessions with a 20 ms `cache_ttl`, and the store behind them.
fn short_cache() -> (Arc<Sessions>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(100));
    let mut c = config();
    c.cache_ttl = Duration::from_millis(20);
    (Sessions::new(c, store.clone(), &[b"k".repeat(32)]), store)
}

/// Writes `value` under `key` behind the sessions' back (no invalidation), then waits past a
/// [`short_cache`]'s `cache_ttl`.
async fn replace_unseen(store: &MemoryStore, key: &str, value: &[u8]) {
    store
        .set(key, value, Duration::from_secs(3600))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn past_cache_ttl_the_store_is_read_and_an_unchanged_value_keeps_the_cached_copy() {
    let (s, store) = short_cache();
    let id = s.create(session(3600)).await.unwrap();
    let key = store_key(&id);
    let first = s.load(&id).await.unwrap().unwrap().session;
    let cached = s.load(&id).await.unwrap().unwrap().session;
    assert!(Arc::ptr_eq(&first, &cached), "within cache_ttl");

    // Past cache_ttl, the same value in the store: the same copy, not a new decode.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let checked = s.load(&id).await.unwrap().unwrap().session;
    assert!(Arc::ptr_eq(&first, &checked));

    // A new value written behind this instance's back (no invalidation reaches it): seen at
    // the next check, as the new value.
    let mut changed = session(3600);
    changed.identity = Identity::from_claims(serde_json::Map::from_iter([
        ("oid".to_owned(), "o-2".into()),
        ("tid".to_owned(), "t-1".into()),
    ]));
    let sealed = s.seal(&key, &changed).unwrap();
    replace_unseen(&store, &key, &sealed).await;
    let reread = s.load(&id).await.unwrap().unwrap().session;
    assert!(!Arc::ptr_eq(&first, &reread));
    assert_eq!(reread.identity.oid(), "o-2");

    // Gone from the store: gone at the next check, and from the cache.
    store.delete(&key).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(s.load(&id).await.unwrap().is_none());
    store
        .set(&key, &sealed, Duration::from_secs(3600))
        .await
        .unwrap();
    let back = s.load(&id).await.unwrap().unwrap().session;
    assert!(
        !Arc::ptr_eq(&reread, &back),
        "an ended session's copy is not kept"
    );

    // A value that does not open (another secret sealed it) ends the session too.
    let other = Sessions::new(config(), store.clone(), &[b"z".repeat(32)]);
    let foreign = other.seal(&key, &changed).unwrap();
    replace_unseen(&store, &key, &foreign).await;
    assert!(s.load(&id).await.unwrap().is_none());
}

/// A value changed in the store in place, keeping its nonce and tag, does not open: a new
/// instance refuses it, and the instance that opened the original keeps that one (what a
/// writer of the store gets anyway by writing the original back), never the changed bytes.
#[tokio::test]
async fn a_value_changed_in_place_is_never_what_a_session_becomes() {
    let (s, store) = short_cache();
    let id = s.create(session(3600)).await.unwrap();
    let key = store_key(&id);
    let first = s.load(&id).await.unwrap().unwrap().session;
    let mut sealed = store.get(&key).await.unwrap().unwrap();
    let middle = sealed.len() / 2;
    sealed[middle] ^= 0x01;
    replace_unseen(&store, &key, &sealed).await;
    let kept = s.load(&id).await.unwrap().unwrap().session;
    assert!(Arc::ptr_eq(&first, &kept));
    assert_eq!(kept.identity.oid(), "o-1");
    let fresh = Sessions::new(config(), store.clone(), &[b"k".repeat(32)]);
    assert!(fresh.load(&id).await.unwrap().is_none());
}

#[test]
fn the_idle_timeout_is_pushed_forward_once_per_interval() {
    let store = Arc::new(MemoryStore::new(10));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let s = Sessions::new(config(), store, &[b"k".repeat(32)]);
    let v = Active::new(session(3600));
    let now = now();
    assert!(s.should_touch(&v, now));
    assert!(!s.should_touch(&v, now + 1));
    // idle_timeout 1 h: every 3 minutes.
    assert!(s.should_touch(&v, now + 180));
    // A changed session value is a new `Active`, with a fresh memo.
    let changed = Active::new(Session::clone(&v));
    assert!(s.should_touch(&changed, now + 1));
}

/// A route as a reload builds it: a new allocation each time, whatever its spec.
fn built_route() -> Arc<Route> {
    let text = "[[route]]\nname = \"r\"\nhost = \"app.example.com\"\npath_prefix = \"/\"\n\
                upstream = \"http://127.0.0.1:3000\"\n\
                allowed_groups = [\"0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3\"]\n";
    let specs = crate::config::routes::parse(text, std::path::Path::new("routes.toml")).unwrap();
    let clients = crate::forward::Clients::new(crate::config::UpstreamConfig {
        connect_timeout: Duration::from_secs(5),
        pool_idle_timeout: Duration::from_secs(4),
        pool_max_idle_per_host: 8,
        ca_file: None,
    });
    let table = crate::route::RouteTable::build(specs, &clients).unwrap();
    Arc::clone(table.find("app.example.com", "/").unwrap())
}

#[test]
fn a_policy_decision_is_taken_once_per_route_and_again_after_a_reload() {
    let memo = Memo::default();
    let route = built_route();
    let mut judged = 0;
    let mut decide = |r: &Arc<Route>, answer: Result<(), Denied>| {
        memo.decision(r, || {
            judged += 1;
            answer
        })
    };
    assert_eq!(decide(&route, Err(Denied::Groups)), Err(Denied::Groups));
    // Remembered: the judge is not asked again, and its new answer is not used.
    assert_eq!(decide(&route, Ok(())), Err(Denied::Groups));
    // The same spec, reloaded: a new route, judged again.
    let reloaded = built_route();
    assert_eq!(decide(&reloaded, Ok(())), Ok(()));
    assert_eq!(judged, 2);
}

#[test]
fn a_session_value_remembers_decisions_for_a_few_routes_only() {
    let memo = Memo::default();
    let routes: Vec<Arc<Route>> = (0..=DECISIONS).map(|_| built_route()).collect();
    for r in &routes {
        assert_eq!(memo.decision(r, || Err(Denied::Users)), Err(Denied::Users));
    }
    assert_eq!(memo.decisions.lock().unwrap().len(), DECISIONS);
    // The oldest was forgotten and is judged again; the newest is remembered.
    assert_eq!(memo.decision(&routes[0], || Ok(())), Ok(()));
    let last = routes.last().unwrap();
    assert_eq!(memo.decision(last, || Ok(())), Err(Denied::Users));
}

#[tokio::test]
async fn a_session_read_from_the_store_is_touched_by_the_same_read() {
    let (s, store) = sessions();
    // Written with a short store TTL, as if idle for most of its timeout.
    let id = s.create(session(12 * 3600)).await.unwrap();
    let key = store_key(&id);
    store.expire(&key, Duration::from_secs(5)).await.unwrap();
    let loaded = s.load(&id).await.unwrap().unwrap();
    let ttl = store.ttl(&key).await.unwrap().unwrap();
    assert!(
        ttl > Duration::from_secs(3500),
        "idle timeout not pushed: {ttl:?}"
    );
    // The value starts out touched: no second touch until the interval has passed.
    assert!(!s.should_touch(&loaded.session, now()));

    // Within the idle timeout of its hard end, the key keeps that end.
    let short = s.create(session(600)).await.unwrap();
    let key = store_key(&short);
    store.expire(&key, Duration::from_secs(5)).await.unwrap();
    assert!(s.load(&short).await.unwrap().is_some());
    let ttl = store.ttl(&key).await.unwrap().unwrap();
    assert!(
        ttl > Duration::from_secs(500) && ttl <= Duration::from_secs(600),
        "{ttl:?}"
    );
}
