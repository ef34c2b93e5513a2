//! Route selection: hosts, prefixes, strip_prefix, preserve_host.

use crate::support::{echo_json, Harness, Upstream};

async fn three_upstreams() -> (Upstream, Upstream, Upstream) {
    (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    )
}

#[tokio::test]
async fn exact_wildcard_and_catch_all_hosts_choose_their_upstreams() {
    let (a, b, c) = three_upstreams().await;
    // `*` has an upstream of its own, so "the longer wildcard wins" cannot pass by falling
    // through to the catch-all.
    let d = Upstream::start("d").await;
    let routes = format!(
        r#"
[[route]]
auth = "public"
name = "exact"
host = "wiki.example.test"
upstream = "{a}"
[[route]]
auth = "public"
name = "wild"
host = "*.example.test"
upstream = "{b}"
[[route]]
auth = "public"
name = "deep"
host = "*.deep.example.test"
upstream = "{c}"
[[route]]
auth = "public"
name = "any"
host = "*"
upstream = "{d}"
"#,
        a = a.url(),
        b = b.url(),
        c = c.url(),
        d = d.url()
    );
    let h = Harness::start(&routes).await;
    let hosts = [
        "wiki.example.test",
        "other.example.test",
        "x.deep.example.test",
        "localhost",
    ];
    let client = h.client(&hosts);
    let who = |host: &'static str| {
        let client = client.clone();
        let url = h.url(host, "/");
        async move {
            echo_json(client.get(url).send().await.unwrap()).await["upstream"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        who("wiki.example.test").await,
        "a",
        "exact host beats the wildcard"
    );
    assert_eq!(
        who("other.example.test").await,
        "b",
        "wildcard matches a subdomain"
    );
    assert_eq!(
        who("x.deep.example.test").await,
        "c",
        "the longer wildcard wins"
    );
    assert_eq!(who("localhost").await, "d", "* catches every other host");
}

#[tokio::test]
async fn longest_prefix_wins_on_segment_boundaries() {
    let (a, b, c) = three_upstreams().await;
    let routes = format!(
        r#"
[[route]]
auth = "public"
name = "root"
host = "app.example.test"
upstream = "{a}"
[[route]]
auth = "public"
name = "api"
host = "app.example.test"
path_prefix = "/api"
upstream = "{b}"
[[route]]
auth = "public"
name = "api-admin"
host = "app.example.test"
path_prefix = "/api/admin/"
upstream = "{c}"
"#,
        a = a.url(),
        b = b.url(),
        c = c.url()
    );
    let h = Harness::start(&routes).await;
    let client = h.client(&["app.example.test"]);
    for (path, want) in [
        ("/", "a"),
        ("/apix", "a"),
        ("/api", "b"),
        ("/api/users?x=1", "b"),
        ("/api/admin/x", "c"),
        ("/api/admin", "c"),
        ("/api/administrator", "b"),
    ] {
        let resp = client
            .get(h.url("app.example.test", path))
            .send()
            .await
            .unwrap();
        assert_eq!(echo_json(resp).await["upstream"], want, "path {path}");
    }
}

#[tokio::test]
async fn strip_prefix_and_upstream_base_path_shape_the_forwarded_path() {
    let a = Upstream::start("a").await;
    let routes = format!(
        r#"
[[route]]
auth = "public"
name = "stripped"
host = "app.example.test"
path_prefix = "/api"
strip_prefix = true
upstream = "{a}/v1"
[[route]]
auth = "public"
name = "kept"
host = "app.example.test"
path_prefix = "/keep"
upstream = "{a}"
"#,
        a = a.url()
    );
    let h = Harness::start(&routes).await;
    let client = h.client(&["app.example.test"]);
    for (path, want) in [
        ("/api/users?id=7", "/v1/users?id=7"),
        ("/api", "/v1/"),
        ("/keep/x", "/keep/x"),
    ] {
        let resp = client
            .get(h.url("app.example.test", path))
            .send()
            .await
            .unwrap();
        assert_eq!(echo_json(resp).await["uri"], want, "path {path}");
    }
}

#[tokio::test]
async fn preserve_host_decides_which_host_the_upstream_sees() {
    let a = Upstream::start("a").await;
    let routes = format!(
        r#"
[[route]]
auth = "public"
name = "kept"
host = "kept.example.test"
upstream = "{a}"
preserve_host = true
[[route]]
auth = "public"
name = "replaced"
host = "replaced.example.test"
upstream = "{a}"
"#,
        a = a.url()
    );
    let h = Harness::start(&routes).await;
    let client = h.client(&["kept.example.test", "replaced.example.test"]);
    let port = h.https.port();
    let echo = echo_json(
        client
            .get(h.url("kept.example.test", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        crate::support::seen(&echo, "host"),
        [format!("kept.example.test:{port}")]
    );
    let echo = echo_json(
        client
            .get(h.url("replaced.example.test", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(crate::support::seen(&echo, "host"), [a.addr.to_string()]);
    assert_eq!(
        crate::support::seen(&echo, "x-forwarded-host"),
        [format!("replaced.example.test:{port}")]
    );
}

#[tokio::test]
async fn a_host_with_routes_does_not_fall_back_to_the_catch_all() {
    let (a, b, _) = three_upstreams().await;
    let routes = format!(
        r#"
[[route]]
auth = "public"
name = "only-api"
host = "app.example.test"
path_prefix = "/api"
upstream = "{a}"
[[route]]
auth = "public"
name = "any"
host = "*"
upstream = "{b}"
"#,
        a = a.url(),
        b = b.url()
    );
    let h = Harness::start(&routes).await;
    let client = h.client(&["app.example.test"]);
    let resp = client
        .get(h.url("app.example.test", "/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
