//! What the stand-in knows before it starts: its tenant, its users and the app registrations.
//!
//! These are the inputs a test controls. They are checked once in `StandIn::start`, so a typo
//! in a test (a `default_user` that is not a user, a tenant that is not a GUID) fails loudly
//! instead of producing tokens no real tenant would issue.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::apps::{AppPermission, TokenVersion};
use super::StandInError;

/// The tenant, users, app registrations and token lifetimes of a stand-in.
#[derive(Clone)]
pub struct StandInConfig {
    /// GUID of the home tenant.
    pub tenant_id: String,
    pub users: Vec<TestUser>,
    pub clients: Vec<TestClient>,
    /// Username signed in when the authorize request has no `login_hint`; with `None` and
    /// several users, `/authorize` shows a picker page. The default user counts as already
    /// signed in to the browser, so `prompt=none` succeeds for it.
    pub default_user: Option<String>,
    pub id_token_lifetime: Duration,
    /// Fixed (Entra randomises 60–90 minutes) so tests are deterministic.
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// `(certificate chain PEM, private key PEM)`: serve HTTPS; `None`: plain HTTP.
    pub tls: Option<(String, String)>,
    /// Loopback only: `start` refuses any other address.
    pub listen: SocketAddr,
    /// More groups than this and tokens carry the overage claims instead of `groups`.
    pub groups_overage_threshold: usize,
    /// The most members Graph puts on one page, whatever `$top` asks for: Graph pages on the
    /// server side too, so clients must follow `@odata.nextLink` even with `$top=999`
    /// (learn.microsoft.com/graph/paging). Lower it to make a test read several pages.
    pub graph_page_limit: usize,
}

impl Default for StandInConfig {
    fn default() -> Self {
        StandInConfig {
            tenant_id: uuid::Uuid::new_v4().to_string(),
            users: Vec::new(),
            clients: Vec::new(),
            default_user: None,
            id_token_lifetime: Duration::from_secs(3600),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            tls: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            groups_overage_threshold: 200,
            graph_page_limit: 999,
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("tenant_id", &self.tenant_id)
            .field("users", &self.users)
            .field("clients", &self.clients)
            .field("default_user", &self.default_user)
            .field("id_token_lifetime", &self.id_token_lifetime)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("tls", &self.tls.as_ref().map(|_| "<certificate and key>"))
            .field("listen", &self.listen)
            .field("groups_overage_threshold", &self.groups_overage_threshold)
            .field("graph_page_limit", &self.graph_page_limit)
            .finish()
    }
}

/// A user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    pub oid: String,
    /// `preferred_username` (the UPN).
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    /// Group object IDs.
    pub groups: Vec<String>,
    /// App roles.
    pub roles: Vec<String>,
    /// Tenant of a user from another directory; `None` = the home tenant.
    pub tenant_id: Option<String>,
}

impl TestUser {
    /// A home-tenant user with a random object ID and `email` = `username`.
    pub fn new(username: &str, name: &str) -> TestUser {
        TestUser {
            oid: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            name: name.to_owned(),
            email: Some(username.to_owned()),
            groups: Vec::new(),
            roles: Vec::new(),
            tenant_id: None,
        }
    }
}

/// An app registration.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TestClient {
    pub client_id: String,
    /// Accepted as `client_secret_post` or `client_secret_basic`; `None` = public client.
    pub secret: Option<String>,
    /// Exact and case-sensitive, except that the port of an `http://localhost` or
    /// `http://127.0.0.1` URI is ignored (reply-url). Empty = no sign-in can complete.
    pub redirect_uris: Vec<String>,
    /// Same rule as `redirect_uris`; honoured only for a logout request naming this client.
    pub post_logout_redirect_uris: Vec<String>,
    /// Credentials accepted as `private_key_jwt` client assertions.
    pub assertion_keys: Vec<AssertionKey>,
    /// The optional claims of the app's ID tokens (its "Token configuration").
    pub optional_claims: OptionalClaims,
    /// The version of the access tokens issued for this app's API (the manifest's
    /// `accessTokenAcceptedVersion`).
    pub access_token_version: TokenVersion,
    /// Application permissions an admin granted this app (its `roles` in app-only tokens).
    pub app_permissions: Vec<AppPermission>,
}

/// Optional ID-token claims an app registration asks for (optional-claims-reference). All on
/// by default, as the proxy's recommended registration has them; a test turns one off to see
/// how the proxy copes with a registration that lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalClaims {
    /// The session ID, which front-channel logout names.
    pub sid: bool,
    /// The opaque hint the proxy sends back as `logout_hint`.
    pub login_hint: bool,
    /// The user's address (when the user has one).
    pub email: bool,
}

impl Default for OptionalClaims {
    fn default() -> Self {
        OptionalClaims {
            sid: true,
            login_hint: true,
            email: true,
        }
    }
}

/// A credential that signs client assertions (ENTRA.md §7).
#[derive(Clone, PartialEq, Eq)]
pub enum AssertionKey {
    /// A certificate credential: assertions carry the certificate's `x5t#S256` and are signed
    /// (PS256 or RS256) by its key. `public_key_pem` is the certificate's key (SPKI PEM).
    Certificate {
        cert_pem: String,
        public_key_pem: String,
    },
    /// A federated identity credential: tokens from `issuer` about `subject` with audience
    /// `api://AzureADTokenExchange`, signed (RS256) by `public_key_pem`.
    Federated {
        issuer: String,
        subject: String,
        public_key_pem: String,
    },
}

impl TestClient {
    /// A registration with no redirect URIs yet: add the exact ones the app uses (Entra has no
    /// wildcard or "any https" registration, and neither has the stand-in).
    pub fn new(client_id: &str, secret: Option<&str>) -> TestClient {
        TestClient {
            client_id: client_id.to_owned(),
            secret: secret.map(str::to_owned),
            ..TestClient::default()
        }
    }

    /// The same registration with `uris` as its redirect URIs.
    pub fn with_redirect_uris<S: AsRef<str>>(mut self, uris: &[S]) -> TestClient {
        self.redirect_uris = uris.iter().map(|u| u.as_ref().to_owned()).collect();
        self
    }
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("assertion_keys", &self.assertion_keys.len())
            .field("optional_claims", &self.optional_claims)
            .field("access_token_version", &self.access_token_version)
            .field("app_permissions", &self.app_permissions)
            .finish()
    }
}

/// True for the 8-4-4-4-12 hex form Entra uses for tenant and object IDs.
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// Refuses configurations no real directory could have.
pub(crate) fn validate(config: &StandInConfig) -> Result<(), StandInError> {
    let bad = |why: String| Err(StandInError::Config(why));
    if !config.listen.ip().is_loopback() {
        // It signs tokens for any user on request: never reachable from another machine.
        return bad(format!(
            "listen {} is not a loopback address",
            config.listen
        ));
    }
    if !is_guid(&config.tenant_id) {
        return bad(format!("tenant_id {:?} is not a GUID", config.tenant_id));
    }
    let mut names = HashSet::new();
    for user in &config.users {
        if !names.insert(user.username.to_lowercase()) {
            return bad(format!("two users are called {:?}", user.username));
        }
        if let Some(tid) = &user.tenant_id {
            if !is_guid(tid) {
                return bad(format!(
                    "user {:?}: tenant_id {tid:?} is not a GUID",
                    user.username
                ));
            }
        }
    }
    if config.graph_page_limit == 0 {
        return bad("graph_page_limit must be at least 1".to_owned());
    }
    if let Some(default) = &config.default_user {
        if !names.contains(&default.to_lowercase()) {
            return bad(format!("default_user {default:?} is not one of the users"));
        }
    }
    let mut ids = HashSet::new();
    for client in &config.clients {
        if !ids.insert(client.client_id.as_str()) {
            return bad(format!("two clients have the ID {:?}", client.client_id));
        }
    }
    Ok(())
}

/// Whether `uri` may receive a response, under the registration rule above: it must be one
/// of the registered URIs, character for character.
///
/// Entra ignores the port of `http://localhost` and `http://127.0.0.1` redirect URIs, since
/// native apps listen on a random port (learn.microsoft.com/entra/identity-platform/reply-url).
pub(crate) fn uri_allowed(registered: &[String], uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    registered.iter().any(|r| {
        r == uri
            || (is_loopback_http(&url)
                && Url::parse(r).is_ok_and(|mut r| {
                    let mut u = url.clone();
                    let _ = r.set_port(None);
                    let _ = u.set_port(None);
                    is_loopback_http(&r) && r == u
                }))
    })
}

fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_registration_accepts_no_uri_at_all() {
        assert!(!uri_allowed(&[], "https://app.example/cb"));
        assert!(!uri_allowed(&[], "http://localhost:8080/cb"));
        assert!(!uri_allowed(&[], "http://127.0.0.1/cb"));
        assert!(!uri_allowed(&[], "not a uri"));
    }

    #[test]
    fn registered_uris_match_exactly_except_loopback_port() {
        let reg = vec![
            "https://app.example/cb".to_owned(),
            "http://localhost/cb".to_owned(),
        ];
        assert!(uri_allowed(&reg, "https://app.example/cb"));
        assert!(!uri_allowed(&reg, "https://app.example/CB"));
        assert!(!uri_allowed(&reg, "https://app.example/cb/"));
        assert!(uri_allowed(&reg, "http://localhost:5000/cb"));
        assert!(!uri_allowed(&reg, "http://localhost:5000/other"));
        assert!(!uri_allowed(&reg, "https://app.example:8443/cb"));
        assert!(!uri_allowed(&reg, "https://app.example/cb#x"));
    }

    #[test]
    fn validation_rejects_non_loopback_listeners() {
        let config = StandInConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..StandInConfig::default()
        };
        assert!(validate(&config).is_err());
        assert!(validate(&StandInConfig::default()).is_ok());
    }

    #[test]
    fn validation_rejects_a_graph_that_pages_nothing() {
        let config = StandInConfig {
            graph_page_limit: 0,
            ..StandInConfig::default()
        };
        assert!(validate(&config).is_err());
    }

    #[test]
    fn validation_rejects_unknown_default_user() {
        let config = StandInConfig {
            users: vec![TestUser::new("a@contoso.test", "A")],
            default_user: Some("b@contoso.test".into()),
            ..StandInConfig::default()
        };
        assert!(validate(&config).is_err());
    }
}
