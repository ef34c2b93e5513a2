//! The routing file's rules for what a request may carry: path prefixes in canonical form,
//! `strip_headers`, and each route's `allow_underscore_headers`.

use std::path::Path;

use http::HeaderName;

use super::RouteSpec;
use crate::config::ConfigError;
use crate::headers::client::is_identity_family;
use crate::headers::is_reserved_header;
use crate::request::path;

/// A prefix in the canonical form request paths are matched in (`/%61pi` → `/api`); `None`
/// for one no canonical path could match (query, `;`, `\`, dot segments, escaped slashes).
pub(super) fn path_prefix(prefix: &str) -> Option<String> {
    if prefix.contains(['?', '#']) {
        return None;
    }
    let (canonical, notes) = path::canonicalize(prefix).ok()?;
    if notes.encoded_slash || notes.parameters || notes.case_trap {
        return None;
    }
    Some(canonical.into_owned())
}

/// `strip_headers`: header names the proxy does not need to read.
pub(super) fn strip_headers(names: &[String], file: &Path) -> Result<Vec<HeaderName>, ConfigError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .ok()
            .filter(|h| !is_reserved_header(h))
            .ok_or_else(|| {
                ConfigError::invalid(
                    file,
                    "strip_headers",
                    format!(
                        "header names that are not connection, forwarding, cookie or authorization headers, got {name:?}"
                    ),
                )
            })?;
        out.push(header);
    }
    Ok(out)
}

/// `allow_underscore_headers`: names with `_` that still reach the upstream. A name that,
/// with `_` read as `-`, is an identity or proxy-owned header is refused: that spelling is
/// the attack the rule exists for.
pub(super) fn underscore_headers(
    names: &[String],
    file: &Path,
    key: &str,
) -> Result<Vec<HeaderName>, ConfigError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .ok()
            .filter(|h| h.as_str().contains('_'))
            .filter(|h| !poses_as_owned(h));
        let header = header.ok_or_else(|| {
            ConfigError::invalid(
                file,
                key,
                format!(
                    "header names with \"_\" that do not read as an identity, forwarding, cookie or authorization header with \"-\", got {name:?}"
                ),
            )
        })?;
        out.push(header);
    }
    Ok(out)
}

fn dashed(h: &HeaderName) -> Option<HeaderName> {
    HeaderName::from_bytes(h.as_str().replace('_', "-").as_bytes()).ok()
}

fn poses_as_owned(h: &HeaderName) -> bool {
    dashed(h).is_none_or(|d| is_reserved_header(&d) || is_identity_family(d.as_str()))
}

/// An allowed underscore name must not read as another route's `claims_headers` name or as
/// a `strip_headers` name either.
pub(super) fn check_underscore_allowances(
    specs: &[RouteSpec],
    strip: &[HeaderName],
    file: &Path,
) -> Result<(), ConfigError> {
    let removed = |d: &HeaderName| {
        strip.contains(d)
            || specs
                .iter()
                .any(|s| s.claims_headers.iter().any(|(h, _)| h == d))
    };
    for spec in specs {
        if let Some(h) = spec
            .allow_underscore_headers
            .iter()
            .find(|h| dashed(h).is_some_and(|d| removed(&d)))
        {
            return Err(ConfigError::invalid(
                file,
                format!(
                    "route {:?} (line {}): allow_underscore_headers",
                    spec.name, spec.line
                ),
                format!(
                    "names that do not read as a claims_headers or strip_headers name with \"-\", got {:?}",
                    h.as_str()
                ),
            ));
        }
    }
    Ok(())
}
