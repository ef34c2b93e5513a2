//! Identity headers: the headers built from the signed-in user's claims. Client copies of
//! every name the proxy could inject are removed first, on every route (`client.rs`): an
//! upstream behind Portcullis can trust that an `X-Auth-Request-*` or `X-MS-CLIENT-PRINCIPAL*`
//! header came from the proxy. Values are sent as UTF-8 bytes (what oauth2-proxy and App Service do), so
//! `José Núñez` arrives as the bytes of `José Núñez`; frameworks that decode header bytes as
//! Latin-1 must re-decode them as UTF-8 (docs/config.md). A value with a control character
//! (CR, LF, NUL, …) is never sent: the header is left out instead.

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use serde_json::Value;

use crate::identity::Identity;

/// The identity header sets a route can send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPreset {
    /// `X-Auth-Request-*`, as oauth2-proxy sends them.
    OAuth2Proxy,
    /// `X-MS-CLIENT-PRINCIPAL*`, as App Service authentication sends them.
    EasyAuth,
    /// `X-Forwarded-User/-Email/-Preferred-Username/-Groups` and, with `pass_access_token`,
    /// `X-Forwarded-Access-Token`: what oauth2-proxy sends in proxy mode with
    /// `pass_user_headers` and `pass_access_token`.
    OAuth2ProxyForwarded,
    /// Only `claims_headers` (and the access token if asked for).
    None,
}

impl HeaderPreset {
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderPreset::OAuth2Proxy => "oauth2-proxy",
            HeaderPreset::EasyAuth => "easy-auth",
            HeaderPreset::OAuth2ProxyForwarded => "oauth2-proxy-forwarded",
            HeaderPreset::None => "none",
        }
    }
}

/// Identity headers ready to send, built once per session value (`session::Memo`).
pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// The preset's headers for `id`; `user_claim` names the user (`oidc.user_claim`).
pub fn preset_headers(id: &Identity, preset: HeaderPreset, user_claim: &str) -> Headers {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            values.push((name, v));
        }
    };
    match preset {
        HeaderPreset::OAuth2Proxy => {
            put("x-auth-request-user", Some(id.user(user_claim).to_owned()));
            put("x-auth-request-email", id.rendered("email"));
            put(
                "x-auth-request-preferred-username",
                id.rendered("preferred_username"),
            );
            put("x-auth-request-oid", id.rendered("oid"));
            put("x-auth-request-tid", id.rendered("tid"));
            put("x-auth-request-name", id.rendered("name"));
            put("x-auth-request-groups", Some(id.groups().join(",")));
            put("x-auth-request-roles", Some(id.roles().join(",")));
        }
        HeaderPreset::EasyAuth => {
            put(
                "x-ms-client-principal-name",
                Some(id.user(user_claim).to_owned()),
            );
            put("x-ms-client-principal-id", id.rendered("oid"));
            put("x-ms-client-principal-idp", Some("aad".to_owned()));
            put("x-ms-client-principal", Some(easy_auth_principal(id)));
        }
        HeaderPreset::OAuth2ProxyForwarded => {
            put("x-forwarded-user", Some(id.user(user_claim).to_owned()));
            put("x-forwarded-email", id.rendered("email"));
            put(
                "x-forwarded-preferred-username",
                id.rendered("preferred_username"),
            );
            put("x-forwarded-groups", Some(id.groups().join(",")));
        }
        HeaderPreset::None => {}
    }
    shared_values(values)
}

/// The headers, their values slices of one buffer: a request clones them all by touching one
/// reference count, not one per value, and reads them from one place in memory.
fn shared_values(values: Vec<(&'static str, String)>) -> Headers {
    let mut buf = bytes::BytesMut::with_capacity(values.iter().map(|(_, v)| v.len()).sum());
    let mut ends = Vec::with_capacity(values.len());
    for (_, v) in &values {
        buf.extend_from_slice(v.as_bytes());
        ends.push(buf.len());
    }
    let buf = buf.freeze();
    let mut start = 0;
    let mut out = Headers::with_capacity(values.len());
    for ((name, _), end) in values.iter().zip(ends) {
        if let Some(v) = header_value(name, buf.slice(start..end)) {
            out.push((HeaderName::from_static(name), v));
        }
        start = end;
    }
    out
}

/// Where a route's `pass_access_token` puts the token: `Authorization: Bearer …`, or
/// `X-Forwarded-Access-Token` for the `oauth2-proxy-forwarded` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHeader {
    Authorization,
    Forwarded,
}

impl HeaderPreset {
    pub fn token_header(self) -> TokenHeader {
        match self {
            HeaderPreset::OAuth2ProxyForwarded => TokenHeader::Forwarded,
            _ => TokenHeader::Authorization,
        }
    }
}

/// Adds the preset's headers (from [`preset_headers`], built once per session), then the
/// route's claims headers and the access token. Call after `client::clean`.
pub fn inject(
    headers: &mut HeaderMap,
    id: &Identity,
    preset: &[(HeaderName, HeaderValue)],
    claims_headers: &[(HeaderName, String)],
    access_token: Option<(TokenHeader, &str)>,
) {
    headers.reserve(preset.len() + claims_headers.len() + 1);
    for (name, value) in preset {
        headers.insert(name.clone(), value.clone());
    }
    for (header, claim) in claims_headers {
        if let Some(v) = id
            .rendered(claim)
            .and_then(|v| header_value(header.as_str(), Bytes::from(v)))
        {
            headers.insert(header.clone(), v);
        }
    }
    match access_token {
        Some((TokenHeader::Authorization, token)) => {
            if let Some(v) = header_value("authorization", Bytes::from(format!("Bearer {token}"))) {
                headers.insert(AUTHORIZATION, v);
            }
        }
        Some((TokenHeader::Forwarded, token)) => {
            if let Some(v) = header_value(
                "x-forwarded-access-token",
                Bytes::copy_from_slice(token.as_bytes()),
            ) {
                headers.insert(HeaderName::from_static("x-forwarded-access-token"), v);
            }
        }
        None => {}
    }
}

/// A header value, or `None` (logged) for a value with a control character.
fn header_value(name: &str, value: Bytes) -> Option<HeaderValue> {
    match HeaderValue::from_maybe_shared(value) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(
                header = name,
                "identity header left out: the claim value holds a control character"
            );
            None
        }
    }
}

/// App Service's claim-type names for the claims it renames; others keep their token names.
/// (learn.microsoft.com/azure/app-service/configure-authentication-user-identities)
const EASY_AUTH_TYPES: &[(&str, &str)] = &[
    (
        "email",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ),
    ("name", NAME_TYPE),
    (
        "oid",
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
    ),
    (
        "sub",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    ),
    (
        "tid",
        "http://schemas.microsoft.com/identity/claims/tenantid",
    ),
    ("roles", ROLE_TYPE),
];
const NAME_TYPE: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const ROLE_TYPE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// `X-MS-CLIENT-PRINCIPAL`: base64 of App Service's principal JSON, one `claims` entry per value.
pub fn easy_auth_principal(id: &Identity) -> String {
    base64::engine::general_purpose::STANDARD.encode(easy_auth_json(id).to_string())
}

/// The principal JSON (also the `user_claims` of `/.auth/me`).
pub fn easy_auth_json(id: &Identity) -> Value {
    let mut claims = Vec::new();
    for (name, value) in &id.claims {
        if crate::identity::NEVER_UPSTREAM.contains(&name.as_str()) {
            continue;
        }
        let typ = EASY_AUTH_TYPES
            .iter()
            .find(|(n, _)| n == name)
            .map_or(name.as_str(), |(_, t)| t);
        let mut push = |v: &Value| {
            let val = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            claims.push(serde_json::json!({ "typ": typ, "val": val }));
        };
        match value {
            Value::Array(a) => a.iter().for_each(&mut push),
            Value::Null => {}
            v => push(v),
        }
    }
    serde_json::json!({
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": NAME_TYPE,
        "role_typ": ROLE_TYPE,
    })
}

#[cfg(test)]
mod tests;
