//! Authenticated encryption for what the proxy hands to others to keep: session values in the
//! store and pending sign-ins in browser cookies.
//!
//! AES-256-GCM under keys derived with HKDF-SHA256 from the configured session secrets, one key
//! per purpose (sessions and sign-in cookies never share a key). The first secret seals; every
//! secret opens, so a secret can be rotated by putting the new one first and dropping the old
//! one after `session.max_lifetime`. Each sealed value is bound to associated data (the store
//! key, or the cookie name), so a value cannot be moved to another key and still open.
//!
//! Format: `0x01 || nonce (12 bytes, random) || ciphertext || tag (16 bytes)`. Random 96-bit
//! nonces are safe for far more than the 2^32 values per key NIST allows.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What a key is for; each purpose derives its own key from each secret.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Session,
    SignIn,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"portcullis session v1",
            Purpose::SignIn => b"portcullis sign-in v1",
        }
    }
}

/// What tells one sealed value from another without opening it: its nonce and tag.
///
/// Every seal draws a fresh random nonce, so two seals share a fingerprint with odds of 2^-96.
/// Bytes with the fingerprint of a value opened earlier under the same associated data are that
/// value, or were changed in place without a new seal, which would not open; keeping what the
/// original opened to is then no more than a writer of the store gets by writing it back.
pub type Fingerprint = [u8; NONCE_LEN + TAG_LEN];

/// The [`Fingerprint`] of a sealed value; `None` for bytes too short or of another format
/// (which [`Sealer::open`] refuses too).
pub fn fingerprint(sealed: &[u8]) -> Option<Fingerprint> {
    let (nonce, ciphertext) = parts(sealed)?;
    let mut out = [0u8; NONCE_LEN + TAG_LEN];
    out[..NONCE_LEN].copy_from_slice(nonce);
    out[NONCE_LEN..].copy_from_slice(&ciphertext[ciphertext.len() - TAG_LEN..]);
    Some(out)
}

/// The nonce and the ciphertext (tag included) of a value of this format, long enough to hold
/// a tag.
fn parts(sealed: &[u8]) -> Option<(&[u8], &[u8])> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
        return None;
    }
    Some(sealed[1..].split_at(NONCE_LEN))
}

/// Seals with the first key, opens with any.
#[derive(Clone)]
pub struct Sealer {
    keys: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Sealer {
    /// One key per secret, in order. `secrets` must not be empty.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S], purpose: Purpose) -> Sealer {
        let keys = secrets
            .iter()
            .map(|secret| {
                let hk = Hkdf::<Sha256>::new(Some(b"portcullis"), secret.as_ref());
                let mut okm = [0u8; 32];
                // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
                let _ = hk.expand(purpose.info(), &mut okm);
                Aes256Gcm::new(&okm.into())
            })
            .collect();
        Sealer { keys }
    }

    /// Encrypts `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return Vec::new();
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = key
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value sealed with any of the keys for the same `aad`; `None` if it was
    /// tampered with, truncated, sealed under another secret or for other associated data.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = parts(sealed)?;
        self.keys.iter().find_map(|key| {
            key.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"an old secret of at least thirty-two bytes";
    const NEW: &[u8] = b"a new secret, also thirty-two bytes or more";

    #[test]
    fn round_trip_with_the_same_aad() {
        let s = Sealer::new(&[NEW], Purpose::Session);
        let sealed = s.seal(b"claims", b"session:abc");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"claims");
        assert_eq!(
            s.open(&sealed, b"session:abc").as_deref(),
            Some(&b"claims"[..])
        );
    }

    #[test]
    fn fingerprints_tell_seals_apart() {
        let s = Sealer::new(&[NEW], Purpose::Session);
        let (a, b) = (s.seal(b"claims", b"k"), s.seal(b"claims", b"k"));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&b),
            "the same plaintext sealed twice"
        );
        let mut tag_changed = a.clone();
        *tag_changed.last_mut().unwrap() ^= 1;
        assert_ne!(fingerprint(&a), fingerprint(&tag_changed));
        let mut nonce_changed = a.clone();
        nonce_changed[1] ^= 1;
        assert_ne!(fingerprint(&a), fingerprint(&nonce_changed));
        assert_eq!(fingerprint(&a[..NONCE_LEN + TAG_LEN]), None, "too short");
        let mut other_format = a.clone();
        other_format[0] = b'{';
        assert_eq!(fingerprint(&other_format), None);
    }

    #[test]
    fn other_aad_does_not_open() {
        let s = Sealer::new(&[NEW], Purpose::Session);
        let sealed = s.seal(b"claims", b"session:abc");
        assert_eq!(s.open(&sealed, b"session:abd"), None);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let s = Sealer::new(&[NEW], Purpose::Session);
        let sealed = s.seal(b"claims", b"k");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(s.open(&t, b"k"), None, "byte {i}");
        }
        assert_eq!(s.open(&sealed[..sealed.len() - 1], b"k"), None);
        assert_eq!(s.open(b"", b"k"), None);
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = Sealer::new(&[OLD], Purpose::Session);
        let rotated = Sealer::new(&[NEW, OLD], Purpose::Session);
        let from_old = old.seal(b"v", b"k");
        assert_eq!(rotated.open(&from_old, b"k").as_deref(), Some(&b"v"[..]));
        let from_rotated = rotated.seal(b"v", b"k");
        assert_eq!(old.open(&from_rotated, b"k"), None);
        let new_only = Sealer::new(&[NEW], Purpose::Session);
        assert_eq!(
            new_only.open(&from_rotated, b"k").as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn purposes_use_different_keys() {
        let session = Sealer::new(&[NEW], Purpose::Session);
        let sign_in = Sealer::new(&[NEW], Purpose::SignIn);
        assert_eq!(sign_in.open(&session.seal(b"v", b"k"), b"k"), None);
    }

    #[test]
    fn nonces_differ_between_seals() {
        let s = Sealer::new(&[NEW], Purpose::Session);
        assert_ne!(s.seal(b"v", b"k"), s.seal(b"v", b"k"));
    }
}
