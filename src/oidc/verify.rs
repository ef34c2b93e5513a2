//! Token validation: ID tokens at sign-in, access tokens on `auth = "bearer"` routes.
//!
//! The rules are Microsoft's (ENTRA.md §2): RS256 only, the key chosen by `kid` from the
//! provider's JWKS, `aud` one of ours, `exp`/`nbf`/`iat` with `oidc.clock_skew` (Microsoft's
//! libraries use 5 minutes), `nonce` equal to the one sent, and the issuer checked against the
//! token's own `tid` — for a multi-tenant authority by substituting `tid` into the `{tenantid}`
//! template — with `tid` in `allowed_tenants`. There is no switch that skips the issuer check.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::metadata::Metadata;
use crate::config::OidcConfig;

pub use crate::error::VerifyError;

/// Which token, and what it must be bound to.
pub enum Expect<'a> {
    /// An ID token from sign-in (`nonce` required) or from a refresh (`None`: no nonce).
    IdToken { nonce: Option<&'a str> },
    /// An access token whose audience is this application.
    AccessToken,
}

/// Reads the header: the signing key's ID, if the algorithm is acceptable.
pub fn key_id(token: &str) -> Result<String, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(VerifyError::Algorithm);
    }
    header.kid.ok_or(VerifyError::UnknownKey)
}

/// Checks signature and claims; returns the claims.
pub fn verify(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    expect: &Expect<'_>,
    config: &OidcConfig,
    metadata: &Metadata,
) -> Result<Map<String, Value>, VerifyError> {
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = config.clock_skew.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims = ["exp", "aud", "iss"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let audiences: Vec<&str> = match expect {
        Expect::IdToken { .. } => vec![config.client_id.as_str()],
        Expect::AccessToken => config.audiences.iter().map(String::as_str).collect(),
    };
    v.aud = Some(
        audiences
            .iter()
            .map(|a| a.to_string())
            .collect::<HashSet<_>>(),
    );
    // The issuer depends on the token's own `tid`: checked below, never skipped.
    v.iss = None;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => VerifyError::Signature,
            K::ExpiredSignature => VerifyError::Expired,
            K::ImmatureSignature => VerifyError::NotYetValid,
            K::InvalidAudience => VerifyError::Audience,
            K::InvalidAlgorithm => VerifyError::Algorithm,
            _ => VerifyError::Malformed,
        }
    })?;
    let claims = data.claims;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match claims.get("iat").and_then(Value::as_u64) {
        Some(iat) if iat <= now + config.clock_skew.as_secs() => {}
        Some(_) => return Err(VerifyError::IssuedInFuture),
        None => return Err(VerifyError::Malformed),
    }

    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    match metadata.issuer_for(&tid) {
        Some(expected) if expected == iss => {}
        _ => return Err(VerifyError::Issuer),
    }
    // A single-tenant issuer names its one tenant: a `tid` that disagrees is an inconsistent
    // token. `allowed_tenants` then narrows (and is required for multi-tenant authorities).
    if metadata.tenant().is_some_and(|t| t != tid) {
        return Err(VerifyError::Issuer);
    }
    if !config.allowed_tenants.is_empty() && !config.allowed_tenants.contains(&tid) {
        return Err(VerifyError::Tenant);
    }

    if let Expect::IdToken { nonce: Some(want) } = expect {
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !constant_time_eq(got.as_bytes(), want.as_bytes()) {
            return Err(VerifyError::Nonce);
        }
    }
    Ok(claims)
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
