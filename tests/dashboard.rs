//! Every metric the Grafana dashboard and the alert rules query exists in a real `/metrics`:
//! a renamed or removed metric cannot leave a panel or an alert silently empty. (No Grafana
//! here to render the dashboard in; .ci/check-deploy checks its structure and runs promtool.)

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::signin::{login_route, Setup, SignIn, HOST};

/// `portcullis_*` and `process_*` names in a file, as written in its queries.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["portcullis_", "process_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            // Not inside a longer word (`deploy/grafana/portcullis_x` would not occur, but a
            // label value or a file name must not count as a metric).
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/') {
                out.insert(tail[..end].trim_end_matches('_').to_owned());
            }
            rest = &tail[end.max(1)..];
        }
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_exposed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut wanted = BTreeSet::new();
    for file in ["grafana/portcullis.json", "prometheus/alerts.yaml"] {
        let found = names_in(&std::fs::read_to_string(root.join(file)).unwrap());
        assert!(found.len() > 5, "{file}: {found:?}");
        wanted.extend(found);
    }
    // The "dashboard" and "portcullis" names of the files themselves are not metrics.
    wanted.retain(|n| n.contains('_') && !n.ends_with("json"));
    for sure in [
        "portcullis_request_duration_seconds_bucket",
        "portcullis_certificate_not_after_seconds",
        "process_cpu_seconds_total",
    ] {
        assert!(wanted.contains(sure), "{sure} not found in {wanted:?}");
    }

    // A sign-in, a policy denial and an upstream that refuses connections: every kind of
    // series the dashboard shows is recorded at least once.
    let s = SignIn::start(Setup {
        routes: format!(
            "{}{}[[route]]\nname = \"dash-down\"\nhost = \"{HOST}\"\npath_prefix = \"/down\"\n\
             upstream = \"http://127.0.0.1:{}\"\nauth = \"public\"\n",
            login_route("dash-home", HOST, ""),
            login_route(
                "dash-admin",
                HOST,
                "path_prefix = \"/admin\"\nallowed_groups = [\"00000000-0000-0000-0000-000000000000\"]"
            ),
            crate::support::free_port(),
        ),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    assert_eq!(b.get(&s.url("/admin")).await.status, 403);
    assert_eq!(b.get(&s.url("/down")).await.status, 502);

    let text = reqwest::get(format!("http://{}/metrics", s.proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}");
}
