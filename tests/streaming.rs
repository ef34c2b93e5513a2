//! Bodies stream in both directions: sizes far above any buffer pass through (the benchmark
//! notes measure memory with a 1 GiB body; here a smaller body keeps debug-build tests quick).

use crate::support::{generated, Harness, Upstream};

const SIZE: u64 = 64 * 1024 * 1024;

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\nupstream = \"{}\"\n",
        upstream.url()
    )
}

#[tokio::test]
async fn a_large_upload_streams_to_the_upstream() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    for http1 in [true, false] {
        let mut b = h.client_builder(&["app.example.test"]);
        if http1 {
            b = b.http1_only();
        }
        let client = b.build().unwrap();
        let resp = client
            .post(h.url("app.example.test", "/upload"))
            .header("x-test-action", "count")
            .body(reqwest::Body::wrap(generated(SIZE)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.text().await.unwrap(),
            format!("{{\"bytes\":{SIZE}}}"),
            "http1={http1}"
        );
    }
}

#[tokio::test]
async fn the_first_bytes_arrive_before_the_upstream_has_finished() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    for http1 in [true, false] {
        let mut b = h.client_builder(&["app.example.test"]);
        if http1 {
            b = b.http1_only();
        }
        let key = format!("streaming-{http1}");
        let mut resp = b
            .build()
            .unwrap()
            .get(h.url("app.example.test", "/held"))
            .header("x-test-action", format!("hold={key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // The upstream cannot finish before `release`: a proxy that buffered the body would
        // deliver nothing here.
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .expect("the first bytes arrive while the upstream is still sending")
            .unwrap()
            .unwrap();
        assert_eq!(&first[..], b"first", "http1={http1}");
        crate::upstream::release(&key);
        let rest = resp.bytes().await.unwrap();
        assert_eq!(&rest[..], b"last", "http1={http1}");
    }
}

#[tokio::test]
async fn a_large_download_streams_to_the_client() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    for http1 in [true, false] {
        let mut b = h.client_builder(&["app.example.test"]);
        if http1 {
            b = b.http1_only();
        }
        let client = b.build().unwrap();
        let resp = client
            .get(h.url("app.example.test", "/download"))
            .header("x-test-action", format!("stream={SIZE}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut resp = resp;
        let mut received = 0u64;
        let mut chunks = 0u32;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            received += chunk.len() as u64;
            chunks += 1;
        }
        assert_eq!(received, SIZE, "http1={http1}");
        assert!(chunks > 1, "the body arrived in pieces, not as one buffer");
    }
}
