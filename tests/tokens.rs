//! Token validation from outside: forged and misdirected ID tokens at the callback, bearer
//! access tokens on API routes, and signing-key rotation.

use base64::Engine;
use entra_standin::StandIn;
use serde_json::{json, Value};

use crate::support::browser::Hop;
use crate::support::seen;
use crate::support::signin::{alice, login_route, Setup, SignIn, CLIENT_ID, HOST};

/// Signs in, with the stand-in's ID token replaced by `forge(stand-in, claims)`; returns the
/// callback's answer.
async fn callback_with(
    s: &SignIn,
    forge: impl FnOnce(&StandIn, Value) -> String + Send + 'static,
) -> Hop {
    let idp = s.idp.clone();
    s.idp
        .rewrite_next_id_token(move |claims| forge(&idp, claims));
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    hops.into_iter()
        .find(|h| h.url.path() == "/.auth/callback")
        .expect("reached the callback")
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn with(mut claims: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

#[tokio::test]
async fn an_untouched_rewrite_still_signs_in() {
    // The control itself: re-signing the real claims is accepted.
    let s = SignIn::start(Setup::default()).await;
    let hop = callback_with(&s, |idp, c| idp.mint_token(c, None)).await;
    assert_eq!(hop.status, 302, "{}", hop.body);
}

#[tokio::test]
async fn id_tokens_with_wrong_claims_are_refused() {
    let s = SignIn::start(Setup::default()).await;
    let other_tenant = "00000000-0000-0000-0000-00000000beef";
    let cases: Vec<(&str, Value, u16)> = vec![
        ("wrong nonce", json!({"nonce": "not-the-one-we-sent"}), 401),
        ("no nonce", json!({"nonce": null}), 401),
        (
            "wrong audience",
            json!({"aud": "00000000-0000-0000-0000-000000000001"}),
            401,
        ),
        (
            "wrong issuer",
            json!({"iss": "https://login.evil.example/x/v2.0"}),
            401,
        ),
        (
            "expired",
            json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200}),
            401,
        ),
        ("not yet valid", json!({"nbf": now() + 3600}), 401),
        ("issued in the future", json!({"iat": now() + 3600}), 401),
        // A token from another tenant, with an issuer that matches its own tid: a single-
        // tenant authority has one issuer.
        (
            "other tenant",
            json!({"tid": other_tenant, "iss": format!("{}/{other_tenant}/v2.0", s.idp.base_url())}),
            401,
        ),
        ("tid not matching iss", json!({"tid": other_tenant}), 401),
    ];
    for (what, patch, status) in cases {
        let hop = callback_with(&s, move |idp, c| idp.mint_token(with(c, patch), None)).await;
        assert_eq!(hop.status, status, "{what}: {}", hop.body);
        assert!(hop.body.contains("Request ID"), "{what}: friendly page");
        assert!(
            !hop.set_cookies()
                .iter()
                .any(|c| c.starts_with("__Host-portcullis=")),
            "{what}: no session cookie"
        );
    }
}

#[tokio::test]
async fn alg_none_and_hs256_with_the_public_key_are_refused() {
    let s = SignIn::start(Setup::default()).await;
    let none = callback_with(&s, |idp, c| {
        let header = json!({"alg": "none", "typ": "JWT", "kid": idp.current_kid()});
        format!("{}.{}.", b64(&header), b64(&c))
    })
    .await;
    assert_eq!(none.status, 401, "{}", none.body);

    // The classic key-confusion attack: HMAC keyed with the RSA public key.
    let hs = callback_with(&s, |idp, c| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(idp.current_kid());
        let key = jsonwebtoken::EncodingKey::from_secret(idp.public_key_pem().as_bytes());
        jsonwebtoken::encode(&header, &c, &key).unwrap()
    })
    .await;
    assert_eq!(hs.status, 401, "{}", hs.body);

    // A valid RS256 signature over other claims, with the signature from another token.
    let spliced = callback_with(&s, |idp, c| {
        let real = idp.mint_token(c.clone(), None);
        let other = idp.mint_token(with(c, json!({"oid": "someone-else"})), None);
        let sig = real.rsplit('.').next().unwrap().to_owned();
        let mut parts: Vec<&str> = other.split('.').collect();
        parts[2] = &sig;
        parts.join(".")
    })
    .await;
    assert_eq!(spliced.status, 401, "{}", spliced.body);

    // Not a JWT at all: the token response itself does not parse, so the provider's answer is
    // refused as malformed (502), and no session is made.
    let garbage = callback_with(&s, |_, _| "not.a.jwt".to_owned()).await;
    assert_eq!(garbage.status, 502, "{}", garbage.body);
    assert!(!garbage
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("__Host-portcullis=")));
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_and_rotation_is_followed() {
    let s = SignIn::start(Setup::default()).await;
    let before = s.idp.jwks_fetches();
    // Entra rolls its keys over: new tokens are signed by a key the proxy has not seen.
    s.idp.rotate_keys();
    let hop = callback_with(&s, |idp, c| idp.mint_token(c, None)).await;
    assert_eq!(
        hop.status, 302,
        "a rotated key is fetched and trusted: {}",
        hop.body
    );
    assert_eq!(s.idp.jwks_fetches(), before + 1, "exactly one refetch");

    // A kid the provider does not publish at all: one more refetch would be pointless within
    // the minute, so none happens and the token is refused.
    let forged = callback_with(&s, |idp, c| idp.mint_token(c, Some("made-up-kid"))).await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    let again = callback_with(&s, |idp, c| idp.mint_token(c, Some("another-made-up-kid"))).await;
    assert_eq!(again.status, 401);
    assert_eq!(
        s.idp.jwks_fetches(),
        before + 1,
        "unknown kids are rate-limited"
    );
}

#[tokio::test]
async fn multi_tenant_authority_checks_the_issuer_against_tid_and_the_allow_list() {
    const HOME: &str = "11111111-2222-4333-8444-555555555555";
    const GUEST: &str = "3c2b1a09-8f7e-4d6c-9b5a-0123456789ab";
    let mut guest = crate::support::signin::jose();
    guest.tenant_id = Some(GUEST.into());
    let mut stranger = entra_standin::TestUser::new("eve@fabrikam.example", "Eve");
    stranger.tenant_id = Some("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f".into());
    let s = SignIn::start(Setup {
        users: vec![alice(), guest, stranger],
        tenant_id: Some(HOME.into()),
        tenant: Some("organizations".into()),
        oidc: format!("allowed_tenants = [\"{HOME}\", \"{GUEST}\"]"),
        ..Setup::default()
    })
    .await;
    let login_as = |user: &str| {
        let hint: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
        s.url(&format!("/.auth/login?rd=%2F&login_hint={hint}"))
    };
    for (user, tid) in [
        ("alice@contoso.example", HOME),
        ("jose@contoso.example", GUEST),
    ] {
        let mut b = s.browser();
        let hops = b.navigate(&login_as(user)).await;
        let last = hops.last().unwrap();
        assert_eq!(last.status, 200, "{user}: {}", last.body);
        assert_eq!(seen(&last.json(), "x-auth-request-tid"), [tid]);
    }
    let mut b = s.browser();
    let hops = b.navigate(&login_as("eve@fabrikam.example")).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 403, "a tenant not on the list: {}", last.body);
    assert!(last.body.contains("organization"), "{}", last.body);

    // A guest-tenant token carrying the home tenant's issuer: iss must be the template with
    // the token's own tid.
    let home_iss = format!("{}/{HOME}/v2.0", s.idp.base_url());
    s.idp.rewrite_next_id_token({
        let idp = s.idp.clone();
        move |c| idp.mint_token(with(c, json!({"tid": GUEST, "iss": home_iss})), None)
    });
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/")).await;
    assert_eq!(hops.last().unwrap().status, 401);
}

#[tokio::test]
async fn bearer_routes_accept_access_tokens_for_this_app_only() {
    // `/items` takes bearer tokens; `/` signs browsers in, so a test can hold a real session
    // cookie and offer it to the bearer route.
    let routes = format!(
        "[[route]]\nname = \"api\"\nhost = \"{HOST}\"\npath_prefix = \"/items\"\nupstream = \"{{upstream}}\"\nauth = \"bearer\"\nallowed_roles = [\"Wiki.Read\"]\n{}",
        login_route("app", HOST, "")
    );
    let s = SignIn::start(Setup {
        routes,
        ..Setup::default()
    })
    .await;
    let user = s.idp.user("alice@contoso.example").unwrap();
    let base = |aud: &str| {
        json!({
            "aud": aud, "iss": s.idp.issuer(), "tid": s.idp.tenant_id(), "oid": user.oid,
            "iat": now(), "nbf": now(), "exp": now() + 600, "ver": "2.0", "scp": "access_as_user",
            "azp": CLIENT_ID, "roles": ["Wiki.Read"], "preferred_username": user.username,
        })
    };
    let client = s.proxy.client(&[HOST]);
    let call = |token: Option<String>| {
        let mut r = client
            .get(s.url("/items"))
            .header("accept", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    let ok = call(Some(s.idp.mint_token(base(CLIENT_ID), None)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echo = crate::support::echo_json(ok).await;
    assert_eq!(seen(&echo, "x-auth-request-oid"), [user.oid.as_str()]);
    let api_uri = format!("api://{CLIENT_ID}");
    let ok = call(Some(s.idp.mint_token(base(&api_uri), None)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let missing = call(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );

    for (what, claims) in [
        ("Graph token", base("00000003-0000-0000-c000-000000000000")),
        (
            "expired",
            with(base(CLIENT_ID), json!({"exp": now() - 900})),
        ),
        (
            "other issuer",
            with(
                base(CLIENT_ID),
                json!({"iss": "https://sts.windows.net/x/"}),
            ),
        ),
    ] {
        let r = call(Some(s.idp.mint_token(claims, None))).await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // Valid token, but the route's policy wants a role the user lacks.
    let no_role = with(base(CLIENT_ID), json!({"roles": ["Other"]}));
    let r = call(Some(s.idp.mint_token(no_role, None))).await.unwrap();
    assert_eq!(r.status(), 403);

    // A session cookie is no substitute on a bearer route.
    let mut b = s.browser();
    let signed_in = b.navigate(&s.url("/")).await;
    assert_eq!(
        signed_in.last().unwrap().status,
        200,
        "signed in through `/`"
    );
    assert!(
        b.cookie(HOST, "__Host-portcullis").is_some(),
        "holds a session"
    );
    let with_cookie = b.api(&s.url("/items")).await;
    assert_eq!(with_cookie.status, 401, "{}", with_cookie.body);
}

#[tokio::test]
async fn clock_skew_bounds_a_bearer_tokens_times_and_custom_audiences_replace_the_defaults() {
    let routes = format!(
        "[[route]]\nname = \"api\"\nhost = \"{HOST}\"\nupstream = \"{{upstream}}\"\nauth = \"bearer\"\n"
    );
    let s = SignIn::start(Setup {
        routes,
        oidc: "clock_skew = \"60s\"\naudiences = [\"api://wiki.contoso.example\"]".into(),
        ..Setup::default()
    })
    .await;
    let user = s.idp.user("alice@contoso.example").unwrap();
    let token = |aud: &str, patch: Value| {
        let claims = json!({
            "aud": aud, "iss": s.idp.issuer(), "tid": s.idp.tenant_id(), "oid": user.oid,
            "iat": now(), "nbf": now(), "exp": now() + 600, "ver": "2.0", "scp": "access_as_user",
            "azp": CLIENT_ID,
        });
        s.idp.mint_token(with(claims, patch), None)
    };
    let client = s.proxy.client(&[HOST]);
    let status = |t: String| {
        let r = client.get(s.url("/x")).bearer_auth(t).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    let aud = "api://wiki.contoso.example";
    assert_eq!(status(token(aud, json!({}))).await, 200);
    // The defaults (the client ID and api://<client ID>) are replaced, not extended.
    assert_eq!(status(token(CLIENT_ID, json!({}))).await, 401);
    // Within the 60 s skew: expired 30 s ago, valid from 30 s ahead, issued 30 s ahead.
    for (what, patch) in [
        ("expired 30 s ago", json!({"exp": now() - 30})),
        ("not before 30 s ahead", json!({"nbf": now() + 30})),
        (
            "issued 30 s ahead",
            json!({"iat": now() + 30, "nbf": now()}),
        ),
    ] {
        assert_eq!(status(token(aud, patch)).await, 200, "{what}");
    }
    // Beyond it.
    for (what, patch) in [
        ("expired 120 s ago", json!({"exp": now() - 120})),
        ("not before 120 s ahead", json!({"nbf": now() + 120})),
        (
            "issued 120 s ahead",
            json!({"iat": now() + 120, "nbf": now()}),
        ),
    ] {
        assert_eq!(status(token(aud, patch)).await, 401, "{what}");
    }
}
