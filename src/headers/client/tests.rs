use super::*;

use http::header::HeaderValue;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn left(h: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    names.sort();
    names
}

fn rules<'a>(removed: &'a [HeaderName], allowed: &'a [HeaderName]) -> Rules<'a> {
    Rules {
        removed,
        underscore_allowed: allowed,
        trusted_peer: false,
        owns_authorization: false,
    }
}

#[test]
fn every_copy_of_every_identity_family_is_removed() {
    let mut h = map(&[
        ("X-Auth-Request-User", "admin"),
        ("x-auth-request-user", "admin2"),
        ("X-Auth-Request-Anything-Else", "x"),
        ("X-MS-CLIENT-PRINCIPAL", "e30="),
        ("X-MS-CLIENT-PRINCIPAL-ID", "x"),
        ("X-MS-TOKEN-AAD-ACCESS-TOKEN", "x"),
        ("X-Portcullis-Assertion", "eyJ.forged.x"),
        ("X-Forwarded-User", "x"),
        ("X-Forwarded-Email", "x"),
        ("X-Forwarded-Groups", "x"),
        ("X-Forwarded-Preferred-Username", "x"),
        ("X-Forwarded-Access-Token", "x"),
        ("Remote-User", "x"),
        ("X-Remote-User", "x"),
        ("X-Upn", "forged"),
        ("X-Employee-Id", "forged"),
        ("Authorization", "Bearer forged"),
        ("Accept", "text/html"),
    ]);
    let removed = [
        HeaderName::from_static("x-upn"),
        HeaderName::from_static("x-employee-id"),
    ];
    clean(&mut h, &rules(&removed, &[]));
    assert_eq!(left(&h), ["accept", "authorization"]);
    let owns = Rules {
        owns_authorization: true,
        ..rules(&[], &[])
    };
    clean(&mut h, &owns);
    assert_eq!(left(&h), ["accept"]);
}

#[test]
fn underscore_names_are_dropped_unless_the_route_allows_them() {
    let mut h = map(&[
        ("X_Auth_Request_Email", "admin@example.com"),
        ("X-Auth-Request_Email", "admin@example.com"),
        ("X_MS_CLIENT_PRINCIPAL_NAME", "admin"),
        ("x_legacy_tenant", "kept"),
        ("x-plain", "kept"),
    ]);
    let allowed = [HeaderName::from_static("x_legacy_tenant")];
    clean(&mut h, &rules(&[], &allowed));
    assert_eq!(left(&h), ["x-plain", "x_legacy_tenant"]);
}

#[test]
fn connection_cannot_name_away_what_is_added_later_and_named_fields_go_first() {
    // The client names its own header and the identity header: both go now; the proxy's
    // injection afterwards is not touched by anything the client sent.
    let mut h = map(&[
        ("Connection", "X-Auth-Request-Groups, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Upgrade", "h2c"),
        ("Accept", "*/*"),
    ]);
    clean(&mut h, &rules(&[], &[]));
    assert_eq!(left(&h), ["accept"]);
    h.insert("x-auth-request-groups", HeaderValue::from_static("g1"));
    super::super::remove_hop_by_hop(&mut h);
    assert_eq!(h.get("x-auth-request-groups").unwrap(), "g1");
}

#[test]
fn url_and_address_overrides_are_kept_only_from_trusted_proxies() {
    let pairs = [
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Port", "80"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Server", "evil"),
        ("True-Client-IP", "10.0.0.1"),
        ("X-Client-IP", "10.0.0.1"),
        ("CF-Connecting-IP", "10.0.0.1"),
        ("X-Cluster-Client-IP", "10.0.0.1"),
        ("Accept", "*/*"),
    ];
    let mut untrusted = map(&pairs);
    clean(&mut untrusted, &rules(&[], &[]));
    assert_eq!(left(&untrusted), ["accept"]);
    let mut trusted = map(&pairs);
    let from_lb = Rules {
        trusted_peer: true,
        ..rules(&[], &[])
    };
    clean(&mut trusted, &from_lb);
    assert_eq!(trusted.len(), pairs.len());
}
