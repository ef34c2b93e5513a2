//! The vocabulary of the test controls: failures a test can inject into the token endpoint,
//! and what the stand-in records for tests to read back.

use http::StatusCode;

use super::aadsts::AadError;

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

impl TokenFailure {
    /// The answer this failure stands for; `None` = drop the connection.
    pub(crate) fn error(self, client_id: &str) -> Option<AadError> {
        Some(match self {
            TokenFailure::InvalidGrant => AadError::invalid_grant(
                70043,
                "The refresh token has expired or is invalid due to sign-in frequency checks by \
                    conditional access.",
            ),
            TokenFailure::InteractionRequired => AadError::bad_request(
                "interaction_required",
                50076,
                "Due to a configuration change made by your administrator, or because you moved \
                    to a new location, you must use multi-factor authentication to access this \
                    resource.",
            ),
            TokenFailure::ConsentRequired => AadError::bad_request(
                "consent_required",
                65001,
                format!(
                    "The user or administrator has not consented to use the application with ID \
                    '{client_id}'. Send an interactive authorization request for this user and \
                    resource."
                ),
            ),
            TokenFailure::LoginRequired => AadError::bad_request(
                "login_required",
                50058,
                "Session information is not sufficient for single-sign-on.",
            ),
            TokenFailure::TemporarilyUnavailable => AadError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                90006,
                "The service is temporarily unavailable.",
            ),
            TokenFailure::ServerError => AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                "There was an error issuing a token or an issue with our sign-in service.",
            ),
            TokenFailure::InvalidClient => AadError::invalid_client(
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                    the client secret value, not the client secret ID.",
            ),
            TokenFailure::ConnectionReset => return None,
        })
    }
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
