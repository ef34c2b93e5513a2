use super::*;

use serde_json::json;

const G1: &str = "11111111-1111-1111-1111-111111111111";
const G2: &str = "22222222-2222-2222-2222-222222222222";
const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "00000000-0000-0000-0000-0000000000aa";

fn user(claims: serde_json::Value) -> Identity {
    match claims {
        serde_json::Value::Object(m) => Identity::from_claims(m),
        _ => unreachable!("claims are an object"),
    }
}

fn alice() -> Identity {
    user(json!({
        "oid": OID, "tid": TID, "email": "alice@Contoso.com",
        "groups": [G1.to_uppercase()], "roles": ["Wiki.Read"], "department": "R&D",
        "email_verified": true,
    }))
}

#[test]
fn empty_policy_admits_any_signed_in_user() {
    assert_eq!(authorize(&PolicySpec::default(), &alice()), Ok(()));
    assert_eq!(
        authorize(&PolicySpec::default(), &Identity::default()),
        Ok(())
    );
}

#[test]
fn groups_are_any_of_and_compared_without_case() {
    let spec = PolicySpec {
        groups: vec![G2.into(), G1.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec, &alice()), Ok(()));
    let spec = PolicySpec {
        groups: vec![G2.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec, &alice()), Err(Denied::Groups));
}

#[test]
fn unresolved_groups_deny_a_group_policy_but_nothing_else() {
    let mut id = alice();
    id.groups_unresolved = true;
    let groups = PolicySpec {
        groups: vec![G1.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&groups, &id), Err(Denied::GroupsUnresolved));
    let roles = PolicySpec {
        roles: vec!["Wiki.Read".into()],
        ..Default::default()
    };
    assert_eq!(authorize(&roles, &id), Ok(()));
}

#[test]
fn roles_are_case_sensitive_app_role_values() {
    let spec = |r: &str| PolicySpec {
        roles: vec![r.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec("Wiki.Read"), &alice()), Ok(()));
    assert_eq!(authorize(&spec("wiki.read"), &alice()), Err(Denied::Roles));
}

#[test]
fn tenants_and_users_match_tid_and_oid() {
    let ok = PolicySpec {
        tenants: vec![TID.into()],
        users: vec![OID.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&ok, &alice()), Ok(()));
    let other_tenant = PolicySpec {
        tenants: vec![G1.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&other_tenant, &alice()), Err(Denied::Tenants));
    let other_user = PolicySpec {
        users: vec![G1.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&other_user, &alice()), Err(Denied::Users));
}

#[test]
fn missing_identifiers_never_match() {
    let spec = PolicySpec {
        users: vec![OID.into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec, &Identity::default()), Err(Denied::Users));
}

#[test]
fn every_list_must_admit() {
    let spec = PolicySpec {
        groups: vec![G1.into()],
        roles: vec!["Wiki.Admin".into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec, &alice()), Err(Denied::Roles));
}

#[test]
fn email_domain_uses_the_email_claim_only() {
    let spec = PolicySpec {
        email_domains: vec!["contoso.com".into()],
        ..Default::default()
    };
    assert_eq!(authorize(&spec, &alice()), Ok(()));
    // A look-alike in preferred_username does not count.
    let id = user(json!({"preferred_username": "mallory@contoso.com", "email": "m@evil.example"}));
    assert_eq!(authorize(&spec, &id), Err(Denied::EmailDomains));
    let id = user(json!({"email": "contoso.com"}));
    assert_eq!(authorize(&spec, &id), Err(Denied::EmailDomains));
}

#[test]
fn required_claims_accept_strings_arrays_and_scalars() {
    let spec = |claim: &str, values: &[&str]| PolicySpec {
        claims: vec![(claim.into(), values.iter().map(|v| v.to_string()).collect())],
        ..Default::default()
    };
    assert_eq!(
        authorize(&spec("department", &["R&D", "Ops"]), &alice()),
        Ok(())
    );
    assert_eq!(authorize(&spec("roles", &["Wiki.Read"]), &alice()), Ok(()));
    assert_eq!(
        authorize(&spec("email_verified", &["true"]), &alice()),
        Ok(())
    );
    assert_eq!(
        authorize(&spec("department", &["Sales"]), &alice()),
        Err(Denied::Claim("department".into()))
    );
    assert_eq!(
        authorize(&spec("missing", &["x"]), &alice()),
        Err(Denied::Claim("missing".into()))
    );
}

#[test]
fn denial_messages_name_the_requirement_not_the_values() {
    let spec = PolicySpec {
        groups: vec![G2.into()],
        ..Default::default()
    };
    let denied = authorize(&spec, &alice()).unwrap_err();
    assert_eq!(denied.requirement(), "allowed_groups");
    assert!(!denied.to_string().contains(G2));
}

const APP: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

fn token(claims: serde_json::Value) -> Identity {
    user(claims)
}

#[test]
fn required_scopes_are_any_of_the_space_separated_scp() {
    let spec = PolicySpec {
        scopes: vec!["Files.Read".into(), "Files.ReadWrite".into()],
        ..Default::default()
    };
    let ok = token(json!({"azp": APP, "scp": "User.Read Files.ReadWrite"}));
    assert_eq!(authorize_caller(&spec, &ok), Ok(()));
    for scp in [
        json!("files.read"),
        json!("Files.Read.All"),
        json!(""),
        json!(null),
    ] {
        let t = token(json!({"azp": APP, "scp": scp}));
        assert_eq!(authorize_caller(&spec, &t), Err(Denied::Scopes), "{scp}");
    }
    // An app-only token holds roles, not scopes.
    let app_only = token(json!({"azp": APP, "roles": ["Files.Read"]}));
    assert_eq!(authorize_caller(&spec, &app_only), Err(Denied::Scopes));
}

#[test]
fn allowed_client_apps_read_azp_in_v2_and_appid_in_v1() {
    let spec = PolicySpec {
        client_apps: vec![APP.into()],
        ..Default::default()
    };
    let v2 = token(json!({"ver": "2.0", "azp": APP.to_uppercase(), "scp": "x"}));
    assert_eq!(authorize_caller(&spec, &v2), Ok(()));
    let v1 = token(json!({"ver": "1.0", "appid": APP, "scp": "x"}));
    assert_eq!(authorize_caller(&spec, &v1), Ok(()));
    let cases = [
        json!({"ver": "2.0", "azp": G1}),
        json!({"ver": "2.0", "appid": APP}),
        json!({"ver": "1.0", "azp": APP}),
        json!({"ver": "2.0"}),
    ];
    for c in cases {
        assert_eq!(
            authorize_caller(&spec, &token(c.clone())),
            Err(Denied::ClientApps),
            "{c}"
        );
    }
    assert_eq!(authorize_caller(&PolicySpec::default(), &v2), Ok(()));
}
