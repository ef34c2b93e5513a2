//! The provider's signing keys.
//!
//! Entra rotates keys without notice and may roll over in an emergency (ENTRA.md §2): keys are
//! refreshed in the background (`oidc.jwks_refresh`), a token with an unknown `kid` triggers one
//! immediate refetch — at most once a minute, however many such tokens arrive, so forged `kid`s
//! cannot turn the proxy into a load generator — and a failed fetch keeps the last good set.
//! Only RSA signing keys are kept; the verifier accepts nothing but RS256 anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// The least time between two fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
}

/// A JWKS cache.
pub struct Jwks {
    set: ArcSwap<KeySet>,
    loaded: std::sync::atomic::AtomicBool,
    /// The last fetch caused by an unknown `kid` (background refreshes do not count).
    last_refetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("key set is not valid JSON Web Keys: {0}")]
    Shape(serde_json::Error),
    #[error("key set holds no RSA signing key")]
    Empty,
}

/// Whether `Jwks::key` may fetch the set again for an unknown `kid`.
pub enum Lookup {
    Found(Arc<DecodingKey>),
    /// Not in the set; a refetch is allowed now.
    Refetch,
    /// Not in the set, and the set was fetched too recently to try again.
    Unknown,
}

impl Default for Jwks {
    fn default() -> Self {
        Jwks {
            set: ArcSwap::from_pointee(KeySet::default()),
            loaded: false.into(),
            last_refetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }
}

impl Jwks {
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn lookup(&self, kid: &str) -> Lookup {
        if let Some(k) = self.set.load().keys.get(kid) {
            return Lookup::Found(k.clone());
        }
        let last = *self.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(t) if t.elapsed() < UNKNOWN_KID_REFETCH => Lookup::Unknown,
            _ => Lookup::Refetch,
        }
    }

    /// Serialises fetches: the caller holds the guard while fetching, and re-checks with
    /// [`Jwks::lookup`] after taking it (another task may have just fetched).
    pub async fn fetch_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.fetching.lock().await
    }

    /// Records a refetch for an unknown `kid` (successful or not), for the rate limit.
    pub fn mark_refetched(&self) {
        *self.last_refetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Replaces the set with `body`'s keys. On error the old set stays.
    pub fn replace(&self, body: &[u8]) -> Result<usize, JwksError> {
        let raw: RawSet = serde_json::from_slice(body).map_err(JwksError::Shape)?;
        let mut keys = HashMap::new();
        for k in raw.keys {
            let usable = k.kty == "RSA"
                && k.use_.as_deref().is_none_or(|u| u == "sig")
                && k.alg.as_deref().is_none_or(|a| a == "RS256");
            let (Some(kid), Some(n), Some(e), true) = (k.kid, k.n, k.e, usable) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
                keys.insert(kid, Arc::new(key));
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        let n = keys.len();
        self.set.store(Arc::new(KeySet { keys }));
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real 2048-bit modulus is not needed to test selection; jsonwebtoken accepts any
    // base64url components here and fails only at verification.
    fn set(keys: serde_json::Value) -> Vec<u8> {
        serde_json::json!({ "keys": keys }).to_string().into_bytes()
    }

    #[test]
    fn only_rsa_signing_keys_are_kept() {
        let j = Jwks::default();
        let n = j
            .replace(&set(serde_json::json!([
                {"kty": "RSA", "kid": "a", "use": "sig", "n": "AQAB", "e": "AQAB"},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
                {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "AQAB", "e": "AQAB"},
                {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            ])))
            .unwrap();
        assert_eq!(n, 1);
        assert!(matches!(j.lookup("a"), Lookup::Found(_)));
        assert!(j.is_loaded());
    }

    #[test]
    fn a_bad_set_keeps_the_old_one() {
        let j = Jwks::default();
        j.replace(&set(
            serde_json::json!([{"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"}]),
        ))
        .unwrap();
        assert!(j.replace(b"not json").is_err());
        assert!(j.replace(&set(serde_json::json!([]))).is_err());
        assert!(matches!(j.lookup("a"), Lookup::Found(_)));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let j = Jwks::default();
        assert!(matches!(j.lookup("x"), Lookup::Refetch));
        j.mark_refetched();
        assert!(matches!(j.lookup("x"), Lookup::Unknown));
    }
}
