//! The stand-in over real sockets: each test starts one on 127.0.0.1:0 and drives it with
//! reqwest (redirects off), the way the proxy and a browser would.

mod apps;
mod assertions;
mod claims;
mod clients;
mod discovery;
mod flow;
mod graph;
mod managed_identity;
mod pkce;
mod redirects;
mod refresh;
mod step_up;
mod tenants;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{StandIn, StandInConfig, TestClient, TestUser};

pub(super) const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// Needs form-encoding for `client_secret_basic` (RFC 6749 §2.3.1).
pub(super) const SECRET: &str = "s3cr~et+/=:%";
pub(super) const PUBLIC_CLIENT: &str = "0f6f1c5e-8c4b-4c5e-9d0a-2c1b7b9d3f10";
/// Registered for the public client; any port matches (a native app's loopback listener).
pub(super) const PUBLIC_REDIRECT: &str = "http://localhost/cb";
/// A second confidential client, registered with `REDIRECT` but no post-logout URI.
pub(super) const OTHER_CLIENT: &str = "2b9c1a47-3d5e-4f60-8a71-92b3c4d5e6f7";
pub(super) const OTHER_SECRET: &str = "other-secret";
pub(super) const REDIRECT: &str = "https://app.example/oauth2/callback";
/// Also registered for `CLIENT`.
pub(super) const REDIRECT_2: &str = "https://app.example/second/callback";
pub(super) const LOGOUT_REDIRECT: &str = "https://app.example/signed-out";
pub(super) const ALICE: &str = "alice@contoso.test";
pub(super) const BOB: &str = "bob@contoso.test";
pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub(super) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub(super) fn config() -> StandInConfig {
    let mut alice = TestUser::new(ALICE, "Alice Archer");
    alice.groups = vec!["g-1".into(), "g-2".into()];
    alice.roles = vec!["Reader".into()];
    StandInConfig {
        users: vec![alice, TestUser::new(BOB, "Bob Baker")],
        clients: vec![
            TestClient {
                post_logout_redirect_uris: vec![LOGOUT_REDIRECT.into()],
                ..TestClient::new(CLIENT, Some(SECRET)).with_redirect_uris(&[REDIRECT, REDIRECT_2])
            },
            TestClient::new(PUBLIC_CLIENT, None).with_redirect_uris(&[PUBLIC_REDIRECT]),
            TestClient::new(OTHER_CLIENT, Some(OTHER_SECRET)).with_redirect_uris(&[REDIRECT]),
        ],
        default_user: Some(ALICE.into()),
        ..StandInConfig::default()
    }
}

pub(super) async fn start(config: StandInConfig) -> StandIn {
    StandIn::start(config).await.unwrap()
}

pub(super) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(super) async fn get_json(url: &str) -> (StatusCode, Value) {
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

/// The standard authorize parameters for the confidential client, PKCE S256, plus `extra`
/// (which replace same-named ones).
pub(super) fn authorize_params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let challenge = challenge(VERIFIER);
    let mut p: Vec<(String, String)> = [
        ("client_id", CLIENT),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email offline_access"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        p.push((k.to_string(), v.to_string()));
    }
    p
}

pub(super) async fn authorize(si: &StandIn, extra: &[(&str, &str)]) -> reqwest::Response {
    let url = format!("{}/{}/oauth2/v2.0/authorize", si.base_url(), si.tenant_id());
    let url = reqwest::Url::parse_with_params(&url, authorize_params(extra)).unwrap();
    http().get(url).send().await.unwrap()
}

/// The query parameters of a redirect's `Location`.
pub(super) fn location_params(resp: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(resp.status(), StatusCode::FOUND, "expected a redirect");
    let location = resp.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Signs in (default user unless `extra` says otherwise) and returns the code.
pub(super) async fn code(si: &StandIn, extra: &[(&str, &str)]) -> String {
    let resp = authorize(si, extra).await;
    let params = location_params(&resp);
    param(&params, "code").unwrap().to_owned()
}

/// POSTs `form` to the home tenant's token endpoint.
pub(super) async fn token(si: &StandIn, form: &[(&str, &str)]) -> (StatusCode, Value) {
    token_at(si, si.tenant_id(), form).await
}

/// POSTs `form` to the token endpoint of `tenant` (a tenant segment).
pub(super) async fn token_at(
    si: &StandIn,
    tenant: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", si.base_url());
    let resp = http().post(url).form(form).send().await.unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

/// The AADSTS number of a token-endpoint error body.
pub(super) fn aadsts(body: &Value) -> Option<u64> {
    body["error_codes"][0].as_u64()
}

pub(super) async fn redeem(si: &StandIn, code: &str, verifier: &str) -> (StatusCode, Value) {
    token(
        si,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub(super) async fn refresh(si: &StandIn, refresh_token: &str) -> (StatusCode, Value) {
    token(
        si,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Verifies `jwt` against the stand-in's JWKS (RS256, `aud`, `iss`, `exp`) and returns its
/// claims.
pub(super) async fn verify(si: &StandIn, jwt: &str, aud: &str, iss: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.unwrap();
    let (_, jwks) = get_json(&format!(
        "{}/{}/discovery/v2.0/keys",
        si.base_url(),
        si.tenant_id()
    ))
    .await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's kid is published");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[iss]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims
}

/// The claims of `jwt`, unverified.
pub(super) fn peek(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims(jwt).unwrap()
}
