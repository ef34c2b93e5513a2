//! The audit events and metrics the operations guide promises for renewals, ended sessions,
//! failed sign-ins and broken upstreams, each from the real flow that causes it.

use std::collections::BTreeMap;
use std::time::Duration;

use entra_standin::TokenFailure;
use tracing_subscriber::layer::SubscriberExt;

use crate::observability::{metrics, Collect, Events};
use crate::support::signin::{login_route, Setup, SignIn, HOST};
use crate::support::Harness;

/// Tokens live 10 s and are renewed with 7 s left: certainly due after this.
const DUE: Duration = Duration::from_millis(3100);

fn audit(events: &Events) -> Vec<BTreeMap<String, String>> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "portcullis::audit")
        .map(|(_, f)| f.clone())
        .collect()
}

fn short_tokens(route: &str) -> Setup {
    Setup {
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        routes: login_route(route, HOST, ""),
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_renewal_and_a_transient_renewal_failure_are_each_audited() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let s = SignIn::start(short_tokens("audit-renew")).await;
    let user = s.idp.user("alice@contoso.example").unwrap();
    let mut failing = s.browser();
    assert_eq!(
        failing.navigate(&s.url("/")).await.last().unwrap().status,
        200
    );
    let mut renewing = s.browser();
    assert_eq!(
        renewing.navigate(&s.url("/")).await.last().unwrap().status,
        200
    );
    tokio::time::sleep(DUE).await;

    s.idp
        .fail_next_token_requests(1, TokenFailure::TemporarilyUnavailable);
    // The token is still valid: the user is served while the renewal waits to retry.
    assert_eq!(failing.api(&s.url("/a")).await.status, 200);
    assert_eq!(renewing.api(&s.url("/b")).await.status, 200);

    let events = audit(&events);
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = of("refresh_failed");
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["reason"], "unavailable");
    assert_eq!(failed[0]["oid"], user.oid);
    assert_eq!(failed[0]["route"], "audit-renew");
    let renewed = of("refresh");
    assert_eq!(renewed.len(), 1, "{events:?}");
    assert_eq!(renewed[0]["oid"], user.oid);
    assert!(!renewed[0]["request_id"].is_empty());
}

#[tokio::test]
async fn a_renewal_the_provider_refuses_ends_the_session_and_is_audited() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let s = SignIn::start(short_tokens("audit-ended")).await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let before = metrics(&s).await;
    s.idp.revoke_refresh_tokens("alice@contoso.example");
    tokio::time::sleep(DUE).await;
    assert_eq!(b.api(&s.url("/after")).await.status, 401);

    let ended: Vec<_> = audit(&events)
        .into_iter()
        .filter(|e| e["event"] == "session_ended")
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "invalid_grant");
    let after = metrics(&s).await;
    let series = "portcullis_auth_events_total{event=\"session_ended\",reason=\"invalid_grant\"}";
    assert!(
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
            >= 1.0
    );
}

/// A renewal whose new ID token does not verify, or names another user, is not trusted: the
/// session ends (docs/operations.md: `session_ended`, reason `invalid_id_token`).
#[tokio::test]
async fn a_renewal_whose_id_token_fails_validation_ends_the_session_and_is_audited() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let s = SignIn::start(short_tokens("audit-bad-id-token")).await;
    let mut wrong_audience = s.browser();
    let mut other_user = s.browser();
    for b in [&mut wrong_audience, &mut other_user] {
        assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    }
    tokio::time::sleep(DUE).await;
    for (b, patch) in [
        (
            &mut wrong_audience,
            ("aud", "00000000-0000-0000-0000-00000000cafe"),
        ),
        (
            &mut other_user,
            ("oid", "00000000-0000-0000-0000-0000000000b0"),
        ),
    ] {
        let idp = s.idp.clone();
        s.idp.rewrite_next_id_token(move |mut claims| {
            claims[patch.0] = patch.1.into();
            idp.mint_token(claims, None)
        });
        let answer = b.api(&s.url("/after")).await;
        assert_eq!(answer.status, 401, "{}: {}", patch.0, answer.body);
    }
    assert_eq!(s.idp.token_calls().refresh_token, 2, "both renewals ran");
    let ended: Vec<_> = audit(&events)
        .into_iter()
        .filter(|e| e["event"] == "session_ended")
        .collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(
        ended.iter().all(|e| e["reason"] == "invalid_id_token"),
        "{ended:?}"
    );
}

#[tokio::test]
async fn a_sign_in_the_provider_refuses_is_audited_as_failed() {
    let events: Events = Default::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Collect(events.clone())),
    );
    let s = SignIn::start(Setup {
        routes: login_route("audit-failed", HOST, ""),
        ..Setup::default()
    })
    .await;
    s.idp.set_authorize_error(Some((
        "access_denied".into(),
        "AADSTS50105: The signed in user is not assigned to a role for the application.".into(),
    )));
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 403);
    let failed: Vec<_> = audit(&events)
        .into_iter()
        .filter(|e| e["event"] == "sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["reason"], "sign_in_provider_error");
    assert_eq!(
        failed[0]["oid"], "",
        "no user is known for a refused sign-in"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_counts_in_upstream_errors_total() {
    let dead = crate::support::free_port();
    let h = Harness::start(&format!(
        "[[route]]\nname = \"audit-dead\"\nhost = \"app.example.test\"\nauth = \"public\"\n\
         upstream = \"http://127.0.0.1:{dead}\"\n"
    ))
    .await;
    let series = "portcullis_upstream_errors_total{route=\"audit-dead\",kind=\"unreachable\"}";
    let read = || async {
        let text = reqwest::get(format!("http://{}/metrics", h.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or(0.0)
    };
    let before = read().await;
    let client = h.client(&["app.example.test"]);
    for _ in 0..2 {
        let resp = client
            .get(h.url("app.example.test", "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 502);
    }
    assert_eq!(read().await - before, 2.0);
}
