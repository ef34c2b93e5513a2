//! The audit log: one structured event per security-relevant decision, on its own tracing
//! target (`portcullis::audit`) so operators can route it apart from the access log.
//!
//! Events: `sign_in` (success), `sign_in_failed`, `sign_in_rate_limited` (the first refusal of
//! a client by the sign-in rate limit after an allowed request), `sign_out`, `refresh`,
//! `refresh_failed`, `session_ended`, `policy_denied`, `sessions_revoked`, `config_reload`,
//! `config_reload_failed`. Fields: `event`,
//! `request_id`, `route`, `oid`, `tid`, `reason`. Never tokens, cookie values or claims beyond
//! the two identifiers. The request ID and route come from the request's context
//! (`RequestCtx::audit`), handed down to the code that records the event.
//! Each event also counts in `portcullis_auth_events_total` (`metrics.rs`).

/// Which request an event belongs to: `RequestCtx::audit` for events of a request,
/// [`Scope::NONE`] for the others (configuration reloads).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    /// The client's address (as `X-Forwarded-For` names it from a trusted proxy).
    pub client: Option<std::net::IpAddr>,
}

impl Scope<'_> {
    pub const NONE: Scope<'static> = Scope {
        request_id: "",
        route: "",
        client: None,
    };
}

/// What happened, as the audit log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    SignIn,
    SignInFailed,
    SignInRateLimited,
    SignOut,
    Refresh,
    RefreshFailed,
    SessionEnded,
    PolicyDenied,
    SessionsRevoked,
    ConfigReload,
    ConfigReloadFailed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::SignIn => "sign_in",
            Event::SignInFailed => "sign_in_failed",
            Event::SignInRateLimited => "sign_in_rate_limited",
            Event::SignOut => "sign_out",
            Event::Refresh => "refresh",
            Event::RefreshFailed => "refresh_failed",
            Event::SessionEnded => "session_ended",
            Event::PolicyDenied => "policy_denied",
            Event::SessionsRevoked => "sessions_revoked",
            Event::ConfigReload => "config_reload",
            Event::ConfigReloadFailed => "config_reload_failed",
        }
    }

    /// The `event` label of `portcullis_auth_events_total`, if this counts there.
    fn metric(self) -> Option<&'static str> {
        match self {
            Event::SignIn => Some("sign_in_completed"),
            Event::SignInFailed => Some("sign_in_failed"),
            Event::SignInRateLimited => Some("sign_in_rate_limited"),
            Event::SignOut => Some("sign_out"),
            Event::Refresh => Some("refresh_ok"),
            Event::RefreshFailed => Some("refresh_failed"),
            Event::SessionEnded => Some("session_ended"),
            Event::PolicyDenied => Some("policy_denied"),
            Event::SessionsRevoked => Some("sessions_revoked"),
            Event::ConfigReload | Event::ConfigReloadFailed => None,
        }
    }
}

/// Writes one audit event. `reason` is a short code (`invalid_grant`, `allowed_groups`, …).
pub fn record(scope: Scope<'_>, event: Event, oid: &str, tid: &str, reason: &'static str) {
    tracing::info!(
        target: "portcullis::audit",
        event = event.as_str(),
        request_id = scope.request_id,
        route = scope.route,
        client = scope.client.map(tracing::field::display),
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
