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
