use super::*;

use std::time::Duration;

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn config(issuer: &str, multi_tenant: bool) -> OidcConfig {
    OidcConfig {
        provider: crate::config::auth::Provider::Entra,
        issuer: issuer.to_owned(),
        multi_tenant,
        client_id: "c".into(),
        credential: crate::config::auth::Credential::None,
        scopes: vec!["openid".into()],
        allowed_tenants: vec![],
        ca_file: None,
        callback_path: "/.auth/callback".into(),
        post_logout_redirect_uri: None,
        graph_url: "https://graph.microsoft.com".into(),
        audiences: vec!["c".into()],
        clock_skew: Duration::from_secs(300),
        jwks_refresh: Duration::from_secs(3600),
        http_timeout: Duration::from_secs(10),
        user_claim: crate::config::UserClaim::PreferredUsername,
        oauth2_proxy_paths: false,
        signin_host: None,
    }
}

fn doc(issuer: &str, tenant: &str) -> Vec<u8> {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"),
        "end_session_endpoint": format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/logout"),
        "id_token_signing_alg_values_supported": ["RS256"],
    })
    .to_string()
    .into_bytes()
}

#[test]
fn tenant_authority_needs_its_exact_issuer() {
    let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
    let m = parse(&doc(&iss, TID), &config(&iss, false)).unwrap();
    assert_eq!(m.issuer_for("anything").as_deref(), Some(iss.as_str()));
    assert_eq!(m.tenant().as_deref(), Some(TID));
    let other = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0";
    assert!(matches!(
        parse(&doc(other, TID), &config(&iss, false)),
        Err(MetadataError::Issuer { .. })
    ));
}

#[test]
fn multi_tenant_authority_accepts_only_the_template() {
    let cfg = config("https://login.microsoftonline.com/organizations/v2.0", true);
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let m = parse(&doc(template, "organizations"), &cfg).unwrap();
    assert_eq!(
        m.issuer_for(TID).unwrap(),
        format!("https://login.microsoftonline.com/{TID}/v2.0")
    );
    assert_eq!(m.issuer_for("not-a-guid"), None);
    assert_eq!(m.issuer_for(&format!("{TID}/../x")), None);
    // A concrete tenant issuer is not what a multi-tenant authority publishes.
    let concrete = format!("https://login.microsoftonline.com/{TID}/v2.0");
    assert!(parse(&doc(&concrete, "organizations"), &cfg).is_err());
}

#[test]
fn domain_authority_accepts_a_tenant_id_issuer_on_the_same_host() {
    let cfg = config(
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
        false,
    );
    let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
    assert!(parse(&doc(&iss, TID), &cfg).is_ok());
    let elsewhere = format!("https://login.evil.example/{TID}/v2.0");
    assert!(parse(&doc(&elsewhere, TID), &cfg).is_err());
    let v1 = format!("https://login.microsoftonline.com/{TID}/");
    assert!(parse(&doc(&v1, TID), &cfg).is_err());
}

#[test]
fn metadata_without_rs256_or_with_http_endpoints_is_refused() {
    let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
    let mut v: serde_json::Value = serde_json::from_slice(&doc(&iss, TID)).unwrap();
    v["id_token_signing_alg_values_supported"] = serde_json::json!(["HS256"]);
    assert!(matches!(
        parse(v.to_string().as_bytes(), &config(&iss, false)),
        Err(MetadataError::Algorithm)
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&doc(&iss, TID)).unwrap();
    v["token_endpoint"] = serde_json::json!("http://login.microsoftonline.com/t/token");
    assert!(matches!(
        parse(v.to_string().as_bytes(), &config(&iss, false)),
        Err(MetadataError::Insecure(_))
    ));
    assert!(matches!(
        parse(b"<html>", &config(&iss, false)),
        Err(MetadataError::Shape(_))
    ));
}

fn v1(issuer: &str) -> Vec<u8> {
    serde_json::json!({ "issuer": issuer })
        .to_string()
        .into_bytes()
}

#[test]
fn the_v1_issuer_must_name_the_same_tenant_or_the_same_template() {
    let single = config(
        &format!("https://login.microsoftonline.com/{TID}/v2.0"),
        false,
    );
    let v2 = parse(
        &doc(
            &format!("https://login.microsoftonline.com/{TID}/v2.0"),
            TID,
        ),
        &single,
    )
    .unwrap();
    let v1_iss = format!("https://sts.windows.net/{TID}/");
    assert_eq!(parse_v1(&v1(&v1_iss), &v2).unwrap(), v1_iss);
    // National clouds name another host: it is read, not assumed.
    let china = format!("https://sts.chinacloudapi.cn/{TID}/");
    assert_eq!(parse_v1(&v1(&china), &v2).unwrap(), china);
    for bad in [
        "https://sts.windows.net/00000000-0000-0000-0000-000000000001/".to_owned(),
        "https://sts.windows.net/{tenantid}/".to_owned(),
        format!("http://sts.windows.net/{TID}/"),
        format!("https://sts.windows.net/{TID}/x/"),
        format!("https://sts.windows.net/{TID}"),
    ] {
        assert!(parse_v1(&v1(&bad), &v2).is_err(), "{bad}");
    }

    let multi = config("https://login.microsoftonline.com/organizations/v2.0", true);
    let tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let v2 = parse(&doc(tmpl, "organizations"), &multi).unwrap();
    let mut with_v1 = v2.clone();
    with_v1.v1_issuer = Some(parse_v1(&v1("https://sts.windows.net/{tenantid}/"), &v2).unwrap());
    assert_eq!(
        with_v1.v1_issuer_for(TID).unwrap(),
        format!("https://sts.windows.net/{TID}/")
    );
    assert_eq!(with_v1.v1_issuer_for("not-a-guid"), None);
    assert!(parse_v1(&v1(&v1_iss), &v2).is_err());
    assert_eq!(v2.v1_issuer_for(TID), None, "no v1 metadata, no v1 issuer");
}

#[test]
fn the_v1_metadata_sits_beside_the_v2_metadata() {
    let c = config(
        &format!("https://login.microsoftonline.com/{TID}/v2.0"),
        false,
    );
    assert_eq!(
        v1_discovery_url(&c),
        format!("https://login.microsoftonline.com/{TID}/.well-known/openid-configuration")
    );
}

#[test]
fn a_multi_tenant_authority_asks_a_tenants_own_token_endpoint() {
    let multi = config("https://login.microsoftonline.com/organizations/v2.0", true);
    let v2 = parse(
        &doc(
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "organizations",
        ),
        &multi,
    )
    .unwrap();
    assert_eq!(
        v2.token_endpoint_for(TID).unwrap().as_str(),
        format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/token")
    );
    assert_eq!(v2.token_endpoint_for("organizations"), None);
    let single = config(
        &format!("https://login.microsoftonline.com/{TID}/v2.0"),
        false,
    );
    let v2 = parse(
        &doc(
            &format!("https://login.microsoftonline.com/{TID}/v2.0"),
            TID,
        ),
        &single,
    )
    .unwrap();
    assert_eq!(v2.token_endpoint_for(TID).unwrap(), v2.token_endpoint);
}
