//! Discovery, JWKS, outages and TLS.

use reqwest::StatusCode;

use super::{config, get_json, http, start};
use crate::{StandIn, StandInConfig};

#[tokio::test]
async fn guid_tenant_discovery_is_entra_shaped_and_parses_as_provider_metadata() {
    let si = start(config()).await;
    let (status, doc) = get_json(&format!(
        "{}/.well-known/openid-configuration",
        si.authority(si.tenant_id())
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let base = si.base_url();
    let t = si.tenant_id();
    assert_eq!(doc["issuer"], si.issuer());
    assert_eq!(doc["issuer"], format!("{base}/{t}/v2.0"));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/token")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}/{t}/discovery/v2.0/keys"));
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{base}/{t}/oauth2/v2.0/logout")
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(doc["frontchannel_logout_supported"], true);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    let meta: openidconnect::core::CoreProviderMetadata = serde_json::from_value(doc).unwrap();
    assert_eq!(meta.issuer().as_str(), si.issuer());
    assert_eq!(si.discovery_fetches(), 1);
}

#[tokio::test]
async fn multi_tenant_discovery_has_the_template_issuer() {
    let si = start(config()).await;
    for tenant in ["organizations", "common"] {
        let (status, doc) = get_json(&format!(
            "{}/.well-known/openid-configuration",
            si.authority(tenant)
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            doc["issuer"],
            format!("{}/{{tenantid}}/v2.0", si.base_url())
        );
        assert_eq!(
            doc["token_endpoint"],
            format!("{}/{tenant}/oauth2/v2.0/token", si.base_url())
        );
    }
}

#[tokio::test]
async fn unknown_tenant_is_aadsts90002() {
    let si = start(config()).await;
    let (status, body) = get_json(&format!(
        "{}/.well-known/openid-configuration",
        si.authority("contoso")
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_tenant");
    assert_eq!(body["error_codes"][0], 90002);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS90002: "));
    let (status, _) = get_json(&format!("{}/nowhere", si.base_url())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn jwks_keeps_rotated_keys_until_they_are_retired() {
    let si = start(config()).await;
    let url = format!("{}/{}/discovery/v2.0/keys", si.base_url(), si.tenant_id());
    let first = si.current_kid();
    let (_, jwks) = get_json(&url).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], first.as_str());
    assert_eq!(
        (key["kty"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("sig"))
    );
    assert_eq!(key["e"], "AQAB");
    assert_eq!(key["issuer"], si.issuer());
    assert!(!key["n"].as_str().unwrap().contains('='));

    si.rotate_keys();
    let second = si.current_kid();
    assert_ne!(first, second);
    let (_, jwks) = get_json(&url).await;
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![second.as_str(), first.as_str()]);
    let token = si.mint_token(serde_json::json!({"sub": "x"}), None);
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid,
        Some(second.clone())
    );
    let old = si.mint_token(serde_json::json!({"sub": "x"}), Some(&first));
    assert_eq!(
        jsonwebtoken::decode_header(&old).unwrap().kid,
        Some(first.clone())
    );

    si.retire_old_keys();
    let (_, jwks) = get_json(&url).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], second.as_str());
    assert_eq!(si.jwks_fetches(), 3);
    assert!(si
        .public_key_pem()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[tokio::test]
async fn discovery_outage_answers_503_and_still_counts() {
    let si = start(config()).await;
    si.set_discovery_available(false);
    let doc_url = format!(
        "{}/.well-known/openid-configuration",
        si.authority(si.tenant_id())
    );
    let keys_url = format!("{}/{}/discovery/v2.0/keys", si.base_url(), si.tenant_id());
    let (status, body) = get_json(&doc_url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(get_json(&keys_url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    si.set_discovery_available(true);
    assert_eq!(get_json(&doc_url).await.0, StatusCode::OK);
    assert_eq!((si.discovery_fetches(), si.jwks_fetches()), (2, 1));
}

#[tokio::test]
async fn shutdown_stops_answering() {
    let si = start(config()).await;
    let url = format!(
        "{}/.well-known/openid-configuration",
        si.authority("common")
    );
    assert!(http().get(&url).send().await.is_ok());
    si.shutdown().await;
    assert!(http().get(&url).send().await.is_err());
}

#[tokio::test]
async fn tls_serves_https_over_http2() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let si = StandIn::start(StandInConfig {
        tls: Some((cert_pem.clone(), cert.signing_key.serialize_pem())),
        ..config()
    })
    .await
    .unwrap();
    assert!(si.base_url().starts_with("https://127.0.0.1:"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!(
            "{}/.well-known/openid-configuration",
            si.authority(si.tenant_id())
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let doc: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(doc["issuer"].as_str().unwrap().starts_with("https://"));
}

#[tokio::test]
async fn invalid_configuration_is_refused() {
    let bad = StandInConfig {
        tenant_id: "contoso".into(),
        ..StandInConfig::default()
    };
    assert!(StandIn::start(bad).await.is_err());
    let bad_tls = StandInConfig {
        tls: Some(("no pem".into(), "no pem".into())),
        ..StandInConfig::default()
    };
    assert!(StandIn::start(bad_tls).await.is_err());
}
