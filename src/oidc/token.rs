//! The authorization-code flow's two calls, through the `openidconnect` crate: the authorize
//! URL (state, nonce, PKCE S256, `response_mode=query`) and the token endpoint (code
//! redemption and refresh), plus the classification of token-endpoint errors that decides
//! whether a session ends (ENTRA.md §5). The client-credentials grant (the app asking as
//! itself, for Graph) goes through the same client and the same classification.

use std::borrow::Cow;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreTokenResponse,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::metadata::Metadata;
use crate::config::OidcConfig;

/// The client once discovery has set the authorize and token endpoints.
pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// Builds the client for `metadata`. The crate's own ID-token verifier is not used (it has no
/// clock skew, no `nbf` and no multi-tenant issuer rule; see `verify.rs`), so it gets an empty
/// key set.
pub fn client(config: &OidcConfig, metadata: &Metadata) -> Option<Client> {
    let issuer = IssuerUrl::new(metadata.issuer.clone()).ok()?;
    let mut c = CoreClient::new(
        ClientId::new(config.client_id.clone()),
        issuer,
        JsonWebKeySet::default(),
    )
    .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint.clone()))
    .set_token_uri(TokenUrl::from_url(metadata.token_endpoint.clone()))
    // client_secret_post, as Microsoft's own samples use; client_id alone in the body for
    // the assertion credentials (added per request).
    .set_auth_type(AuthType::RequestBody);
    if let crate::config::auth::Credential::Secret(secret) = &config.credential {
        c = c.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    Some(c)
}

/// What a sign-in is bound to; generated per sign-in and kept in the pending-sign-in cookie.
pub struct AuthorizeParams<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub login_hint: Option<&'a str>,
    pub domain_hint: Option<&'a str>,
    /// The `claims` request parameter (JSON), for a step-up to an authentication context.
    pub claims: Option<&'a str>,
}

pub fn authorize_url(client: &Client, config: &OidcConfig, p: &AuthorizeParams<'_>) -> Option<Url> {
    let redirect = RedirectUrl::new(p.redirect_uri.to_owned()).ok()?;
    let (state, nonce) = (p.state.to_owned(), p.nonce.to_owned());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
        p.pkce_verifier.to_owned(),
    ));
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        )
        .set_redirect_uri(Cow::Owned(redirect))
        .set_pkce_challenge(challenge)
        .add_extra_param("response_mode", "query");
    // `openid` is added by the crate.
    for s in config.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    if let Some(h) = p.login_hint {
        req = req.add_extra_param("login_hint", h.to_owned());
    }
    if let Some(h) = p.domain_hint {
        req = req.add_extra_param("domain_hint", h.to_owned());
    }
    if let Some(c) = p.claims {
        req = req.add_extra_param("claims", c.to_owned());
    }
    Some(req.url().0)
}

/// What the token endpoint gave.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
    pub id_token: Option<String>,
}

fn tokens(resp: CoreTokenResponse) -> Tokens {
    Tokens {
        access_token: resp.access_token().secret().clone(),
        refresh_token: resp.refresh_token().map(|t| t.secret().clone()),
        expires_in: resp.expires_in(),
        id_token: resp.id_token().map(|t| t.to_string()),
    }
}

pub use crate::error::{ProviderFault, TokenError};

type RequestError = RequestTokenError<
    openidconnect::HttpClientError<openidconnect::reqwest::Error>,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
>;

fn classify(e: RequestError) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let aadsts = r.error_description().and_then(|d| aadsts_code(d));
            let code = r.error().to_string();
            match r.error() {
                CoreErrorResponseType::InvalidGrant => TokenError::Rejected { code, aadsts },
                CoreErrorResponseType::Extension(x)
                    if matches!(
                        x.as_str(),
                        "interaction_required" | "login_required" | "consent_required"
                    ) =>
                {
                    TokenError::Rejected { code, aadsts }
                }
                CoreErrorResponseType::Extension(x)
                    if matches!(x.as_str(), "temporarily_unavailable" | "server_error") =>
                {
                    TokenError::Unavailable(ProviderFault::Answered { code })
                }
                _ => TokenError::Misconfigured { code, aadsts },
            }
        }
        // Never include the body: on a success that failed to parse it holds tokens. An error
        // status with a body that is not OAuth JSON is a gateway's page: transient.
        RequestTokenError::Parse(e, body) => {
            let is_token_answer = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.get("access_token").is_some());
            if is_token_answer {
                TokenError::Malformed(format!("unreadable token answer ({})", e.path()))
            } else {
                TokenError::Unavailable(ProviderFault::NotOAuth)
            }
        }
        RequestTokenError::Request(e) => {
            TokenError::Unavailable(ProviderFault::Request(std::sync::Arc::new(e)))
        }
        RequestTokenError::Other(s) => TokenError::Unavailable(ProviderFault::Other(s)),
    }
}

/// The number in `AADSTS50011: …`.
pub fn aadsts_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("AADSTS")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub async fn redeem(
    client: &Client,
    http: &openidconnect::reqwest::Client,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    assertion: Option<String>,
) -> Result<Tokens, TokenError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| {
        TokenError::Unavailable(ProviderFault::Unbuildable("the redirect URI is not a URL"))
    })?;
    let mut req = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .set_redirect_uri(Cow::Owned(redirect));
    if let Some(a) = assertion {
        req = req
            .add_extra_param("client_assertion_type", super::credential::ASSERTION_TYPE)
            .add_extra_param("client_assertion", a);
    }
    req.request_async(&super::limited::TokenHttp(http))
        .await
        .map(tokens)
        .map_err(classify)
}

pub async fn refresh(
    client: &Client,
    http: &openidconnect::reqwest::Client,
    refresh_token: &str,
    scopes: &[String],
    assertion: Option<String>,
) -> Result<Tokens, TokenError> {
    let rt = RefreshToken::new(refresh_token.to_owned());
    let mut req = client.exchange_refresh_token(&rt);
    for s in scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    if let Some(a) = assertion {
        req = req
            .add_extra_param("client_assertion_type", super::credential::ASSERTION_TYPE)
            .add_extra_param("client_assertion", a);
    }
    req.request_async(&super::limited::TokenHttp(http))
        .await
        .map(tokens)
        .map_err(classify)
}

/// A token the app obtained as itself.
pub struct AppToken {
    pub access_token: String,
    pub expires_in: Option<Duration>,
}

/// The client-credentials grant at `endpoint` (a tenant's own token endpoint) for `scope`
/// (`{resource}/.default`).
pub async fn client_credentials(
    client: &Client,
    http: &openidconnect::reqwest::Client,
    endpoint: Url,
    scope: &str,
    assertion: Option<String>,
) -> Result<AppToken, TokenError> {
    let client = client.clone().set_token_uri(TokenUrl::from_url(endpoint));
    let mut req = client
        .exchange_client_credentials()
        .add_scope(Scope::new(scope.to_owned()));
    if let Some(a) = assertion {
        req = req
            .add_extra_param("client_assertion_type", super::credential::ASSERTION_TYPE)
            .add_extra_param("client_assertion", a);
    }
    let resp = req
        .request_async(&super::limited::TokenHttp(http))
        .await
        .map_err(classify)?;
    Ok(AppToken {
        access_token: resp.access_token().secret().clone(),
        expires_in: resp.expires_in(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_read_from_descriptions() {
        assert_eq!(
            aadsts_code("AADSTS700082: The refresh token has expired due to inactivity."),
            Some(700082)
        );
        assert_eq!(aadsts_code("no code here"), None);
        assert_eq!(aadsts_code("AADSTS"), None);
    }
}
