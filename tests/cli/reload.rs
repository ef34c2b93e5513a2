//! Reloads of the binary's routing file, seen from outside: SIGHUP to a process of its own
//! (a signal to the test process would reload every proxy in it), and the process's own
//! `portcullis_config_reloads_total`, which no other test's proxy shares.

use std::time::Duration;

use super::{
    example, example_to, exits_zero_on_sigterm, signal, spawn_run, wiki_client, wiki_upstream,
};
use crate::support::{eventually, Upstream};

/// `portcullis_config_reloads_total{result}` on the process's admin listener (0 before the
/// first one).
async fn reloads(admin: u16, result: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("portcullis_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn an_invalid_edit_is_refused_and_counted_and_the_old_routes_keep_serving() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let (dir, pki) = example_to(&a);
    let routes = dir.path().join("routes.toml");
    let valid = std::fs::read_to_string(&routes).unwrap();
    let (mut child, https, _, admin) = spawn_run(&dir.path().join("portcullis.toml"));
    let client = wiki_client(&pki, https);
    assert!(
        eventually(Duration::from_secs(10), || async {
            wiki_upstream(&client, https).await == "a"
        })
        .await,
        "the proxy serves the first routing file"
    );
    let (failed, ok) = (reloads(admin, "failed").await, reloads(admin, "ok").await);

    std::fs::write(&routes, valid.replace("upstream =", "upstraem =")).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            reloads(admin, "failed").await >= failed + 1.0
        })
        .await,
        "the watcher read the edit and refused it"
    );
    assert_eq!(reloads(admin, "ok").await, ok, "nothing was applied");
    assert_eq!(
        wiki_upstream(&client, https).await,
        "a",
        "the refused edit changed nothing"
    );

    let url = b.url();
    std::fs::write(&routes, valid.replace(&a.url(), &url)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            wiki_upstream(&client, https).await == "b"
        })
        .await,
        "a later valid edit applies"
    );
    assert!(reloads(admin, "ok").await >= ok + 1.0, "counted as ok");
    exits_zero_on_sigterm(&mut child).await;
}

#[tokio::test]
async fn sighup_reloads_a_routing_file_edit_the_watcher_cannot_see() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let dir = tempfile::TempDir::new().unwrap();
    let pki = example(dir.path());
    // routes.toml is a symlink to a file in a directory the proxy does not watch: an edit
    // there raises no file event, so only SIGHUP can apply it.
    let elsewhere = tempfile::TempDir::new().unwrap();
    let real = elsewhere.path().join("real-routes.toml");
    let to = |up: &Upstream| {
        std::fs::read_to_string(dir.path().join("routes.toml"))
            .unwrap()
            .replace("http://127.0.0.1:3000", &up.url())
    };
    std::fs::write(&real, to(&a)).unwrap();
    let (a_routes, b_routes) = (to(&a), to(&b));
    std::fs::remove_file(dir.path().join("routes.toml")).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("routes.toml")).unwrap();
    let (mut child, https, _, _) = spawn_run(&dir.path().join("portcullis.toml"));
    let client = wiki_client(&pki, https);
    assert!(
        eventually(Duration::from_secs(10), || async {
            wiki_upstream(&client, https).await == "a"
        })
        .await,
        "the proxy serves the first routing file"
    );
    assert_ne!(a_routes, b_routes);
    std::fs::write(&real, b_routes).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        wiki_upstream(&client, https).await,
        "a",
        "no file event reached the proxy"
    );
    signal(&child, "HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            wiki_upstream(&client, https).await == "b"
        })
        .await,
        "SIGHUP applied the edit"
    );
    exits_zero_on_sigterm(&mut child).await;
}
