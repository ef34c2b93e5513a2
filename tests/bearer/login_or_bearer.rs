//! `auth = "login_or_bearer"`: a browser session, or a bearer token, never both.

use serde_json::json;

use super::*;

/// A `[[route]]` with `auth = "login_or_bearer"` on `path_prefix`, plus `extra` lines.
fn both_route(name: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nhost = \"{HOST}\"\npath_prefix = \"{prefix}\"\nupstream = \"{{upstream}}\"\nauth = \"login_or_bearer\"\n{extra}\n"
    )
}

#[tokio::test]
async fn login_or_bearer_takes_a_browser_session_or_a_bearer_token() {
    let s = SignIn::start(setup(both_route("both", "/", ""))).await;
    // A browser is sent to sign in, and comes back with a session.
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/page")).await;
    assert_eq!(hops[0].status, 302, "{}", hops[0].body);
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(
        seen(&last.json(), "x-auth-request-user"),
        ["alice@contoso.example"]
    );

    // An API client with nothing gets the sign-in 401.
    let r = call(&s, "/page", None).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Portcullis "), "{challenge}");

    // With a token, the token decides who it is.
    let daemon = app_token(&s, DAEMON).await;
    let r = call(&s, "/page", Some(&daemon)).await;
    assert_eq!(r.status(), 200);
    let echo = crate::support::echo_json(r).await;
    let sp = entra_standin::service_principal_id(DAEMON);
    assert_eq!(seen(&echo, "x-auth-request-oid"), [sp.as_str()]);
    // ...and is held to the bearer rules.
    let bare = app_token(&s, BARE).await;
    assert_invalid_token(&call(&s, "/page", Some(&bare)).await, "no roles");
}

#[tokio::test]
async fn a_bad_bearer_token_never_falls_back_to_the_session() {
    let s = SignIn::start(setup(both_route("both", "/", ""))).await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    assert!(
        b.cookie(HOST, "__Host-portcullis").is_some(),
        "holds a session"
    );

    let real = user_token(&s, CALLER, "alice@contoso.example", &["Files.Read"]).await;
    let expired = s.idp.mint_token(
        with(
            claims_of(&real),
            json!({"exp": 1_000_000_000, "nbf": 999_999_000, "iat": 999_999_000}),
        ),
        None,
    );
    for (what, value) in [
        ("garbage", "Bearer not-a-token".to_owned()),
        ("empty", "Bearer".to_owned()),
        ("expired", format!("Bearer {expired}")),
        ("lower-case scheme", "bearer not-a-token".to_owned()),
    ] {
        b.extra_headers
            .insert("authorization", value.parse().unwrap());
        let api = b.api(&s.url("/x")).await;
        assert_eq!(api.status, 401, "{what}: {}", api.body);
        let challenge = api.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        // Not a navigation to sign in either: the token was the credential, and it failed.
        let page = b.get(&s.url("/x")).await;
        assert_eq!(page.status, 401, "{what}");
    }
    b.extra_headers.clear();
    assert_eq!(
        b.api(&s.url("/x")).await.status,
        200,
        "the session itself is fine"
    );
}

#[tokio::test]
async fn login_or_bearer_passes_on_the_token_it_judged() {
    let s = SignIn::start(setup(both_route("both", "/", "pass_access_token = true"))).await;
    // A token: the upstream receives that very token.
    let token = user_token(&s, CALLER, "alice@contoso.example", &["Files.Read"]).await;
    let echo = crate::support::echo_json(call(&s, "/x", Some(&token)).await).await;
    assert_eq!(seen(&echo, "authorization"), [format!("Bearer {token}")]);

    // A session: the session's access token, never an Authorization the client sent.
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    b.extra_headers
        .insert("authorization", "Basic YWRtaW46YWRtaW4=".parse().unwrap());
    let hop = b.api(&s.url("/x")).await;
    assert_eq!(hop.status, 200, "{}", hop.body);
    let sent = seen(&hop.json(), "authorization");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let session_token = sent[0].strip_prefix("Bearer ").expect("a bearer token");
    assert_eq!(
        claims_of(session_token)["aud"],
        "00000003-0000-0000-c000-000000000000",
        "the session's Graph token"
    );
}
