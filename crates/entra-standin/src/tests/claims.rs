//! Optional ID-token claims follow the app registration (and the user's directory entry).

use reqwest::StatusCode;

use super::*;
use crate::OptionalClaims;

async fn id_token(si: &StandIn) -> serde_json::Value {
    let (status, body) = redeem(si, &code(si, &[]).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    verify(si, body["id_token"].as_str().unwrap(), CLIENT, &si.issuer()).await
}

fn with_claims(optional: OptionalClaims) -> StandInConfig {
    let mut cfg = config();
    cfg.clients[0].optional_claims = optional;
    cfg
}

#[tokio::test]
async fn a_registration_without_optional_claims_gets_none_of_them() {
    let si = start(with_claims(OptionalClaims {
        sid: false,
        login_hint: false,
        email: false,
    }))
    .await;
    let id = id_token(&si).await;
    for claim in ["sid", "login_hint", "email"] {
        assert!(id.get(claim).is_none(), "{claim} issued: {id}");
    }
    // Everything else is still there, and the browser session still has its ID.
    assert_eq!(id["preferred_username"], ALICE);
    let alice = si.user(ALICE).unwrap();
    assert!(si
        .id_token_claims(&alice, CLIENT, None)
        .get("sid")
        .is_none());
}

#[tokio::test]
async fn each_optional_claim_is_switched_on_its_own() {
    let only_sid = OptionalClaims {
        sid: true,
        login_hint: false,
        email: false,
    };
    let id = id_token(&start(with_claims(only_sid)).await).await;
    assert!(id["sid"].is_string() && id.get("login_hint").is_none() && id.get("email").is_none());
    let only_hint = OptionalClaims {
        sid: false,
        login_hint: true,
        email: false,
    };
    let id = id_token(&start(with_claims(only_hint)).await).await;
    assert!(id.get("sid").is_none() && id["login_hint"].is_string() && id.get("email").is_none());
    let only_email = OptionalClaims {
        sid: false,
        login_hint: false,
        email: true,
    };
    let id = id_token(&start(with_claims(only_email)).await).await;
    assert!(id.get("sid").is_none() && id.get("login_hint").is_none());
    assert_eq!(id["email"], ALICE);
}

#[tokio::test]
async fn a_user_without_an_address_gets_no_email_claim() {
    let mut cfg = config();
    cfg.users[0].email = None;
    let si = start(cfg).await;
    let id = id_token(&si).await;
    assert!(id.get("email").is_none(), "{id}");
    assert!(id["sid"].is_string() && id["login_hint"].is_string());
}
