//! What one `portcullis run` process exposes on `/metrics`. The real binary is scraped, so no
//! other test's requests share its recorder and gauges can be read exactly.

use std::collections::HashMap;
use std::time::Duration;

use tokio::process::Child;

use crate::cli::{example_to, spawn_run, wiki_client};
use crate::support::{eventually, tls_get, Pki};
use crate::upstream::{release, Upstream};

async fn scrape(admin: u16) -> HashMap<String, f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn one(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    let found: Vec<_> = m.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one series {prefix}: {found:?}");
    *found[0].1
}

/// The shipped example, its routes sent to `up`, run as `portcullis run` until ready: its
/// directory (kept while the process runs), CA, process, HTTPS port and admin port.
async fn run_example(up: &Upstream) -> (tempfile::TempDir, Pki, Child, u16, u16) {
    let (dir, pki) = example_to(up);
    let (child, https, _http, admin) = spawn_run(&dir.path().join("portcullis.toml"));
    let ready = eventually(Duration::from_secs(10), || async {
        reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the proxy starts");
    (dir, pki, child, https, admin)
}

#[tokio::test]
async fn in_flight_process_and_certificate_metrics_describe_the_process() {
    let up = Upstream::start("wiki").await;
    let (_dir, pki, mut child, https, admin) = run_example(&up).await;

    // A response whose body the upstream holds open: in flight until it ends.
    let client = wiki_client(&pki, https);
    let mut resp = client
        .get(format!("https://wiki.example.com:{https}/"))
        .header("x-test-action", "hold=exposition")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.chunk().await.unwrap().unwrap(), "first");
    let during = scrape(admin).await;
    assert_eq!(one(&during, "portcullis_requests_in_flight"), 1.0);
    release("exposition");
    while resp.chunk().await.unwrap().is_some() {}
    let after = scrape(admin).await;
    assert_eq!(one(&after, "portcullis_requests_in_flight"), 0.0);

    // The process, from /proc.
    assert!(one(&after, "process_resident_memory_bytes") > 1_000_000.0);
    assert!(one(&after, "process_open_fds") >= 3.0);
    assert!(one(&after, "process_cpu_seconds_total") >= 0.0);
    // The served certificate's notAfter: in the future, within the test CA's validity.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let not_after = one(&after, "portcullis_certificate_not_after_seconds{");
    assert!(not_after > now, "{not_after} <= {now}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn tls_handshakes_are_counted_as_full_resumed_or_failed() {
    let up = Upstream::start("wiki").await;
    let (_dir, pki, mut child, https, admin) = run_example(&up).await;
    let before = scrape(admin).await;
    for result in ["full", "resumed", "failed", "timeout"] {
        let series = format!("portcullis_tls_handshakes_total{{result=\"{result}\"}}");
        assert_eq!(before.get(&series), Some(&0.0), "{series} from the start");
    }

    let client = std::sync::Arc::new(pki.client_tls(&[b"http/1.1"]));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], https));
    for _ in 0..3 {
        tls_get(addr, &client, "wiki.example.com").await;
    }
    // Plain HTTP on the TLS port: not a handshake.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", https))
            .await
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: wiki.example.com\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    }
    let counted = eventually(Duration::from_secs(5), || async {
        let m = scrape(admin).await;
        let n = |r: &str| m[&format!("portcullis_tls_handshakes_total{{result=\"{r}\"}}")];
        n("full") == 1.0 && n("resumed") == 2.0 && n("failed") == 1.0 && n("timeout") == 0.0
    })
    .await;
    assert!(
        counted,
        "one full handshake, two resumed, one failed: {:?}",
        scrape(admin)
            .await
            .into_iter()
            .filter(|(k, _)| k.starts_with("portcullis_tls"))
            .collect::<Vec<_>>()
    );
    let _ = child.kill().await;
}
