//! Redis with Microsoft Entra ID (Azure Cache for Redis, Azure Managed Redis; ENTRA.md §8):
//! `AUTH <object id> <access token for https://redis.azure.com>`, kept valid for as long as
//! the store runs.
//!
//! Two mechanisms, because each covers what the other cannot:
//!
//! - fred's [`CredentialProvider`] gives every new connection (first connect, reconnect,
//!   a cluster node found later) the current token in its `HELLO`/`AUTH`. It is asked often
//!   (each connection of the pool), so it hands out the cached token and fetches a new one
//!   only once the cached one is near its end.
//! - A renewal task of our own fetches a new token at about 70% of the current one's lifetime
//!   (at least 3 minutes before expiry for real tokens of an hour or so; for tokens shorter
//!   than 6 minutes, at the latest half-way), minus a random jitter of up to 5% of the
//!   lifetime so that replicas do not ask together; then it sends `AUTH` with the new token
//!   on every live connection: each pool client and the invalidation subscriber. The AUTH is
//!   queued like any command on the multiplexed connection, so commands in flight are
//!   neither dropped nor replayed. Azure closes a connection whose token expired without a
//!   new AUTH; without this task every connection would be cut once per token lifetime.
//!
//! fred's own `refresh_interval` is not used: it is one fixed period for the life of the
//! client, while an Entra token's lifetime varies (60–90 minutes, chosen at random by Entra;
//! shorter after a policy change) and is only known once the token arrives. A fixed period
//! either re-authenticates far too often or too late for some token. Failures of fred's
//! refresh are only logged, with no backoff before the expiry and nothing to meter.
//!
//! On a failed renewal the task retries with exponential backoff (from a twentieth of the
//! lifetime, 0.1 s to 2 s, doubling, at most 30 s and at most half the time left while the
//! token lasts), counting each failure in `portcullis_redis_auth_refresh_total{result="error"}`;
//! the token in use keeps working until it expires. Connections that reconnect together share
//! one token request, and its failure. Tokens never reach a log line or an error message.
//!
//! The connections speak RESP3 with Entra ID: RESP2 refuses AUTH on a connection that has
//! subscribed (the invalidation subscriber), RESP3 allows it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::config::CredentialProvider;
use fred::types::RespVersion;
use rand::Rng;
use tokio::task::JoinHandle;

use super::StoreError;
use crate::config::{RedisAuth, RedisConfig};
use crate::oidc::resource_token::{AccessToken, ResourceTokenError, TokenSource};

mod source;

/// The resource of Azure's Redis data plane.
pub const REDIS_RESOURCE: &str = "https://redis.azure.com";
/// How long one token request may take (IMDS can be slow on a cold host).
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two renewal attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a failed token request answers the requests queued behind it (shorter than the
/// renewal's first retry).
const SHARED_FAILURE: Duration = Duration::from_millis(50);

/// The Entra ID side of one store: the token source, the current token, and the user.
pub(super) struct EntraAuth {
    shared: Arc<Shared>,
}

struct Shared {
    user: String,
    source: TokenSource,
    current: Mutex<Option<AccessToken>>,
    /// One token request at a time.
    fetching: tokio::sync::Mutex<()>,
    /// The last failed request, shared with those that queued behind it.
    failed: Mutex<Option<(Instant, Arc<ResourceTokenError>)>>,
    command_timeout: Duration,
}

/// fred's view: the user and the current token.
struct Provider(Arc<Shared>);

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraCredentialProvider")
            .field("user", &self.0.user)
            .field("source", &self.0.source.kind())
            .finish()
    }
}

#[async_trait::async_trait]
impl CredentialProvider for Provider {
    async fn fetch(&self, _: Option<&Server>) -> Result<(Option<String>, Option<String>), Error> {
        let current = self.0.current();
        let token = match current {
            Some(t) if t.remaining() > reuse_margin(&t) => t,
            stale => self
                .0
                .clone()
                .refresh(stale.map(|t| t.received))
                .await
                .map_err(|e| {
                    // An I/O error kind: fred retries the connection with backoff, and the
                    // store starts (answering 503) while no token can be had.
                    Error::new(ErrorKind::IO, format!("no Entra ID token for Redis: {e}"))
                })?,
        };
        Ok((Some(self.0.user.clone()), Some(token.secret().to_owned())))
    }
}

/// With `auth = "entra"`: sets the credential provider (and RESP3) on `builder`. `None` for
/// password authentication.
pub(super) fn install(
    builder: &mut Builder,
    options: &RedisConfig,
) -> Result<Option<EntraAuth>, StoreError> {
    let RedisAuth::Entra(entra) = &options.auth else {
        return Ok(None);
    };
    let source = source::token_source(entra)?;
    let shared = Arc::new(Shared {
        user: entra.object_id.clone(),
        source,
        current: Mutex::new(None),
        fetching: tokio::sync::Mutex::new(()),
        failed: Mutex::new(None),
        command_timeout: options.command_timeout,
    });
    let provider: Arc<dyn CredentialProvider> = Arc::new(Provider(shared.clone()));
    builder.with_config(|config| {
        config.username = None;
        config.password = None;
        config.version = RespVersion::RESP3;
        config.credential_provider = Some(provider);
    });
    crate::metrics::redis_auth_refresh_zero();
    Ok(Some(EntraAuth { shared }))
}

impl EntraAuth {
    /// Starts the renewal task for `clients` (the pool's and the subscriber).
    pub(super) fn spawn_renewal(&self, clients: Vec<Client>) -> JoinHandle<()> {
        tokio::spawn(renew(self.shared.clone(), clients))
    }
}

impl Shared {
    fn current(&self) -> Option<AccessToken> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A token received after `older_than` (a new one unless another task just fetched
    /// one). The request runs in its own task: a connection attempt that gives up waiting
    /// does not cancel it, and the token is kept for the next.
    async fn refresh(
        self: Arc<Self>,
        older_than: Option<Instant>,
    ) -> Result<AccessToken, Arc<ResourceTokenError>> {
        let task = tokio::spawn(async move {
            let _one = self.fetching.lock().await;
            if let Some(t) = self.current() {
                if older_than.is_none_or(|o| t.received > o) && t.remaining() > reuse_margin(&t) {
                    return Ok(t);
                }
            }
            // Connections reconnecting together ask at once: one request answers them all.
            let failed = |s: &Self| s.failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some((at, e)) = failed(&self) {
                if at.elapsed() < SHARED_FAILURE {
                    return Err(e);
                }
            }
            let token = match self.source.token(REDIS_RESOURCE).await {
                Ok(t) => t,
                Err(e) => {
                    let e = Arc::new(e);
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((Instant::now(), e.clone()));
                    return Err(e);
                }
            };
            crate::metrics::redis_auth_token_expiry(token.expires_at);
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
            Ok(token)
        });
        task.await.unwrap_or_else(|e| {
            Err(Arc::new(ResourceTokenError::Setup(format!(
                "token task failed: {e}"
            ))))
        })
    }

    /// `AUTH` with `token` on every connected client; false if any refused or timed out.
    async fn reauthenticate(&self, clients: &[Client], token: &AccessToken) -> bool {
        let mut ok = true;
        for client in clients.iter().filter(|c| c.is_connected()) {
            let auth = client.auth(Some(self.user.clone()), token.secret().to_owned());
            match tokio::time::timeout(self.command_timeout * 2, auth).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    ok = false;
                    tracing::warn!(error = %e.details(), client = %client.id(), "redis re-authentication with a new Entra ID token failed");
                }
                Err(_) => {
                    ok = false;
                    tracing::warn!(client = %client.id(), "redis re-authentication timed out");
                }
            }
        }
        ok
    }
}

/// Keep a token for new connections while more than this is left.
fn reuse_margin(token: &AccessToken) -> Duration {
    (token.lifetime() / 4).min(Duration::from_secs(180))
}

/// When to renew a token of `lifetime`, after it was received, before jitter: at 70%, at
/// least 3 minutes before expiry, never later than half-way for a token that short.
pub(super) fn renew_after(lifetime: Duration) -> Duration {
    let lead = (lifetime * 3 / 10).max(Duration::from_secs(180).min(lifetime / 2));
    lifetime.saturating_sub(lead)
}

/// The renewal loop: one iteration per token, or per retry after a failure.
async fn renew(shared: Arc<Shared>, clients: Vec<Client>) {
    let mut backoff: Option<Duration> = None;
    // A token fetched but not yet sent on every connection.
    let mut unsent: Option<AccessToken> = None;
    loop {
        // The token this wait is for: its successor is wanted (none yet: any usable token).
        let planned = shared.current();
        let wait = match (&backoff, &planned) {
            (Some(b), _) => *b,
            (None, None) => Duration::ZERO,
            (None, Some(t)) => {
                let life = t.lifetime();
                let jitter = life.mul_f64(rand::thread_rng().gen_range(0.0..0.05));
                let at = t.received + renew_after(life).saturating_sub(jitter);
                at.saturating_duration_since(Instant::now())
            }
        };
        tokio::time::sleep(wait).await;
        let token = match unsent.take() {
            // Sent again while it has life left; a token still refused then is replaced.
            Some(t) if t.remaining() > reuse_margin(&t) => Ok(t),
            _ => {
                let older_than = planned.as_ref().map(|t| t.received);
                shared.clone().refresh(older_than).await
            }
        };
        let outcome = match token {
            // The first token: connections got it from the credential provider.
            Ok(_) if planned.is_none() && backoff.is_none() => continue,
            Ok(t) if shared.reauthenticate(&clients, &t).await => Ok(()),
            Ok(t) => {
                unsent = Some(t);
                Err("a connection refused the new token".to_owned())
            }
            Err(e) => Err(crate::error::chain(&*e)),
        };
        crate::metrics::redis_auth_refresh(outcome.is_ok());
        match outcome {
            Ok(()) => {
                if backoff.is_some() {
                    tracing::info!("redis Entra ID token renewed after earlier failures");
                }
                backoff = None;
            }
            Err(error) => {
                let current = shared.current();
                let life = current
                    .as_ref()
                    .map_or(Duration::from_secs(60), AccessToken::lifetime);
                let left = current
                    .as_ref()
                    .map_or(Duration::ZERO, AccessToken::remaining);
                let next = match backoff {
                    None => (life / 20).clamp(Duration::from_millis(100), Duration::from_secs(2)),
                    Some(b) => b * 2,
                };
                // Before expiry, at most half the time left; once expired, plain backoff.
                let cap = match left.is_zero() {
                    true => MAX_BACKOFF,
                    false => (left / 2).clamp(Duration::from_millis(100), MAX_BACKOFF),
                };
                let next = next.min(cap);
                tracing::warn!(%error, retry_in = ?next, token_left = ?left, source = shared.source.kind(), "redis Entra ID token renewal failed");
                backoff = Some(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_70_percent_and_at_least_three_minutes_early() {
        let min = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(renew_after(min(60)), min(42));
        assert_eq!(renew_after(min(90)), min(63));
        // 30% of 10 minutes is exactly 3.
        assert_eq!(renew_after(min(10)), min(7));
        assert_eq!(renew_after(min(8)), min(5));
        // Short (test) tokens: half-way.
        assert_eq!(renew_after(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }
}
