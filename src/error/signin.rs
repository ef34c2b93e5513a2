//! Why signing in failed. Every variant is the client's or the provider's doing: 4xx, or
//! 502/503 when the provider or store is at fault; the table in `error.rs` says which.

use super::causes::{TokenError, VerifyError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    #[error("the callback has no state")]
    MissingState,
    #[error("no sign-in in progress matches the callback's state")]
    UnknownState,
    #[error("the sign-in cookie does not match the callback")]
    Tampered,
    #[error("the sign-in took longer than 10 minutes")]
    Expired,
    #[error("the callback was used before")]
    Replayed,
    #[error("the callback has no code")]
    MissingCode,
    /// `sign_in.max_concurrent_redemptions` codes are being redeemed already; this one was
    /// neither marked used nor sent, so the same callback can be tried again.
    #[error("too many codes are being redeemed at once")]
    Busy,
    #[error("the provider answered {error}{}", aadsts.map(|c| format!(" (AADSTS{c})")).unwrap_or_default())]
    Provider { error: String, aadsts: Option<u32> },
    #[error("the token endpoint refused the code")]
    Redeem(#[source] TokenError),
    #[error("the token endpoint gave no ID token")]
    NoIdToken,
    #[error("the ID token was refused")]
    IdToken(#[source] VerifyError),
    /// A step-up sign-in came back without the authentication context it asked for (`acrs`).
    #[error("the ID token does not satisfy the authentication context asked for")]
    StepUpNotSatisfied,
    /// A hand-off ticket (`oidc.signin_host`) that is unknown, expired, or whose session ended.
    #[error("the sign-in ticket is unknown or expired")]
    UnknownTicket,
    /// A ticket minted for another app host, or a hand-back to a host no route names.
    #[error("the sign-in ticket is for another host")]
    TicketForAnotherHost,
}

impl SignInError {
    pub fn kind(&self) -> &'static str {
        match self {
            SignInError::MissingState => "sign_in_missing_state",
            SignInError::UnknownState => "sign_in_unknown_state",
            SignInError::Tampered => "sign_in_tampered",
            SignInError::Expired => "sign_in_expired",
            SignInError::Replayed => "sign_in_replayed",
            SignInError::MissingCode => "sign_in_missing_code",
            SignInError::Busy => "sign_in_busy",
            SignInError::Provider { .. } => "sign_in_provider_error",
            SignInError::Redeem(_) => "sign_in_redeem_failed",
            SignInError::NoIdToken => "sign_in_no_id_token",
            SignInError::IdToken(_) => "sign_in_invalid_id_token",
            SignInError::StepUpNotSatisfied => "sign_in_step_up_not_satisfied",
            SignInError::UnknownTicket => "sign_in_unknown_ticket",
            SignInError::TicketForAnotherHost => "sign_in_ticket_for_another_host",
        }
    }
}
