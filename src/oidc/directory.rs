//! The directory as the app itself reads it: the groups of a bearer token's user when the
//! token announces an overage.
//!
//! A bearer token is a token for this app, not for Graph, so it cannot be used to ask Graph
//! anything (nor exchanged without the on-behalf-of flow and the user's consent). The app asks
//! as itself instead: a client-credentials token for Graph (`{graph_url}/.default`, which
//! carries the application permission `GroupMember.Read.All` an admin granted) from the
//! *user's* tenant — a multi-tenant app needs one per tenant — and
//! `/users/{oid}/transitiveMemberOf` (`graph.rs`).
//!
//! - App tokens are kept per tenant until five minutes before they expire (at most half their
//!   life), so a busy API asks the token endpoint about once an hour.
//! - Groups are kept per (`tid`, `oid`) for [`GROUPS_TTL`], at most [`GROUPS_CAPACITY`] users:
//!   a membership change reaches bearer requests within five minutes. Concurrent lookups of
//!   one user share one Graph call.
//! - A failed lookup is not retried for that user for [`FAILURE_BACKOFF`]: while Graph or the
//!   token endpoint is down, each user costs one attempt per back-off, not one per request.
//!
//! Whatever fails, the caller fails closed: the groups stay unknown and group policies deny.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::graph::GraphError;
use super::token::AppToken;
use super::{NotReady, TokenError};

/// How long one user's groups are reused.
pub const GROUPS_TTL: Duration = Duration::from_secs(300);
/// Most users whose groups are kept.
pub const GROUPS_CAPACITY: u64 = 10_000;
/// How long a user whose lookup failed is not asked about again.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// Most tenants whose app tokens are kept.
const TOKEN_CAPACITY: u64 = 1_000;
/// An app token is renewed this long before it expires (or at half its life, if sooner).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Why the groups could not be read. Logged; never shown to the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    #[error("the app has no credential (a public client cannot ask as itself)")]
    NoCredential,
    #[error("the identity provider's metadata is not loaded yet")]
    NotReady,
    #[error("the token's tenant ID {0:?} names no token endpoint")]
    Tenant(String),
    #[error("the app's Graph token was refused")]
    Token(#[source] TokenError),
    #[error("Microsoft Graph could not list the user's groups")]
    Graph(#[source] Arc<GraphError>),
    #[error("a lookup for this user failed less than {FAILURE_BACKOFF:?} ago")]
    BackingOff,
}

impl From<NotReady> for DirectoryError {
    fn from(_: NotReady) -> Self {
        DirectoryError::NotReady
    }
}

/// An app token and when to stop using it.
struct Cached {
    token: String,
    renew_at: Instant,
}

/// The caches; the calls themselves are made by the provider (`Provider::app_groups`).
pub struct Directory {
    tokens: moka::future::Cache<String, Arc<Cached>>,
    groups: moka::future::Cache<(String, String), Arc<[String]>>,
    failed: moka::future::Cache<(String, String), ()>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            tokens: moka::future::Cache::builder()
                .max_capacity(TOKEN_CAPACITY)
                .build(),
            groups: moka::future::Cache::builder()
                .max_capacity(GROUPS_CAPACITY)
                .time_to_live(GROUPS_TTL)
                .build(),
            failed: moka::future::Cache::builder()
                .max_capacity(GROUPS_CAPACITY)
                .time_to_live(FAILURE_BACKOFF)
                .build(),
        }
    }
}

impl Directory {
    /// The groups of (`tid`, `oid`): cached, or read by `lookup` (one call per user at a
    /// time); a failure holds that user back for [`FAILURE_BACKOFF`].
    pub async fn groups<F, Fut>(
        &self,
        tid: &str,
        oid: &str,
        lookup: F,
    ) -> Result<Arc<[String]>, DirectoryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, DirectoryError>>,
    {
        let key = (tid.to_ascii_lowercase(), oid.to_ascii_lowercase());
        if self.failed.contains_key(&key) {
            return Err(DirectoryError::BackingOff);
        }
        let found = self
            .groups
            .try_get_with(key.clone(), async move { lookup().await.map(Arc::from) })
            .await;
        match found {
            Ok(groups) => Ok(groups),
            Err(e) => {
                self.failed.insert(key, ()).await;
                Err((*e).clone())
            }
        }
    }

    /// The app's Graph token for tenant `tid`: cached while fresh, else from `fetch` (one
    /// fetch per tenant at a time).
    pub async fn app_token<F, Fut>(&self, tid: &str, fetch: F) -> Result<String, DirectoryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<AppToken, DirectoryError>>,
    {
        let key = tid.to_ascii_lowercase();
        if let Some(c) = self.tokens.get(&key).await {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
            self.tokens.invalidate(&key).await;
        }
        let cached = self
            .tokens
            .try_get_with(key, async move {
                let t = fetch().await?;
                let life = t.expires_in.unwrap_or(Duration::ZERO);
                Ok::<_, DirectoryError>(Arc::new(Cached {
                    token: t.access_token,
                    renew_at: Instant::now() + life - TOKEN_MARGIN.min(life / 2),
                }))
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok(cached.token.clone())
    }

    /// Drops tenant `tid`'s app token (Graph refused it).
    pub async fn forget_token(&self, tid: &str) {
        self.tokens.invalidate(&tid.to_ascii_lowercase()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn groups_are_read_once_per_user_and_failures_hold_back() {
        let d = Directory::default();
        let calls = AtomicUsize::new(0);
        let read = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(vec!["g1".to_owned()])
        };
        assert_eq!(&*d.groups("T", "O", read).await.unwrap(), ["g1"]);
        assert_eq!(&*d.groups("t", "o", read).await.unwrap(), ["g1"]);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "cached, IDs compared without case"
        );

        let fail = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(DirectoryError::NoCredential)
        };
        assert!(matches!(
            d.groups("t", "other", fail).await,
            Err(DirectoryError::NoCredential)
        ));
        assert!(matches!(
            d.groups("t", "other", read).await,
            Err(DirectoryError::BackingOff)
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no call while backing off");
    }

    #[tokio::test]
    async fn app_tokens_are_kept_until_shortly_before_they_expire() {
        let d = Directory::default();
        let calls = AtomicUsize::new(0);
        let fetch = |life: u64| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(AppToken {
                    access_token: format!("token-{n}"),
                    expires_in: Some(Duration::from_secs(life)),
                })
            }
        };
        assert_eq!(d.app_token("t", || fetch(3600)).await.unwrap(), "token-0");
        assert_eq!(d.app_token("t", || fetch(3600)).await.unwrap(), "token-0");
        assert_eq!(d.app_token("u", || fetch(3600)).await.unwrap(), "token-1");
        // A token with no life left is renewed at once.
        assert_eq!(d.app_token("v", || fetch(0)).await.unwrap(), "token-2");
        assert_eq!(d.app_token("v", || fetch(0)).await.unwrap(), "token-3");
    }
}
