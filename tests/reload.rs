//! Live reload: routing-file edits, invalid edits, SIGHUP, in-flight work, certificate rotation.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{echo_json, eventually, Harness, Options, Upstream};

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\nupstream = \"{}\"\n",
        upstream.url()
    )
}

async fn who(client: &reqwest::Client, h: &Harness) -> String {
    match client.get(h.url("app.example.test", "/")).send().await {
        Ok(r) if r.status() == 200 => echo_json(r).await["upstream"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        Ok(r) => format!("status {}", r.status()),
        Err(e) => format!("error {e}"),
    }
}

#[tokio::test]
async fn a_valid_edit_takes_effect_within_two_seconds() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let h = Harness::start(&route(&a)).await;
    let client = h.client(&["app.example.test"]);
    assert_eq!(who(&client, &h).await, "a");
    std::fs::write(h.path("routes.toml"), route(&b)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            who(&client, &h).await == "b"
        })
        .await
    );
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_table_serving() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let h = Harness::start(&route(&a)).await;
    let client = h.client(&["app.example.test"]);
    assert_eq!(who(&client, &h).await, "a");
    let broken = route(&b).replace("upstream =", "upstraem =");
    std::fs::write(h.path("routes.toml"), broken).unwrap();
    // The reload of this content was attempted and refused (the watcher's own attempt is
    // not observable per proxy; this one reports back).
    let refused = h.reload().await.routes.expect("a routing file to reload");
    assert!(
        refused.unwrap_err().to_string().contains("upstraem"),
        "refused for the unknown key"
    );
    assert_eq!(
        who(&client, &h).await,
        "a",
        "the rejected edit changed nothing"
    );
    std::fs::write(
        h.path("routes.toml"),
        format!(
            "{}\n[[route]]\nauth = \"public\"\nname = \"x\"\nhost = \"*\"\nupstream = \"ftp://x\"\n",
            route(&b)
        ),
    )
    .unwrap();
    let refused = h.reload().await.routes.expect("a routing file to reload");
    assert!(
        refused.unwrap_err().to_string().contains("upstream"),
        "refused for the ftp upstream"
    );
    assert_eq!(
        who(&client, &h).await,
        "a",
        "a semantically invalid edit changed nothing"
    );
    std::fs::write(h.path("routes.toml"), route(&b)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            who(&client, &h).await == "b"
        })
        .await,
        "a later valid edit applies"
    );
}

#[tokio::test]
async fn a_forced_reload_reads_a_change_the_watcher_cannot_see() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    // routes.toml is a link, from the start, to a file in a directory the proxy does not
    // watch: an edit there raises no event the proxy sees.
    let elsewhere = tempfile::TempDir::new().unwrap();
    let real = elsewhere.path().join("real-routes.toml");
    let options = Options {
        routes_link: Some(real.clone()),
        ..Options::default()
    };
    let h = Harness::start_with(&route(&a), options).await;
    let client = h.client(&["app.example.test"]);
    assert_eq!(who(&client, &h).await, "a");
    std::fs::write(&real, route(&b)).unwrap();
    // A window for a watcher that wrongly saw the edit to apply it (it settles for 150 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        who(&client, &h).await,
        "a",
        "the watcher did not see the edit"
    );
    // What SIGHUP triggers, through the handle: a signal would reload every proxy in this
    // test process (tests/cli/reload.rs sends a real SIGHUP to a proxy process of its own).
    let reloaded = h.reload().await;
    assert_eq!(reloaded.routes.unwrap().unwrap(), 1);
    assert_eq!(who(&client, &h).await, "b");
}

#[tokio::test]
async fn in_flight_requests_and_websockets_survive_a_reload() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let h = Harness::start(&route(&a)).await;
    let client = h.client(&["app.example.test"]);

    let tcp = tokio::net::TcpStream::connect(h.https).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(h.pki.client_tls(&[b"http/1.1"])));
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("app.example.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://app.example.test:{}/", h.https.port()), tls)
            .await
            .unwrap();

    // The upstream sends its first bytes and holds the rest: once they are here, the request
    // is in flight on the old route.
    let key = "reload-in-flight";
    let mut slow = client
        .get(h.url("app.example.test", "/"))
        .header("x-test-action", format!("hold={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(&slow.chunk().await.unwrap().unwrap()[..], b"first");
    std::fs::write(h.path("routes.toml"), route(&b)).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            who(&client, &h).await == "b"
        })
        .await
    );

    crate::upstream::release(key);
    let mut rest = Vec::new();
    while let Some(chunk) = slow.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(
        rest, b"last",
        "the in-flight answer finished after the reload"
    );
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "still here"
    );
}

#[tokio::test]
async fn rotated_certificate_files_are_served_without_restart() {
    let a = Upstream::start("a").await;
    let h = Harness::start(&route(&a)).await;
    let before = h.presented_cert("app.example.test").await.unwrap();
    let (cert, key) = h.pki.leaf(crate::support::CERT_NAMES);
    // cert-manager style: write new files beside, then rename over the old ones.
    std::fs::write(h.path("key.pem.new"), key).unwrap();
    std::fs::write(h.path("cert.pem.new"), &cert).unwrap();
    std::fs::rename(h.path("key.pem.new"), h.path("key.pem")).unwrap();
    std::fs::rename(h.path("cert.pem.new"), h.path("cert.pem")).unwrap();
    let expected = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()
    };
    assert_ne!(before, expected);
    let rotated = eventually(Duration::from_secs(2), || async {
        h.presented_cert("app.example.test")
            .await
            .map(|c| c == expected)
            .unwrap_or(false)
    })
    .await;
    assert!(rotated, "new handshakes get the new certificate");
}

#[tokio::test]
async fn a_broken_certificate_file_keeps_the_old_certificate() {
    let a = Upstream::start("a").await;
    let h = Harness::start(&route(&a)).await;
    let before = h.presented_cert("app.example.test").await.unwrap();
    std::fs::write(h.path("cert.pem"), "not a certificate").unwrap();
    // This content was read and refused (the watcher reads it too, and refuses it the same
    // way): only then does "unchanged" say anything.
    assert!(
        h.reload().await.certificates.is_err(),
        "the broken file was refused"
    );
    assert_eq!(h.presented_cert("app.example.test").await.unwrap(), before);
}

#[tokio::test]
async fn a_kubernetes_configmap_swap_of_data_is_reloaded() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let h = Harness::start(&route(&a)).await;
    let client = h.client(&["app.example.test"]);
    assert_eq!(who(&client, &h).await, "a");
    // The layout the kubelet gives a ConfigMap mounted as a directory: the file is a link
    // through `..data`, itself a link to a timestamped directory.
    let dir = h.path("");
    let version = |name: &str, text: String| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("routes.toml"), text).unwrap();
    };
    version("..2026_12_02_first", route(&a));
    std::os::unix::fs::symlink("..2026_12_02_first", dir.join("..data")).unwrap();
    std::fs::remove_file(dir.join("routes.toml")).unwrap();
    std::os::unix::fs::symlink("..data/routes.toml", dir.join("routes.toml")).unwrap();
    assert!(
        h.reload().await.routes.expect("a routing file").is_ok(),
        "the linked layout reads as a routing file"
    );
    assert_eq!(who(&client, &h).await, "a");

    // The kubelet's update: a new directory, a new `..data_tmp` link, renamed over `..data`.
    version("..2026_12_02_second", route(&b));
    std::os::unix::fs::symlink("..2026_12_02_second", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            who(&client, &h).await == "b"
        })
        .await,
        "the swap was seen and applied without a signal"
    );
}
