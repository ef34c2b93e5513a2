//! The live route table: which route serves a request's host and path.
//!
//! Hosts are chosen the way nginx chooses a server block: an exact host beats the longest
//! matching `*.suffix`, which beats `*`; only the most specific host that has routes is
//! searched. Within it the longest matching `path_prefix` wins. A prefix matches on segment
//! boundaries: `/api` matches `/api` and `/api/x` but not `/apix`; a prefix ending in `/`
//! matches everything below it.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use crate::config::{HostPattern, RouteSpec};
use crate::forward::{Clients, UpstreamClient};

/// A route ready to serve: its validated spec plus the pooled client that reaches it. It
/// dereferences to the spec (`route.name`, `route.policy`, …): one type per concept, the
/// spec's fields are not copied.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    pub client: UpstreamClient,
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
            let rest = path
                .strip_prefix(self.path_prefix.trim_end_matches('/'))
                .unwrap_or(path);
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
    exact: HashMap<String, HostGroup>,
    /// Longest suffix first.
    wildcard: Vec<(String, HostGroup)>,
    any: Option<HostGroup>,
    len: usize,
    /// Every `claims_headers` name of every route: client copies are stripped on all routes.
    injectable: Vec<HeaderName>,
}

#[derive(Debug, Default)]
struct HostGroup {
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl HostGroup {
    fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.path_prefix, path))
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix) || path == prefix.trim_end_matches('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl RouteTable {
    /// Builds the table, taking (or creating) each route's upstream client from `clients`.
    pub fn build(
        specs: Vec<RouteSpec>,
        clients: &Clients,
    ) -> Result<RouteTable, crate::forward::ClientError> {
        let mut table = RouteTable::default();
        for spec in specs {
            let client = clients.get(spec.ca_file.as_deref(), spec.h2c)?;
            let route = Arc::new(Route { spec, client });
            for (h, _) in &route.claims_headers {
                if !table.injectable.contains(h) {
                    table.injectable.push(h.clone());
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

    /// The route for `host` (lower case, no port) and `path`, if any.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.group(host)?.find(path)
    }

    /// The `claims_headers` names of all routes.
    pub fn injectable(&self) -> &[HeaderName] {
        &self.injectable
    }

    /// Whether any route serves `host`.
    pub fn serves_host(&self, host: &str) -> bool {
        self.group(host).is_some()
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
