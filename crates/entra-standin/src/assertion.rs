//! `private_key_jwt` client assertions, checked as Entra checks them (ENTRA.md §7):
//! a certificate credential's JWT must name the certificate (`x5t#S256`), be signed by its key
//! (PS256, or RS256 as older clients send), be addressed to this token endpoint, and have
//! `iss` = `sub` = the client ID; a federated token must come from the credential's issuer for
//! its subject, with audience `api://AzureADTokenExchange`. Both must be within their times.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::aadsts::AadError;
use super::{AssertionKey, TestClient};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

fn key(public_key_pem: &str) -> Option<DecodingKey> {
    let k = rsa::RsaPublicKey::from_public_key_pem(public_key_pem).ok()?;
    let n = URL_SAFE_NO_PAD.encode(k.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(k.e().to_bytes_be());
    DecodingKey::from_rsa_components(&n, &e).ok()
}

fn thumbprint(cert_pem: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()?
        .ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())))
}

fn bad_signature() -> AadError {
    AadError::invalid_client(700027, "Client assertion failed signature validation.")
}

/// Checks `assertion` for `client` at `endpoint`.
pub(crate) fn check(
    client: &TestClient,
    assertion: &str,
    assertion_type: Option<&str>,
    endpoint: &str,
) -> Result<(), AadError> {
    if assertion_type != Some(JWT_BEARER) {
        return Err(AadError::invalid_client(
            50027,
            "Invalid client_assertion_type: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| AadError::invalid_client(50027, "JWT token is invalid or malformed."))?;
    for k in &client.assertion_keys {
        match k {
            AssertionKey::Certificate {
                cert_pem,
                public_key_pem,
            } => {
                if header.x5t_s256.is_none() || header.x5t_s256 != thumbprint(cert_pem) {
                    continue;
                }
                let claims = verify(
                    assertion,
                    public_key_pem,
                    &[Algorithm::PS256, Algorithm::RS256],
                    endpoint,
                )?;
                let id = client.client_id.as_str();
                if claims["iss"] != id || claims["sub"] != id {
                    return Err(AadError::invalid_client(
                        700021,
                        "Client assertion application identifier doesn't match 'client_id' parameter.",
                    ));
                }
                if claims
                    .get("jti")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(AadError::invalid_client(50027, "JWT token is missing jti."));
                }
                return Ok(());
            }
            AssertionKey::Federated {
                issuer,
                subject,
                public_key_pem,
            } => {
                let Ok(claims) = verify(
                    assertion,
                    public_key_pem,
                    &[Algorithm::RS256],
                    EXCHANGE_AUDIENCE,
                ) else {
                    continue;
                };
                if claims["iss"] != issuer.as_str() || claims["sub"] != subject.as_str() {
                    return Err(AadError::invalid_client(
                        70021,
                        "No matching federated identity record found for presented assertion.",
                    ));
                }
                return Ok(());
            }
        }
    }
    Err(bad_signature())
}

fn verify(
    token: &str,
    public_key_pem: &str,
    algorithms: &[Algorithm],
    audience: &str,
) -> Result<Value, AadError> {
    let key = key(public_key_pem).ok_or_else(bad_signature)?;
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.set_audience(&[audience]);
    v.leeway = 300;
    v.validate_nbf = true;
    match jsonwebtoken::decode::<Value>(token, &key, &v) {
        Ok(d) => Ok(d.claims),
        Err(e) => Err(match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
            | jsonwebtoken::errors::ErrorKind::ImmatureSignature => AadError::invalid_client(
                700024,
                "Client assertion is not within its valid time range.",
            ),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => AadError::invalid_client(
                700023,
                "The audience claim in the client assertion is not valid.",
            ),
            _ => bad_signature(),
        }),
    }
}
