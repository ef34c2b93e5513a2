//! The audit log: one structured event per security-relevant decision, on its own tracing
//! target (`portcullis::audit`) so operators can route it apart from the access log.
//!
//! Events: `sign_in` (success), `sign_in_failed`, `sign_out`, `refresh`, `refresh_failed`,
//! `session_ended`, `policy_denied`, `config_reload`, `config_reload_failed`. Fields: `event`,
//! `request_id`, `route`, `oid`, `tid`, `reason`. Never tokens, cookie values or claims beyond
//! the two identifiers. The request ID and route come from the request being served (a
//! task-local set by the request path), so code deep in sign-in need not carry them.
//! Each event also counts in `portcullis_auth_events_total` (`metrics.rs`).

use std::cell::RefCell;
use std::sync::Arc;

use http::HeaderValue;

use crate::route::Route;

tokio::task_local! {
    static REQUEST: RefCell<Context>;
}

/// Cheap to set per request: both are reference-counted.
#[derive(Debug, Default, Clone)]
struct Context {
    request_id: Option<HeaderValue>,
    route: Option<Arc<Route>>,
}

/// Runs `f` with `request_id` as the current request's.
pub async fn scope<F: std::future::Future>(request_id: &HeaderValue, f: F) -> F::Output {
    REQUEST
        .scope(
            RefCell::new(Context {
                request_id: Some(request_id.clone()),
                route: None,
            }),
            f,
        )
        .await
}

/// Records the route the current request matched.
pub fn set_route(route: &Arc<Route>) {
    let _ = REQUEST.try_with(|c| c.borrow_mut().route = Some(route.clone()));
}

fn context() -> Context {
    REQUEST.try_with(|c| c.borrow().clone()).unwrap_or_default()
}

/// What happened, as the audit log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    SignIn,
    SignInFailed,
    SignOut,
    Refresh,
    RefreshFailed,
    SessionEnded,
    PolicyDenied,
    ConfigReload,
    ConfigReloadFailed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::SignIn => "sign_in",
            Event::SignInFailed => "sign_in_failed",
            Event::SignOut => "sign_out",
            Event::Refresh => "refresh",
            Event::RefreshFailed => "refresh_failed",
            Event::SessionEnded => "session_ended",
            Event::PolicyDenied => "policy_denied",
            Event::ConfigReload => "config_reload",
            Event::ConfigReloadFailed => "config_reload_failed",
        }
    }

    /// The `event` label of `portcullis_auth_events_total`, if this counts there.
    fn metric(self) -> Option<&'static str> {
        match self {
            Event::SignIn => Some("sign_in_completed"),
            Event::SignInFailed => Some("sign_in_failed"),
            Event::SignOut => Some("sign_out"),
            Event::Refresh => Some("refresh_ok"),
            Event::RefreshFailed => Some("refresh_failed"),
            Event::SessionEnded => Some("session_ended"),
            Event::PolicyDenied => Some("policy_denied"),
            Event::ConfigReload | Event::ConfigReloadFailed => None,
        }
    }
}

/// Writes one audit event. `reason` is a short code (`invalid_grant`, `allowed_groups`, …).
pub fn record(event: Event, oid: &str, tid: &str, reason: &'static str) {
    let c = context();
    tracing::info!(
        target: "portcullis::audit",
        event = event.as_str(),
        request_id = c.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        route = c.route.as_deref().map_or("", |r| r.name.as_str()),
        oid,
        tid,
        reason,
    );
    if let Some(m) = event.metric() {
        crate::metrics::auth(m, reason);
    }
}

/// A sign-in was started (counted only; the audit log records outcomes).
pub fn sign_in_started() {
    crate::metrics::auth("sign_in_started", "");
}
