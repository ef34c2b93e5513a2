//! The test controls: failures a test can inject into the token endpoint, and what the
//! stand-in records for tests to read back.

use std::time::Duration;

use http::StatusCode;

use super::aadsts::AadError;
use super::state::{lock, Counters, RefreshStatus, Rewrite};
use super::StandIn;

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

/// Token-endpoint calls so far. `authorization_code`, `refresh_token` and
/// `client_credentials` count every request with that `grant_type`, successful or not;
/// `failed` counts every error answer (injected ones and dropped connections included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCalls {
    pub authorization_code: usize,
    pub refresh_token: usize,
    pub client_credentials: usize,
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

/// What tests change and read back.
impl StandIn {
    /// The next `n` token-endpoint calls fail with `error`.
    pub fn fail_next_token_requests(&self, n: usize, error: TokenFailure) {
        lock(&self.state().controls)
            .failures
            .extend(std::iter::repeat_n(error, n));
    }

    /// `(error, error_description)` that `/authorize` returns to the redirect URI, or `None`.
    pub fn set_authorize_error(&self, error: Option<(String, String)>) {
        lock(&self.state().controls).authorize_error = error;
    }

    /// The next ID token the token endpoint issues is replaced by what `f` returns, given the
    /// claims it would have signed: for tests of forged, expired or misdirected ID tokens.
    pub fn rewrite_next_id_token(
        &self,
        f: impl FnOnce(serde_json::Value) -> String + Send + 'static,
    ) {
        lock(&self.state().controls).id_token_rewrite = Some(Rewrite(Box::new(f)));
    }

    /// Revokes every refresh token of `username`: their next use is `invalid_grant`
    /// (AADSTS50173).
    pub fn revoke_refresh_tokens(&self, username: &str) {
        let mut grants = lock(&self.state().grants);
        for grant in grants.refresh.values_mut() {
            if grant.username.eq_ignore_ascii_case(username) {
                grant.status = RefreshStatus::Revoked;
            }
        }
    }

    /// `false`: discovery and JWKS answer 503 (an Entra outage).
    pub fn set_discovery_available(&self, up: bool) {
        lock(&self.state().controls).discovery_up = up;
    }

    /// `false`: Graph answers every call with 503 (a Graph outage).
    pub fn set_graph_available(&self, up: bool) {
        lock(&self.state().controls).graph_up = up;
    }

    /// Latency added to every token-endpoint call.
    pub fn set_delay(&self, d: Duration) {
        lock(&self.state().controls).delay = d;
    }

    /// `true`: token-endpoint calls are counted, then wait until this is called with `false`
    /// (to see how many a client has in flight at once, without timing).
    pub fn hold_token_requests(&self, hold: bool) {
        self.state().token_hold.send_replace(hold);
    }

    pub fn token_calls(&self) -> TokenCalls {
        let c = &self.state().counters;
        TokenCalls {
            authorization_code: Counters::get(&c.authorization_code),
            refresh_token: Counters::get(&c.refresh_token),
            client_credentials: Counters::get(&c.client_credentials),
            failed: Counters::get(&c.failed),
        }
    }

    /// How many distinct certificate assertions (`jti`s) `client_id` has presented and the
    /// stand-in accepted (kept until they expire).
    pub fn distinct_assertions(&self, client_id: &str) -> usize {
        lock(&self.state().grants)
            .assertion_ids
            .keys()
            .filter(|(c, _)| c == client_id)
            .count()
    }

    pub fn jwks_fetches(&self) -> usize {
        Counters::get(&self.state().counters.jwks)
    }

    pub fn discovery_fetches(&self) -> usize {
        Counters::get(&self.state().counters.discovery)
    }

    /// Requests to the Graph emulation (to check that group lookups are cached).
    pub fn graph_calls(&self) -> usize {
        Counters::get(&self.state().counters.graph)
    }

    pub fn logouts(&self) -> Vec<LogoutRecord> {
        lock(&self.state().records).logouts.clone()
    }

    /// Every `/authorize` URL received, in order (POSTed parameters as its query).
    pub fn authorize_requests(&self) -> Vec<url::Url> {
        lock(&self.state().records).authorize.clone()
    }
}
