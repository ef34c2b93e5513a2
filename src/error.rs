//! The one place where request-path failures become HTTP answers.
//!
//! Stages return `ProxyError`; its methods below are the error table: `status` (exhaustive,
//! sign-in causes included, no catch-all arm, so a new variant cannot ship without a status),
//! `kind` for logs and metrics, `public_message` for the client, `action` for the page's way
//! out and `challenge` for `WWW-Authenticate` / `Retry-After`. `pages.rs` renders them in the
//! client's format. Clients get a short page with the request ID; the cause chain ([`chain`])
//! goes to the log only. No variant maps to 500: nothing a client sends is an internal error.
//!
//! This module is a leaf: it imports no other module of the crate. The causes that the table
//! looks into live in `error/`, and each stage re-exports the ones it returns.

mod causes;
mod signin;

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{HeaderName, HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

pub use causes::{
    Denied, ProviderFault, RenewalError, SharedCause, StoreError, TokenError, VerifyError,
};
pub use signin::SignInError;

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request itself is malformed (bad Host, dot segments, …).
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// `TRACE` or `TRACK`: never forwarded, they echo the request's credentials back.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream could not be reached (connect refused, DNS, TLS handshake).
    #[error("upstream unreachable")]
    UpstreamUnreachable(#[source] BoxError),
    /// The upstream connected but broke the exchange (reset, protocol error).
    #[error("upstream failed")]
    UpstreamFailed(#[source] BoxError),
    /// The upstream did not answer within the route's timeout.
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    /// A protected route without a session, from a client that is not a browser navigation.
    #[error("sign-in required")]
    SignInRequired { login_url: String },
    /// A bearer route without a valid access token (`None`: no token at all).
    #[error("bearer token required{}", .0.map(|e| format!(": {e}")).unwrap_or_default())]
    BearerRequired(Option<VerifyError>),
    /// A valid access token without the route's authentication context (`acrs`); the client
    /// is sent Entra's claims challenge (base64 `claims` request value).
    #[error("the access token lacks the route's authentication context")]
    InsufficientClaims { challenge: String },
    /// `/.auth/verify` refuses to judge: the caller is not a trusted proxy, or the request
    /// it names has no route or is a reserved path.
    #[error("forward-auth refused: {0}")]
    VerifyRefused(&'static str),
    /// The route sends signed assertions and no key can sign one now.
    #[error("no identity assertion key is available")]
    AssertionUnavailable,
    /// Signed in, but the route's policy refuses this user.
    #[error("access denied by {req}: {0}", req = .0.requirement())]
    Forbidden(Denied),
    /// Signing in failed at the callback or before.
    #[error("sign-in failed")]
    SignIn(#[source] SignInError),
    /// The identity provider's metadata has not loaded yet.
    #[error("identity provider not ready")]
    ProviderUnavailable,
    /// The session store does not answer.
    #[error("session lookup failed")]
    StoreUnavailable(#[source] StoreError),
    /// The session's token has expired and could not be renewed just now.
    #[error("session renewal unavailable")]
    RenewalUnavailable(#[source] RenewalError),
    /// The client's address made more sign-in requests than `sign_in.rate_limit` allows; the
    /// next one is allowed after `retry_after`.
    #[error("sign-in rate limit reached (next allowed in {retry_after:?})")]
    TooManyRequests { retry_after: std::time::Duration },
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one thing a page offers the reader to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Sign in (again), through this URL.
    SignIn(&'a str),
    /// Sign out, to sign in as someone else.
    SwitchAccount,
    /// The fault is passing: load the page again.
    Retry,
}

impl ProxyError {
    /// The error→status table.
    pub fn status(&self) -> StatusCode {
        use StatusCode as S;
        match self {
            ProxyError::BadRequest(_) => S::BAD_REQUEST,
            ProxyError::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            ProxyError::NoRoute => S::NOT_FOUND,
            ProxyError::UpstreamUnreachable(_) => S::BAD_GATEWAY,
            ProxyError::UpstreamFailed(_) => S::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => S::GATEWAY_TIMEOUT,
            ProxyError::SignInRequired { .. } => S::UNAUTHORIZED,
            ProxyError::BearerRequired(_) => S::UNAUTHORIZED,
            ProxyError::InsufficientClaims { .. } => S::UNAUTHORIZED,
            ProxyError::VerifyRefused(_) => S::FORBIDDEN,
            ProxyError::AssertionUnavailable => S::SERVICE_UNAVAILABLE,
            ProxyError::Forbidden(_) => S::FORBIDDEN,
            ProxyError::SignIn(
                SignInError::MissingState
                | SignInError::UnknownState
                | SignInError::Tampered
                | SignInError::Expired
                | SignInError::Replayed
                | SignInError::MissingCode
                | SignInError::UnknownTicket
                | SignInError::TicketForAnotherHost,
            ) => S::BAD_REQUEST,
            ProxyError::SignIn(SignInError::Busy) => S::SERVICE_UNAVAILABLE,
            ProxyError::SignIn(SignInError::StepUpNotSatisfied) => S::FORBIDDEN,
            // The provider's `error` parameter is anyone's to write: unknown codes are 400.
            ProxyError::SignIn(SignInError::Provider { error, .. }) => match error.as_str() {
                "access_denied" | "unauthorized_client" => S::FORBIDDEN,
                "login_required" | "interaction_required" | "consent_required" => S::UNAUTHORIZED,
                _ => S::BAD_REQUEST,
            },
            ProxyError::SignIn(SignInError::Redeem(TokenError::Rejected { .. })) => S::BAD_REQUEST,
            ProxyError::SignIn(SignInError::Redeem(TokenError::Misconfigured { .. })) => {
                S::BAD_GATEWAY
            }
            ProxyError::SignIn(SignInError::Redeem(TokenError::Unavailable(_))) => {
                S::SERVICE_UNAVAILABLE
            }
            ProxyError::SignIn(SignInError::Redeem(TokenError::Malformed(_))) => S::BAD_GATEWAY,
            ProxyError::SignIn(SignInError::NoIdToken) => S::BAD_GATEWAY,
            ProxyError::SignIn(SignInError::IdToken(VerifyError::Tenant)) => S::FORBIDDEN,
            ProxyError::SignIn(SignInError::IdToken(VerifyError::KeysUnavailable)) => {
                S::SERVICE_UNAVAILABLE
            }
            ProxyError::SignIn(SignInError::IdToken(
                VerifyError::Malformed
                | VerifyError::Algorithm
                | VerifyError::UnknownKey
                | VerifyError::Signature
                | VerifyError::Expired
                | VerifyError::NotYetValid
                | VerifyError::IssuedInFuture
                | VerifyError::Audience
                | VerifyError::Issuer
                | VerifyError::Nonce
                | VerifyError::NotAnAccessToken,
            )) => S::UNAUTHORIZED,
            ProxyError::ProviderUnavailable => S::SERVICE_UNAVAILABLE,
            ProxyError::StoreUnavailable(_) => S::SERVICE_UNAVAILABLE,
            ProxyError::RenewalUnavailable(_) => S::SERVICE_UNAVAILABLE,
            ProxyError::TooManyRequests { .. } => S::TOO_MANY_REQUESTS,
        }
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::NoRoute => "no_route",
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamFailed(_) => "upstream_failed",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::SignInRequired { .. } => "sign_in_required",
            ProxyError::BearerRequired(_) => "bearer_required",
            ProxyError::InsufficientClaims { .. } => "insufficient_claims",
            ProxyError::VerifyRefused(_) => "verify_refused",
            ProxyError::AssertionUnavailable => "assertion_unavailable",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::SignIn(e) => e.kind(),
            ProxyError::ProviderUnavailable => "provider_unavailable",
            ProxyError::StoreUnavailable(_) => "store_unavailable",
            ProxyError::RenewalUnavailable(_) => "renewal_unavailable",
            ProxyError::TooManyRequests { .. } => "too_many_requests",
        }
    }

    /// What the client is told: safe, short, no internals. Values from the callback URL are
    /// reduced to an error code and an AADSTS number, never echoed as free text (the URL is
    /// anyone's to write).
    pub fn public_message(&self) -> Cow<'static, str> {
        const AGAIN: &str = "Start again from the application's address.";
        match self {
            ProxyError::BadRequest(what) | ProxyError::VerifyRefused(what) => Cow::Borrowed(what),
            ProxyError::MethodNotAllowed => "This method is not allowed here.".into(),
            ProxyError::NoRoute => "There is no application at this address.".into(),
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                "The application behind this address is not answering. Try again in a moment."
                    .into()
            }
            ProxyError::UpstreamTimeout(_) => {
                "The application behind this address took too long to answer.".into()
            }
            ProxyError::SignInRequired { .. } => "Sign-in required.".into(),
            ProxyError::BearerRequired(None) => {
                "This API needs an access token in the Authorization header.".into()
            }
            ProxyError::BearerRequired(Some(e)) => {
                format!("The access token was not accepted: {e}.").into()
            }
            ProxyError::InsufficientClaims { .. } => {
                "This API needs an access token that satisfies the authentication context it requires (Conditional Access step-up).".into()
            }
            ProxyError::Forbidden(d) => {
                format!("You are signed in, but {d}. Ask the application's owner for access.")
                    .into()
            }
            ProxyError::SignIn(SignInError::MissingState | SignInError::UnknownState) => format!(
                "This sign-in link is not one this browser started, or it has expired. {AGAIN}"
            )
            .into(),
            ProxyError::SignIn(SignInError::Tampered) => {
                format!("The sign-in could not be verified. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::Expired) => {
                format!("The sign-in took too long. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::Replayed) => {
                format!("This sign-in link was already used. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::MissingCode) => {
                format!("Microsoft Entra ID sent no sign-in code. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::UnknownTicket) => {
                format!("This sign-in link has expired. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::TicketForAnotherHost) => {
                format!("This sign-in link is for another site. {AGAIN}").into()
            }
            // The code is still unused: loading the page again finishes the sign-in.
            ProxyError::SignIn(SignInError::Busy) => {
                "Many sign-ins are being completed right now. Load this page again in a moment."
                    .into()
            }
            ProxyError::SignIn(SignInError::StepUpNotSatisfied) => {
                "This page needs an additional verification that Microsoft Entra ID did not confirm. Try again, or ask the application's owner."
                    .into()
            }
            ProxyError::SignIn(SignInError::Provider { error, aadsts }) => format!(
                "Microsoft Entra ID did not sign you in: {error}{}.",
                aadsts.map(|c| format!(" (AADSTS{c})")).unwrap_or_default()
            )
            .into(),
            ProxyError::SignIn(SignInError::Redeem(TokenError::Unavailable(_))) => {
                "Microsoft Entra ID is not answering. Try again in a moment.".into()
            }
            ProxyError::SignIn(SignInError::Redeem(
                TokenError::Rejected { .. }
                | TokenError::Misconfigured { .. }
                | TokenError::Malformed(_),
            ))
            | ProxyError::SignIn(SignInError::NoIdToken) => {
                format!("Microsoft Entra ID refused to complete the sign-in. {AGAIN}").into()
            }
            ProxyError::SignIn(SignInError::IdToken(VerifyError::Tenant)) => {
                "Accounts from your organization cannot sign in to this application.".into()
            }
            ProxyError::SignIn(SignInError::IdToken(_)) => {
                format!("Your sign-in could not be verified. {AGAIN}").into()
            }
            ProxyError::ProviderUnavailable => {
                "Sign-in is not available yet: Microsoft Entra ID has not answered. Try again in a moment.".into()
            }
            ProxyError::AssertionUnavailable => {
                "The application cannot be reached right now. Try again in a moment.".into()
            }
            ProxyError::StoreUnavailable(_) | ProxyError::RenewalUnavailable(_) => {
                "Your session cannot be checked right now. Try again in a moment.".into()
            }
            ProxyError::TooManyRequests { retry_after } => format!(
                "Too many sign-in attempts from your network address. Try again in {}.",
                humantime::format_duration(std::time::Duration::from_secs(retry_after_secs(
                    *retry_after
                )))
            )
            .into(),
        }
    }

    /// The page's way out, if there is one.
    pub fn action(&self) -> Option<Action<'_>> {
        match self {
            ProxyError::SignInRequired { login_url } => Some(Action::SignIn(login_url.as_str())),
            // Starting over cannot help a user the provider refused.
            ProxyError::SignIn(SignInError::Provider { error, .. }) if error == "access_denied" => {
                None
            }
            ProxyError::SignIn(SignInError::Busy) => Some(Action::Retry),
            ProxyError::SignIn(_) => Some(Action::SignIn("/.auth/login")),
            ProxyError::Forbidden(_) => Some(Action::SwitchAccount),
            ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamFailed(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::ProviderUnavailable
            | ProxyError::StoreUnavailable(_)
            | ProxyError::RenewalUnavailable(_)
            | ProxyError::AssertionUnavailable
            | ProxyError::TooManyRequests { .. } => Some(Action::Retry),
            ProxyError::BadRequest(_)
            | ProxyError::MethodNotAllowed
            | ProxyError::NoRoute
            | ProxyError::BearerRequired(_)
            | ProxyError::InsufficientClaims { .. }
            | ProxyError::VerifyRefused(_) => None,
        }
    }

    /// The one header the answer needs beside the page: how to authenticate
    /// (`WWW-Authenticate`), when to come back (`Retry-After`) or which methods work (`Allow`).
    pub fn challenge(&self) -> Option<(HeaderName, HeaderValue)> {
        match self {
            // RFC 9110 §11.6.1: a 401 names how to authenticate. Cookie sessions have no
            // registered scheme; the parameter tells API clients where a browser signs in.
            ProxyError::SignInRequired { login_url } => HeaderValue::from_str(&format!(
                "Portcullis realm=\"portcullis\", login_url=\"{login_url}\""
            ))
            .ok()
            .map(|v| (WWW_AUTHENTICATE, v)),
            ProxyError::BearerRequired(None) => Some((
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            )),
            // RFC 6750 §3.1: the token is good but does not grant enough. The scopes wanted
            // are not named: a page names requirements, never the values accepted.
            ProxyError::Forbidden(Denied::Scopes) => Some((
                WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"portcullis\", error=\"insufficient_scope\"",
                ),
            )),
            // Entra's claims challenge: MSAL passes `claims` to /authorize as is.
            ProxyError::InsufficientClaims { challenge } => HeaderValue::from_str(&format!(
                "Bearer realm=\"portcullis\", error=\"insufficient_claims\", claims=\"{challenge}\""
            ))
            .ok()
            .map(|v| (WWW_AUTHENTICATE, v)),
            // RFC 6750 §3.1.
            ProxyError::BearerRequired(Some(e)) => HeaderValue::from_str(&format!(
                "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{e}\""
            ))
            .ok()
            .map(|v| (WWW_AUTHENTICATE, v)),
            ProxyError::ProviderUnavailable
            | ProxyError::StoreUnavailable(_)
            | ProxyError::RenewalUnavailable(_)
            | ProxyError::AssertionUnavailable => {
                Some((RETRY_AFTER, HeaderValue::from_static("5")))
            }
            // A slot for the redemption is usually free again within a token call's time.
            ProxyError::SignIn(SignInError::Busy) => {
                Some((RETRY_AFTER, HeaderValue::from_static("2")))
            }
            // RFC 6585 §4.
            ProxyError::TooManyRequests { retry_after } => Some((
                RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*retry_after)),
            )),
            // RFC 9110 §15.5.6: a 405 lists the methods the resource supports.
            ProxyError::MethodNotAllowed => Some((
                ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            )),
            ProxyError::BadRequest(_)
            | ProxyError::NoRoute
            | ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamFailed(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::Forbidden(_)
            | ProxyError::VerifyRefused(_)
            | ProxyError::SignIn(_) => None,
        }
    }
}

/// `Retry-After` in whole seconds (RFC 9110 §10.2.3): rounded up, at least 1.
fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// An error and its sources, `outer: inner: innermost`, for the log.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let _ = write!(out, ": {cause}");
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests;
