//! What a client's request headers may carry to the upstream. Runs on every route, public
//! ones included, before anything is injected, so nothing the proxy adds can be removed or
//! shadowed by a client, and nothing a client sends can pose as identity:
//!
//! 1. hop-by-hop fields and every field the client's `Connection` names (RFC 9110 §7.6.1);
//!    run first, so `Connection: X-Auth-Request-Groups` cannot take away an injected header;
//! 2. every field with `_` in its name, unless the route allows that name: CGI, WSGI, PHP
//!    and Rails read `X_Auth_Request_Email` and `X-Auth-Request-Email` as the same variable
//!    (nginx drops them by default; oauth2-proxy's CVE-2025-64484);
//! 3. the identity families any upstream might trust: the proxy's own presets
//!    (`X-Auth-Request-*`, `X-MS-CLIENT-PRINCIPAL*`, `X-MS-TOKEN-*`), oauth2-proxy's and
//!    other proxies' (`X-Forwarded-User/-Email/-Groups/-Preferred-Username/-Access-Token`,
//!    `Remote-User`, `X-Remote-User`), every route's `claims_headers` and the routing file's
//!    `strip_headers`;
//! 4. from peers outside `trusted_proxies`, headers that rewrite the URL or the client
//!    address in frameworks that believe them (`X-Original-URL`, `X-Rewrite-URL`,
//!    `X-Forwarded-Prefix`, `True-Client-IP`, …).

use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderMap;

/// What the route and the routing file say about a request's headers.
pub struct Rules<'a> {
    /// Every route's `claims_headers` names and the routing file's `strip_headers`.
    pub removed: &'a [HeaderName],
    /// The route's `allow_underscore_headers`.
    pub underscore_allowed: &'a [HeaderName],
    /// The peer is a trusted proxy.
    pub trusted_peer: bool,
    /// The route injects its own `Authorization` (the session's access token, with
    /// `pass_access_token`; `auth::owns_authorization`).
    pub owns_authorization: bool,
}

/// Cleans a client request's headers (see the module doc).
pub fn clean(headers: &mut HeaderMap, rules: &Rules<'_>) {
    super::remove_hop_by_hop(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            (n.contains('_') && !rules.underscore_allowed.contains(name))
                || is_identity_family(n)
                || rules.removed.contains(name)
                || (!rules.trusted_peer && is_routing_override(n))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    if rules.owns_authorization {
        headers.remove(AUTHORIZATION);
    }
}

/// Identity headers some proxy injects and some upstream trusts (lower case).
pub fn is_identity_family(name: &str) -> bool {
    // `x-portcullis-`: the proxy's own, such as the signed assertion's default header, even
    // where `[assertion]` is not configured.
    const PREFIXES: [&str; 4] = [
        "x-auth-request-",
        "x-ms-client-principal",
        "x-ms-token-",
        "x-portcullis-",
    ];
    const NAMES: [&str; 7] = [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "remote-user",
        "x-remote-user",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// Headers that make frameworks or proxies read another URL, port, scheme or client address;
/// only a trusted proxy may send them (lower case).
fn is_routing_override(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-original-host"
            | "x-original-method"
            | "x-forwarded-prefix"
            | "x-forwarded-port"
            | "x-forwarded-ssl"
            | "x-forwarded-server"
            | "x-forwarded-scheme"
            | "x-forwarded-uri"
            | "x-forwarded-method"
            | "true-client-ip"
            | "x-client-ip"
            | "cf-connecting-ip"
            | "x-cluster-client-ip"
            | "fastly-client-ip"
    )
}

#[cfg(test)]
mod tests;
