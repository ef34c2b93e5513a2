//! The live route table: which route serves a request's host and path.
//!
//! Hosts are chosen the way nginx chooses a server block: an exact host beats the longest
//! matching `*.suffix`, which beats `*`; only the most specific host that has routes is
//! searched. Within it the longest matching `path_prefix` wins. A prefix matches on segment
//! boundaries: `/api` matches `/api` and `/api/x` but not `/apix`; a prefix ending in `/`
//! matches everything below it. Paths are canonical (`request/path.rs`) and prefixes match
//! without ASCII case unless the routing file sets `case_sensitive_paths`.
//!
//! [`RouteTable::resolve`] also makes sure that a path holding an escaped slash or `;`
//! parameters is served only by a route that allows them, and only when an upstream that
//! decodes the slash or drops the parameters would still land on the same route.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use crate::config::{HostPattern, RouteSpec, Routing};
use crate::error::ProxyError;
use crate::forward::{Clients, UpstreamClient};
use crate::request::{path, Target};

/// A route ready to serve: its validated spec plus the pooled client that reaches it. It
/// dereferences to the spec (`route.name`, `route.policy`, …): one type per concept, the
/// spec's fields are not copied.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    pub client: UpstreamClient,
    /// Its request counters and latency histogram, resolved once.
    pub metrics: crate::metrics::RouteMetrics,
    /// The groups `groups_filter` lets through (lower case), resolved against the whole
    /// routing file for `"policy"`; `None`: every group.
    pub groups_keep: Option<Arc<std::collections::HashSet<String>>>,
}

impl std::ops::Deref for Route {
    type Target = RouteSpec;

    fn deref(&self) -> &RouteSpec {
        &self.spec
    }
}

impl Route {
    /// Whether the upstream path differs from the request path.
    pub fn rewrites_path(&self) -> bool {
        self.strip_prefix || !self.upstream.base_path.is_empty()
    }

    /// The path the upstream sees: the request path with the prefix stripped if configured,
    /// under the upstream URL's base path.
    pub fn upstream_path(&self, path: &str) -> String {
        let rest = if self.strip_prefix {
            // The prefix matched, perhaps in another case: strip as many bytes.
            let prefix = self.path_prefix.trim_end_matches('/');
            let rest = match path.get(..prefix.len()) {
                Some(head) if head.eq_ignore_ascii_case(prefix) => &path[prefix.len()..],
                _ => path,
            };
            if rest.starts_with('/') {
                rest
            } else {
                "/"
            }
        } else {
            path
        };
        let mut out = String::with_capacity(self.upstream.base_path.len() + rest.len());
        out.push_str(&self.upstream.base_path);
        out.push_str(rest);
        out
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Hashed with foldhash (seeded per table), not SipHash: the keys are the routing file's
    /// hosts, fixed when the table is built, so a client's host can only be looked up, never
    /// make the table collide; SipHash cost ~190 instructions per lookup.
    exact: HashMap<String, HostGroup, foldhash::fast::RandomState>,
    /// Longest suffix first.
    wildcard: Vec<(String, HostGroup)>,
    any: Option<HostGroup>,
    len: usize,
    /// Every `claims_headers` name of every route and the routing file's `strip_headers`:
    /// client copies are removed on all routes.
    removed: Vec<HeaderName>,
    case_sensitive: bool,
    /// Some route has `pass_access_token`.
    passes_access_tokens: bool,
}

#[derive(Debug, Default)]
struct HostGroup {
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl HostGroup {
    fn find(&self, path: &str, case_sensitive: bool) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.path_prefix, path, case_sensitive))
    }
}

fn prefix_matches(prefix: &str, path: &str, case_sensitive: bool) -> bool {
    let (prefix, path) = (prefix.as_bytes(), path.as_bytes());
    let same = |a: &[u8], b: &[u8]| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    };
    let Some(head) = path.get(..prefix.len()) else {
        // `/api/` also matches `/api`.
        return prefix.last() == Some(&b'/') && same(path, &prefix[..prefix.len() - 1]);
    };
    same(head, prefix)
        && (prefix.last() == Some(&b'/') || matches!(path.get(prefix.len()), None | Some(b'/')))
}

impl RouteTable {
    /// Builds the table, taking (or creating) each route's upstream client from `clients`.
    pub fn build(
        routing: Routing,
        clients: &Clients,
    ) -> Result<RouteTable, crate::forward::ClientError> {
        let mut table = RouteTable {
            case_sensitive: routing.case_sensitive_paths,
            removed: routing.strip_headers,
            ..RouteTable::default()
        };
        // `groups_filter = "policy"`: the groups any route names.
        let policy_groups: Arc<std::collections::HashSet<String>> = Arc::new(
            routing
                .routes
                .iter()
                .flat_map(|r| r.policy.groups.iter().cloned())
                .collect(),
        );
        for spec in routing.routes {
            let groups_keep = match &spec.groups_filter {
                None => None,
                Some(crate::config::GroupsFilter::Policy) => Some(policy_groups.clone()),
                Some(crate::config::GroupsFilter::Only(ids)) => {
                    Some(Arc::new(ids.iter().cloned().collect()))
                }
            };
            let client = clients.get(
                spec.ca_file.as_deref(),
                spec.h2c,
                &spec.upstream.scheme,
                &spec.upstream.authority,
            )?;
            let metrics = crate::metrics::RouteMetrics::new(&spec.name);
            let route = Arc::new(Route {
                spec,
                client,
                metrics,
                groups_keep,
            });
            table.passes_access_tokens |= route.pass_access_token || route.pass_tokens;
            for (h, _) in &route.claims_headers {
                if !table.removed.contains(h) {
                    table.removed.push(h.clone());
                }
            }
            let group = match &route.host {
                HostPattern::Exact(h) => table.exact.entry(h.clone()).or_default(),
                HostPattern::Any => table.any.get_or_insert_with(HostGroup::default),
                HostPattern::Wildcard(suffix) => {
                    match table.wildcard.iter().position(|(s, _)| s == suffix) {
                        Some(i) => &mut table.wildcard[i].1,
                        None => {
                            table.wildcard.push((suffix.clone(), HostGroup::default()));
                            let last = table.wildcard.len() - 1;
                            &mut table.wildcard[last].1
                        }
                    }
                }
            };
            group.routes.push(route);
            table.len += 1;
        }
        table
            .wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let groups = table
            .exact
            .values_mut()
            .chain(table.wildcard.iter_mut().map(|(_, g)| g))
            .chain(table.any.iter_mut());
        for group in groups {
            group
                .routes
                .sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        }
        Ok(table)
    }

    /// Whether some route passes the session's access token upstream.
    pub fn passes_access_tokens(&self) -> bool {
        self.passes_access_tokens
    }

    /// The route for `host` (lower case, no port) and canonical `path`, if any.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.group(host)?.find(path, self.case_sensitive)
    }

    /// The route that serves `target`: 404 without one; 400 when the path holds what the
    /// route does not allow, or what would lead an upstream that reads the path another way
    /// to another route's resource.
    pub fn resolve(&self, target: &Target) -> Result<&Arc<Route>, ProxyError> {
        let notes = target.notes;
        if notes.case_trap && !self.case_sensitive {
            return Err(ProxyError::BadRequest(
                "The request path holds a letter that matches another under case folding.",
            ));
        }
        let route = self
            .find(&target.host, target.path())
            .ok_or(ProxyError::NoRoute)?;
        if notes.encoded_slash && !route.allow_encoded_slashes {
            return Err(ProxyError::BadRequest(
                "The request path holds an escaped \"/\" or \"\\\".",
            ));
        }
        if notes.parameters && !route.allow_path_parameters {
            return Err(ProxyError::BadRequest(
                "The request path holds \";\" parameters.",
            ));
        }
        if notes.encoded_slash || notes.parameters {
            // Every reading, alone and combined, must name this route's resources.
            let p = target.path();
            let slashes = notes.encoded_slash.then(|| path::slashes_decoded(p));
            let readings = [
                slashes.clone(),
                notes.parameters.then(|| path::parameters_dropped(p)),
                slashes.as_deref().map(path::parameters_dropped),
                notes
                    .parameters
                    .then(|| path::slashes_decoded(&path::parameters_dropped(p))),
            ];
            let elsewhere = readings.iter().flatten().any(|reading| {
                !self
                    .find(&target.host, reading)
                    .is_some_and(|r| Arc::ptr_eq(r, route))
            });
            if elsewhere {
                return Err(ProxyError::BadRequest(
                    "The request path reads as another route's path once decoded.",
                ));
            }
        }
        Ok(route)
    }

    /// Client headers removed on every route: all `claims_headers` names and `strip_headers`.
    pub fn removed_headers(&self) -> &[HeaderName] {
        &self.removed
    }

    /// Whether any route serves `host`.
    pub fn serves_host(&self, host: &str) -> bool {
        self.group(host).is_some()
    }

    /// Whether a route names `host` itself, exactly or by a wildcard: a catch-all route
    /// (`host = "*"`) does not, so it never makes an arbitrary host a place to send a browser.
    pub fn names_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
            || self
                .wildcard
                .iter()
                .any(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
    }

    fn group(&self, host: &str) -> Option<&HostGroup> {
        if let Some(g) = self.exact.get(host) {
            return Some(g);
        }
        let wildcard = self
            .wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()));
        wildcard.map(|(_, g)| g).or(self.any.as_ref())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests;
