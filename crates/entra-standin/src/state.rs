//! The stand-in's shared state: directory, keys, outstanding grants, test controls, records.
//!
//! Everything sits behind short-lived `std` locks that are never held across an `.await`.
//! A poisoned lock is recovered rather than propagated: a panicking test thread must not turn
//! every later request into a 500.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use super::keys::KeySet;
use super::{LogoutRecord, StandInConfig, TestClient, TestUser, TokenFailure};

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `bytes` random bytes, base64url without padding.
pub(crate) fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where v1 tokens come from: the public cloud's security token service.
pub(crate) const V1_ISSUER_BASE: &str = "https://sts.windows.net";

/// How long an authorization code can be redeemed (Entra: about 10 minutes).
pub(crate) const CODE_LIFETIME: u64 = 600;

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// The tenant segment of the authorize URL, lowercased: codes redeem at the same one.
    pub tenant: String,
    /// The S256 `code_challenge` (RFC 7636 §4.2): every code has one.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub username: String,
    pub sid: String,
    /// Authentication contexts asked for with the `claims` parameter, and satisfied.
    pub acrs: Vec<String>,
    pub expires: u64,
    pub used: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshStatus {
    Active,
    /// Redeemed once; its successor is the live token.
    Rotated,
    Revoked,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    /// The tenant the user signed in to (`tid`): the token redeems there or at a
    /// multi-tenant authority, never at another tenant's endpoint.
    pub tid: String,
    pub username: String,
    /// The scopes of the original sign-in.
    pub scope: String,
    pub sid: String,
    /// The authentication contexts of the sign-in: refreshed tokens keep them.
    pub acrs: Vec<String>,
    pub issued: u64,
    pub expires: u64,
    pub status: RefreshStatus,
}

/// An access token we issued, so the Graph emulation can recognise it.
#[derive(Debug, Clone)]
pub(crate) struct IssuedAccess {
    pub subject: Subject,
    /// The client the token was issued to.
    pub client_id: String,
    pub audience: String,
    pub expires: u64,
}

/// Whom an access token speaks for.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    /// A signed-in user (delegated token).
    User { username: String },
    /// The client itself (client-credentials grant), in tenant `tid`, with the application
    /// permissions granted on the token's resource.
    App { tid: String, roles: Vec<String> },
}

#[derive(Debug, Default)]
pub(crate) struct Grants {
    pub codes: HashMap<String, AuthCode>,
    pub refresh: HashMap<String, RefreshGrant>,
    pub access: HashMap<String, IssuedAccess>,
    /// Browser sign-in sessions: `sid` → username (the `ESTSAUTH` cookie holds the `sid`).
    pub sessions: HashMap<String, String>,
    /// `(client_id, jti)` of every certificate assertion accepted → its `exp`, so tests can
    /// see how many distinct assertions a client signed.
    pub assertion_ids: HashMap<(String, String), u64>,
}

impl Grants {
    /// Drops what can no longer be used, so long test runs do not grow without bound.
    pub fn purge(&mut self, now: u64) {
        if self.codes.len() + self.access.len() < 10_000 {
            return;
        }
        self.codes.retain(|_, c| c.expires > now);
        self.access.retain(|_, a| a.expires > now);
        self.refresh.retain(|_, r| r.expires > now);
        self.assertion_ids.retain(|_, exp| *exp > now);
    }
}

/// Rewrites the next ID token: given the claims the stand-in would sign, returns the token
/// string to send instead (forged-token tests).
pub(crate) struct Rewrite(pub Box<dyn FnOnce(serde_json::Value) -> String + Send>);

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewrite")
    }
}

/// What the test asked the stand-in to do differently.
#[derive(Debug)]
pub(crate) struct Controls {
    pub failures: VecDeque<TokenFailure>,
    pub authorize_error: Option<(String, String)>,
    pub discovery_up: bool,
    pub graph_up: bool,
    pub delay: Duration,
    pub id_token_rewrite: Option<Rewrite>,
}

#[derive(Debug, Default)]
pub(crate) struct Records {
    pub logouts: Vec<LogoutRecord>,
    pub authorize: Vec<url::Url>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub authorization_code: AtomicUsize,
    pub refresh_token: AtomicUsize,
    pub client_credentials: AtomicUsize,
    pub failed: AtomicUsize,
    pub jwks: AtomicUsize,
    pub discovery: AtomicUsize,
    pub graph: AtomicUsize,
}

impl Counters {
    pub fn bump(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

pub(crate) struct State {
    /// The configuration as given, except `users` and `clients`, which live below (tests
    /// change them while the stand-in runs, as an admin edits a directory).
    pub config: StandInConfig,
    pub base_url: String,
    pub graph_url: String,
    /// Served over TLS (decides the cookie attributes).
    pub secure: bool,
    users: Mutex<Vec<TestUser>>,
    clients: Mutex<Vec<TestClient>>,
    keys: RwLock<KeySet>,
    pub controls: Mutex<Controls>,
    pub grants: Mutex<Grants>,
    pub records: Mutex<Records>,
    pub counters: Counters,
    /// `true` while a test holds token-endpoint calls (`StandIn::hold_token_requests`).
    pub token_hold: tokio::sync::watch::Sender<bool>,
    /// Managed identities and resource tokens (`managed_identity.rs`).
    pub identities: Mutex<super::managed_identity::Identities>,
}

impl State {
    pub fn new(mut config: StandInConfig, base_url: String, keys: KeySet) -> State {
        let users = std::mem::take(&mut config.users);
        let clients = std::mem::take(&mut config.clients);
        State {
            secure: config.tls.is_some(),
            graph_url: format!("{base_url}/graph"),
            base_url,
            config,
            users: Mutex::new(users),
            clients: Mutex::new(clients),
            keys: RwLock::new(keys),
            controls: Mutex::new(Controls {
                failures: VecDeque::new(),
                authorize_error: None,
                discovery_up: true,
                graph_up: true,
                delay: Duration::ZERO,
                id_token_rewrite: None,
            }),
            grants: Mutex::new(Grants::default()),
            records: Mutex::new(Records::default()),
            counters: Counters::default(),
            token_hold: tokio::sync::watch::Sender::new(false),
            identities: Mutex::new(Default::default()),
        }
    }

    pub fn keys(&self) -> RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn keys_mut(&self) -> RwLockWriteGuard<'_, KeySet> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn users(&self) -> Vec<TestUser> {
        lock(&self.users).clone()
    }

    /// The user called `username` (UPNs compare case-insensitively).
    pub fn user(&self, username: &str) -> Option<TestUser> {
        lock(&self.users)
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
            .cloned()
    }

    pub fn update_user(&self, username: &str, change: impl FnOnce(&mut TestUser)) -> bool {
        let mut users = lock(&self.users);
        match users
            .iter_mut()
            .find(|u| u.username.eq_ignore_ascii_case(username))
        {
            Some(u) => {
                change(u);
                true
            }
            None => false,
        }
    }

    /// The registration of `client_id` as it is now.
    pub fn client(&self, client_id: &str) -> Option<TestClient> {
        lock(&self.clients)
            .iter()
            .find(|c| c.client_id == client_id)
            .cloned()
    }

    pub fn update_client(&self, client_id: &str, change: impl FnOnce(&mut TestClient)) -> bool {
        match lock(&self.clients)
            .iter_mut()
            .find(|c| c.client_id == client_id)
        {
            Some(c) => {
                change(c);
                true
            }
            None => false,
        }
    }

    /// Whether `tid` is a directory the stand-in knows: the home tenant, a tenant one of its
    /// users comes from, or the consumers tenant. Entra answers any other GUID with AADSTS90002.
    pub fn serves_tenant(&self, tid: &str) -> bool {
        tid.eq_ignore_ascii_case(&self.config.tenant_id)
            || tid.eq_ignore_ascii_case(super::discovery::CONSUMERS_TENANT)
            || lock(&self.users)
                .iter()
                .filter_map(|u| u.tenant_id.as_deref())
                .any(|t| t.eq_ignore_ascii_case(tid))
    }

    /// The tenant a user's tokens are issued in.
    pub fn tid_of<'a>(&'a self, user: &'a TestUser) -> &'a str {
        user.tenant_id.as_deref().unwrap_or(&self.config.tenant_id)
    }

    /// The v2 issuer of tenant `tid`.
    pub fn issuer_for(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.base_url)
    }

    /// The v1 issuer of tenant `tid`: Entra's security token service host, whatever host
    /// the request came to (access-tokens).
    pub fn v1_issuer_for(&self, tid: &str) -> String {
        format!("{V1_ISSUER_BASE}/{tid}/")
    }

    pub fn discovery_up(&self) -> bool {
        lock(&self.controls).discovery_up
    }
}
