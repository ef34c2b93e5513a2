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
    /// Line of the `[[route]]` header in the routing file.
    pub line: usize,
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
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
        }
    }
}

/// Reads and validates the routing file.
pub fn load(file: &Path) -> Result<Vec<RouteSpec>, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    parse(&text, file)
}

/// Validates routing-file text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Vec<RouteSpec>, ConfigError> {
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
        if !places.insert((spec.host.clone(), spec.path_prefix.clone())) {
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
    Ok(specs)
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
    if !r.path_prefix.starts_with('/') || r.path_prefix.contains(['?', '#', '\\']) {
        return Err(bad(
            "path_prefix",
            format!("a path starting with \"/\", got {:?}", r.path_prefix),
        ));
    }
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
    let auth = match r.auth.as_deref().unwrap_or("public") {
        "public" => AuthMode::Public,
        other => return Err(bad("auth", format!("\"public\", got {other:?}"))),
    };
    Ok(RouteSpec {
        timeout: duration(file, &key("timeout"), r.timeout, "60s")?,
        name: r.name,
        host,
        path_prefix: r.path_prefix,
        upstream,
        preserve_host: r.preserve_host,
        strip_prefix: r.strip_prefix,
        auth,
        h2c: r.h2c,
        ca_file,
        line,
    })
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
