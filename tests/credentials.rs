//! Secretless client credentials against the stand-in: a certificate (`private_key_jwt`,
//! PS256 with `x5t#S256`, one assertion reused for most of its life) and a federated token
//! file (workload identity), re-read on rotation.

use std::time::Duration;

use entra_standin::{AssertionKey, TestClient};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::support::signin::{Setup, SignIn, CLIENT_ID};

struct Rsa {
    private_pem: String,
    public_pem: String,
}

fn rsa_key() -> Rsa {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    Rsa {
        private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

/// A self-signed certificate for `key`, as an app registration's certificate credential.
fn certificate(key: &Rsa) -> String {
    let kp =
        rcgen::KeyPair::from_pem_and_sign_algo(&key.private_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    rcgen::CertificateParams::new(vec!["portcullis.example".to_owned()])
        .unwrap()
        .self_signed(&kp)
        .unwrap()
        .pem()
}

fn client(keys: Vec<AssertionKey>) -> TestClient {
    TestClient {
        assertion_keys: keys,
        ..TestClient::new(CLIENT_ID, None)
    }
}

/// Signs in with a fresh browser; the status of the last hop.
async fn sign_in(s: &SignIn) -> u16 {
    let mut b = s.browser();
    b.navigate(&s.url("/"))
        .await
        .last()
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test]
async fn a_certificate_credential_signs_in_and_refreshes() {
    let key = rsa_key();
    let cert = certificate(&key);
    let s = SignIn::start(Setup {
        client: Some(client(vec![AssertionKey::Certificate {
            cert_pem: cert.clone(),
            public_key_pem: key.public_pem.clone(),
        }])),
        credential: Some(
            "client_certificate_file = \"client.crt\"\nclient_key_file = \"client.key\"".into(),
        ),
        files: vec![
            ("client.crt".into(), cert),
            ("client.key".into(), key.private_pem.clone()),
        ],
        // Due for renewal 3 s after issue at the latest, not within the first 2 s.
        access_token_lifetime: Duration::from_secs(10),
        session: "refresh_before = \"7s\"".into(),
        ..Setup::default()
    })
    .await;
    let mut b = s.browser();
    assert_eq!(b.navigate(&s.url("/")).await.last().unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(b.api(&s.url("/after-refresh")).await.status, 200);
    let calls = s.idp.token_calls();
    assert_eq!(
        (calls.authorization_code, calls.refresh_token, calls.failed),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_certificate_assertion_is_signed_once_and_reused_until_the_files_change() {
    let (key, next) = (rsa_key(), rsa_key());
    let (cert, next_cert) = (certificate(&key), certificate(&next));
    let s = SignIn::start(Setup {
        client: Some(client(vec![
            AssertionKey::Certificate {
                cert_pem: cert.clone(),
                public_key_pem: key.public_pem.clone(),
            },
            AssertionKey::Certificate {
                cert_pem: next_cert.clone(),
                public_key_pem: next.public_pem.clone(),
            },
        ])),
        credential: Some(
            "client_certificate_file = \"client.crt\"\nclient_key_file = \"client.key\"".into(),
        ),
        files: vec![
            ("client.crt".into(), cert),
            ("client.key".into(), key.private_pem.clone()),
        ],
        ..Setup::default()
    })
    .await;
    // Two sign-ins, two token requests, one signature: Entra accepts an assertion until it
    // expires.
    assert_eq!(sign_in(&s).await, 200);
    assert_eq!(sign_in(&s).await, 200);
    assert_eq!(s.idp.token_calls().authorization_code, 2);
    assert_eq!(s.idp.distinct_assertions(CLIENT_ID), 1);
    // cert-manager rotates the certificate in place: the next request signs with the new one.
    std::fs::write(s.dir().join("client.crt"), next_cert).unwrap();
    std::fs::write(s.dir().join("client.key"), next.private_pem.clone()).unwrap();
    assert_eq!(sign_in(&s).await, 200);
    assert_eq!(s.idp.distinct_assertions(CLIENT_ID), 2);
}

#[tokio::test]
async fn a_certificate_the_app_does_not_know_is_refused_without_500() {
    let registered = rsa_key();
    let other = rsa_key();
    let s = SignIn::start(Setup {
        client: Some(client(vec![AssertionKey::Certificate {
            cert_pem: certificate(&registered),
            public_key_pem: registered.public_pem.clone(),
        }])),
        credential: Some(
            "client_certificate_file = \"client.crt\"\nclient_key_file = \"client.key\"".into(),
        ),
        files: vec![
            ("client.crt".into(), certificate(&other)),
            ("client.key".into(), other.private_pem.clone()),
        ],
        ..Setup::default()
    })
    .await;
    // The stand-in answers invalid_client: a configuration fault, shown as 502, never 500.
    assert_eq!(sign_in(&s).await, 502);
    assert_eq!(s.idp.token_calls().failed, 1);
}

#[tokio::test]
async fn a_federated_token_file_is_sent_as_the_assertion_and_reread_when_it_rotates() {
    let cluster = rsa_key();
    let issuer = "https://oidc.prod-aks.example/3f2a1b0c";
    let subject = "system:serviceaccount:portcullis:portcullis";
    let mint = |exp_offset: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = serde_json::json!({
            "iss": issuer, "sub": subject, "aud": ["api://AzureADTokenExchange"],
            "iat": now - 60, "nbf": now - 60, "exp": now + exp_offset,
        });
        // jsonwebtoken's PEM reader is not compiled in here: go through PKCS#1 DER.
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(&cluster.private_pem).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_der(k.to_pkcs1_der().unwrap().as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let s = SignIn::start(Setup {
        client: Some(client(vec![AssertionKey::Federated {
            issuer: issuer.into(),
            subject: subject.into(),
            public_key_pem: cluster.public_pem.clone(),
        }])),
        credential: Some("client_assertion_file = \"azure-identity-token\"".into()),
        files: vec![("azure-identity-token".into(), mint(3600))],
        ..Setup::default()
    })
    .await;
    assert_eq!(sign_in(&s).await, 200);
    // The kubelet replaces the projected token; an expired one is refused...
    let file = s.dir().join("azure-identity-token");
    std::fs::write(&file, mint(-600)).unwrap();
    assert_eq!(sign_in(&s).await, 502);
    // ...and the next rotation is picked up without a restart.
    std::fs::write(&file, mint(3600)).unwrap();
    assert_eq!(sign_in(&s).await, 200);
}
