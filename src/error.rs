//! The one place where request-path failures become HTTP answers.
//!
//! Stages return `ProxyError`; `ProxyError::status` is the exhaustive error→status table (no
//! catch-all arm, so a new variant cannot ship without a status). Clients get a short page with
//! the request ID; the cause chain goes to the log only. No variant maps to 500: nothing a
//! client sends is an internal error.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::auth::SignInError;
use crate::body::Body;
use crate::oidc::VerifyError;
pub use crate::pages::{escape, page, page_with, Action, Format};
use crate::policy::Denied;
use crate::store::StoreError;

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request itself is malformed (bad Host, dot segments, …).
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream could not be reached (connect refused, DNS, TLS handshake).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(#[source] BoxError),
    /// The upstream connected but broke the exchange (reset, protocol error).
    #[error("upstream failed: {0}")]
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
    /// Signed in, but the route's policy refuses this user.
    #[error("access denied by {req}: {0}", req = .0.requirement())]
    Forbidden(Denied),
    /// Signing in failed at the callback or before.
    #[error("sign-in failed: {0}")]
    SignIn(SignInError),
    /// The identity provider's metadata has not loaded yet.
    #[error("identity provider not ready")]
    ProviderUnavailable,
    /// The session store does not answer.
    #[error("{0}")]
    StoreUnavailable(StoreError),
    /// The session's token has expired and could not be renewed just now.
    #[error("session renewal unavailable: {0}")]
    RenewalUnavailable(String),
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyError {
    /// The error→status table.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::SignInRequired { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::BearerRequired(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::SignIn(e) => e.status(),
            ProxyError::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RenewalUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::NoRoute => "no_route",
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamFailed(_) => "upstream_failed",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::SignInRequired { .. } => "sign_in_required",
            ProxyError::BearerRequired(_) => "bearer_required",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::SignIn(e) => e.kind(),
            ProxyError::ProviderUnavailable => "provider_unavailable",
            ProxyError::StoreUnavailable(_) => "store_unavailable",
            ProxyError::RenewalUnavailable(_) => "renewal_unavailable",
        }
    }

    /// What the client is told: safe, short, no internals.
    fn public_message(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        match self {
            ProxyError::SignInRequired { .. } => "Sign-in required.".into(),
            ProxyError::BearerRequired(None) => {
                "This API needs an access token in the Authorization header.".into()
            }
            ProxyError::BearerRequired(Some(e)) => {
                Cow::Owned(format!("The access token was not accepted: {e}."))
            }
            ProxyError::Forbidden(d) => Cow::Owned(format!(
                "You are signed in, but {d}. Ask the application's owner for access."
            )),
            ProxyError::SignIn(e) => Cow::Owned(e.public_message()),
            ProxyError::ProviderUnavailable => {
                "Sign-in is not available yet: Microsoft Entra ID has not answered. Try again in a moment.".into()
            }
            ProxyError::StoreUnavailable(_) | ProxyError::RenewalUnavailable(_) => {
                "Your session cannot be checked right now. Try again in a moment.".into()
            }
            other => other.gateway_message().into(),
        }
    }

    fn gateway_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(what) => what,
            ProxyError::NoRoute => "There is no application at this address.",
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamFailed(_) => {
                "The application behind this address is not answering. Try again in a moment."
            }
            ProxyError::UpstreamTimeout(_) => {
                "The application behind this address took too long to answer."
            }
            _ => "The request could not be completed.",
        }
    }

    /// Renders the answer in the client's preferred format.
    pub fn to_response(&self, format: Format, request_id: &str) -> Response<Body> {
        let action = match self {
            ProxyError::SignInRequired { login_url } => Some(Action::SignIn(login_url.as_str())),
            ProxyError::SignIn(e) if e.retryable() => Some(Action::SignIn("/.auth/login")),
            ProxyError::Forbidden(_) => Some(Action::SwitchAccount),
            ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamFailed(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::ProviderUnavailable
            | ProxyError::StoreUnavailable(_)
            | ProxyError::RenewalUnavailable(_) => Some(Action::Retry),
            ProxyError::BadRequest(_)
            | ProxyError::NoRoute
            | ProxyError::BearerRequired(_)
            | ProxyError::SignIn(_) => None,
        };
        let mut resp = page_with(
            self.status(),
            &self.public_message(),
            format,
            request_id,
            action,
        );
        let h = resp.headers_mut();
        match self {
            // RFC 9110 §11.6.1: a 401 names how to authenticate. Cookie sessions have no
            // registered scheme; the parameter tells API clients where a browser signs in.
            ProxyError::SignInRequired { login_url } => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Portcullis realm=\"portcullis\", login_url=\"{login_url}\""
                )) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            ProxyError::BearerRequired(None) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
            }
            // RFC 6750 §3.1.
            ProxyError::BearerRequired(Some(e)) => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{e}\""
                )) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            ProxyError::ProviderUnavailable
            | ProxyError::StoreUnavailable(_)
            | ProxyError::RenewalUnavailable(_) => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_internals_reach_the_client() {
        let e =
            ProxyError::StoreUnavailable(StoreError::Unavailable("redis://:pw@10.0.0.9".into()));
        assert!(!e.public_message().contains("10.0.0.9"));
        let e = ProxyError::UpstreamUnreachable("connect to 10.1.2.3:8080 refused".into());
        assert!(!e.public_message().contains("10.1.2.3"));
    }

    #[test]
    fn every_variant_has_a_client_or_gateway_status() {
        let errors = [
            ProxyError::BadRequest("x"),
            ProxyError::NoRoute,
            ProxyError::UpstreamUnreachable("refused".into()),
            ProxyError::UpstreamFailed("reset".into()),
            ProxyError::UpstreamTimeout(std::time::Duration::from_secs(1)),
            ProxyError::SignInRequired {
                login_url: "/.auth/login".into(),
            },
            ProxyError::BearerRequired(None),
            ProxyError::Forbidden(Denied::Groups),
            ProxyError::SignIn(SignInError::Replayed),
            ProxyError::ProviderUnavailable,
            ProxyError::StoreUnavailable(StoreError::Unavailable("down".into())),
            ProxyError::RenewalUnavailable("later".into()),
        ];
        let statuses: Vec<u16> = errors.iter().map(|e| e.status().as_u16()).collect();
        assert_eq!(
            statuses,
            [400, 404, 502, 502, 504, 401, 401, 403, 400, 503, 503, 503]
        );
        for e in &errors {
            let resp = e.to_response(Format::Json, "rid");
            assert_eq!(resp.status(), e.status());
        }
    }
}
