//! Metrics and the audit log for a real sign-in, policy deny and sign-out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::support::signin::{login_route, Setup, SignIn, GROUP_ADMINS, HOST};

pub(crate) type Events = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// Records every event's target and fields.
pub(crate) struct Collect(pub(crate) Events);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_owned(), fields));
    }
}

#[tokio::test]
async fn audit_events_and_metrics_follow_a_real_sign_in() {
    let events: Events = Arc::default();
    // #[tokio::test] runs every task on this thread, so a thread-local subscriber sees the
    // proxy's events too.
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    // Route names of this test's own: the per-route series change only through it, however
    // many tests share the process-wide metrics recorder.
    let s = SignIn::start(Setup {
        routes: format!(
            "{}{}",
            login_route("obs-home", HOST, ""),
            login_route(
                "obs-admin",
                HOST,
                &format!("path_prefix = \"/admin\"\nallowed_groups = [\"{GROUP_ADMINS}\"]")
            ),
        ),
        ..Setup::default()
    })
    .await;
    let before = metrics(&s).await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    let cookie = b.cookie(HOST, "__Host-portcullis").unwrap().value.clone();
    let denied = b.get(&s.url("/admin")).await;
    assert_eq!(denied.status, 403);
    let denied_id = denied.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(b.click(&s.url("/.auth/logout")).await.status, 302);

    let user = s.idp.user("alice@contoso.example").unwrap();
    let audit: Vec<BTreeMap<String, String>> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "portcullis::audit")
        .map(|(_, f)| f.clone())
        .collect();
    let kinds: Vec<&str> = audit.iter().map(|f| f["event"].as_str()).collect();
    assert_eq!(kinds, ["sign_in", "policy_denied", "sign_out"], "{audit:?}");
    for f in &audit {
        assert_eq!(f["oid"], user.oid);
        assert_eq!(f["tid"], s.idp.tenant_id());
        assert!(!f["request_id"].is_empty());
        assert_eq!(f["client"], "127.0.0.1");
    }
    // The access log names the signed-in user of the denied request.
    let denied_access: Vec<BTreeMap<String, String>> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, f)| t == "portcullis::access" && f.get("request_id") == Some(&denied_id))
        .map(|(_, f)| f.clone())
        .collect();
    assert_eq!(denied_access.len(), 1, "{denied_access:?}");
    assert_eq!(denied_access[0]["oid"], user.oid);
    assert_eq!(denied_access[0]["tid"], s.idp.tenant_id());
    assert_eq!(audit[1]["reason"], "allowed_groups");
    assert_eq!(audit[1]["route"], "obs-admin");
    assert_eq!(audit[1]["request_id"], denied_id);
    // Nothing secret in any event, audit or not.
    for (_, f) in events.lock().unwrap().iter() {
        for v in f.values() {
            assert!(!v.contains(&cookie), "session ID in a log event: {f:?}");
            assert!(!v.contains("eyJ"), "token in a log event: {f:?}");
            assert!(!v.contains(crate::support::signin::CLIENT_SECRET));
        }
    }

    let after = metrics(&s).await;
    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    // This test's own routes: exact.
    assert_eq!(
        delta("portcullis_requests_total{route=\"obs-admin\",method=\"GET\",status=\"403\"}"),
        1.0
    );
    assert_eq!(
        delta("portcullis_request_duration_seconds_count{route=\"obs-admin\"}"),
        1.0
    );
    assert!(delta("portcullis_request_duration_seconds_count{route=\"obs-home\"}") >= 1.0);
    // Process-wide series: at least what this test caused.
    for series in [
        "portcullis_auth_events_total{event=\"sign_in_started\",reason=\"\"}",
        "portcullis_auth_events_total{event=\"sign_in_completed\",reason=\"\"}",
        "portcullis_auth_events_total{event=\"policy_denied\",reason=\"allowed_groups\"}",
        "portcullis_auth_events_total{event=\"sign_out\",reason=\"user\"}",
        "portcullis_session_store_duration_seconds_count{store=\"memory\",op=\"set\"}",
        // The session written at sign-in is cached: the next requests find it there.
        "portcullis_session_cache_lookups_total{result=\"hit\"}",
    ] {
        assert!(delta(series) >= 1.0, "{series} did not grow:\n{after:?}");
    }
    assert!(after
        .keys()
        .any(|k| k.starts_with("portcullis_open_connections{listener=\"https\"}")));
    assert!(after
        .keys()
        .any(|k| k.starts_with("portcullis_build_info{version=")));
}

/// Every sample on the admin listener's `/metrics`: series (name and labels) → value.
pub(crate) async fn metrics(s: &SignIn) -> std::collections::HashMap<String, f64> {
    let text = reqwest::get(format!("http://{}/metrics", s.proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}
