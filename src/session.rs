//! Sessions: what a signed-in browser's cookie stands for.
//!
//! The cookie holds an opaque 256-bit random ID. The store key is `session:` + hex SHA-256 of
//! the ID, so whoever reads the store (a Redis dump, a `MONITOR`) learns nothing that works as
//! a cookie; the value is sealed (AES-256-GCM, `seal.rs`) with the store key as associated data.
//!
//! Lifetimes: a session ends at `expires_at` (sign-in + `session.max_lifetime`, or the token's
//! expiry when there is no refresh token to extend it) and after `session.idle_timeout`
//! without use — the store's TTL, pushed forward as requests arrive. Each instance keeps
//! recently read sessions for `session.cache_ttl`; a change or deletion anywhere is published
//! to every instance, which drops its copy at once (`cache.rs`).
//!
//! `refresh.rs` renews access tokens before they expire, one token call per session.
//!
//! The stored value is compact (`codec.rs`) and holds only what the proxy uses: the claims it
//! may put in headers or judge, the refresh token, the sign-out hints — and the access token
//! only while some route passes it upstream (`pass_access_token`). When a reload adds such a
//! route, a session without one renews once to get it.

mod cache;
mod codec;
mod keys;
mod memo;
mod read;
pub mod refresh;
mod sealed;

pub(crate) use keys::session_slot;
pub use keys::store_key;
use keys::{key_of, legacy_sid_key, sid_key, user_key};
pub use memo::Memo;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SessionConfig;
use crate::identity::Identity;
use crate::oidc::Tokens;
use crate::primitives::{digest, now, random_token};
use crate::seal::{self, Purpose, Sealer};
use crate::store::{SessionStore, StoreError};

/// A signed-in user's session, as stored (sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub identity: Identity,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// Unix seconds; when the access token (and, without one, the ID token) expires.
    pub access_expires_at: u64,
    pub created_at: u64,
    /// Unix seconds; the session's hard end.
    pub expires_at: u64,
    /// Entra's `sid`, for front-channel sign-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Entra's `login_hint` claim, passed back as `logout_hint` on sign-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
}

/// A session value in use in this process: the stored value, and work done once for it here
/// rather than once per request. A changed value (a refresh) is a new `Active`, with an empty
/// memo. It dereferences to the [`Session`].
#[derive(Debug)]
pub struct Active {
    session: Session,
    memo: Memo,
}

impl Active {
    pub fn new(session: Session) -> Active {
        Active {
            session,
            memo: Memo::default(),
        }
    }

    pub fn memo(&self) -> &Memo {
        &self.memo
    }
}

impl std::ops::Deref for Active {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Session {
    /// The access token has expired: without a refresh the session cannot vouch for the user
    /// any longer.
    pub fn token_expired(&self, now: u64) -> bool {
        self.access_expires_at != 0 && now >= self.access_expires_at
    }
}

/// When a token answer's access token expires: `expires_in` from now, an hour if the answer
/// gives none (Entra always does).
pub(crate) fn access_expiry(now: u64, tokens: &Tokens) -> u64 {
    now + tokens.expires_in.map_or(3600, |d| d.as_secs())
}

/// What sign-out needs from the ID token: kept on the session, never sent upstream.
#[derive(Debug, Clone, Default)]
pub struct SignOutHints {
    /// Entra's `sid`, for front-channel sign-out.
    pub sid: Option<String>,
    /// Entra's `login_hint`, passed back as `logout_hint`.
    pub login_hint: Option<String>,
}

impl SignOutHints {
    /// Reads them from a validated ID token's claims (before `Identity::from_claims` drops
    /// them).
    pub fn of(claims: &serde_json::Map<String, serde_json::Value>) -> SignOutHints {
        let get = |c: &str| claims.get(c).and_then(|v| v.as_str()).map(String::from);
        SignOutHints {
            sid: get("sid"),
            login_hint: get("login_hint"),
        }
    }
}

/// A session as read, with where it lives in the store.
#[derive(Debug, Clone)]
pub struct StoredSession {
    slot: cache::Slot,
    pub session: Arc<Active>,
}

impl StoredSession {
    /// The store key the session lives under.
    pub fn key(&self) -> String {
        key_of(&self.slot)
    }
}

/// Reads and writes sessions.
pub struct Sessions {
    config: SessionConfig,
    store: Arc<dyn SessionStore>,
    sealer: Sealer,
    cache: cache::Cache,
    pub(crate) refresh: refresh::RefreshState,
    /// Some route passes the access token upstream: sessions keep it.
    keep_access_token: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// `secrets` must not be empty (see `SessionConfig::secrets`).
    pub fn new(
        config: SessionConfig,
        store: Arc<dyn SessionStore>,
        secrets: &[Vec<u8>],
    ) -> Arc<Sessions> {
        let cache = cache::Cache::new(config.cache_ttl);
        let sessions = Arc::new(Sessions {
            sealer: Sealer::new(secrets, Purpose::Session),
            cache,
            refresh: refresh::RefreshState::default(),
            keep_access_token: std::sync::atomic::AtomicBool::new(false),
            config,
            store,
        });
        cache::listen(&sessions);
        sessions
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether sessions keep their access token: set from the live routing file (some route
    /// has `pass_access_token`).
    pub fn set_keep_access_token(&self, keep: bool) {
        self.keep_access_token
            .store(keep, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn keeps_access_token(&self) -> bool {
        self.keep_access_token
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The session as this instance stores it: without the access token unless a route uses
    /// it.
    fn stored_form(&self, mut session: Session) -> Session {
        if !self.keeps_access_token() {
            session.access_token = None;
        }
        session
    }

    /// `"memory"` or `"redis"`.
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Records that the sign-in with this `state` reached its callback: `true` the first
    /// time, `false` for a replay. The marker (`signin:` + SHA-256 of the state) outlives the
    /// pending sign-in by `ttl`.
    pub async fn mark_sign_in_used(&self, state: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store
            .set_nx(&format!("signin:{}", digest(state)), b"1", ttl)
            .await
    }

    /// The time to live a session gets in the store now.
    fn ttl(&self, s: &Session, now: u64) -> Option<Duration> {
        let left = s.expires_at.checked_sub(now).filter(|l| *l > 0)?;
        Some(self.config.idle_timeout.min(Duration::from_secs(left)))
    }

    /// Starts a session for a verified sign-in and returns its ID (the cookie value) and how
    /// long it lasts: `max_lifetime`, and without a refresh token no longer than the access
    /// token. With `upgrade` (a step-up: the browser's current session of the same user, by
    /// its ID), the new value replaces that session's under the same ID, unless it has ended
    /// meanwhile.
    pub async fn start(
        &self,
        identity: Identity,
        hints: SignOutHints,
        tokens: Tokens,
        upgrade: Option<&str>,
    ) -> Result<(String, Duration), StoreError> {
        let now = now();
        let access_expires_at = access_expiry(now, &tokens);
        let hard_end = now + self.config.max_lifetime.as_secs();
        let expires_at = if tokens.refresh_token.is_some() {
            hard_end
        } else {
            hard_end.min(access_expires_at)
        };
        let session = self.stored_form(Session {
            sid: hints.sid,
            login_hint: hints.login_hint,
            identity,
            access_token: Some(tokens.access_token),
            refresh_token: tokens.refresh_token,
            access_expires_at,
            created_at: now,
            expires_at,
        });
        let lifetime = Duration::from_secs(expires_at - now);
        if let Some(id) = upgrade {
            let key = store_key(id);
            self.index(&key, &session).await?;
            if self.save(&key, session.clone()).await?.is_some() {
                return Ok((id.to_owned(), lifetime));
            }
        }
        self.create(session).await.map(|id| (id, lifetime))
    }

    /// Stores a new session and returns its ID (the cookie value).
    pub async fn create(&self, session: Session) -> Result<String, StoreError> {
        let id = random_token();
        let key = store_key(&id);
        let ttl = self
            .ttl(&session, now())
            .ok_or_else(|| StoreError::Failed("session would expire at once".into()))?;
        self.store
            .set(&key, &self.seal(&key, &session)?, ttl)
            .await?;
        self.index(&key, &session).await?;
        Ok(id)
    }

    /// Adds a session to the `sid` and user indexes. They live as long as the session's hard
    /// end: a member may outlive its session (readers skip it), a session never outlives its
    /// index entry.
    async fn index(&self, key: &str, session: &Session) -> Result<(), StoreError> {
        let left = Duration::from_secs(session.expires_at.saturating_sub(now()).max(1));
        if let Some(sid) = &session.sid {
            self.store.set_add(&sid_key(sid), key, left).await?;
        }
        if !session.identity.oid().is_empty() {
            self.store
                .set_add(&user_key(session.identity.oid()), key, left)
                .await?;
        }
        Ok(())
    }

    fn seal(&self, key: &str, session: &Session) -> Result<Vec<u8>, StoreError> {
        let plain = codec::encode(session).map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(self.sealer.seal(&plain, key.as_bytes()))
    }

    /// The session for cookie value `id`, if it exists and has not ended.
    pub async fn load(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let slot = session_slot(id);
        let now = now();
        let Some(session) = self.fetch(slot, now).await? else {
            return Ok(None);
        };
        if session.expires_at <= now {
            self.cache.remove(&slot);
            return Ok(None);
        }
        if self.should_touch(&session, now) {
            if let Some(ttl) = self.ttl(&session, now) {
                match self.store.expire(&key_of(&slot), ttl).await {
                    Ok(true) => {}
                    // Deleted or idle-expired elsewhere since it was cached.
                    Ok(false) => {
                        self.cache.remove(&slot);
                        return Ok(None);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not extend a session's idle timeout")
                    }
                }
            }
        }
        Ok(Some(StoredSession { slot, session }))
    }

    /// True at most once per `idle_timeout / 20` (at least 1 s) per session value: a busy
    /// session costs one `PEXPIRE` per interval, not one per request.
    fn should_touch(&self, s: &Active, now: u64) -> bool {
        use std::sync::atomic::Ordering;
        let every = (self.config.idle_timeout.as_secs() / 20).max(1);
        let last = s.memo.touched.load(Ordering::Relaxed);
        now >= last + every
            && s.memo
                .touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Replaces a session's value (after a refresh) and tells the other instances. `None`:
    /// the session was deleted meanwhile (a sign-out during the refresh), and stays deleted.
    pub async fn save(
        &self,
        key: &str,
        session: Session,
    ) -> Result<Option<Arc<Active>>, StoreError> {
        let session = self.stored_form(session);
        let ttl = self
            .ttl(&session, now())
            .ok_or_else(|| StoreError::Failed("session has ended".into()))?;
        let sealed = self.seal(key, &session)?;
        if !self.store.set_xx(key, &sealed, ttl).await? {
            self.cache.remove_key(key);
            return Ok(None);
        }
        let session = Arc::new(Active::new(session));
        self.cache
            .insert_key(key, session.clone(), seal::fingerprint(&sealed));
        if let Err(e) = self.store.publish_invalidation(key).await {
            tracing::warn!(error = %e, "could not publish a session change");
        }
        Ok(Some(session))
    }

    /// Ends a session everywhere.
    pub async fn delete(&self, key: &str, session: Option<&Session>) -> Result<(), StoreError> {
        self.cache.remove_key(key);
        self.store.delete(key).await?;
        if let Some(s) = session {
            if let Some(sid) = s.sid.as_deref() {
                self.store.set_remove(&sid_key(sid), key).await?;
            }
            if !s.identity.oid().is_empty() {
                self.store
                    .set_remove(&user_key(s.identity.oid()), key)
                    .await?;
            }
        }
        if let Err(e) = self.store.publish_invalidation(key).await {
            tracing::warn!(error = %e, "could not publish a session deletion");
        }
        Ok(())
    }

    /// Ends every session Entra knows as `sid` (front-channel sign-out) whose issuer is
    /// `iss`, when the provider names one (OpenID Connect Front-Channel Logout 1.0 §2).
    /// Returns how many ended.
    pub async fn delete_by_sid(&self, sid: &str, iss: Option<&str>) -> Result<usize, StoreError> {
        let mut keys = self.store.set_members(&sid_key(sid)).await?;
        if let Some(old) = self.store.get(&legacy_sid_key(sid)).await? {
            keys.push(String::from_utf8_lossy(&old).into_owned());
        }
        let mut ended = 0;
        for key in keys {
            let session = self.read(&key).await?;
            let Some(session) = session else {
                // Ended on its own already: only the index entry was left.
                self.store.set_remove(&sid_key(sid), &key).await?;
                continue;
            };
            if iss.is_some_and(|iss| session.identity.str("iss") != Some(iss)) {
                tracing::info!("front-channel sign-out names another issuer; session kept");
                continue;
            }
            self.delete(&key, Some(&**session)).await?;
            ended += 1;
        }
        if ended > 0 {
            self.store.delete(&legacy_sid_key(sid)).await?;
        }
        Ok(ended)
    }

    /// Ends every session of the user `oid`, on every instance (each deletion is published,
    /// so every instance drops its cached copy). Returns how many ended.
    pub async fn delete_user(&self, oid: &str) -> Result<usize, StoreError> {
        let index = user_key(oid);
        let mut ended = 0;
        for key in self.store.set_members(&index).await? {
            match self.read(&key).await? {
                Some(session) => {
                    self.delete(&key, Some(&**session)).await?;
                    ended += 1;
                }
                None => self.store.set_remove(&index, &key).await?,
            }
        }
        Ok(ended)
    }
}

#[cfg(test)]
mod tests;
