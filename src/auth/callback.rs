//! The callback: Entra ID sends the browser back with `code` and `state` (or `error`).
//!
//! Checks, in order: the client's sign-in rate limit (`sign_in.rs`), a pending sign-in cookie
//! for this `state` exists in this browser and opens (sealed by us, for this cookie), its state
//! equals the callback's (constant time), it has not expired, and the callback carries a code
//! rather than an error. Only then does the callback cost anything: it takes a redemption slot,
//! marks the state used (a one-time marker in the store, so a replayed callback fails even on
//! another instance), redeems the code with the PKCE verifier, validates the ID token with the
//! nonce, resolves group overage, and creates the session with a fresh ID (no session
//! fixation). A callback refused before the marker writes nothing and calls no one.
//!
//! A sign-in the sign-in host runs for an app host (`oidc.signin_host`) ends with a ticket
//! for that host (`handoff.rs`) rather than the return path.
//!
//! A step-up sign-in (the pending sign-in names an authentication context) must come back
//! with an ID token whose `acrs` names that context, or it is refused (403) and the session
//! stays as it was. It upgrades the browser's current session in place — same cookie, new
//! value — when that session is live and belongs to the same user (`tid` and `oid`); any
//! other case gets a fresh session, as a first sign-in does.

use std::time::Duration;

use http::header::SET_COOKIE;
use http::{Request, Response};

use super::sign_in::{Endpoint, SignIn};
use super::{cookies, pending, SignInError};
use crate::body::Body;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::identity::Identity;
use crate::oidc::{graph, token::aadsts_code, verify::constant_time_eq, Expect};
use crate::primitives::now;
use crate::session::SignOutHints;

impl SignIn {
    pub(super) async fn callback<B>(
        &self,
        req: &Request<B>,
        ctx: &RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let fail = |e: SignInError| ProxyError::SignIn(e);
        self.admit(ctx, Endpoint::Callback)?;
        let q = Query::parse(req.uri().query().unwrap_or(""));
        let state = q.state.ok_or(fail(SignInError::MissingState))?;
        let name = pending::cookie_name(self.cookie_name(), &state);
        let value = cookies::get_all(req.headers(), &name)
            .next()
            .ok_or(fail(SignInError::UnknownState))?;
        let p = pending::open(&self.sealer, value, &name).ok_or(fail(SignInError::Tampered))?;
        if !constant_time_eq(p.state.as_bytes(), state.as_bytes()) {
            return Err(fail(SignInError::Tampered));
        }
        if p.expires_at <= now() {
            return Err(fail(SignInError::Expired));
        }
        if let Some(error) = q.error {
            return Err(fail(SignInError::Provider {
                error,
                aadsts: q.error_description.as_deref().and_then(aadsts_code),
            }));
        }
        let code = q.code.ok_or(fail(SignInError::MissingCode))?;

        // Held until the provider's part (token call, keys, Graph) is over.
        let slot = self.redemption_slot().await?;
        let first_use = self
            .sessions
            .mark_sign_in_used(&state, pending::LIFETIME + Duration::from_secs(60))
            .await
            .map_err(ProxyError::StoreUnavailable)?;
        if !first_use {
            return Err(fail(SignInError::Replayed));
        }
        let tokens = self
            .provider
            .redeem(&code, &p.verifier, &p.redirect_uri)
            .await
            .map_err(|e| fail(SignInError::Redeem(e)))?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or(fail(SignInError::NoIdToken))?;
        let claims = self
            .provider
            .verify(
                id_token,
                Expect::IdToken {
                    nonce: Some(&p.nonce),
                },
            )
            .await
            .map_err(|e| fail(SignInError::IdToken(e)))?;
        let overage = graph::has_overage(&claims);
        let hints = SignOutHints::of(&claims);
        let mut identity = Identity::from_claims(claims);
        if overage {
            match self.provider.graph_groups(&tokens.access_token).await {
                Ok(groups) => {
                    identity.claims.insert("groups".into(), groups.into());
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), oid = identity.oid(), "groups overage: Microsoft Graph could not be asked; group policies will deny this user");
                    identity.groups_unresolved = true;
                }
            }
        }
        drop(slot);

        let upgrade = match &p.auth_context {
            Some(wanted) => {
                if !identity.iter("acrs").any(|v| v == wanted) {
                    return Err(fail(SignInError::StepUpNotSatisfied));
                }
                self.current_session(req, &identity).await?
            }
            None => None,
        };
        let (oid, tid) = (identity.oid().to_owned(), identity.tid().to_owned());
        let (id, lifetime) = self
            .sessions
            .start(identity, hints, tokens, upgrade.as_deref())
            .await
            .map_err(ProxyError::StoreUnavailable)?;
        let reason = if p.auth_context.is_some() {
            "step_up"
        } else {
            ""
        };
        crate::audit::record(ctx.audit(), crate::audit::Event::SignIn, &oid, &tid, reason);

        // Signed in on the sign-in host for an app host: back there with a ticket.
        let location = match &p.handoff {
            Some(to) => self.mint(&id, to).await?,
            None => p.return_to.clone(),
        };
        let mut resp = super::handoff::found(&location);
        let h = resp.headers_mut();
        h.append(SET_COOKIE, cookies::set(self.cookie_name(), &id, lifetime));
        h.append(SET_COOKIE, cookies::clear(&name));
        Ok(resp)
    }
}

impl SignIn {
    /// The ID of the browser's live session, if it belongs to the user who just signed in
    /// (same `tid` and `oid`, both present).
    async fn current_session<B>(
        &self,
        req: &Request<B>,
        user: &Identity,
    ) -> Result<Option<String>, ProxyError> {
        if user.oid().is_empty() || user.tid().is_empty() {
            return Ok(None);
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        self.session_where(req.headers(), |s| {
            same(s.identity.oid(), user.oid()) && same(s.identity.tid(), user.tid())
        })
        .await
    }
}

#[derive(Default)]
struct Query {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Query {
    fn parse(q: &str) -> Query {
        let mut out = Query::default();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "state" => out.state = Some(v),
                "code" => out.code = Some(v),
                // An OAuth error code is a short token; anything else is not shown.
                "error" => {
                    out.error = Some(
                        if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                            v
                        } else {
                            "invalid_error".to_owned()
                        },
                    )
                }
                "error_description" => out.error_description = Some(v),
                _ => {}
            }
        }
        out
    }
}
