//! The proxy against app registrations without the optional claims it prefers: no `sid`
//! (front-channel logout cannot find the session), no `login_hint` (sign-out sends no
//! `logout_hint`), no `email` (no email header, sign-in unaffected).

use entra_standin::{OptionalClaims, TestClient};

use crate::support::browser::Browser;
use crate::support::seen;
use crate::support::signin::{alice, client, Setup, SignIn, CLIENT_ID, HOST};

fn without(optional: OptionalClaims) -> Option<TestClient> {
    Some(TestClient {
        optional_claims: optional,
        ..client()
    })
}

/// Signs in with a fresh browser; the browser and the `session_state` Entra sent back.
async fn signed_in(s: &SignIn) -> (Browser, String) {
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "sign-in completes: {}", last.body);
    let callback = hops
        .iter()
        .find(|h| h.url.path() == "/.auth/callback")
        .unwrap();
    let session_state = callback
        .url
        .query_pairs()
        .find(|(k, _)| k == "session_state")
        .map(|(_, v)| v.into_owned())
        .expect("Entra sends session_state");
    (b, session_state)
}

#[tokio::test]
async fn without_sid_front_channel_logout_finds_no_session_and_still_answers_200() {
    let s = SignIn::start(Setup {
        client: without(OptionalClaims {
            sid: false,
            ..OptionalClaims::default()
        }),
        ..Setup::default()
    })
    .await;
    let (mut b, entra_sid) = signed_in(&s).await;
    let me = b.api(&s.url("/.auth/me")).await.json();
    let claims = me[0]["user_claims"].as_array().unwrap();
    assert!(claims.iter().all(|c| c["typ"] != "sid"), "{claims:?}");
    // Entra's call names its session, which no token tied to ours: nothing to end, and the
    // frame still completes.
    let enc: String = url::form_urlencoded::byte_serialize(entra_sid.as_bytes()).collect();
    let hop = s
        .browser()
        .get(&s.url(&format!("/.auth/frontchannel-logout?sid={enc}")))
        .await;
    assert_eq!(hop.status, 200, "{}", hop.body);
    assert_eq!(b.api(&s.url("/")).await.status, 200, "still signed in");
}

#[tokio::test]
async fn without_login_hint_sign_out_sends_no_logout_hint() {
    let s = SignIn::start(Setup {
        client: without(OptionalClaims {
            login_hint: false,
            ..OptionalClaims::default()
        }),
        oidc: "post_logout_redirect_uri = \"/\"".into(),
        ..Setup::default()
    })
    .await;
    let (mut b, _) = signed_in(&s).await;
    let out = b.click(&s.url("/.auth/logout")).await;
    assert_eq!(out.status, 302);
    let to = out.location().unwrap();
    let names: Vec<String> = to.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert!(!names.iter().any(|k| k == "logout_hint"), "{to}");
    assert!(names.iter().any(|k| k == "client_id"), "{to}");
    let back = b.get(to.as_str()).await;
    assert_eq!(back.status, 302, "Entra still returns to the app");
    let record = s.idp.logouts().pop().unwrap();
    assert_eq!(record.logout_hint, None);
    assert_eq!(record.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(b.api(&s.url("/")).await.status, 401, "signed out");
}

#[tokio::test]
async fn without_an_email_claim_the_user_signs_in_and_no_email_header_is_sent() {
    let mut no_address = alice();
    no_address.email = None;
    let cases = [
        ("user without an address", vec![no_address], None),
        (
            "registration without the email claim",
            vec![alice()],
            without(OptionalClaims {
                email: false,
                ..OptionalClaims::default()
            }),
        ),
    ];
    for (case, users, client) in cases {
        let s = SignIn::start(Setup {
            users,
            client,
            ..Setup::default()
        })
        .await;
        let (mut b, _) = signed_in(&s).await;
        let echo = b.get(&s.url("/")).await.json();
        assert_eq!(
            seen(&echo, "x-auth-request-user"),
            ["alice@contoso.example"],
            "{case}"
        );
        assert!(seen(&echo, "x-auth-request-email").is_empty(), "{case}");
        assert!(b.cookie(HOST, "__Host-portcullis").is_some(), "{case}");
    }
}
