//! Signed identity assertions (`assertion = true`): the upstream receives an ES256 JWT that an
//! independent library (Python's PyJWT) verifies against the key set Portcullis serves, and
//! replicas on one Redis sign with the same shared key.

use std::process::Command;

use crate::support::redis::RedisServer;
use crate::support::seen;
use crate::support::signin::{login_route, Setup, SignIn, HOST};

const ISSUER: &str = "https://portcullis.example.test";
const HEADER: &str = "x-portcullis-assertion";

fn setup(redis: Option<String>) -> Setup {
    Setup {
        routes: format!(
            "{}{}",
            login_route(
                "api",
                HOST,
                "path_prefix = \"/api\"\nassertion = true\nassertion_audience = \"api://orders\""
            ),
            login_route("app", HOST, "assertion = true"),
        ),
        main: format!("[assertion]\nissuer = \"{ISSUER}\"\nlifetime = \"2m\"\n"),
        redis,
        ..Setup::default()
    }
}

/// Verifies `token` with PyJWT against `jwks` for `audience`; the claims, or the error text.
fn pyjwt(token: &str, jwks: &str, audience: &str) -> Result<serde_json::Value, String> {
    let script = r#"
import json, sys, jwt
token, jwks, aud, iss = sys.argv[1:5]
keys = {k["kid"]: jwt.PyJWK(k) for k in json.loads(jwks)["keys"]}
kid = jwt.get_unverified_header(token)["kid"]
claims = jwt.decode(token, keys[kid].key, algorithms=["ES256"], audience=aud, issuer=iss,
                    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
print(json.dumps(claims))
"#;
    let out = Command::new("python3")
        .args(["-c", script, token, jwks, audience, ISSUER])
        .output()
        .expect("python3 runs (CI installs python3-jwt)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_upstream_gets_an_assertion_an_independent_library_verifies() {
    let s = SignIn::start(setup(None)).await;
    let mut b = s.browser();
    let hops = b.navigate(&s.url("/page")).await;
    assert_eq!(hops.last().unwrap().status, 200);
    // A client's own copy never reaches the upstream.
    b.extra_headers.insert(HEADER, "forged".parse().unwrap());
    let echo = b.get(&s.url("/page")).await.json();
    let tokens = seen(&echo, HEADER);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_ne!(tokens[0], "forged");

    let jwks = s
        .proxy
        .client(&[HOST])
        .get(s.url("/.well-known/portcullis/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
    let jwks = jwks.text().await.unwrap();
    assert!(!jwks.contains("\"d\""), "no private key material: {jwks}");

    let claims = pyjwt(&tokens[0], &jwks, HOST).unwrap();
    let oid = s.idp.user("alice@contoso.example").unwrap().oid;
    assert_eq!(claims["oid"], oid);
    assert_eq!(claims["sub"], oid);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["email"], "alice@contoso.example");
    assert!(claims["groups"].as_array().is_some_and(|g| !g.is_empty()));
    let life = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(life, 120);
    // The audience is the route's: one for another audience fails verification.
    assert!(pyjwt(&tokens[0], &jwks, "api://orders").is_err());
    let api = b.get(&s.url("/api/x")).await.json();
    let api_token = &seen(&api, HEADER)[0];
    assert_eq!(
        pyjwt(api_token, &jwks, "api://orders").unwrap()["aud"],
        "api://orders"
    );
    // A tampered token fails.
    let mut forged = api_token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    assert!(pyjwt(&forged, &jwks, "api://orders").is_err());

    // The admin listener serves the same key set.
    let admin = reqwest::get(format!(
        "http://{}/.well-known/portcullis/jwks.json",
        s.proxy.admin
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(admin, jwks);
}

#[tokio::test]
async fn replicas_on_one_redis_sign_with_the_same_shared_key() {
    let redis = RedisServer::start();
    let s = SignIn::start(setup(Some(redis.url()))).await;
    let replica = s.replica().await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    let one = seen(&b.get(&s.url("/")).await.json(), HEADER)[0].clone();
    let mut other = s.browser_at(&replica, &b);
    let two = seen(&other.get(&replica.url(HOST, "/")).await.json(), HEADER)[0].clone();
    let kid = |t: &str| {
        let header = t.split('.').next().unwrap();
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap();
        serde_json::from_slice::<serde_json::Value>(&json).unwrap()["kid"].clone()
    };
    assert_eq!(kid(&one), kid(&two));
    let jwks = reqwest::get(format!(
        "http://{}/.well-known/portcullis/jwks.json",
        replica.admin
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(pyjwt(&one, &jwks, HOST).is_ok());
    // The keys are stored sealed: no private key in Redis in the clear.
    let keys = redis.keys("pc-test:assertion-keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let raw = redis.command(&format!("GET {}", keys[0]));
    assert!(!raw.contains("\"d\""), "{raw}");
}
