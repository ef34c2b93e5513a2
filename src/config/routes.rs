//! The routing file: `[[route]]` tables mapping host + path prefix to an upstream.
//!
//! Parsing keeps each route's line so that a bad edit is reported as `routes.toml:12: …`, and
//! a reload that fails validation leaves the running table untouched (see `crate::reload`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;

use super::raw::{RawRoute, RawRoutesFile};
use super::{base_dir, duration, ConfigError};

mod policy;
mod request;
mod step_up;
pub use crate::headers::identity::HeaderPreset;
pub use step_up::AuthContext;

/// One validated route, as written in the routing file.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub host: HostPattern,
    pub path_prefix: String,
    pub upstream: UpstreamTarget,
    pub preserve_host: bool,
    pub strip_prefix: bool,
    pub timeout: Duration,
    pub auth: AuthMode,
    pub h2c: bool,
    pub ca_file: Option<PathBuf>,
    /// Which identity headers reach the upstream (`headers`).
    pub headers: HeaderPreset,
    /// Extra headers from claims: (header name, claim name), from `[route.claims_headers]`.
    pub claims_headers: Vec<(http::HeaderName, String)>,
    pub pass_access_token: bool,
    /// App Service's token headers (`X-MS-TOKEN-AAD-ACCESS-TOKEN`, `-EXPIRES-ON`).
    pub pass_tokens: bool,
    pub policy: PolicySpec,
    /// The Conditional Access authentication context the route requires (`auth_context`).
    pub auth_context: Option<AuthContext>,
    /// Send a signed identity assertion (`assertion`), with this `aud` (`assertion_audience`;
    /// `None`: the request's host).
    pub assertion: bool,
    pub assertion_audience: Option<String>,
    /// Serve paths holding `%2F` / `%5C` (`allow_encoded_slashes`).
    pub allow_encoded_slashes: bool,
    /// Serve paths holding `;` parameters (`allow_path_parameters`).
    pub allow_path_parameters: bool,
    /// Which groups reach the upstream (`groups_filter`); `None`: all of the user's.
    pub groups_filter: Option<GroupsFilter>,
    /// CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) reach
    /// the upstream without authentication (`cors_preflight = "allow"`).
    pub cors_preflight: bool,
    /// Client headers with `_` in their name that still reach the upstream (lower case).
    pub allow_underscore_headers: Vec<http::HeaderName>,
    /// Line of the `[[route]]` header in the routing file.
    pub line: usize,
}

/// A validated routing file: its routes and the rules that hold on every route.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub routes: Vec<RouteSpec>,
    /// `case_sensitive_paths`: route prefixes match with case (default: ASCII case is
    /// ignored, as ASP.NET Core and IIS ignore it).
    pub case_sensitive_paths: bool,
    /// `strip_headers`: more client headers removed on every route (lower case).
    pub strip_headers: Vec<http::HeaderName>,
}

impl From<Vec<RouteSpec>> for Routing {
    fn from(routes: Vec<RouteSpec>) -> Routing {
        Routing {
            routes,
            ..Routing::default()
        }
    }
}

/// `groups_filter`: which of the user's groups a route sends upstream, so that users in
/// hundreds of groups do not overflow the upstream's header limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsFilter {
    /// These group object IDs (lower case).
    Only(Vec<String>),
    /// The groups any route of the routing file names in `allowed_groups`.
    Policy,
}

/// Who may use a route, beyond being signed in. Empty lists impose nothing; a request must
/// match at least one entry of every non-empty list (any-of within, all-of across).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySpec {
    /// Delegated permissions (`scp` entries) an access token must hold one of.
    pub scopes: Vec<String>,
    /// Client IDs (lower case) of the apps whose access tokens are accepted (`azp` / `appid`).
    pub client_apps: Vec<String>,
    /// Group object IDs (lower case).
    pub groups: Vec<String>,
    /// App role values.
    pub roles: Vec<String>,
    /// Tenant IDs (lower case).
    pub tenants: Vec<String>,
    /// User object IDs (`oid`, lower case).
    pub users: Vec<String>,
    /// Email domains (lower case). Weaker: `email` is mutable and not always verified.
    pub email_domains: Vec<String>,
    /// Claim name → accepted values.
    pub claims: Vec<(String, Vec<String>)>,
}

impl PolicySpec {
    pub fn is_empty(&self) -> bool {
        self == &PolicySpec::default()
    }
}

/// Which requests a route's host pattern accepts. Host names are compared in lower case
/// without a port or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: matches any name ending in it.
    Wildcard(String),
    /// `*`: every host.
    Any,
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// Where a route sends requests: scheme and authority, plus a base path prepended to the
/// forwarded path (`http://10.0.0.5:8080/app` → `/app/...`).
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub scheme: Scheme,
    pub authority: Authority,
    pub base_path: String,
}

impl std::fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// How a route authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication: anyone reaching the proxy reaches the upstream.
    Public,
    /// A session from signing in with Entra ID; browsers without one are sent to sign in.
    Login,
    /// An Entra ID access token for this application in `Authorization: Bearer`.
    Bearer,
    /// `Bearer` when the request carries `Authorization: Bearer` (and then only that: a bad
    /// token is 401, never a fall-back to the session), `Login` otherwise.
    LoginOrBearer,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Login => "login",
            AuthMode::Bearer => "bearer",
            AuthMode::LoginOrBearer => "login_or_bearer",
        }
    }
}

/// Reads and validates the routing file.
pub fn load(file: &Path) -> Result<Routing, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
        file: file.to_owned(),
        error,
    })?;
    parse(&text, file)
}

/// Validates routing-file text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Routing, ConfigError> {
    let raw: RawRoutesFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_owned(),
    })?;
    let mut names = HashSet::new();
    let mut places = HashSet::new();
    let mut specs = Vec::with_capacity(raw.route.len());
    for spanned in raw.route {
        let line = line_of(text, spanned.span().start);
        let spec = validate(spanned.into_inner(), file, line)?;
        if !names.insert(spec.name.clone()) {
            return Err(at(
                file,
                line,
                format!(
                    "route name {:?} is used twice; names must be unique",
                    spec.name
                ),
            ));
        }
        let place = if raw.case_sensitive_paths {
            spec.path_prefix.clone()
        } else {
            spec.path_prefix.to_ascii_lowercase()
        };
        if !places.insert((spec.host.clone(), place)) {
            return Err(at(
                file,
                line,
                format!(
                    "route {:?} repeats host {} with path_prefix {:?}",
                    spec.name, spec.host, spec.path_prefix
                ),
            ));
        }
        specs.push(spec);
    }
    let strip_headers = request::strip_headers(&raw.strip_headers, file)?;
    request::check_underscore_allowances(&specs, &strip_headers, file)?;
    Ok(Routing {
        routes: specs,
        case_sensitive_paths: raw.case_sensitive_paths,
        strip_headers,
    })
}

fn validate(r: RawRoute, file: &Path, line: usize) -> Result<RouteSpec, ConfigError> {
    let key = |k: &str| format!("route {:?} (line {line}): {k}", r.name);
    let bad = |k: &str, expected: String| ConfigError::invalid(file, key(k), expected);
    if r.name.trim().is_empty() {
        return Err(at(file, line, "route: `name` must not be empty".to_owned()));
    }
    let host = parse_host(&r.host).ok_or_else(|| {
        bad(
            "host",
            format!(
                "a host like \"app.example.com\", \"*.example.com\" or \"*\", got {:?}",
                r.host
            ),
        )
    })?;
    let path_prefix = request::path_prefix(&r.path_prefix).ok_or_else(|| {
        bad(
            "path_prefix",
            format!(
                "a path starting with \"/\", without query, \";\", \"\\\", dot segments or escaped slashes, got {:?}",
                r.path_prefix
            ),
        )
    })?;
    let upstream = parse_upstream(&r.upstream).ok_or_else(|| {
        bad(
            "upstream",
            format!(
                "an http:// or https:// URL without query, like \"http://10.0.0.5:8080\", got {:?}",
                r.upstream
            ),
        )
    })?;
    if r.h2c && upstream.scheme != Scheme::HTTP {
        return Err(bad(
            "h2c",
            "h2c only with an http:// upstream (https upstreams negotiate HTTP/2 by ALPN)"
                .to_owned(),
        ));
    }
    let ca_file = match r.ca_file.as_deref() {
        None | Some("") => None,
        Some(_) if upstream.scheme != Scheme::HTTPS => {
            return Err(bad(
                "ca_file",
                "ca_file only with an https:// upstream".to_owned(),
            ))
        }
        Some(f) => Some(base_dir(file).join(f)),
    };
    let auth = match r.auth.as_deref().unwrap_or("login") {
        "public" => AuthMode::Public,
        "login" => AuthMode::Login,
        "bearer" => AuthMode::Bearer,
        "login_or_bearer" => AuthMode::LoginOrBearer,
        other => {
            return Err(bad(
                "auth",
                format!("\"login\", \"bearer\", \"login_or_bearer\" or \"public\", got {other:?}"),
            ))
        }
    };
    let headers = match r.headers.as_deref().unwrap_or("oauth2-proxy") {
        "oauth2-proxy" => HeaderPreset::OAuth2Proxy,
        "easy-auth" => HeaderPreset::EasyAuth,
        "oauth2-proxy-forwarded" => HeaderPreset::OAuth2ProxyForwarded,
        "none" => HeaderPreset::None,
        other => {
            return Err(bad(
                "headers",
                format!("\"oauth2-proxy\", \"oauth2-proxy-forwarded\", \"easy-auth\" or \"none\", got {other:?}"),
            ))
        }
    };
    let mut claims_headers = Vec::new();
    for (name, claim) in &r.claims_headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|h| !crate::headers::is_reserved_header(h))
            .ok_or_else(|| {
                bad(
                    &format!("claims_headers.{name}"),
                    "a header name that is not a connection, forwarding, cookie or authorization header".to_owned(),
                )
            })?;
        if claim.trim().is_empty() || crate::identity::NEVER_UPSTREAM.contains(&claim.trim()) {
            return Err(bad(
                &format!("claims_headers.{name}"),
                "a claim name, like \"upn\" (not \"sid\" or \"login_hint\", which never leave the proxy)"
                    .to_owned(),
            ));
        }
        claims_headers.push((header, claim.trim().to_owned()));
    }
    let policy = policy::policy(&r, auth, file, &key)?;
    let auth_context =
        step_up::auth_context(r.auth_context.as_deref(), auth, file, &key("auth_context"))?;
    if (r.assertion || r.assertion_audience.is_some()) && auth == AuthMode::Public {
        return Err(bad(
            "assertion",
            "a route that signs users in: an assertion vouches for a signed-in user".to_owned(),
        ));
    }
    if auth == AuthMode::Public
        && (!policy.is_empty()
            || r.pass_access_token
            || r.pass_tokens
            || !claims_headers.is_empty())
    {
        return Err(bad(
            "auth",
            "\"login\" or \"bearer\": the route sets a policy, claims_headers, pass_access_token or pass_tokens, which need a signed-in user".to_owned(),
        ));
    }
    Ok(RouteSpec {
        timeout: duration(file, &key("timeout"), r.timeout, "60s")?,
        allow_underscore_headers: request::underscore_headers(
            &r.allow_underscore_headers,
            file,
            &key("allow_underscore_headers"),
        )?,
        allow_encoded_slashes: r.allow_encoded_slashes,
        allow_path_parameters: r.allow_path_parameters,
        groups_filter: match &r.groups_filter {
            None => None,
            Some(super::raw::GroupsFilterRaw::Named(n)) if n == "policy" => {
                Some(GroupsFilter::Policy)
            }
            Some(super::raw::GroupsFilterRaw::List(ids))
                if ids.iter().all(|g| crate::config::auth::is_guid(g.trim())) =>
            {
                Some(GroupsFilter::Only(
                    ids.iter().map(|g| g.trim().to_ascii_lowercase()).collect(),
                ))
            }
            Some(_) => {
                return Err(bad(
                    "groups_filter",
                    "\"policy\" (the groups any route's allowed_groups names) or a list of group object IDs".to_owned(),
                ))
            }
        },
        cors_preflight: match r.cors_preflight.as_deref() {
            None | Some("authenticate") => false,
            Some("allow") if auth != AuthMode::Public => true,
            Some("allow") => {
                return Err(bad(
                    "cors_preflight",
                    "\"authenticate\" on a public route (every request passes already)".to_owned(),
                ))
            }
            Some(other) => {
                return Err(bad(
                    "cors_preflight",
                    format!("\"allow\" or \"authenticate\", got {other:?}"),
                ))
            }
        },
        name: r.name,
        host,
        path_prefix,
        upstream,
        preserve_host: r.preserve_host,
        strip_prefix: r.strip_prefix,
        auth,
        h2c: r.h2c,
        ca_file,
        headers,
        claims_headers,
        pass_access_token: r.pass_access_token,
        pass_tokens: r.pass_tokens,
        policy,
        auth_context,
        assertion: r.assertion,
        assertion_audience: r
            .assertion_audience
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty()),
        line,
    })
}

/// Checks the routes against the main file's `[assertion]`: a route that sends assertions
/// needs one.
pub fn check_against_assertion(
    specs: &[RouteSpec],
    file: &Path,
    assertion: bool,
) -> Result<(), ConfigError> {
    match specs.iter().find(|s| s.assertion && !assertion) {
        Some(s) => Err(ConfigError::invalid(
            file,
            format!("route {:?} (line {}): assertion", s.name, s.line),
            "an [assertion] section in the main file (its issuer, and where the keys come from)",
        )),
        None => Ok(()),
    }
}

/// Checks the routes against the main file's `[oidc]`: `login` and `bearer` routes need one;
/// with a multi-tenant authority, a route that decides by app roles or claims must name its
/// tenants, because a role or claim value means something else in every tenant (any tenant
/// can define an app role called `Admin` for its own users).
pub fn check_against_oidc(
    specs: &[RouteSpec],
    file: &Path,
    oidc: Option<&super::OidcConfig>,
) -> Result<(), ConfigError> {
    let Some(oidc) = oidc else {
        return match specs.iter().find(|s| s.auth != AuthMode::Public) {
            Some(s) => Err(ConfigError::invalid(
                file,
                format!("route {:?} (line {}): auth", s.name, s.line),
                format!(
                    "\"public\", or an [oidc] section in the main file: auth = \"{}\" signs users in with Entra ID (routes default to \"login\")",
                    s.auth.as_str()
                ),
            )),
            None => Ok(()),
        };
    };
    if !oidc.multi_tenant {
        return Ok(());
    }
    let unscoped = specs.iter().find(|s| {
        (!s.policy.roles.is_empty() || !s.policy.claims.is_empty() || s.auth_context.is_some())
            && s.policy.tenants.is_empty()
    });
    match unscoped {
        Some(s) => Err(ConfigError::invalid(
            file,
            format!("route {:?} (line {}): allowed_tenants", s.name, s.line),
            "the tenant IDs whose app roles, claims and authentication contexts this route \
             trusts: with a multi-tenant issuer, allowed_roles, require_claims and auth_context \
             mean something else in every tenant",
        )),
        None => Ok(()),
    }
}

fn at(file: &Path, line: usize, message: String) -> ConfigError {
    ConfigError::Parse {
        file: file.to_owned(),
        line: Some(line),
        message,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

fn parse_host(host: &str) -> Option<HostPattern> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if !valid_host_pattern(&host) {
        return None;
    }
    Some(match host.strip_prefix('*') {
        Some("") => HostPattern::Any,
        Some(suffix) => HostPattern::Wildcard(suffix.to_owned()),
        None => HostPattern::Exact(host),
    })
}

/// `*`, `*.label.label`, or a DNS name / IP literal of letters, digits, `-` and `.`.
pub(crate) fn valid_host_pattern(host: &str) -> bool {
    let name = match host.strip_prefix("*.") {
        Some(rest) => rest,
        None if host == "*" => return true,
        None => host,
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_upstream(s: &str) -> Option<UpstreamTarget> {
    let uri: Uri = s.parse().ok()?;
    let scheme = uri.scheme()?.clone();
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return None;
    }
    let authority = uri.authority()?.clone();
    if authority.as_str().contains('@') || uri.query().is_some() || authority.host().is_empty() {
        return None;
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Some(UpstreamTarget {
        scheme,
        authority,
        base_path,
    })
}

#[cfg(test)]
mod tests;
