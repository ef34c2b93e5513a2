//! `rediss://` to a real redis-server with TLS: trust through `ca_file`, and a client
//! certificate for a server that asks for one (`tls-auth-clients yes`).

use std::time::Duration;

use portcullis::store::{RedisConfig, RedisStore, SessionStore, StoreError};

use crate::support::topology::Node;
use crate::support::{free_port, Pki};

const HOUR: Duration = Duration::from_secs(3600);
const BOUND: Duration = Duration::from_secs(10);

/// A node answering TLS on its second port, demanding a client certificate from `pki`'s CA;
/// the files (`ca.pem`, `client.pem`, `client.key`) are in the returned directory.
fn tls_node(pki: &Pki) -> (Node, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = pki.leaf(&["portcullis-client"]);
    for (name, text) in [
        ("ca.pem", pki.ca_pem.as_str()),
        ("server.pem", &cert),
        ("server.key", &key),
        ("client.pem", &client_cert),
        ("client.key", &client_key),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let tls_port = free_port();
    let file = |n: &str| dir.path().join(n).display().to_string();
    let node = Node::start(
        dir.path(),
        &[
            format!("tls-port {tls_port}"),
            format!("tls-cert-file {}", file("server.pem")),
            format!("tls-key-file {}", file("server.key")),
            format!("tls-ca-cert-file {}", file("ca.pem")),
            "tls-auth-clients yes".to_owned(),
        ],
        false,
    );
    (node, tls_port, dir)
}

fn options(port: u16, dir: &tempfile::TempDir, client_cert: bool) -> RedisConfig {
    let mut options = RedisConfig::new(format!("rediss://127.0.0.1:{port}/0"));
    options.key_prefix = "tls:".into();
    options.ca_file = Some(dir.path().join("ca.pem"));
    if client_cert {
        options.client_cert = Some((dir.path().join("client.pem"), dir.path().join("client.key")));
    }
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_ca_file_and_a_client_certificate_runs_the_store() {
    let pki = Pki::new();
    let (node, port, dir) = tokio::task::block_in_place(|| tls_node(&pki));
    let store = tokio::time::timeout(BOUND, RedisStore::connect(options(port, &dir, true)))
        .await
        .unwrap()
        .expect("TLS with a client certificate");
    store.set("session:tls", b"sealed", HOUR).await.unwrap();
    assert_eq!(
        store.get("session:tls").await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    store.ping().await.unwrap();
    // The value really travelled over TLS to this server.
    assert!(node.command("GET tls:session:tls").contains("sealed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_wants_a_client_certificate_refuses_a_store_without_one() {
    let pki = Pki::new();
    let (_node, port, dir) = tokio::task::block_in_place(|| tls_node(&pki));
    // Refused at connection time, or every command fails: never served.
    match tokio::time::timeout(BOUND, RedisStore::connect(options(port, &dir, false)))
        .await
        .unwrap()
    {
        Err(StoreError::Failed(_)) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(store) => {
            let result = tokio::time::timeout(BOUND, store.set("session:x", b"v", HOUR))
                .await
                .unwrap();
            assert!(
                result.is_err(),
                "a store without a client certificate was served"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_without_the_ca_is_refused_at_start() {
    let pki = Pki::new();
    let (_node, port, dir) = tokio::task::block_in_place(|| tls_node(&pki));
    let mut untrusted = options(port, &dir, true);
    untrusted.ca_file = None;
    let result = tokio::time::timeout(BOUND, RedisStore::connect(untrusted))
        .await
        .unwrap();
    assert!(
        matches!(result, Err(StoreError::Failed(_))),
        "{:?}",
        result.err()
    );
}
