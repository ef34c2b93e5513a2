//! The ES256 signing keys of identity assertions: from PEM files, or generated and shared
//! through the session store so that every replica signs with, and publishes, the same set.
//!
//! Rotation of generated keys: a new key is generated once the newest is `rotate_every` old.
//! It is published at once but signs only after [`PUBLISH_AHEAD`], so verifiers that cached
//! the key set find it before they meet it. A key is dropped once its successor has been
//! signing longer than an assertion lives. The very first key signs at once: there is nothing
//! to publish it ahead of.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a new generated key is published before it signs: longer than the key set's
/// `Cache-Control: max-age` (300 s) and the replicas' refresh interval together.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(600);

/// One key: its ID (the RFC 7638 thumbprint), when it was made (Unix seconds), the key.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub created: u64,
    secret: p256::SecretKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn generate(created: u64) -> Key {
        Key::from_secret(p256::SecretKey::random(&mut rand::rngs::OsRng), created)
    }

    fn from_secret(secret: p256::SecretKey, created: u64) -> Key {
        let (x, y) = coordinates(&secret);
        // RFC 7638: SHA-256 of the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Key {
            kid: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
            created,
            secret,
        }
    }

    /// A PKCS#8 PEM (`BEGIN PRIVATE KEY`) or SEC1 PEM (`BEGIN EC PRIVATE KEY`) P-256 key.
    pub fn from_pem(pem: &str) -> Option<Key> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem)
            .ok()
            .or_else(|| p256::SecretKey::from_sec1_pem(pem).ok())?;
        Some(Key::from_secret(secret, 0))
    }

    /// The public half as a JWK, for the key set.
    pub fn jwk(&self) -> serde_json::Value {
        let (x, y) = coordinates(&self.secret);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": self.kid, "use": "sig", "alg": "ES256",
        })
    }

    /// The signing key for `jsonwebtoken`.
    pub fn encoding_key(&self) -> Option<jsonwebtoken::EncodingKey> {
        let der = self.secret.to_pkcs8_der().ok()?;
        Some(jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()))
    }

    #[cfg(test)]
    pub fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        *p256::ecdsa::SigningKey::from(&self.secret).verifying_key()
    }
}

fn coordinates(secret: &p256::SecretKey) -> (String, String) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = secret.public_key().to_encoded_point(false);
    let enc =
        |c: Option<&p256::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    (enc(point.x()), enc(point.y()))
}

/// The keys in use, newest last.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// The key that signs now: the newest one published for [`PUBLISH_AHEAD`] (the first
    /// key of a set signs at once).
    pub fn signing(&self, now: u64) -> Option<&Key> {
        let ready = |k: &&Key| k.created + PUBLISH_AHEAD.as_secs() <= now;
        self.keys
            .iter()
            .rev()
            .find(ready)
            .or_else(|| self.keys.first())
    }

    /// Whether the newest key is due for a successor.
    pub fn due(&self, now: u64, rotate_every: Duration) -> bool {
        self.keys
            .last()
            .is_none_or(|k| k.created + rotate_every.as_secs() <= now)
    }

    /// Adds a new key: the first one backdated so that it signs at once, later ones published
    /// ahead of use. Drops keys no assertion signed by them can still be alive for.
    pub fn rotate(&mut self, now: u64, lifetime: Duration) {
        let created = if self.keys.is_empty() {
            now.saturating_sub(PUBLISH_AHEAD.as_secs())
        } else {
            now
        };
        self.keys.push(Key::generate(created));
        self.prune(now, lifetime);
    }

    /// Keeps the signing key, the keys after it, and the one before it while assertions it
    /// signed may live (its successor has signed for less than `lifetime` plus a minute).
    fn prune(&mut self, now: u64, lifetime: Duration) {
        let Some(signing) = self.signing(now).map(|k| k.kid.clone()) else {
            return;
        };
        let Some(at) = self.keys.iter().position(|k| k.kid == signing) else {
            return;
        };
        let since = self.keys[at].created + PUBLISH_AHEAD.as_secs();
        let keep_previous = now < since + lifetime.as_secs() + 60;
        let from = if keep_previous {
            at.saturating_sub(1)
        } else {
            at
        };
        self.keys.drain(..from);
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(Key::jwk).collect::<Vec<_>>() })
    }

    /// The stored form (private keys: only ever written sealed).
    pub fn to_stored(&self) -> Vec<u8> {
        let stored: Vec<StoredKey> = self
            .keys
            .iter()
            .map(|k| StoredKey {
                created: k.created,
                d: URL_SAFE_NO_PAD.encode(k.secret.to_bytes()),
            })
            .collect();
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    pub fn from_stored(bytes: &[u8]) -> Option<KeySet> {
        let stored: Vec<StoredKey> = serde_json::from_slice(bytes).ok()?;
        let mut keys = Vec::with_capacity(stored.len());
        for s in stored {
            let d = URL_SAFE_NO_PAD.decode(&s.d).ok()?;
            let secret = p256::SecretKey::from_slice(&d).ok()?;
            keys.push(Key::from_secret(secret, s.created));
        }
        keys.sort_by_key(|k| k.created);
        Some(KeySet { keys })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    created: u64,
    d: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Duration = Duration::from_secs(120);
    const WEEK: Duration = Duration::from_secs(7 * 86400);

    #[test]
    fn the_first_key_signs_at_once_and_later_keys_only_after_being_published() {
        let t0 = 1_800_000_000;
        let mut set = KeySet::default();
        assert!(set.due(t0, WEEK));
        set.rotate(t0, LIFE);
        let first = set.signing(t0).unwrap().kid.clone();
        assert!(!set.due(t0 + 3600, WEEK));

        let t1 = t0 + WEEK.as_secs();
        assert!(set.due(t1, WEEK));
        set.rotate(t1, LIFE);
        assert_eq!(set.keys.len(), 2);
        let second = set.keys[1].kid.clone();
        assert_ne!(first, second);
        // Published but not yet signing.
        assert_eq!(set.signing(t1).unwrap().kid, first);
        assert_eq!(set.signing(t1 + 599).unwrap().kid, first);
        assert_eq!(set.signing(t1 + 600).unwrap().kid, second);
        let kids: Vec<_> = set.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [first.clone(), second.clone()]);

        // The old key stays while its assertions may live, then goes.
        set.prune(t1 + 600 + 100, LIFE);
        assert_eq!(set.keys.len(), 2);
        set.prune(t1 + 600 + 181, LIFE);
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid, second);
    }

    #[test]
    fn the_stored_form_reads_back_the_same_keys() {
        let mut set = KeySet::default();
        set.rotate(1_800_000_000, LIFE);
        set.rotate(1_800_000_100, LIFE);
        let back = KeySet::from_stored(&set.to_stored()).unwrap();
        assert_eq!(back.jwks(), set.jwks());
        assert!(KeySet::from_stored(b"[{\"created\":1,\"d\":\"AA\"}]").is_none());
        assert!(KeySet::from_stored(b"garbage").is_none());
    }

    #[test]
    fn keys_load_from_pkcs8_and_sec1_pem_with_a_thumbprint_kid() {
        let k = Key::generate(0);
        let pem = k.secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let back = Key::from_pem(&pem).unwrap();
        assert_eq!(back.kid, k.kid);
        let sec1 = k.secret.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
        assert_eq!(Key::from_pem(&sec1).unwrap().kid, k.kid);
        assert!(
            Key::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_none()
        );
        let jwk = k.jwk();
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert!(jwk.get("d").is_none(), "never the private part");
    }
}
