use entra_standin::{service_principal_id, StandIn, StandInConfig, TestClient};

use super::*;
use crate::store::redis_entra::REDIS_RESOURCE;

const CLIENT: &str = "3e1f0a2b-4c5d-4e6f-8a7b-9c0d1e2f3a4b";
/// The identity whose token the "cluster" writes to the file (a managed identity of the
/// stand-in stands in for the cluster's issuer).
const SUBJECT: &str = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d";

#[tokio::test]
async fn workload_identity_reads_its_variables_and_the_token_file_at_every_request() {
    let none = |_: &str| None;
    let Err(e) = workload_identity(&none) else {
        panic!("built without variables")
    };
    assert!(
        e.to_string()
            .contains("AZURE_FEDERATED_TOKEN_FILE is not set"),
        "{e}"
    );

    let si = StandIn::start(StandInConfig {
        clients: vec![TestClient::new(CLIENT, None)],
        ..StandInConfig::default()
    })
    .await
    .unwrap();
    si.add_managed_identity(None, SUBJECT);
    assert!(si.add_federated_credential(CLIENT, SUBJECT));
    let federated = reqwest::Client::new()
        .get(si.imds_endpoint())
        .header("Metadata", "true")
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", "api://AzureADTokenExchange"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let federated: serde_json::Value = serde_json::from_str(&federated).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, federated["access_token"].as_str().unwrap()).unwrap();
    let (path, tenant, host) = (
        file.display().to_string(),
        si.tenant_id().to_owned(),
        si.base_url(),
    );
    let env = move |name: &str| match name {
        "AZURE_FEDERATED_TOKEN_FILE" => Some(path.clone()),
        "AZURE_CLIENT_ID" => Some(CLIENT.to_owned()),
        "AZURE_TENANT_ID" => Some(tenant.clone()),
        "AZURE_AUTHORITY_HOST" => Some(format!("{host}/")),
        _ => None,
    };
    let source = workload_identity(&env).unwrap();
    let token = source.token(REDIS_RESOURCE).await.unwrap();
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token.secret()).unwrap();
    assert_eq!(claims["aud"], REDIS_RESOURCE);
    assert_eq!(claims["oid"], service_principal_id(CLIENT));
    // The file is read again: a bad one is refused by Entra, and the error shows neither.
    std::fs::write(&file, "not-a-token").unwrap();
    let e = source.token(REDIS_RESOURCE).await.unwrap_err().to_string();
    assert!(e.contains("invalid_client"), "{e}");
    assert!(!e.contains("not-a-token"), "{e}");
}
