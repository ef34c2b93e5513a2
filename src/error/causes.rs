//! The causes that the error table looks into: why a token, the token endpoint, the session
//! store, a policy or a renewal said no. Each stage returns these (re-exported from its own
//! module); they live here so that `error.rs` imports no stage. None of them ever holds a
//! token, a cookie or a secret: they are logged whole.

use std::sync::Arc;

/// A cause that can be shared by every request waiting on the same provider call.
pub type SharedCause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a token was refused. Safe to log: never contains the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token is not signed with RS256")]
    Algorithm,
    #[error("token is signed with a key the provider does not publish")]
    UnknownKey,
    #[error("the provider's signing keys are not available")]
    KeysUnavailable,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token is for another audience")]
    Audience,
    #[error("token issuer does not match its tenant")]
    Issuer,
    #[error("token is from a tenant that is not allowed")]
    Tenant,
    #[error("token nonce does not match the sign-in")]
    Nonce,
    #[error("token is not an access token (an ID token, or neither scp nor roles)")]
    NotAnAccessToken,
}

impl VerifyError {
    pub fn kind(self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::Algorithm => "algorithm",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::KeysUnavailable => "keys_unavailable",
            VerifyError::Signature => "signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
            VerifyError::Audience => "audience",
            VerifyError::Issuer => "issuer",
            VerifyError::Tenant => "tenant",
            VerifyError::Nonce => "nonce",
            VerifyError::NotAnAccessToken => "not_an_access_token",
        }
    }
}

/// Why the token endpoint did not give tokens.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The grant is dead (`invalid_grant`, `interaction_required`, `login_required`,
    /// `consent_required`): the user must sign in again.
    #[error("the provider refused the grant: {code}{}", aadsts_suffix(*aadsts))]
    Rejected { code: String, aadsts: Option<u32> },
    /// A configuration fault (`invalid_client`: wrong or expired secret, …). Not the user's
    /// doing: sessions are kept and operators are alerted through the log.
    #[error("the provider refused the client: {code}{}", aadsts_suffix(*aadsts))]
    Misconfigured { code: String, aadsts: Option<u32> },
    /// Try again later.
    #[error("the provider is unavailable")]
    Unavailable(#[source] ProviderFault),
    /// A success answer that does not parse (a token that is not a well-formed JWT, …).
    #[error("the provider's answer is malformed: {0}")]
    Malformed(String),
}

impl TokenError {
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Rejected { .. } => "rejected",
            TokenError::Misconfigured { .. } => "misconfigured",
            TokenError::Unavailable(_) => "unavailable",
            TokenError::Malformed(_) => "malformed",
        }
    }
}

/// Why the provider could not be asked, or answered "later".
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderFault {
    /// Discovery has not succeeded yet.
    #[error("its metadata is not loaded yet")]
    NotReady,
    /// `temporarily_unavailable` or `server_error`.
    #[error("it answered {code}")]
    Answered { code: String },
    /// An error status whose body is not OAuth JSON: a gateway's page.
    #[error("its answer is not OAuth JSON")]
    NotOAuth,
    /// The HTTP exchange failed (connect, TLS, timeout, reset).
    #[error("the request failed")]
    Request(#[source] SharedCause),
    /// The request could not be built (a redirect URI that is not a URL, …).
    #[error("the request could not be built: {0}")]
    Unbuildable(&'static str),
    /// Any other failure the OAuth library reports.
    #[error("{0}")]
    Other(String),
}

fn aadsts_suffix(code: Option<u32>) -> String {
    code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default()
}

/// Why a store operation failed. Messages never contain values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connection refused or lost, timeout: the store is down or unreachable for now.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// Anything else, e.g. an ACL refusal (NOPERM) or a bad argument.
    #[error("session store error: {0}")]
    Failed(String),
}

/// Which requirement a user did not meet. The message is safe to show the user: it names the
/// requirement, never the values the route accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this application is limited to members of certain groups")]
    Groups,
    #[error("your group memberships could not be read (you are in more groups than a token can carry, and Microsoft Graph could not be asked)")]
    GroupsUnresolved,
    #[error("this application is limited to users holding certain app roles")]
    Roles,
    #[error("this application does not accept accounts from your organization")]
    Tenants,
    #[error("this application is limited to certain users")]
    Users,
    #[error("this application is limited to certain email domains")]
    EmailDomains,
    #[error("your account lacks a claim this application requires ({0})")]
    Claim(String),
    #[error("this API does not accept calls from the app you are using")]
    ClientApps,
    #[error("the app you are using was not granted the permission (scope) this API requires")]
    Scopes,
}

impl Denied {
    /// The routing-file key of the failed requirement, for logs and metrics.
    pub fn requirement(&self) -> &'static str {
        match self {
            Denied::Groups | Denied::GroupsUnresolved => "allowed_groups",
            Denied::Roles => "allowed_roles",
            Denied::Tenants => "allowed_tenants",
            Denied::Users => "allowed_users",
            Denied::EmailDomains => "allowed_email_domains",
            Denied::Claim(_) => "require_claims",
            Denied::ClientApps => "allowed_client_apps",
            Denied::Scopes => "required_scopes",
        }
    }
}

/// Why an expired session token could not be renewed just now. The session is kept: the next
/// request tries again.
#[derive(Debug, thiserror::Error)]
pub enum RenewalError {
    /// A renewal failed less than a back-off period ago; this request does not try again.
    #[error("a recent renewal failed; waiting before the next try")]
    BackingOff,
    /// Another instance holds the renewal lock and did not finish in time.
    #[error("another instance is renewing the session and did not finish in time")]
    PeerBusy,
    /// The token endpoint could not renew it.
    #[error("the token endpoint did not renew it")]
    Token(#[source] TokenError),
    /// The store could not be read or written.
    #[error("the session store failed")]
    Store(#[source] StoreError),
}
