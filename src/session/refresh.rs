//! Renewing a session's access token before it expires (ENTRA.md §5).
//!
//! - One token call per session, however many requests arrive at once: within an instance a
//!   per-session lock, across instances a short store lock (`lock:<hash>`, `SET NX`). Whoever
//!   waits re-reads the session afterwards and finds it renewed.
//! - Entra rotates refresh tokens: the new one replaces the old in the same write.
//! - `invalid_grant`, `interaction_required`, `login_required`, `consent_required` end the
//!   session. Anything transient — `temporarily_unavailable`, `server_error`, a network fault, a
//!   store error — keeps the session, which serves while its token is valid; the next try waits
//!   [`RETRY_AFTER`]. Users are never signed out because a dependency hiccuped.

use std::sync::Arc;
use std::time::Duration;

use super::{Active, Session, Sessions, StoredSession};
use crate::audit::{self, Event};
use crate::error::RenewalError;
use crate::identity::Identity;
use crate::oidc::{Expect, Provider, TokenError};
use crate::primitives::{now, random_token};

/// Pause before retrying a refresh that failed for a transient reason.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long the cross-instance refresh lock may be held.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a request waits for another instance's refresh when its own token has expired.
const WAIT_FOR_PEER: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct RefreshState {
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    backoff: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The states of one request's renewal, in order.
enum Renewal {
    /// As read from the cache or the store: renewed only if its token is due.
    Read(Arc<Active>),
    /// Due, and holding this instance's lock for the session.
    LockedHere(Arc<Active>),
    /// Still due as the store has it now: take the store lock shared by every instance.
    Due(Arc<Active>),
    /// Holding both locks: ask the token endpoint.
    Renewing(Arc<Active>),
    /// Another instance holds the store lock: wait for its result.
    PeerRenewing(Arc<Active>),
}

/// What a request gets to go on with.
#[derive(Debug)]
pub enum Freshness {
    /// Fresh enough (renewed, or not due).
    Valid(Arc<Active>),
    /// The session is gone: the provider refused the grant, the renewed ID token failed, or
    /// another request ended it. The reason is a fixed label (metrics, audit).
    Ended(&'static str),
    /// The token has expired and could not be renewed for a transient reason; the session is
    /// kept for a later try.
    Unavailable(RenewalError),
}

impl Sessions {
    /// Renewal is due: the access token expires within `refresh_before`, or a route now
    /// passes access tokens upstream and this session was stored without one.
    fn due(&self, s: &Session, now: u64) -> bool {
        s.refresh_token.is_some()
            && ((s.access_expires_at != 0
                && now + self.config.refresh_before.as_secs() >= s.access_expires_at)
                || (s.access_token.is_none() && self.keeps_access_token()))
    }

    fn backing_off(&self, key: &str) -> bool {
        let mut b = self
            .refresh
            .backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        b.retain(|_, until| until.elapsed() < RETRY_AFTER);
        b.contains_key(key)
    }

    fn back_off(&self, key: &str) {
        self.refresh
            .backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), std::time::Instant::now());
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refresh.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds, so the map does not grow with every session ever seen.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.to_owned()).or_default().clone()
    }

    /// Serves when valid, `Unavailable` otherwise.
    fn keep(s: Arc<Active>, why: RenewalError) -> Freshness {
        if s.token_expired(now()) {
            Freshness::Unavailable(why)
        } else {
            Freshness::Valid(s)
        }
    }

    /// Renews `stored` if due. Call before forwarding each request. A small state machine:
    /// each [`Renewal`] state either answers or moves to the next.
    pub async fn ensure_fresh(
        &self,
        provider: &Provider,
        stored: StoredSession,
        audit: audit::Scope<'_>,
    ) -> Freshness {
        // Almost every request: nothing to renew, and no lock key or token to make.
        if !self.due(&stored.session, now()) {
            return Freshness::Valid(stored.session);
        }
        // Boxed: the renewal's future (token endpoint, store, locks) is large, and would
        // otherwise be moved with every request's future.
        Box::pin(self.renew_due(provider, stored, audit, false)).await
    }

    /// Renews `stored` now, due or not (App Service's `/.auth/refresh`), with the same locks:
    /// one token call per session across instances.
    pub async fn renew_now(
        &self,
        provider: &Provider,
        stored: StoredSession,
        audit: audit::Scope<'_>,
    ) -> Freshness {
        Box::pin(self.renew_due(provider, stored, audit, true)).await
    }

    async fn renew_due(
        &self,
        provider: &Provider,
        stored: StoredSession,
        audit: audit::Scope<'_>,
        force: bool,
    ) -> Freshness {
        let due = |s: &Session| force || self.due(s, now());
        let key = stored.key();
        let session = stored.session;
        let lock_key = format!("lock:{}", key.trim_start_matches("session:"));
        let lock_token = random_token();
        // This instance's lock for the session, held from `LockedHere` to the end.
        let mut _held = None;
        let mut state = Renewal::Read(session);
        loop {
            state = match state {
                Renewal::Read(s) if !due(&s) => return Freshness::Valid(s),
                Renewal::Read(s) if self.backing_off(&key) => {
                    return Self::keep(s, RenewalError::BackingOff)
                }
                Renewal::Read(s) => {
                    _held = Some(self.lock_for(&key).lock_owned().await);
                    Renewal::LockedHere(s)
                }
                // Another request may have renewed it while this one waited for the lock.
                Renewal::LockedHere(s) => match self.read(&key).await {
                    Ok(Some(current)) if !due(&current) => {
                        self.cache.insert_key(&key, current.clone(), None);
                        return Freshness::Valid(current);
                    }
                    Ok(Some(current)) => Renewal::Due(current),
                    Ok(None) => return Freshness::Ended("session_gone"),
                    Err(e) => return Self::keep(s, RenewalError::Store(e)),
                },
                Renewal::Due(current) => match self
                    .store
                    .set_nx(&lock_key, lock_token.as_bytes(), LOCK_TTL)
                    .await
                {
                    Ok(true) => Renewal::Renewing(current),
                    Ok(false) => Renewal::PeerRenewing(current),
                    Err(e) => return Self::keep(current, RenewalError::Store(e)),
                },
                Renewal::PeerRenewing(current) => return self.wait_for_peer(&key, current).await,
                Renewal::Renewing(current) => {
                    let freshness = self.renew(provider, &key, current, audit).await;
                    if let Err(e) = self.store.delete_if(&lock_key, lock_token.as_bytes()).await {
                        tracing::debug!(error = %e, "refresh lock release failed; it expires on its own");
                    }
                    return freshness;
                }
            };
        }
    }

    async fn wait_for_peer(&self, key: &str, current: Arc<Active>) -> Freshness {
        if !current.token_expired(now()) {
            return Freshness::Valid(current);
        }
        let deadline = tokio::time::Instant::now() + WAIT_FOR_PEER;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.read(key).await {
                Ok(Some(s)) if !s.token_expired(now()) => {
                    self.cache.insert_key(key, s.clone(), None);
                    return Freshness::Valid(s);
                }
                Ok(Some(_)) => {}
                Ok(None) => return Freshness::Ended("session_gone"),
                Err(e) => return Freshness::Unavailable(RenewalError::Store(e)),
            }
        }
        Freshness::Unavailable(RenewalError::PeerBusy)
    }

    async fn renew(
        &self,
        provider: &Provider,
        key: &str,
        current: Arc<Active>,
        audit: audit::Scope<'_>,
    ) -> Freshness {
        let Some(rt) = current.refresh_token.as_deref() else {
            return Freshness::Valid(current);
        };
        let started = std::time::Instant::now();
        let refreshed = provider.refresh(rt).await;
        crate::metrics::token_refresh(started.elapsed());
        let tokens = match refreshed {
            Ok(t) => t,
            Err(TokenError::Rejected { code, aadsts }) => {
                let id = &current.identity;
                audit::record(
                    audit,
                    Event::SessionEnded,
                    id.oid(),
                    id.tid(),
                    end_reason(&code),
                );
                tracing::info!(
                    code,
                    aadsts,
                    "refresh refused by the provider; ending the session"
                );
                if let Err(e) = self.delete(key, Some(&current)).await {
                    tracing::warn!(error = %e, "could not delete an ended session");
                }
                return Freshness::Ended(end_reason(&code));
            }
            Err(e @ TokenError::Misconfigured { .. }) => {
                let id = &current.identity;
                audit::record(audit, Event::RefreshFailed, id.oid(), id.tid(), e.kind());
                tracing::error!(error = %crate::error::chain(&e), "refresh failed because of the client's configuration (client secret, app registration); sessions are kept");
                self.back_off(key);
                return Self::keep(current, RenewalError::Token(e));
            }
            Err(e @ (TokenError::Unavailable(_) | TokenError::Malformed(_))) => {
                let id = &current.identity;
                audit::record(audit, Event::RefreshFailed, id.oid(), id.tid(), e.kind());
                tracing::warn!(error = %crate::error::chain(&e), retry_in = ?RETRY_AFTER, "refresh failed; keeping the session");
                self.back_off(key);
                return Self::keep(current, RenewalError::Token(e));
            }
        };
        let mut next = Session::clone(&current);
        if let Some(id_token) = tokens.id_token.as_deref() {
            match provider
                .verify(id_token, Expect::IdToken { nonce: None })
                .await
            {
                // The same user, or the refresh is not to be trusted.
                Ok(claims) if claims.get("oid") == current.identity.claims.get("oid") => {
                    // Overage is announced by claims that `from_claims` drops: look first.
                    let overage = crate::oidc::graph::has_overage(&claims);
                    let mut identity = Identity::from_claims(claims);
                    if overage || current.identity.groups_unresolved {
                        // Keep the groups resolved at sign-in; Graph is asked again at the next
                        // sign-in.
                        identity.claims.remove("groups");
                        if let Some(g) = current.identity.claims.get("groups") {
                            identity.claims.insert("groups".into(), g.clone());
                        }
                        identity.groups_unresolved = current.identity.groups_unresolved;
                    }
                    next.identity = identity;
                }
                Ok(_) | Err(_) => {
                    tracing::warn!("refreshed ID token failed validation; ending the session");
                    let id = &current.identity;
                    audit::record(
                        audit,
                        Event::SessionEnded,
                        id.oid(),
                        id.tid(),
                        "invalid_id_token",
                    );
                    let _ = self.delete(key, Some(&current)).await;
                    return Freshness::Ended("invalid_id_token");
                }
            }
        }
        next.access_expires_at = super::access_expiry(now(), &tokens);
        next.access_token = Some(tokens.access_token);
        if tokens.refresh_token.is_some() {
            next.refresh_token = tokens.refresh_token;
        }
        let renewed = Arc::new(Active::new(next.clone()));
        match self.save(key, next).await {
            // Signed out while the token call ran: the sign-out stands.
            Ok(None) => Freshness::Ended("session_gone"),
            Ok(Some(s)) => {
                audit::record(
                    audit,
                    Event::Refresh,
                    s.identity.oid(),
                    s.identity.tid(),
                    "",
                );
                Freshness::Valid(s)
            }
            Err(e) => {
                // The provider has rotated the refresh token but the store did not take it:
                // serve this request with the new token; the next refresh may need a sign-in.
                tracing::warn!(error = %e, "could not store a refreshed session");
                self.back_off(key);
                Freshness::Valid(renewed)
            }
        }
    }
}

/// The OAuth error code as a metrics label (a fixed set, never provider-chosen text).
fn end_reason(code: &str) -> &'static str {
    match code {
        "invalid_grant" => "invalid_grant",
        "interaction_required" => "interaction_required",
        "login_required" => "login_required",
        "consent_required" => "consent_required",
        _ => "rejected",
    }
}
