use super::*;

#[test]
fn no_internals_reach_the_client() {
    let e = ProxyError::StoreUnavailable(StoreError::Unavailable("redis://:pw@10.0.0.9".into()));
    assert!(!e.public_message().contains("10.0.0.9"));
    let e = ProxyError::UpstreamUnreachable("connect to 10.1.2.3:8080 refused".into());
    assert!(!e.public_message().contains("10.1.2.3"));
}

#[test]
fn every_variant_has_a_client_or_gateway_status() {
    let errors = [
        ProxyError::BadRequest("x"),
        ProxyError::MethodNotAllowed,
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
        ProxyError::RenewalUnavailable(RenewalError::BackingOff),
        ProxyError::TooManyRequests {
            retry_after: std::time::Duration::from_secs(1),
        },
    ];
    let statuses: Vec<u16> = errors.iter().map(|e| e.status().as_u16()).collect();
    assert_eq!(
        statuses,
        [400, 405, 404, 502, 502, 504, 401, 401, 403, 400, 503, 503, 503, 429]
    );
}

#[test]
fn a_refused_method_lists_the_allowed_ones() {
    let (name, value) = ProxyError::MethodNotAllowed.challenge().unwrap();
    assert_eq!(name, ALLOW);
    assert!(!value.to_str().unwrap().contains("TRACE"));
}

#[test]
fn sign_in_failures_map_by_cause() {
    let cases = [
        (SignInError::MissingCode, 400),
        (SignInError::Busy, 503),
        (
            SignInError::Provider {
                error: "access_denied".into(),
                aadsts: None,
            },
            403,
        ),
        (
            SignInError::Provider {
                error: "login_required".into(),
                aadsts: Some(50058),
            },
            401,
        ),
        (
            SignInError::Provider {
                error: "<script>".into(),
                aadsts: None,
            },
            400,
        ),
        (
            SignInError::Redeem(TokenError::Rejected {
                code: "invalid_grant".into(),
                aadsts: Some(54005),
            }),
            400,
        ),
        (
            SignInError::Redeem(TokenError::Misconfigured {
                code: "invalid_client".into(),
                aadsts: Some(7000215),
            }),
            502,
        ),
        (
            SignInError::Redeem(TokenError::Unavailable(ProviderFault::NotOAuth)),
            503,
        ),
        (SignInError::Redeem(TokenError::Malformed("x".into())), 502),
        (SignInError::NoIdToken, 502),
        (SignInError::IdToken(VerifyError::Tenant), 403),
        (SignInError::IdToken(VerifyError::KeysUnavailable), 503),
        (SignInError::IdToken(VerifyError::Nonce), 401),
    ];
    for (cause, status) in cases {
        let e = ProxyError::SignIn(cause);
        assert_eq!(e.status().as_u16(), status, "{e:?}");
    }
}

#[test]
fn only_a_refusal_by_the_provider_offers_no_sign_in_link() {
    let denied = ProxyError::SignIn(SignInError::Provider {
        error: "access_denied".into(),
        aadsts: None,
    });
    assert_eq!(denied.action(), None);
    let replayed = ProxyError::SignIn(SignInError::Replayed);
    assert_eq!(replayed.action(), Some(Action::SignIn("/.auth/login")));
}

#[test]
fn the_cause_chain_names_every_level() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
    let e = ProxyError::RenewalUnavailable(RenewalError::Token(TokenError::Unavailable(
        ProviderFault::Request(std::sync::Arc::new(io)),
    )));
    assert_eq!(
        chain(&e),
        "session renewal unavailable: the token endpoint did not renew it: \
         the provider is unavailable: the request failed: connection reset"
    );
}

#[test]
fn challenges_name_the_scheme_or_a_retry_time() {
    let e = ProxyError::BearerRequired(Some(VerifyError::Expired));
    let (name, value) = e.challenge().unwrap();
    assert_eq!(name, WWW_AUTHENTICATE);
    assert!(value.to_str().unwrap().contains("invalid_token"));
    let e = ProxyError::RenewalUnavailable(RenewalError::PeerBusy);
    assert_eq!(e.challenge().unwrap().0, RETRY_AFTER);
    assert!(ProxyError::NoRoute.challenge().is_none());
}

#[test]
fn a_rate_limited_client_is_told_when_to_come_back_in_whole_seconds() {
    for (wait, header, shown) in [
        (std::time::Duration::from_millis(1), "1", "1s"),
        (std::time::Duration::from_millis(1500), "2", "2s"),
        (std::time::Duration::from_secs(90), "90", "1m 30s"),
    ] {
        let e = ProxyError::TooManyRequests { retry_after: wait };
        assert_eq!(e.status().as_u16(), 429);
        let (name, value) = e.challenge().unwrap();
        assert_eq!(name, RETRY_AFTER);
        assert_eq!(value, header);
        assert!(e.public_message().contains(shown), "{}", e.public_message());
        assert_eq!(e.action(), Some(Action::Retry));
    }
}

#[test]
fn a_busy_redemption_asks_to_load_the_page_again() {
    let e = ProxyError::SignIn(SignInError::Busy);
    assert_eq!(e.action(), Some(Action::Retry));
    assert_eq!(e.challenge().unwrap().0, RETRY_AFTER);
    assert_eq!(e.kind(), "sign_in_busy");
}

#[test]
fn a_token_lacking_a_scope_is_told_insufficient_scope_without_the_scopes() {
    let e = ProxyError::Forbidden(Denied::Scopes);
    assert_eq!(e.status().as_u16(), 403);
    let (name, value) = e.challenge().unwrap();
    assert_eq!(name, WWW_AUTHENTICATE);
    assert_eq!(
        value,
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\""
    );
    assert!(ProxyError::Forbidden(Denied::ClientApps)
        .challenge()
        .is_none());
    assert_eq!(Denied::Scopes.requirement(), "required_scopes");
    assert_eq!(Denied::ClientApps.requirement(), "allowed_client_apps");
    let e = ProxyError::BearerRequired(Some(VerifyError::NotAnAccessToken));
    assert_eq!(e.status().as_u16(), 401);
    let e = ProxyError::SignIn(SignInError::IdToken(VerifyError::NotAnAccessToken));
    assert_eq!(e.status().as_u16(), 401);
}
