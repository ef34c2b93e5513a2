//! `private_key_jwt` certificate assertions: the header forms accepted, reuse within the
//! lifetime, and the longest lifetime.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rustls_pki_types::pem::PemObject;
use serde_json::json;

use super::*;
use crate::assertion::{LEEWAY, MAX_LIFETIME};
use crate::state::now;
use crate::AssertionKey;

const CERT_CLIENT: &str = "8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968";

struct Credential {
    /// PKCS#1 DER, as `EncodingKey::from_rsa_der` takes it.
    private_der: Vec<u8>,
    public_pem: String,
    cert_pem: String,
}

/// One RSA key and self-signed certificate for every test (generating RSA keys is slow).
fn credential() -> &'static Credential {
    static CREDENTIAL: OnceLock<Credential> = OnceLock::new();
    CREDENTIAL.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let kp =
            rcgen::KeyPair::from_pem_and_sign_algo(&private_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert_pem = rcgen::CertificateParams::new(vec!["app.example".to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap()
            .pem();
        Credential {
            private_der: key.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            public_pem: key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            cert_pem,
        }
    })
}

fn der() -> Vec<u8> {
    rustls_pki_types::CertificateDer::from_pem_slice(credential().cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn x5t_s256() -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der()))
}

fn x5t() -> String {
    use sha1::Digest;
    URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der()))
}

fn cert_config() -> StandInConfig {
    let mut cfg = config();
    let c = credential();
    cfg.clients.push(TestClient {
        assertion_keys: vec![AssertionKey::Certificate {
            cert_pem: c.cert_pem.clone(),
            public_key_pem: c.public_pem.clone(),
        }],
        ..TestClient::new(CERT_CLIENT, None).with_redirect_uris(&[REDIRECT])
    });
    cfg
}

/// Claims for `si`'s token endpoint, valid from now for `lifetime` seconds.
fn claims(si: &StandIn, jti: &str, lifetime: u64) -> serde_json::Value {
    let now = now();
    json!({
        "aud": format!("{}/{}/oauth2/v2.0/token", si.base_url(), si.tenant_id()),
        "iss": CERT_CLIENT,
        "sub": CERT_CLIENT,
        "jti": jti,
        "nbf": now,
        "iat": now,
        "exp": now + lifetime,
    })
}

fn sign(header: Header, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_der(&credential().private_der);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// PS256 with `x5t#S256`: the form the certificate-credentials page documents.
fn ps256(claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::PS256);
    h.x5t_s256 = Some(x5t_s256());
    sign(h, claims)
}

/// Redeems a fresh code for the certificate client with `assertion`.
async fn redeem_with(si: &StandIn, assertion: &str) -> (StatusCode, serde_json::Value) {
    let code = code(si, &[("client_id", CERT_CLIENT)]).await;
    token(
        si,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CERT_CLIENT),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

fn refused_with(status: StatusCode, body: &serde_json::Value) -> Option<u64> {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    aadsts(body)
}

#[tokio::test]
async fn ps256_with_x5t_s256_and_rs256_with_x5t_are_accepted() {
    let si = start(cert_config()).await;
    let (status, body) = redeem_with(&si, &ps256(&claims(&si, "a-1", MAX_LIFETIME))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // `2`: the client proved a certificate (`1` is a secret).
    assert_eq!(
        peek(body["access_token"].as_str().unwrap())["appidacr"],
        "2"
    );
    let mut older = Header::new(Algorithm::RS256);
    older.x5t = Some(x5t());
    let (status, body) = redeem_with(&si, &sign(older, &claims(&si, "a-2", 300))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_rs256_assertion_naming_its_certificate_by_x5t_s256_is_refused() {
    let si = start(cert_config()).await;
    let mut mixed = Header::new(Algorithm::RS256);
    mixed.x5t_s256 = Some(x5t_s256());
    let (status, body) = redeem_with(&si, &sign(mixed, &claims(&si, "b-1", 300))).await;
    assert_eq!(refused_with(status, &body), Some(700027));
    // PS256 naming it by the SHA-1 thumbprint mixes the forms the other way round.
    let mut mixed = Header::new(Algorithm::PS256);
    mixed.x5t = Some(x5t());
    let (status, body) = redeem_with(&si, &sign(mixed, &claims(&si, "b-2", 300))).await;
    assert_eq!(refused_with(status, &body), Some(700027));
}

#[tokio::test]
async fn an_assertion_is_accepted_again_until_it_expires() {
    // Entra lets an assertion "be used until" its `exp` (certificate-credentials), and MSAL
    // reuses one for most of its life: a client need not sign one per token request.
    let si = start(cert_config()).await;
    let assertion = ps256(&claims(&si, "c-1", 300));
    assert_eq!(redeem_with(&si, &assertion).await.0, StatusCode::OK);
    let (status, body) = redeem_with(&si, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(si.distinct_assertions(CERT_CLIENT), 1);
    assert_eq!(
        redeem_with(&si, &ps256(&claims(&si, "c-2", 300))).await.0,
        StatusCode::OK
    );
    assert_eq!(si.distinct_assertions(CERT_CLIENT), 2);
    // Past its `exp` (and the leeway) it is refused like any expired assertion.
    let mut old = claims(&si, "c-3", 300);
    old["nbf"] = json!(now() - 1000);
    old["iat"] = json!(now() - 1000);
    old["exp"] = json!(now() - LEEWAY - 1);
    let (status, body) = redeem_with(&si, &ps256(&old)).await;
    assert_eq!(refused_with(status, &body), Some(700024));
}

#[tokio::test]
async fn an_assertion_living_longer_than_ten_minutes_and_the_leeway_is_refused() {
    let si = start(cert_config()).await;
    let too_long = claims(&si, "d-1", MAX_LIFETIME + LEEWAY + 1);
    let (status, body) = redeem_with(&si, &ps256(&too_long)).await;
    assert_eq!(refused_with(status, &body), Some(700024));
    // Without `nbf` the lifetime counts from `iat`; without either it is unbounded.
    let mut from_iat = claims(&si, "d-2", MAX_LIFETIME + LEEWAY + 1);
    from_iat.as_object_mut().unwrap().remove("nbf");
    let (status, body) = redeem_with(&si, &ps256(&from_iat)).await;
    assert_eq!(refused_with(status, &body), Some(700024));
    from_iat.as_object_mut().unwrap().remove("iat");
    let (status, body) = redeem_with(&si, &ps256(&from_iat)).await;
    assert_eq!(refused_with(status, &body), Some(700024));
    let (status, body) = redeem_with(&si, &ps256(&claims(&si, "d-3", MAX_LIFETIME + LEEWAY))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
