//! Signing keys, the JWKS document, and RS256 signing.
//!
//! Entra rotates signing keys without notice and publishes the old and new keys side by side
//! for a while; an emergency rollover drops the old key at once. The set here models both:
//! `rotate` adds a key and signs with it from then on, `retire_old` drops all but the current.
//! Key IDs have Entra's shape (27 characters of base64url, the length of a SHA-1 thumbprint),
//! and `x5t` equals `kid` as in Entra's v2 keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key: {0}")]
    Generate(#[from] rsa::Error),
    #[error("cannot encode the RSA private key: {0}")]
    Private(#[from] rsa::pkcs1::Error),
    #[error("cannot encode the RSA public key: {0}")]
    Public(#[from] rsa::pkcs8::spki::Error),
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// One RSA key pair with its published form.
pub(crate) struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    /// Modulus and exponent, base64url without padding.
    n: String,
    e: String,
    public_pem: String,
}

impl SigningKey {
    /// A fresh 2048-bit key (Entra's size).
    pub fn generate() -> Result<SigningKey, KeyError> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        let der = private.to_pkcs1_der()?;
        let public = private.to_public_key();
        let spki = public.to_public_key_der()?;
        let digest = Sha256::digest(spki.as_bytes());
        Ok(SigningKey {
            kid: URL_SAFE_NO_PAD.encode(&digest[..20]),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            public_pem: public.to_public_key_pem(LineEnding::LF)?,
        })
    }

    fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "issuer": issuer,
        })
    }
}

/// The published keys; `current` signs, `older` only verify.
pub(crate) struct KeySet {
    current: SigningKey,
    older: Vec<SigningKey>,
}

impl KeySet {
    pub fn new(first: SigningKey) -> KeySet {
        KeySet {
            current: first,
            older: Vec::new(),
        }
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn public_pem(&self) -> &str {
        &self.current.public_pem
    }

    pub fn rotate(&mut self, next: SigningKey) {
        let previous = std::mem::replace(&mut self.current, next);
        self.older.push(previous);
    }

    pub fn retire_old(&mut self) {
        self.older.clear();
    }

    /// Newest first, as Entra lists the key it signs with before the ones it is phasing out.
    fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.older.iter().rev())
    }

    /// The JWKS document; `issuer` is Entra's per-key `issuer` member.
    pub fn jwks(&self, issuer: &str) -> Value {
        json!({ "keys": self.all().map(|k| k.jwk(issuer)).collect::<Vec<_>>() })
    }

    /// The claims of `token` if one of the published keys signed it (expiry not checked: an
    /// expired ID token is still a valid `id_token_hint`).
    pub fn verify(&self, token: &str) -> Option<Value> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let key = self.all().find(|k| k.kid == kid)?;
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(&key.n, &key.e).ok()?;
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// Signs `claims` with RS256. With `kid` naming a published key, that key signs; with any
    /// other `kid`, the current key signs but the header names the given `kid` (a token from a
    /// key the JWKS does not list). `header_nonce` reproduces the `nonce` header of Graph
    /// tokens, which makes them deliberately unverifiable by anyone but Graph.
    pub fn sign(
        &self,
        claims: &Value,
        kid: Option<&str>,
        header_nonce: Option<String>,
    ) -> Result<String, KeyError> {
        let key = match kid {
            Some(kid) => self.all().find(|k| k.kid == kid).unwrap_or(&self.current),
            None => &self.current,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.unwrap_or(&key.kid).to_owned());
        if header_nonce.is_some() {
            header.x5t = header.kid.clone();
            header.nonce = header_nonce;
        }
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn decoding(jwk: &Value) -> DecodingKey {
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap()
    }

    #[test]
    fn signed_tokens_verify_with_the_published_key() {
        let set = KeySet::new(SigningKey::generate().unwrap());
        let token = set.sign(&json!({"a": 1}), None, None).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(set.current().kid.as_str()));
        let jwks = set.jwks("iss");
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
        assert_eq!(jwks["keys"][0]["kid"].as_str().unwrap().len(), 27);
        let mut v = Validation::new(Algorithm::RS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        jsonwebtoken::decode::<Value>(&token, &decoding(&jwks["keys"][0]), &v).unwrap();
    }

    #[test]
    fn rotation_keeps_old_keys_until_retired() {
        let mut set = KeySet::new(SigningKey::generate().unwrap());
        let old = set.current().kid.clone();
        set.rotate(SigningKey::generate().unwrap());
        let jwks = set.jwks("iss");
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][1]["kid"], old.as_str());
        set.retire_old();
        assert_eq!(set.jwks("iss")["keys"].as_array().unwrap().len(), 1);
    }
}
