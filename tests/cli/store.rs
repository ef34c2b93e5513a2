//! `portcullis_session_store_errors_total` from a process of its own: the recorder is global,
//! so only there does a count start at zero whatever other tests do.

use std::time::Duration;

use entra_standin::{StandIn, StandInConfig, TestClient};

use super::{example_to, exits_zero_on_sigterm, spawn_run, wiki_client};
use crate::support::redis::RedisServer;
use crate::support::signin::{CLIENT_ID, CLIENT_SECRET, SESSION_SECRET};
use crate::support::{eventually, Upstream};

/// The sum of every `portcullis_session_store_errors_total` series on the admin listener.
async fn store_errors(admin: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("portcullis_session_store_errors_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_dead_redis_counts_in_session_store_errors_total() {
    let mut redis = RedisServer::start();
    let up = Upstream::start("wiki").await;
    let (dir, pki) = example_to(&up);
    let (cert, key) = pki.leaf(&["127.0.0.1"]);
    let idp = StandIn::start(StandInConfig {
        clients: vec![TestClient::new(CLIENT_ID, Some(CLIENT_SECRET))],
        tls: Some((cert, key)),
        ..StandInConfig::default()
    })
    .await
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    let routes = dir.path().join("routes.toml");
    let text = std::fs::read_to_string(&routes).unwrap();
    std::fs::write(
        &routes,
        text.replacen("auth = \"public\"", "auth = \"login\"", 1),
    )
    .unwrap();
    let main = dir.path().join("portcullis.toml");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str(&format!(
        "\n[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         ca_file = \"ca.pem\"\n\n[session]\nstore = \"redis\"\nsecret = \"{SESSION_SECRET}\"\n\n\
         [redis]\nurl = \"{}\"\n",
        idp.authority(idp.tenant_id()),
        redis.url()
    ));
    std::fs::write(&main, text).unwrap();

    let (mut child, https, _, admin) = spawn_run(&main);
    let plain = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{admin}/readyz");
    assert!(
        eventually(Duration::from_secs(10), || async {
            plain
                .get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "ready with the stand-in and Redis"
    );
    assert_eq!(store_errors(admin).await, 0.0);

    redis.stop();
    let resp = wiki_client(&pki, https)
        .get(format!("https://wiki.example.com:{https}/"))
        .header("cookie", format!("__Host-portcullis={}", "A".repeat(43)))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "the session could not be looked up");
    assert!(
        store_errors(admin).await >= 1.0,
        "the failed lookup was counted"
    );
    exits_zero_on_sigterm(&mut child).await;
}
