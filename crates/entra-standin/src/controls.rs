//! The vocabulary of the test controls: failures a test can inject into the token endpoint,
//! and what the stand-in records for tests to read back.

/// How the next token-endpoint calls fail; see
/// [`StandIn::fail_next_token_requests`](crate::StandIn::fail_next_token_requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    /// 400 `invalid_grant` (AADSTS70043).
    InvalidGrant,
    /// 400 `interaction_required` (AADSTS50076, MFA required).
    InteractionRequired,
    /// 400 `consent_required` (AADSTS65001).
    ConsentRequired,
    /// 400 `login_required` (AADSTS50058).
    LoginRequired,
    /// 503 `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// 500 `server_error` (AADSTS50000).
    ServerError,
    /// 401 `invalid_client` (AADSTS7000215).
    InvalidClient,
    /// The connection closes without an answer.
    ConnectionReset,
}

/// Token-endpoint calls so far. `authorization_code` and `refresh_token` count every request
/// with that `grant_type`, successful or not; `failed` counts every error answer (injected
/// ones and dropped connections included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCalls {
    pub authorization_code: usize,
    pub refresh_token: usize,
    pub failed: usize,
}

/// One call to the end-session endpoint, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutRecord {
    pub post_logout_redirect_uri: Option<String>,
    pub logout_hint: Option<String>,
    pub state: Option<String>,
    pub id_token_hint: Option<String>,
    /// From `client_id`, or the `aud` of a valid `id_token_hint`.
    pub client_id: Option<String>,
}
