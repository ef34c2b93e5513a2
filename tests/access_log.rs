//! The access log's promises (docs/config.md, `[log]`): one event per request when its body
//! ends, with the path but never the query string or a header value, and `complete = false`
//! for an answer the client did not take to its end.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

use crate::observability::{Collect, Events};
use crate::support::{eventually, Harness, Upstream};

const HOST: &str = "app.example.test";

fn access(events: &Events) -> Vec<BTreeMap<String, String>> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "portcullis::access")
        .map(|(_, f)| f.clone())
        .collect()
}

async fn harness(up: &Upstream) -> Harness {
    Harness::start(&format!(
        "[[route]]\nname = \"log-app\"\nhost = \"{HOST}\"\nauth = \"public\"\nupstream = \"{}\"\n",
        up.url()
    ))
    .await
}

#[tokio::test]
async fn an_access_event_has_the_path_and_none_of_the_query_or_headers() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let up = Upstream::start("a").await;
    let h = harness(&up).await;
    let resp = h
        .client(&[HOST])
        .get(h.url(HOST, "/callback?code=secret-code-123&state=s"))
        .header("authorization", "Bearer eyJsecret.token.sig")
        .header("cookie", "session=cookie-secret-456")
        .header("user-agent", "log-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            !access(&events).is_empty()
        })
        .await,
        "no access event"
    );
    let logged = access(&events);
    assert_eq!(logged.len(), 1, "{logged:?}");
    let e = &logged[0];
    assert_eq!(e["path"], "/callback");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["status"], "200");
    assert_eq!(e["route"], "log-app");
    assert_eq!(e["request_id"], id);
    assert_eq!(e["complete"], "true");
    assert_eq!(e["bytes"], body.len().to_string());
    assert_eq!(e["client"], "127.0.0.1");
    assert_eq!(e["user_agent"], "log-test/1.0");
    // A public route: nobody signed in.
    assert_eq!((e["oid"].as_str(), e["tid"].as_str()), ("", ""));
    // The upstream's part of the request: within the whole.
    let upstream: f64 = e["upstream_ms"].parse().unwrap();
    let total: f64 = e["duration_ms"].parse().unwrap();
    assert!(upstream > 0.0 && upstream <= total, "{upstream} of {total}");
    for v in e.values() {
        for secret in [
            "secret-code-123",
            "eyJsecret",
            "cookie-secret-456",
            "state=s",
        ] {
            assert!(!v.contains(secret), "{secret} in the access log: {e:?}");
        }
    }
}

#[tokio::test]
async fn an_answer_the_client_abandoned_is_logged_incomplete() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let up = Upstream::start("a").await;
    let h = harness(&up).await;
    let total: u64 = 64 * 1024 * 1024;
    {
        let client = h.client_builder(&[HOST]).http1_only().build().unwrap();
        let mut resp = client
            .get(h.url(HOST, "/big"))
            .header("x-test-action", format!("stream={total}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.chunk().await.unwrap().is_some());
        // The client goes away with most of the body unread.
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            !access(&events).is_empty()
        })
        .await,
        "no access event for the abandoned answer"
    );
    let e = access(&events).remove(0);
    assert_eq!(e["complete"], "false", "{e:?}");
    let sent: u64 = e["bytes"].parse().unwrap();
    assert!(sent < total, "{sent} of {total} bytes logged as sent");
}
