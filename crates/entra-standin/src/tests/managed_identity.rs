//! Managed identities: IMDS and App Service's identity endpoint, the client-credentials grant
//! for Azure's Redis, and a managed identity's token as a federated client assertion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::*;
use crate::{service_principal_id, IssuedResourceToken};

const OID: &str = "4b0f3c2e-7d51-4a8e-9b0a-2c6e1f9d3a57";
const UAMI: &str = "a3c1e5f7-1b2d-4e6f-8a9b-0c1d2e3f4a5b";
const UAMI_OID: &str = "9e8d7c6b-5a49-4382-a716-05f4e3d2c1b0";
const REDIS: &str = "https://redis.azure.com";

async fn imds(
    url: &str,
    query: &[(&str, &str)],
    header: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut req = http().get(url).query(query);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn imds_issues_tokens_shaped_as_imds_does_for_each_identity() {
    let si = start(config()).await;
    si.add_managed_identity(None, OID);
    si.add_managed_identity(Some(UAMI), UAMI_OID);
    si.set_resource_token_lifetime(Duration::from_secs(4));
    let seen = Arc::new(Mutex::new(Vec::<IssuedResourceToken>::new()));
    let sink = seen.clone();
    si.set_token_hook(Arc::new(move |t| {
        let sink = sink.clone();
        Box::pin(async move { sink.lock().unwrap().push(t) })
    }));
    let url = si.imds_endpoint();
    assert!(url.starts_with("http://"), "{url}");
    let q = [("api-version", "2018-02-01"), ("resource", REDIS)];
    let (status, body) = imds(&url, &q, Some(("Metadata", "true"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], "4");
    assert!(body["expires_on"].as_str().unwrap().parse::<u64>().is_ok());
    let token = body["access_token"].as_str().unwrap();
    let claims = verify(&si, token, REDIS, &si.v1_issuer(si.tenant_id())).await;
    assert_eq!(claims["oid"], OID);
    assert_eq!(claims["tid"], si.tenant_id());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        4
    );
    let hooked = seen.lock().unwrap().clone();
    assert_eq!(hooked.len(), 1);
    assert_eq!(
        (hooked[0].oid.as_str(), hooked[0].token.as_str()),
        (OID, token)
    );
    // The user-assigned identity, by client ID.
    let q = [
        ("api-version", "2018-02-01"),
        ("resource", REDIS),
        ("client_id", UAMI),
    ];
    let (_, body) = imds(&url, &q, Some(("Metadata", "true"))).await;
    assert_eq!(
        peek(body["access_token"].as_str().unwrap())["oid"],
        UAMI_OID
    );
    // Errors as IMDS writes them.
    let unknown = [
        ("api-version", "2018-02-01"),
        ("resource", REDIS),
        ("client_id", OID),
    ];
    for (query, header, says) in [
        (&q[..], None, "metadata header"),
        (&q[..2], Some(("Metadata", "false")), "metadata header"),
        (&q[1..2], Some(("Metadata", "true")), "api-version"),
        (&q[..1], Some(("Metadata", "true")), "audience"),
        (
            &unknown[..],
            Some(("Metadata", "true")),
            "Identity not found",
        ),
    ] {
        let (status, body) = imds(&url, query, header).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    assert_eq!(si.resource_tokens_issued(), 2);
}

#[tokio::test]
async fn app_service_wants_its_identity_header() {
    let si = start(config()).await;
    si.add_managed_identity(None, OID);
    let (url, secret) = si.app_service_identity();
    let q = [("api-version", "2019-08-01"), ("resource", REDIS)];
    let (status, body) = imds(&url, &q, Some(("X-IDENTITY-HEADER", &secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(peek(body["access_token"].as_str().unwrap())["aud"], REDIS);
    let (status, _) = imds(&url, &q, Some(("X-IDENTITY-HEADER", "guess"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_client_credentials_grant_issues_redis_tokens_to_the_apps_service_principal() {
    let si = start(config()).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        ("scope", "https://redis.azure.com/.default"),
    ];
    let (status, body) = token(&si, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["expires_in"].is_u64());
    let claims = peek(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], REDIS);
    assert_eq!(claims["oid"], service_principal_id(CLIENT));
}

#[tokio::test]
async fn a_managed_identity_token_is_a_federated_assertion_only_for_its_subject() {
    let si = start(config()).await;
    si.add_managed_identity(None, OID);
    assert!(si.add_federated_credential(PUBLIC_CLIENT, OID));
    let exchange = [
        ("api-version", "2018-02-01"),
        ("resource", "api://AzureADTokenExchange"),
    ];
    let (_, body) = imds(&si.imds_endpoint(), &exchange, Some(("Metadata", "true"))).await;
    let assertion = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(peek(&assertion)["iss"], si.issuer());
    let grant = |client: &'static str| {
        let assertion = assertion.clone();
        let si = si.clone();
        async move {
            token(
                &si,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await
        }
    };
    let (status, body) = grant(PUBLIC_CLIENT).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another subject: AADSTS70021.
    assert!(si.add_federated_credential(OTHER_CLIENT, UAMI_OID));
    let (status, body) = grant(OTHER_CLIENT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(aadsts(&body), Some(70021));
}
