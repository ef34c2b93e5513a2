//! Redis with Entra ID against an emulated Azure Cache for Redis (`support/azure_redis.rs`):
//! tokens from the stand-in's IMDS (or the app's client-credentials grant) live a few seconds,
//! Redis accepts each until it expires, and the relay cuts connections whose token expired.
//! The proxy must keep serving signed-in requests across several token lifetimes without one
//! error and without one connection cut. Also: sign-in with a managed identity's token as the
//! client assertion (a federated credential of the app registration).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use entra_standin::{service_principal_id, TestClient};

use crate::support::azure_redis::{AzureRedis, RelayStats};
use crate::support::signin::{Setup, SignIn, CLIENT_ID, CLIENT_SECRET};

/// The managed identity's object ID: the Redis user.
const OID: &str = "4b0f3c2e-7d51-4a8e-9b0a-2c6e1f9d3a57";
/// A user-assigned identity's client ID.
const MI_CLIENT_ID: &str = "a3c1e5f7-1b2d-4e6f-8a9b-0c1d2e3f4a5b";
/// How long the stand-in's Redis tokens live.
const LIFETIME: Duration = Duration::from_secs(4);
/// Token lifetimes each run spans.
const LIFETIMES: u32 = 3;

/// The value of `portcullis_redis_auth_refresh_total{result}` in this process.
fn refreshes(result: &str) -> u64 {
    let text = portcullis::metrics::install().unwrap().render();
    let series = format!("portcullis_redis_auth_refresh_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Renewals are counted process-wide: run one test at a time (`--test-threads=1`) for a
/// report that counts one proxy's.
///
/// Serves signed-in requests (each reading the session from Redis) for `LIFETIMES` token
/// lifetimes; returns (requests, errors).
async fn serve_across_lifetimes(s: &SignIn) -> (u32, u32) {
    let mut b = s.signed_in_as("alice@contoso.example").await;
    let deadline = Instant::now() + LIFETIME * LIFETIMES + Duration::from_millis(500);
    let (mut requests, mut errors) = (0u32, 0u32);
    while Instant::now() < deadline && requests < 5_000 {
        let hop = b.get(&s.url("/")).await;
        requests += 1;
        if hop.status != 200 {
            errors += 1;
            eprintln!("request {requests}: {} {}", hop.status, hop.body);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (requests, errors)
}

fn report(what: &str, azure: &AzureRedis, requests: u32, errors: u32, ok: u64, failed: u64) {
    let st = &azure.stats;
    println!(
        "{what}: token lifetime {LIFETIME:?} x {LIFETIMES}; requests {requests}, errors {errors}; \
         relay: connections {}, auths {}, re-auths {}, closed for expiry {}; tokens mirrored {}, \
         removed {}; renewals ok {ok}, failed {failed}",
        RelayStats::get(&st.connections),
        RelayStats::get(&st.auths),
        RelayStats::get(&st.reauths),
        RelayStats::get(&st.expired_closes),
        RelayStats::get(&st.tokens_added),
        RelayStats::get(&st.tokens_removed),
    );
}

fn redis_setup(
    azure: &AzureRedis,
    redis_lines: impl FnOnce(&entra_standin::StandIn) -> String + Send + 'static,
) -> Setup {
    let hook = azure.hook();
    Setup {
        redis: Some(azure.url()),
        // Every request reads its session from Redis.
        session: "cache_ttl = \"1ms\"".into(),
        prepare: Some(Box::new(move |idp, setup| {
            idp.set_resource_token_lifetime(LIFETIME);
            idp.set_token_hook(hook);
            setup.main = redis_lines(idp);
        })),
        ..Setup::default()
    }
}

#[tokio::test]
async fn managed_identity_tokens_are_renewed_on_every_connection_before_they_expire() {
    let azure = AzureRedis::start().await;
    let setup = redis_setup(&azure, |idp| {
        idp.add_managed_identity(None, OID);
        format!(
            "auth = \"entra\"\nentra_object_id = \"{OID}\"\nentra_credential = \"managed_identity\"\n\
             entra_imds_endpoint = \"{}\"\n",
            idp.imds_endpoint()
        )
    });
    let (ok_before, failed_before) = (refreshes("ok"), refreshes("error"));
    let s = SignIn::start(setup).await;
    let (requests, errors) = serve_across_lifetimes(&s).await;
    let (ok, failed) = (
        refreshes("ok") - ok_before,
        refreshes("error") - failed_before,
    );
    report("managed identity", &azure, requests, errors, ok, failed);
    let st = &azure.stats;
    assert_eq!(errors, 0, "{errors} of {requests} requests failed");
    assert_eq!(
        st.expired_closes.load(Ordering::Relaxed),
        0,
        "connections were cut for an expired token"
    );
    assert!(ok >= u64::from(LIFETIMES), "only {ok} renewals");
    assert!(
        st.reauths.load(Ordering::Relaxed) >= 5 * LIFETIMES as usize,
        "every connection (4 in the pool, the subscriber) re-authenticates at each renewal"
    );
    assert!(st.tokens_removed.load(Ordering::Relaxed) >= LIFETIMES as usize - 1);
    // The expiry gauge names a time in the near future.
    let text = portcullis::metrics::install().unwrap().render();
    let expiry: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_redis_auth_token_expiry_seconds "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now - 1.0 && expiry < now + 10.0,
        "{expiry} vs {now}"
    );
}

#[tokio::test]
async fn the_apps_own_credential_gets_redis_tokens_by_client_credentials() {
    let azure = AzureRedis::start().await;
    let sp = service_principal_id(CLIENT_ID);
    let setup = redis_setup(&azure, move |_| {
        format!("auth = \"entra\"\nentra_object_id = \"{sp}\"\nentra_credential = \"app\"\n")
    });
    let (ok_before, failed_before) = (refreshes("ok"), refreshes("error"));
    let s = SignIn::start(setup).await;
    let (requests, errors) = serve_across_lifetimes(&s).await;
    let (ok, failed) = (
        refreshes("ok") - ok_before,
        refreshes("error") - failed_before,
    );
    report("app credential", &azure, requests, errors, ok, failed);
    assert_eq!(errors, 0, "{errors} of {requests} requests failed");
    assert_eq!(azure.stats.expired_closes.load(Ordering::Relaxed), 0);
    assert!(s.idp.token_calls().client_credentials >= LIFETIMES as usize);
}

/// A sign-in set-up whose app has no secret, only a federated credential for the managed
/// identity whose object ID is `subject`.
fn managed_identity_sign_in(subject: &'static str) -> Setup {
    Setup {
        client: Some(TestClient::new(CLIENT_ID, None)),
        prepare: Some(Box::new(move |idp, setup| {
            idp.add_managed_identity(Some(MI_CLIENT_ID), OID);
            assert!(idp.add_federated_credential(CLIENT_ID, subject));
            setup.credential = Some(format!(
                "client_assertion_source = \"managed_identity\"\n\
                 managed_identity_client_id = \"{MI_CLIENT_ID}\"\n\
                 managed_identity_imds_endpoint = \"{}\"",
                idp.imds_endpoint()
            ));
        })),
        ..Setup::default()
    }
}

#[tokio::test]
async fn sign_in_works_with_a_managed_identity_as_the_client_assertion() {
    let s = SignIn::start(managed_identity_sign_in(OID)).await;
    for _ in 0..2 {
        let mut b = s.browser();
        let hops = b.navigate(&s.url("/")).await;
        let last = hops.last().unwrap();
        assert_eq!(last.status, 200, "{}", last.body);
    }
    // One managed-identity token served both sign-ins (cached until near its expiry).
    assert_eq!(s.idp.resource_tokens_issued(), 1);
    assert_eq!(s.idp.token_calls().failed, 0);
}

#[tokio::test]
async fn a_federated_credential_for_another_identity_is_refused_with_502_and_no_token_shown() {
    let s = SignIn::start(managed_identity_sign_in(
        "0d9c8b7a-6f5e-4d3c-8b2a-1f0e9d8c7b6a",
    ))
    .await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    let last = hops.last().unwrap();
    // AADSTS70021 (no matching federated identity record): a configuration fault.
    assert_eq!(last.status, 502, "{}", last.body);
    assert!(
        !last.body.contains("eyJ"),
        "a token in the page: {}",
        last.body
    );
    assert!(!last.body.contains(CLIENT_SECRET));
    assert_eq!(s.idp.token_calls().failed, 1);
}
