//! Client credentials without a shared secret (ENTRA.md §7).
//!
//! - **Certificate** (`private_key_jwt`): a JWT signed with the certificate's RSA key, header
//!   `alg: PS256` and `x5t#S256` (SHA-256 of the certificate's DER), claims `aud` = the token
//!   endpoint, `iss` = `sub` = client ID, a random `jti`, `nbf`/`iat` now and `exp` in 10
//!   minutes — what Microsoft's libraries send.
//! - **Federated token** (workload identity federation, e.g. AKS): the file's JWT, issued by
//!   the cluster for the pod's service account, sent as is.
//!
//! Both go as `client_assertion` with the jwt-bearer assertion type. Files are read at every
//! token request: Kubernetes and cert-manager rotate them in place.
//!
//! A certificate assertion is signed once per token endpoint and sent again for
//! [`REUSE_SECS`] of its ten minutes (an RSA signature per token request is the expensive part
//! of a refresh or a client-credentials call). Entra allows it: the certificate-credentials
//! page says `exp` "allows the assertion to be used until then", and MSAL Python reuses its
//! assertion for nine of its ten minutes. The cached assertion is bound to the files' bytes,
//! so a rotated certificate or key is signed with at the next request all the same.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::config::auth::Credential;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a certificate assertion is valid.
const LIFETIME_SECS: u64 = 600;
/// How long a signed assertion is sent again: two minutes short of its expiry, so that clock
/// skew and a slow request never present an expired one.
pub const REUSE_SECS: u64 = LIFETIME_SECS - 120;
/// Most token endpoints (one per tenant asked) whose assertions are kept.
const CAPACITY: usize = 1_000;

/// The credential could not be produced. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}: cannot read: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: no PEM certificate in the file")]
    Certificate(String),
    #[error("{0}: not an RSA private key in PEM (PKCS#8 or PKCS#1)")]
    Key(String),
    #[error("{0}: the file is empty")]
    Empty(String),
    #[error("signing the client assertion failed: {0}")]
    Sign(String),
}

/// One signed certificate assertion, and what it was signed from.
struct Signed {
    /// SHA-256 of the certificate and key files and the client ID.
    inputs: [u8; 32],
    jwt: String,
    reuse_until: u64,
}

/// The client assertions for token requests: certificate assertions kept per token endpoint
/// (their audience) for [`REUSE_SECS`]; federated tokens read fresh every time.
#[derive(Default)]
pub struct Assertions {
    signed: Mutex<HashMap<String, Signed>>,
}

impl Assertions {
    /// The `client_assertion` for a token request to `token_endpoint`, if the credential is
    /// one.
    pub fn assertion(
        &self,
        credential: &Credential,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<Option<String>, CredentialError> {
        match credential {
            // A managed identity's assertion is a token fetched over HTTP: `Provider` and
            // `resource_token` ask for it themselves.
            Credential::None | Credential::Secret(_) | Credential::ManagedIdentity(_) => Ok(None),
            Credential::FederatedToken { file } => {
                let name = file.display().to_string();
                let token = std::fs::read_to_string(file)
                    .map_err(|e| CredentialError::Read(name.clone(), e))?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(CredentialError::Empty(name));
                }
                Ok(Some(token.to_owned()))
            }
            Credential::Certificate {
                cert_file,
                key_file,
            } => {
                let cert_name = cert_file.display().to_string();
                let key_name = key_file.display().to_string();
                let cert = std::fs::read(cert_file)
                    .map_err(|e| CredentialError::Read(cert_name.clone(), e))?;
                let key = std::fs::read(key_file)
                    .map_err(|e| CredentialError::Read(key_name.clone(), e))?;
                let inputs: [u8; 32] = Sha256::new()
                    .chain_update(client_id.as_bytes())
                    .chain_update([0])
                    .chain_update(&cert)
                    .chain_update([0])
                    .chain_update(&key)
                    .finalize()
                    .into();
                let now = crate::primitives::now();
                let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = signed.get(token_endpoint) {
                    if s.inputs == inputs && now < s.reuse_until {
                        return Ok(Some(s.jwt.clone()));
                    }
                }
                let der = CertificateDer::pem_slice_iter(&cert)
                    .next()
                    .and_then(Result::ok)
                    .ok_or(CredentialError::Certificate(cert_name))?;
                let key = rsa_key(&key).ok_or(CredentialError::Key(key_name))?;
                let jwt = sign(&der, &key, client_id, token_endpoint, now)?;
                if signed.len() >= CAPACITY {
                    signed.retain(|_, s| now < s.reuse_until);
                }
                if signed.len() < CAPACITY {
                    let reuse_until = now + REUSE_SECS;
                    let entry = Signed {
                        inputs,
                        jwt: jwt.clone(),
                        reuse_until,
                    };
                    signed.insert(token_endpoint.to_owned(), entry);
                }
                Ok(Some(jwt))
            }
        }
    }
}

/// An RSA key from PEM, PKCS#1 or PKCS#8.
fn rsa_key(pem: &[u8]) -> Option<EncodingKey> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rustls_pki_types::PrivateKeyDer;
    match PrivateKeyDer::from_pem_slice(pem).ok()? {
        PrivateKeyDer::Pkcs1(k) => Some(EncodingKey::from_rsa_der(k.secret_pkcs1_der())),
        PrivateKeyDer::Pkcs8(k) => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(k.secret_pkcs8_der()).ok()?;
            let der = key.to_pkcs1_der().ok()?;
            Some(EncodingKey::from_rsa_der(der.as_bytes()))
        }
        _ => None,
    }
}

/// The certificate thumbprint Entra matches the assertion against.
pub fn x5t_s256(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

fn sign(
    der: &[u8],
    key: &EncodingKey,
    client_id: &str,
    token_endpoint: &str,
    now: u64,
) -> Result<String, CredentialError> {
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(x5t_s256(der));
    let claims = serde_json::json!({
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": crate::primitives::random_token(),
        "nbf": now,
        "iat": now,
        "exp": now + LIFETIME_SECS,
    });
    jsonwebtoken::encode(&header, &claims, key).map_err(|e| CredentialError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    fn write_certificate(dir: &std::path::Path) -> Credential {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let kp = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["app.example".to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap()
            .pem();
        std::fs::write(dir.join("client.crt"), cert).unwrap();
        std::fs::write(dir.join("client.key"), pem).unwrap();
        Credential::Certificate {
            cert_file: dir.join("client.crt"),
            key_file: dir.join("client.key"),
        }
    }

    #[test]
    fn a_certificate_assertion_is_reused_per_endpoint_until_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let cred = write_certificate(dir.path());
        let a = Assertions::default();
        let (t1, t2) = (
            "https://login/t1/oauth2/v2.0/token",
            "https://login/t2/oauth2/v2.0/token",
        );
        let first = a.assertion(&cred, "c", t1).unwrap().unwrap();
        assert_eq!(a.assertion(&cred, "c", t1).unwrap().unwrap(), first);
        let other = a.assertion(&cred, "c", t2).unwrap().unwrap();
        assert_ne!(other, first, "the audience is the endpoint");
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&other).unwrap();
        assert_eq!(claims["aud"], t2);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            LIFETIME_SECS
        );
        // cert-manager rotated the files: the next request signs with the new key.
        write_certificate(dir.path());
        assert_ne!(a.assertion(&cred, "c", t1).unwrap().unwrap(), first);
    }

    #[test]
    fn a_federated_token_is_read_at_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let cred = Credential::FederatedToken { file: file.clone() };
        let a = Assertions::default();
        std::fs::write(&file, "first\n").unwrap();
        assert_eq!(
            a.assertion(&cred, "c", "e").unwrap().as_deref(),
            Some("first")
        );
        std::fs::write(&file, "second").unwrap();
        assert_eq!(
            a.assertion(&cred, "c", "e").unwrap().as_deref(),
            Some("second")
        );
        std::fs::write(&file, " \n").unwrap();
        assert!(matches!(
            a.assertion(&cred, "c", "e"),
            Err(CredentialError::Empty(_))
        ));
    }
}
