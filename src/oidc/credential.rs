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

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::config::auth::Credential;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a certificate assertion is valid.
const LIFETIME_SECS: u64 = 600;

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

/// The `client_assertion` for a token request to `token_endpoint`, if the credential is one.
pub fn assertion(
    credential: &Credential,
    client_id: &str,
    token_endpoint: &str,
) -> Result<Option<String>, CredentialError> {
    match credential {
        Credential::None | Credential::Secret(_) => Ok(None),
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
            let der = CertificateDer::pem_slice_iter(&cert)
                .next()
                .and_then(Result::ok)
                .ok_or(CredentialError::Certificate(cert_name))?;
            let key =
                std::fs::read(key_file).map_err(|e| CredentialError::Read(key_name.clone(), e))?;
            let key = rsa_key(&key).ok_or(CredentialError::Key(key_name))?;
            Ok(Some(sign(&der, &key, client_id, token_endpoint)?))
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
) -> Result<String, CredentialError> {
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(x5t_s256(der));
    let now = crate::primitives::now();
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
