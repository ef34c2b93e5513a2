//! Access tokens the proxy asks for as itself, for a resource other than the sign-in app:
//! today `https://redis.azure.com` (Redis with Entra ID, ENTRA.md §8) and
//! `api://AzureADTokenExchange` (a managed identity's token sent as the app's client
//! assertion, ENTRA.md §7).
//!
//! One [`TokenSource`] per credential kind: a managed identity (`managed_identity.rs`), or
//! the client-credentials grant at an Entra token endpoint, authenticated by a secret, a
//! certificate, a federated token file (workload identity) or a managed identity. Every
//! token comes with its own expiry, taken from the answer (`expires_in`, else `expires_on`),
//! never assumed.
//!
//! Tokens are secrets: [`AccessToken`]'s `Debug` hides the value, and errors carry the
//! endpoint, the HTTP status and Entra's error code, never a body (a success body that fails
//! to parse holds the token).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::credential::{Assertions, ASSERTION_TYPE};
use super::limited;
use super::managed_identity::ManagedIdentity;
use crate::config::auth::{Credential, Secret};

/// The audience of a managed identity's token used as a federated client assertion.
pub const TOKEN_EXCHANGE_RESOURCE: &str = "api://AzureADTokenExchange";

/// An access token and when it stops working.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    /// When it was received.
    pub received: Instant,
    /// When it expires, on this process's monotonic clock.
    pub expires: Instant,
    /// When it expires, in seconds since the Unix epoch (for the expiry gauge).
    pub expires_at: u64,
}

impl AccessToken {
    /// A token valid for `lifetime` from now.
    pub fn new(secret: String, lifetime: Duration) -> AccessToken {
        let received = Instant::now();
        AccessToken {
            secret,
            received,
            expires: received + lifetime,
            expires_at: crate::primitives::now().saturating_add(lifetime.as_secs()),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The whole lifetime the token was issued with (as received).
    pub fn lifetime(&self) -> Duration {
        self.expires.saturating_duration_since(self.received)
    }

    /// Time left before it expires (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token came. Never holds a token or a response body.
#[derive(Debug, thiserror::Error)]
pub enum ResourceTokenError {
    #[error("{endpoint}: request failed")]
    Request {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: the answer was refused")]
    Body {
        endpoint: String,
        #[source]
        source: limited::BodyError,
    },
    #[error("{endpoint} answered HTTP {status}{}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(), aadsts.map(|a| format!(" AADSTS{a}")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        /// The OAuth `error` code, if the body had one.
        code: Option<String>,
        aadsts: Option<u32>,
    },
    #[error("{endpoint}: {what}")]
    Malformed {
        endpoint: String,
        what: &'static str,
    },
    #[error("the client credential could not be prepared: {0}")]
    Credential(String),
    #[error("{0}")]
    Setup(String),
}

/// Where tokens come from.
pub enum TokenSource {
    ManagedIdentity(ManagedIdentity),
    ClientCredentials(ClientCredentials),
}

impl TokenSource {
    /// A token for `resource` (`https://redis.azure.com`; the client-credentials grant asks for
    /// `{resource}/.default`).
    pub async fn token(&self, resource: &str) -> Result<AccessToken, ResourceTokenError> {
        match self {
            TokenSource::ManagedIdentity(m) => m.token(resource).await,
            TokenSource::ClientCredentials(c) => c.token(resource).await,
        }
    }

    /// For logs: which kind of credential.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenSource::ManagedIdentity(_) => "managed identity",
            TokenSource::ClientCredentials(c) => c.kind,
        }
    }
}

/// How a client-credentials request proves the client.
pub enum ClientAuth {
    Secret(Secret),
    /// A certificate or a federated token file (`credential.rs`).
    Assertion(Credential, Assertions),
    /// A managed identity's token for [`TOKEN_EXCHANGE_RESOURCE`], reused until near expiry.
    ManagedIdentity(Arc<CachedToken>),
}

/// The client-credentials grant at one token endpoint.
pub struct ClientCredentials {
    pub http: reqwest::Client,
    pub token_endpoint: String,
    pub client_id: String,
    pub auth: ClientAuth,
    /// For logs: "workload identity", "app".
    pub kind: &'static str,
}

impl ClientCredentials {
    async fn token(&self, resource: &str) -> Result<AccessToken, ResourceTokenError> {
        let scope = format!("{}/.default", resource.trim_end_matches('/'));
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", scope),
        ];
        match &self.auth {
            ClientAuth::Secret(s) => form.push(("client_secret", s.expose().to_owned())),
            ClientAuth::Assertion(credential, assertions) => {
                let a = assertions
                    .assertion(credential, &self.client_id, &self.token_endpoint)
                    .map_err(|e| ResourceTokenError::Credential(e.to_string()))?
                    .ok_or_else(|| {
                        ResourceTokenError::Credential("no assertion for this credential".into())
                    })?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", a));
            }
            ClientAuth::ManagedIdentity(cached) => {
                let t = cached.get().await?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", t.secret().to_owned()));
            }
        }
        let endpoint = &self.token_endpoint;
        fetch(endpoint, self.http.post(endpoint).form(&form)).await
    }
}

/// Sends `request` to `endpoint` (a token endpoint or IMDS) and reads its bounded answer.
pub async fn fetch(
    endpoint: &str,
    request: reqwest::RequestBuilder,
) -> Result<AccessToken, ResourceTokenError> {
    let resp = request
        .send()
        .await
        .map_err(|source| ResourceTokenError::Request {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let status = resp.status().as_u16();
    let body = limited::read(resp, limited::MAX_TOKEN_ANSWER)
        .await
        .map_err(|source| ResourceTokenError::Body {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    parse_answer(endpoint, status, &body)
}

/// A token endpoint's or IMDS's answer: `access_token` with `expires_in` (a number, or a
/// string as IMDS writes it) or `expires_on` (Unix seconds, a string); or an error.
pub fn parse_answer(
    endpoint: &str,
    status: u16,
    body: &[u8],
) -> Result<AccessToken, ResourceTokenError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let text = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        // Only the code and the AADSTS number are kept: descriptions may quote inputs.
        let code =
            text("error").filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
        let aadsts = text("error_description").and_then(|d| super::token::aadsts_code(&d));
        return Err(ResourceTokenError::Status {
            endpoint: endpoint.to_owned(),
            status,
            code,
            aadsts,
        });
    }
    let malformed = |what| ResourceTokenError::Malformed {
        endpoint: endpoint.to_owned(),
        what,
    };
    let json = json.ok_or_else(|| malformed("the answer is not JSON"))?;
    let secret = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("the answer has no access_token"))?;
    let number = |k: &str| match json.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let lifetime = match (number("expires_in"), number("expires_on")) {
        (Some(secs), _) => secs,
        (None, Some(on)) => on.saturating_sub(crate::primitives::now()),
        (None, None) => return Err(malformed("the answer has no expires_in or expires_on")),
    };
    if lifetime == 0 {
        return Err(malformed("the token has already expired"));
    }
    Ok(AccessToken::new(
        secret.to_owned(),
        Duration::from_secs(lifetime),
    ))
}

/// A managed identity's token for one resource, fetched again once less than
/// [`CachedToken::margin`] of it is left.
pub struct CachedToken {
    source: ManagedIdentity,
    resource: String,
    current: tokio::sync::Mutex<Option<AccessToken>>,
}

impl CachedToken {
    pub fn new(source: ManagedIdentity, resource: &str) -> CachedToken {
        CachedToken {
            source,
            resource: resource.to_owned(),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// How much of a token's life must be left to reuse it: 5 minutes of a real token, a
    /// quarter of a short one.
    fn margin(token: &AccessToken) -> Duration {
        (token.lifetime() / 4).min(Duration::from_secs(300))
    }

    /// The cached token, or a new one (one fetch at a time).
    pub async fn get(&self) -> Result<AccessToken, ResourceTokenError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            if t.remaining() > Self::margin(t) {
                return Ok(t.clone());
            }
        }
        let fresh = self.source.token(&self.resource).await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_answers_with_string_times_are_read() {
        let body = br#"{"access_token":"eyJ0","expires_in":"3599","expires_on":"1","resource":"https://redis.azure.com","token_type":"Bearer"}"#;
        let t = parse_answer("imds", 200, body).unwrap();
        assert_eq!(t.secret(), "eyJ0");
        assert!(t.lifetime() > Duration::from_secs(3590), "{t:?}");
        let later = crate::primitives::now() + 600;
        let body = format!(r#"{{"access_token":"x","expires_on":"{later}"}}"#);
        let t = parse_answer("app service", 200, body.as_bytes()).unwrap();
        assert!(t.lifetime() > Duration::from_secs(590));
        assert!(!format!("{t:?}").contains("eyJ0"));
    }

    #[test]
    fn errors_keep_the_code_and_never_the_body() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion secret-ish"}"#;
        let e = parse_answer("https://login/t/oauth2/v2.0/token", 401, body).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("invalid_client") && shown.contains("AADSTS70021"),
            "{shown}"
        );
        assert!(!shown.contains("secret-ish"), "{shown}");
        for bad in [
            &b"not json"[..],
            br#"{"access_token":""}"#,
            br#"{"access_token":"x"}"#,
        ] {
            let e = parse_answer("e", 200, bad).unwrap_err();
            assert!(matches!(e, ResourceTokenError::Malformed { .. }), "{e}");
        }
    }
}
