//! Sign-in settings other than the defaults, end to end: a custom `oidc.callback_path`, a
//! custom `session.cookie_name`, and an absolute `oidc.post_logout_redirect_uri`.

use crate::support::signin::{Setup, SignIn, CLIENT_ID, HOST};

#[tokio::test]
async fn a_custom_callback_path_and_cookie_name_carry_a_whole_sign_in() {
    let s = SignIn::start(Setup {
        oidc: "callback_path = \"/oauth2/callback\"".into(),
        session: "cookie_name = \"__Host-wiki\"".into(),
        ..Setup::default()
    })
    .await;
    let origin = format!("https://{HOST}:{}", s.proxy.https.port());
    assert!(s
        .idp
        .register_redirect_uris(CLIENT_ID, &[format!("{origin}/oauth2/callback")], &[]));
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/page")).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    let authorize = hops[0].location().unwrap();
    let redirect = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        redirect.as_deref(),
        Some(format!("{origin}/oauth2/callback").as_str())
    );
    assert!(hops.iter().any(|h| h.url.path() == "/oauth2/callback"));
    assert!(!hops.iter().any(|h| h.url.path() == "/.auth/callback"));
    assert!(
        b.cookie(HOST, "__Host-wiki").is_some(),
        "{:?}",
        b.cookie_names(HOST)
    );
    assert!(b.cookie(HOST, "__Host-portcullis").is_none());
    // The default callback path is an ordinary path now: it reaches the upstream.
    let echo = b.get(&s.url("/.auth/callback?x=1")).await;
    assert_eq!(echo.status, 200);
    assert!(
        echo.body.contains("\"uri\":\"/.auth/callback?x=1\""),
        "{}",
        echo.body
    );
}

#[tokio::test]
async fn an_absolute_post_logout_redirect_uri_is_sent_to_entra_as_written() {
    let bye = "https://portal.example.test/signed-out";
    let s = SignIn::start(Setup {
        oidc: format!("post_logout_redirect_uri = \"{bye}\""),
        ..Setup::default()
    })
    .await;
    assert!(s
        .idp
        .register_redirect_uris(CLIENT_ID, &[], &[bye.to_owned()]));
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let out = b.click(&s.url("/.auth/logout")).await;
    assert_eq!(out.status, 302);
    let to_entra = out.location().unwrap();
    let sent = to_entra
        .query_pairs()
        .find(|(k, _)| k == "post_logout_redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(sent.as_deref(), Some(bye));
    // Entra accepts it for this app and sends the browser there.
    let at_entra = b.get(to_entra.as_str()).await;
    assert_eq!(at_entra.status, 302, "{}", at_entra.body);
    assert!(at_entra.location().unwrap().as_str().starts_with(bye));
    let logouts = s.idp.logouts();
    assert_eq!(
        logouts.last().unwrap().post_logout_redirect_uri.as_deref(),
        Some(bye)
    );
    assert_eq!(
        logouts.last().unwrap().client_id.as_deref(),
        Some(CLIENT_ID)
    );
}
