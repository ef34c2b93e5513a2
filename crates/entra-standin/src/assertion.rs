//! `private_key_jwt` client assertions, checked as Entra checks them (ENTRA.md §7,
//! learn.microsoft.com/entra/identity-platform/certificate-credentials): a certificate
//! credential's JWT must name the certificate, be signed by its key, be addressed to this token
//! endpoint, have `iss` = `sub` = the client ID and a `jti`; a federated token must come from
//! the credential's issuer for its subject, with audience `api://AzureADTokenExchange`. Both
//! must be within their times.
//!
//! An assertion may be sent again until it expires, as with Entra: the page says its `exp`
//! "allows the assertion to be used until then", and Microsoft's own MSAL Python reuses one
//! for 9 of its 10 minutes. The stand-in records each `jti` only so tests can count how many
//! assertions a client signed.
//!
//! Where Entra is lenient the stand-in is stricter, so that a proxy bug shows in the tests:
//! - the header names the certificate the way its algorithm calls for: PS256 with
//!   `x5t#S256` (the documented form), RS256 with the SHA-1 `x5t` (the older form that
//!   clients such as MSAL still send). An RS256 assertion carrying only `x5t#S256` mixes the
//!   two and is refused.
//! - a certificate assertion lives at most [`MAX_LIFETIME`] plus [`LEEWAY`]: the page says
//!   "keep it short - 5-10 minutes after `nbf` at most" although Entra does not enforce it.
//!
//! Federated tokens (e.g. a Kubernetes projected service-account token) are exempt from the
//! last rule: the same file is sent for its whole lifetime, an hour or more, as Entra accepts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use super::aadsts::AadError;
use super::state::{lock, State};
use super::{AssertionKey, TestClient};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
use super::managed_identity::EXCHANGE_AUDIENCE;

/// The longest a certificate assertion may live (`exp` - `nbf`, or `exp` - `iat` without
/// `nbf`): the 10 minutes the certificate-credentials page asks for.
pub(crate) const MAX_LIFETIME: u64 = 600;
/// Clock skew allowed on every time check, and on top of [`MAX_LIFETIME`]: 5 minutes, the
/// default of Microsoft's own token validation libraries (ENTRA.md §2), so a client whose
/// clock is a little off is not refused for it.
pub(crate) const LEEWAY: u64 = 300;

fn key(public_key_pem: &str) -> Option<DecodingKey> {
    let k = rsa::RsaPublicKey::from_public_key_pem(public_key_pem).ok()?;
    let n = URL_SAFE_NO_PAD.encode(k.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(k.e().to_bytes_be());
    DecodingKey::from_rsa_components(&n, &e).ok()
}

fn der(cert_pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()?
        .ok()
}

/// Whether the header names the certificate `cert_pem` in the form its algorithm calls for.
fn names_certificate(header: &Header, cert_pem: &str) -> bool {
    let Some(der) = der(cert_pem) else {
        return false;
    };
    match header.alg {
        Algorithm::PS256 => {
            use sha2::Digest;
            let s256 = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_ref()));
            header.x5t_s256.as_deref() == Some(s256.as_str())
        }
        Algorithm::RS256 => {
            use sha1::Digest;
            let sha1 = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der.as_ref()));
            header.x5t.as_deref() == Some(sha1.as_str())
        }
        _ => false,
    }
}

fn bad_signature() -> AadError {
    AadError::invalid_client(
        700027,
        "Client assertion contains an invalid signature. [Reason - The key was not found.]",
    )
}

fn out_of_time() -> AadError {
    AadError::invalid_client(
        700024,
        "Client assertion is not within its valid time range.",
    )
}

/// Checks `assertion` for `client` at `endpoint`, and records its `jti`.
pub(crate) fn check(
    state: &State,
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
                if !names_certificate(&header, cert_pem) {
                    continue;
                }
                let claims = verify(assertion, public_key_pem, &[header.alg], endpoint)?;
                return certificate_claims(state, client, &claims);
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

/// The checks on a certificate assertion's claims once its signature holds.
fn certificate_claims(state: &State, client: &TestClient, claims: &Value) -> Result<(), AadError> {
    let id = client.client_id.as_str();
    if claims["iss"] != id || claims["sub"] != id {
        return Err(AadError::invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
    else {
        return Err(AadError::invalid_client(50027, "JWT token is missing jti."));
    };
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let start = claims["nbf"].as_u64().or_else(|| claims["iat"].as_u64());
    match start {
        Some(start) if exp.saturating_sub(start) <= MAX_LIFETIME + LEEWAY => {}
        // No start time at all: nothing bounds the lifetime, so it is too long.
        _ => return Err(out_of_time()),
    }
    lock(&state.grants)
        .assertion_ids
        .insert((id.to_owned(), jti.to_owned()), exp.saturating_add(LEEWAY));
    Ok(())
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
    v.leeway = LEEWAY;
    v.validate_nbf = true;
    match jsonwebtoken::decode::<Value>(token, &key, &v) {
        Ok(d) => Ok(d.claims),
        Err(e) => Err(match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
            | jsonwebtoken::errors::ErrorKind::ImmatureSignature => out_of_time(),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => AadError::invalid_client(
                700023,
                "The audience claim in the client assertion is not valid.",
            ),
            _ => bad_signature(),
        }),
    }
}
