//! Client authentication at the token endpoint.
//!
//! Accepted: `client_secret_post` (in the form), `client_secret_basic` (HTTP Basic, where the
//! ID and secret are form-urlencoded *before* base64 — RFC 6749 §2.3.1, a step many clients
//! skip), and nothing at all for a public client. A public client presenting a secret is
//! refused (AADSTS700025), as is a confidential client presenting none (AADSTS7000218).
//! `private_key_jwt` (`client_assertion`) is checked against the client's
//! [`AssertionKey`]s: a certificate's thumbprint and key, or a federated identity's issuer,
//! subject and key (`assertion.rs`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::aadsts::AadError;
use super::http::Params;
use super::state::State;
use super::TestClient;

/// The authenticated client and whether it proved a credential.
pub(crate) struct Authenticated {
    pub client: TestClient,
    pub confidential: bool,
    /// `appidacr` / `azpacr`: `0` public client, `1` client secret, `2` certificate or
    /// federated assertion (access-token-claims-reference).
    pub acr: &'static str,
}

pub(crate) fn authenticate(
    state: &State,
    tenant: &str,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Authenticated, AadError> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(v) => Some(parse_basic(v.as_bytes()).ok_or_else(AadError::malformed)?),
        None => None,
    };
    let body_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    if basic.is_some() && (body_secret.is_some() || assertion.is_some()) {
        // RFC 6749 §2.3: a client must not use more than one authentication method.
        return Err(AadError::malformed());
    }
    let client_id = match (&basic, form.get("client_id")) {
        (Some((id, _)), Some(body_id)) if id != body_id => return Err(AadError::malformed()),
        (Some((id, _)), _) => id.as_str(),
        (None, Some(id)) => id,
        (None, None) => return Err(AadError::missing("client_id")),
    };
    let Some(client) = state.client(client_id) else {
        return Err(AadError::app_not_found(client_id, tenant));
    };
    let presented = basic.as_ref().map(|(_, s)| s.as_str()).or(body_secret);
    if let Some(a) = assertion {
        if presented.is_some() {
            return Err(AadError::malformed());
        }
        if client.assertion_keys.is_empty() {
            return Err(AadError::invalid_client(
                700027,
                "Client assertion failed signature validation.",
            ));
        }
        let endpoint = format!("{}/{tenant}/oauth2/v2.0/token", state.base_url);
        let assertion_type = form.get("client_assertion_type");
        super::assertion::check(state, &client, a, assertion_type, &endpoint)?;
        return Ok(Authenticated {
            client,
            confidential: true,
            acr: "2",
        });
    }
    if client.secret.is_none() && !client.assertion_keys.is_empty() {
        return Err(AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
                'client_secret'.",
        ));
    }
    match (client.secret.clone(), presented, assertion) {
        (None, None, None) => Ok(Authenticated {
            client,
            confidential: false,
            acr: "0",
        }),
        (None, _, _) => Err(AadError::invalid_client(
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be \
                presented.",
        )),
        (Some(_), None, Some(_)) => Err(AadError::invalid_client(
            700027,
            "Client assertion failed signature validation.",
        )),
        (Some(_), None, None) => Err(AadError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
                'client_secret'.",
        )),
        (Some(expected), Some(given), _) if same(expected.as_bytes(), given.as_bytes()) => {
            Ok(Authenticated {
                client,
                confidential: true,
                acr: "1",
            })
        }
        (Some(_), Some(_), _) => Err(AadError::invalid_client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID, for a secret added to app \
                 '{client_id}'."
            ),
        )),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret).
fn parse_basic(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:s%2Bcr%3At+x"));
        assert_eq!(
            parse_basic(header.as_bytes()),
            Some(("my app".to_owned(), "s+cr:t x".to_owned()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        let bad_escape = format!("Basic {}", STANDARD.encode("a:%zz"));
        assert_eq!(parse_basic(bad_escape.as_bytes()), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
