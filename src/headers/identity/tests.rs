use super::*;

use serde_json::json;

fn id(claims: Value) -> Identity {
    match claims {
        Value::Object(m) => Identity::from_claims(m),
        _ => unreachable!("claims are an object"),
    }
}

fn jose() -> Identity {
    id(json!({
        "oid": "00000000-0000-0000-0000-0000000000aa",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "sub": "pairwise-sub",
        "preferred_username": "jose@contoso.com",
        "email": "jose@contoso.com",
        "name": "José Núñez",
        "groups": ["g1", "g2"],
        "roles": ["Wiki.Read", "Wiki.Edit"],
        "nonce": "n-0S6_WzA2Mj",
        "aio": "opaque",
    }))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}

/// What a route sends upstream about the user (the route's three settings).
struct Injection<'a> {
    preset: HeaderPreset,
    claims_headers: &'a [(HeaderName, String)],
    access_token: Option<&'a str>,
}

fn inject_with(headers: &mut HeaderMap, id: &Identity, how: &Injection<'_>) {
    let preset = preset_headers(id, how.preset, "preferred_username");
    let token = how.access_token.map(|t| (how.preset.token_header(), t));
    inject(headers, id, &preset, how.claims_headers, token);
}

fn none<'a>() -> Injection<'a> {
    Injection {
        preset: HeaderPreset::None,
        claims_headers: &[],
        access_token: None,
    }
}

#[test]
fn oauth2_proxy_preset_sends_the_documented_headers() {
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &jose(),
        &Injection {
            preset: HeaderPreset::OAuth2Proxy,
            ..none()
        },
    );
    assert_eq!(
        header(&h, "x-auth-request-user").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-auth-request-email").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-auth-request-preferred-username").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-auth-request-oid").as_deref(),
        Some("00000000-0000-0000-0000-0000000000aa")
    );
    assert_eq!(
        header(&h, "x-auth-request-tid").as_deref(),
        Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
    );
    assert_eq!(
        header(&h, "x-auth-request-name").as_deref(),
        Some("José Núñez")
    );
    assert_eq!(
        header(&h, "x-auth-request-groups").as_deref(),
        Some("g1,g2")
    );
    assert_eq!(
        header(&h, "x-auth-request-roles").as_deref(),
        Some("Wiki.Read,Wiki.Edit")
    );
    assert!(h.get("x-ms-client-principal").is_none());
}

#[test]
fn empty_claims_send_no_header() {
    let mut h = HeaderMap::new();
    let user = id(json!({"oid": "o"}));
    inject_with(
        &mut h,
        &user,
        &Injection {
            preset: HeaderPreset::OAuth2Proxy,
            ..none()
        },
    );
    assert!(h.get("x-auth-request-groups").is_none());
    assert!(h.get("x-auth-request-email").is_none());
    assert_eq!(header(&h, "x-auth-request-oid").as_deref(), Some("o"));
}

#[test]
fn easy_auth_preset_matches_app_service() {
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &jose(),
        &Injection {
            preset: HeaderPreset::EasyAuth,
            ..none()
        },
    );
    assert_eq!(
        header(&h, "x-ms-client-principal-name").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-ms-client-principal-id").as_deref(),
        Some("00000000-0000-0000-0000-0000000000aa")
    );
    assert_eq!(
        header(&h, "x-ms-client-principal-idp").as_deref(),
        Some("aad")
    );
    let b64 = header(&h, "x-ms-client-principal").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let principal: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(principal["auth_typ"], "aad");
    assert_eq!(principal["name_typ"], NAME_TYPE);
    assert_eq!(principal["role_typ"], ROLE_TYPE);
    let claims = principal["claims"].as_array().unwrap();
    let of = |typ: &str| -> Vec<&str> {
        claims
            .iter()
            .filter(|c| c["typ"] == typ)
            .map(|c| c["val"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of(ROLE_TYPE), ["Wiki.Read", "Wiki.Edit"]);
    assert_eq!(of("groups"), ["g1", "g2"]);
    assert_eq!(of(NAME_TYPE), ["José Núñez"]);
    assert_eq!(
        of("http://schemas.microsoft.com/identity/claims/objectidentifier"),
        ["00000000-0000-0000-0000-0000000000aa"]
    );
    assert_eq!(of("preferred_username"), ["jose@contoso.com"]);
}

#[test]
fn non_ascii_values_arrive_as_utf8_bytes() {
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &jose(),
        &Injection {
            preset: HeaderPreset::OAuth2Proxy,
            ..none()
        },
    );
    assert_eq!(
        h.get("x-auth-request-name").unwrap().as_bytes(),
        "José Núñez".as_bytes()
    );
}

#[test]
fn control_characters_never_reach_a_header() {
    let evil = id(json!({
        "oid": "o",
        "name": "Eve\r\nX-Auth-Request-Groups: admins",
        "email": "eve@example.com\u{0}",
    }));
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &evil,
        &Injection {
            preset: HeaderPreset::OAuth2Proxy,
            ..none()
        },
    );
    assert!(h.get("x-auth-request-name").is_none());
    assert!(h.get("x-auth-request-email").is_none());
    assert!(h.get("x-auth-request-groups").is_none());
    assert_eq!(header(&h, "x-auth-request-oid").as_deref(), Some("o"));
}

#[test]
fn claims_headers_render_strings_arrays_and_scalars() {
    let user = id(json!({"upn": "u@c.com", "wids": ["a", "b"], "ver": 2, "flag": true}));
    let map = [
        (HeaderName::from_static("x-upn"), "upn".to_owned()),
        (HeaderName::from_static("x-wids"), "wids".to_owned()),
        (HeaderName::from_static("x-ver"), "ver".to_owned()),
        (HeaderName::from_static("x-flag"), "flag".to_owned()),
        (HeaderName::from_static("x-missing"), "missing".to_owned()),
    ];
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &user,
        &Injection {
            claims_headers: &map,
            ..none()
        },
    );
    assert_eq!(header(&h, "x-upn").as_deref(), Some("u@c.com"));
    assert_eq!(header(&h, "x-wids").as_deref(), Some("a,b"));
    assert_eq!(header(&h, "x-ver").as_deref(), Some("2"));
    assert_eq!(header(&h, "x-flag").as_deref(), Some("true"));
    assert!(h.get("x-missing").is_none());
}

#[test]
fn access_token_goes_in_authorization() {
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &jose(),
        &Injection {
            access_token: Some("eyJ0.eyJ1.sig"),
            ..none()
        },
    );
    assert_eq!(
        header(&h, "authorization").as_deref(),
        Some("Bearer eyJ0.eyJ1.sig")
    );
}

#[test]
fn oauth2_proxy_forwarded_preset_sends_x_forwarded_user_headers_and_the_token() {
    let mut h = HeaderMap::new();
    inject_with(
        &mut h,
        &jose(),
        &Injection {
            preset: HeaderPreset::OAuth2ProxyForwarded,
            access_token: Some("eyJ.token.sig"),
            ..none()
        },
    );
    assert_eq!(
        header(&h, "x-forwarded-user").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-forwarded-email").as_deref(),
        Some("jose@contoso.com")
    );
    assert_eq!(
        header(&h, "x-forwarded-preferred-username").as_deref(),
        Some("jose@contoso.com")
    );
    assert!(header(&h, "x-forwarded-groups").is_some());
    assert_eq!(
        header(&h, "x-forwarded-access-token").as_deref(),
        Some("eyJ.token.sig")
    );
    assert!(h.get("authorization").is_none());
    assert!(h.keys().all(|k| !k.as_str().starts_with("x-auth-request-")));
}
