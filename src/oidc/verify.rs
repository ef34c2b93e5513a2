//! Token validation: ID tokens at sign-in, access tokens on `auth = "bearer"` routes.
//!
//! The rules are Microsoft's (ENTRA.md §2): RS256 only, the key chosen by `kid` from the
//! provider's JWKS, `aud` one of ours, `exp`/`nbf`/`iat` with `oidc.clock_skew` (Microsoft's
//! libraries use 5 minutes), `nonce` equal to the one sent, and the issuer checked against the
//! token's own `tid` — for a multi-tenant authority by substituting `tid` into the `{tenantid}`
//! template — with `tid` in `allowed_tenants`. There is no switch that skips the issuer check.
//!
//! Access tokens come in two versions, chosen by the API's registration
//! (`accessTokenAcceptedVersion`): a token saying `ver: "1.0"` must carry the v1 issuer
//! (`https://sts.windows.net/{tid}/` in the public cloud, read from the v1 metadata), any other
//! the v2 issuer, under the same tenant rules. An access token must also be one: it names the
//! client that asked for it (`azp` in v2, `appid` in v1), carries what it grants (`scp` when
//! delegated, `roles` when app-only; Microsoft.Identity.Web refuses a token with neither) and
//! has no `nonce`. An ID token for this app has the right audience and issuer, but names no
//! client — and carries `roles` when the user holds app roles, so `roles` alone proves
//! nothing.

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
    let v1 = matches!(expect, Expect::AccessToken)
        && claims.get("ver").and_then(Value::as_str) == Some("1.0");
    let expected = if v1 {
        metadata.v1_issuer_for(&tid)
    } else {
        metadata.issuer_for(&tid)
    };
    match expected {
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

    match expect {
        Expect::IdToken { nonce: Some(want) } => {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if !constant_time_eq(got.as_bytes(), want.as_bytes()) {
                return Err(VerifyError::Nonce);
            }
        }
        Expect::IdToken { nonce: None } => {}
        Expect::AccessToken if !is_access_token(&claims, v1) => {
            return Err(VerifyError::NotAnAccessToken)
        }
        Expect::AccessToken => {}
    }
    Ok(claims)
}

/// Names its client, grants `scp` (delegated) or `roles` (app-only), and has no `nonce`.
fn is_access_token(claims: &Map<String, Value>, v1: bool) -> bool {
    let client = claims
        .get(if v1 { "appid" } else { "azp" })
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    let scp = claims
        .get("scp")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    let roles = claims
        .get("roles")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(Value::is_string));
    !claims.contains_key("nonce") && client && (scp || roles)
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn an_access_token_names_its_client_grants_something_and_has_no_nonce() {
        let yes = [
            (serde_json::json!({"azp": "c", "scp": "Files.Read"}), false),
            (
                serde_json::json!({"azp": "c", "roles": ["Tasks.Read.All"]}),
                false,
            ),
            (
                serde_json::json!({"azp": "c", "scp": "a b", "roles": ["R"]}),
                false,
            ),
            (serde_json::json!({"appid": "c", "scp": "Files.Read"}), true),
        ];
        for (c, v1) in yes {
            assert!(is_access_token(&claims(c.clone()), v1), "{c}");
        }
        let no = [
            (serde_json::json!({"azp": "c"}), false),
            (serde_json::json!({"azp": "c", "scp": ""}), false),
            (serde_json::json!({"azp": "c", "scp": "  "}), false),
            (serde_json::json!({"azp": "c", "roles": []}), false),
            (serde_json::json!({"azp": "c", "roles": "R"}), false),
            (
                serde_json::json!({"azp": "c", "scp": "Files.Read", "nonce": "n"}),
                false,
            ),
            // An ID token of a user holding app roles.
            (serde_json::json!({"roles": ["R"], "oid": "o"}), false),
            (serde_json::json!({"azp": "", "roles": ["R"]}), false),
            // The caller claim of the other version.
            (
                serde_json::json!({"appid": "c", "scp": "Files.Read"}),
                false,
            ),
            (serde_json::json!({"azp": "c", "scp": "Files.Read"}), true),
        ];
        for (c, v1) in no {
            assert!(!is_access_token(&claims(c.clone()), v1), "{c}");
        }
    }
}
