//! The request path. `Proxy::handle` is the one place that chains the stages:
//!
//! ```text
//! request ─▶ RequestCtx::new (context.rs: request ID, client address, format, access log, span)
//!         ─▶ Target::of (request.rs: method, framing, host, canonical path; 400/405)
//!         ─▶ /.auth/verify? (proxy/verify.rs: forward-auth, the same stages for an ingress's request)
//!         ─▶ RouteTable::serves_host (route.rs; 404)
//!         ─▶ Auth::endpoint (auth/endpoints.rs: /.auth/login, callback, logout, me)
//!         ─▶ RouteTable::resolve (route.rs: 404; 400 for a path the route does not allow)
//!         ─▶ client::clean (headers/client.rs: hop-by-hop, `_` names, identity families, every route)
//!         ─▶ Auth::authenticate (auth.rs: session or bearer token, step-up; 302 to sign in, 401, 503)
//!         ─▶ policy::authorize (policy.rs; 403)
//!         ─▶ identity::inject (headers/identity.rs: X-Auth-Request-* / X-MS-CLIENT-PRINCIPAL*)
//!         ─▶ to_upstream (canonical path, X-Forwarded-*, request ID; own cookies out)
//!         ─▶ forward::send (forward.rs; 502/504)
//!         ─▶ response (hop-by-hop, the proxy's own Set-Cookie names out; upgrade.rs tunnels a 101)
//!         ─▶ RequestCtx::finish (access_log.rs: one event when the body ends)
//! ```
//!
//! Stages take the request context (`&RequestCtx<'_>`: request ID, client, matched route, audit
//! scope) and return `Result<_, ProxyError>`; only `handle` turns an error into an answer
//! (error.rs) and logs it with its cause chain.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, COOKIE, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::access_log::LoggedBody;
use crate::assertion::Assertions;
use crate::auth::{Auth, Decision, Principal};
use crate::body::Body;
use crate::config::AuthMode;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::forward::{self, Clients};
use crate::headers::{self, client, identity, X_REQUEST_ID};
use crate::policy;
use crate::request::Target;
use crate::route::{Route, RouteTable};
use crate::upgrade;
use crate::{audit, metrics};

mod verify;

/// Everything the request path reads: the live route table, the upstream clients and, when
/// `[oidc]` is configured, sign-in.
pub struct Proxy {
    routes: ArcSwap<RouteTable>,
    clients: Clients,
    trusted_proxies: Vec<IpNet>,
    auth: Option<Arc<Auth>>,
    /// Request spans and `traceparent` to upstreams (`telemetry.otlp_endpoint` is set).
    traced: bool,
    /// Signed identity assertions (`[assertion]`).
    assertions: Option<Arc<Assertions>>,
    /// `[pages]`: the look of the proxy's own pages.
    pages: crate::config::PagesConfig,
}

impl Proxy {
    pub fn new(
        routes: RouteTable,
        clients: Clients,
        trusted_proxies: Vec<IpNet>,
        auth: Option<Arc<Auth>>,
        traced: bool,
        pages: crate::config::PagesConfig,
    ) -> Proxy {
        if let Some(auth) = &auth {
            auth.sessions()
                .set_keep_access_token(routes.passes_access_tokens());
        }
        Proxy {
            routes: ArcSwap::from_pointee(routes),
            clients,
            trusted_proxies,
            auth,
            traced,
            assertions: None,
            pages,
        }
    }

    /// With signed identity assertions.
    pub fn with_assertions(mut self, assertions: Option<Arc<Assertions>>) -> Proxy {
        self.assertions = assertions;
        self
    }

    pub fn assertions(&self) -> Option<&Arc<Assertions>> {
        self.assertions.as_ref()
    }

    /// `[pages]`: the look of the proxy's own pages.
    pub fn pages(&self) -> &crate::config::PagesConfig {
        &self.pages
    }

    /// The live route table (one consistent table per call).
    pub fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// Whether the proxy answers for `host`: a route serves it, or it is the sign-in host
    /// (`oidc.signin_host`), which answers its `/.auth/*` paths without a route.
    pub fn serves_host(&self, table: &RouteTable, host: &str) -> bool {
        table.serves_host(host)
            || self
                .auth
                .as_ref()
                .and_then(|a| a.provider().config.signin_host.as_deref())
                == Some(host)
    }

    /// Swaps in a new route table; requests in flight keep the one they loaded.
    pub fn set_routes(&self, table: RouteTable) {
        if let Some(auth) = &self.auth {
            auth.sessions()
                .set_keep_access_token(table.passes_access_tokens());
        }
        self.routes.store(Arc::new(table));
    }

    /// The upstream clients, shared across route tables so pools survive reloads.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Sign-in, when `[oidc]` is configured.
    pub fn auth(&self) -> Option<&Arc<Auth>> {
        self.auth.as_ref()
    }

    /// The claim that names the user in the user headers (`oidc.user_claim`).
    pub(crate) fn user_claim(&self) -> &'static str {
        self.auth.as_ref().map_or("preferred_username", |a| {
            a.provider().config.user_claim.as_str()
        })
    }

    /// Answers one request from `peer`, adding `hsts` (`Strict-Transport-Security`) unless the
    /// upstream sent its own. Never fails: errors become pages here. Owns its `Arc` so that the
    /// server boxes this future itself, not one more layer around it (each layer would copy the
    /// whole future, several kilobytes, when it moves it).
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
        hsts: Option<HeaderValue>,
    ) -> Response<LoggedBody> {
        use tracing::Instrument;
        let mut ctx = RequestCtx::new(peer, &req, &self.trusted_proxies, self.traced, &self.pages);
        let span = ctx.span().cloned();
        let answer = match &span {
            // Awaited as it is: wrapping it in a disabled span would copy it once more.
            None => self.proxy(req, &mut ctx).await,
            Some(span) => self.proxy(req, &mut ctx).instrument(span.clone()).await,
        };
        if let Some(span) = span {
            span.record("http.route", ctx.route_name());
            let status = answer.as_ref().map_or_else(|e| e.status(), |r| r.status());
            span.record("http.response.status_code", i64::from(status.as_u16()));
        }
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(err) => {
                account(&err, &ctx);
                ctx.set_error(err.kind());
                let cause = crate::error::chain(&err);
                let id = ctx.id_str();
                match err.status() {
                    s if s.is_server_error() => {
                        tracing::warn!(request_id = id, error = %cause, "request failed")
                    }
                    _ => tracing::debug!(request_id = id, error = %cause, "request refused"),
                }
                err.to_response(ctx.format(), id, &self.pages)
            }
        };
        resp.headers_mut().insert(X_REQUEST_ID, ctx.id().clone());
        if let Some(hsts) = hsts {
            resp.headers_mut()
                .entry(http::header::STRICT_TRANSPORT_SECURITY)
                .or_insert(hsts);
        }
        ctx.finish(resp)
    }

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let target = Target::of(&req)?;
        if verify::is_verify(&target) || self.is_oauth2_auth(&target) {
            // Boxed: forward-auth is its own path, kept out of this future.
            return Box::pin(self.verify(&req, ctx)).await;
        }
        let table = self.routes.load();
        if !self.serves_host(&table, &target.host) {
            return Err(ProxyError::NoRoute);
        }
        if let Some(a) = &self.assertions {
            if target.path() == crate::assertion::JWKS_PATH {
                return Ok(jwks(a));
            }
            // Only the proxy writes the assertion header.
            req.headers_mut().remove(a.header());
        }
        if let Some(auth) = &self.auth {
            if let Some(endpoint) = auth.endpoint(&target) {
                return auth.answer(endpoint, &req, &target, &table, ctx).await;
            }
        }
        let route = table.resolve(&target)?.clone();
        ctx.set_route(&route);

        // Read before hop-by-hop removal takes `Connection` and `Upgrade` away.
        let upgrade = upgrade::requested(&req);
        // A route that passes the session's access token owns `Authorization`; a request
        // judged by its own bearer token keeps it (auth.rs).
        let owns_authorization = crate::auth::owns_authorization(
            route.auth,
            route.pass_access_token
                && route.headers.token_header() == identity::TokenHeader::Authorization,
            req.headers(),
        );
        client::clean(
            req.headers_mut(),
            &client::Rules {
                removed: table.removed_headers(),
                underscore_allowed: &route.allow_underscore_headers,
                trusted_peer: ctx.client().trusted,
                owns_authorization,
            },
        );
        drop(table);
        let principal = match (&self.auth, route.auth) {
            (_, AuthMode::Public) => None,
            // A CORS preflight carries no credentials (Fetch §4.8): the route lets the upstream
            // answer it. It gets no identity, and client copies of identity headers are gone.
            _ if route.cors_preflight && is_preflight(&req) => None,
            (Some(auth), _) => match auth.authenticate(&route.spec, &req, &target, ctx).await? {
                Decision::Proceed(p) => p,
                Decision::Respond(resp) => return Ok(resp),
            },
            // Refused at load (routes::check_against_oidc); fail closed all the same.
            (None, _) => return Err(ProxyError::ProviderUnavailable),
        };
        if let Some(p) = &principal {
            ctx.set_subject(p.subject());
            authorize(&route, p, ctx)?;
            self.identify(&route, p, &target.host, req.headers_mut())?;
        }
        if let Some(auth) = &self.auth {
            crate::auth::cookies::strip_own(req.headers_mut(), auth.cookie_name());
        }

        if self.traced {
            crate::trace::inject(req.headers_mut());
        }
        let client_upgrade = upgrade.is_some().then(|| upgrade::on(&mut req));
        let req = to_upstream(req, &route, &target, ctx, upgrade)?;
        // Timed for the access log only: two clock reads per request otherwise.
        let sent = ctx.logs_access().then(std::time::Instant::now);
        let mut resp = forward::send(&route.client, req, route.timeout).await?;
        if let Some(sent) = sent {
            ctx.set_upstream_duration(sent.elapsed());
        }

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                upgrade::tunnel(
                    client_upgrade,
                    hyper::upgrade::on(&mut resp),
                    route.name.clone(),
                );
                return Ok(resp.map(|b| b.boxed()));
            }
        }
        headers::remove_hop_by_hop(resp.headers_mut());
        if let Some(auth) = &self.auth {
            crate::auth::cookies::drop_own_set_cookies(resp.headers_mut(), auth.cookie_name());
        }
        Ok(resp.map(|b| b.boxed()))
    }
}

impl Proxy {
    /// Adds what the upstream learns of `p` on `route`: the signed assertion (for audience
    /// `host` unless the route names one) and the identity headers, with the route's groups
    /// filter applied to both.
    pub(crate) fn identify(
        &self,
        route: &Route,
        p: &Principal,
        host: &str,
        headers: &mut http::HeaderMap,
    ) -> Result<(), ProxyError> {
        let filtered = route
            .groups_keep
            .as_ref()
            .map(|keep| p.identity().with_groups_in(keep));
        let id = filtered.as_ref().unwrap_or(p.identity());
        if route.assertion {
            let a = self
                .assertions
                .as_ref()
                .ok_or(ProxyError::AssertionUnavailable)?;
            let aud = route.assertion_audience.as_deref().unwrap_or(host);
            let signed = a.sign(id, aud).ok_or(ProxyError::AssertionUnavailable)?;
            headers.insert(a.header().clone(), signed);
        }
        let preset = match &filtered {
            // Built for this route's groups; the per-session memo holds the unfiltered set.
            Some(id) => std::borrow::Cow::Owned(identity::preset_headers(
                id,
                route.headers,
                self.user_claim(),
            )),
            None => p.preset_headers(route.headers, self.user_claim()),
        };
        identity::inject(
            headers,
            id,
            &preset,
            &route.claims_headers,
            p.access_token()
                .filter(|_| route.pass_access_token)
                .map(|t| (route.headers.token_header(), t)),
        );
        if route.pass_tokens {
            // App Service's token-store headers, for a session (a bearer request carries its
            // own token already).
            if let Principal::Session(s) = p {
                if let Some(v) = s
                    .access_token
                    .as_deref()
                    .and_then(|t| http::HeaderValue::from_str(t).ok())
                {
                    headers.insert(
                        http::HeaderName::from_static("x-ms-token-aad-access-token"),
                        v,
                    );
                    if let Ok(v) = http::HeaderValue::from_str(&crate::primitives::iso_8601(
                        s.access_expires_at,
                    )) {
                        headers.insert(
                            http::HeaderName::from_static("x-ms-token-aad-expires-on"),
                            v,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// The route's policy, for a signed-in principal; an access token's calling app too.
pub(crate) fn authorize(
    route: &Arc<Route>,
    p: &Principal,
    ctx: &RequestCtx<'_>,
) -> Result<(), ProxyError> {
    let decision = match p {
        Principal::Bearer { identity, .. } => policy::authorize_caller(&route.policy, identity)
            .and_then(|()| policy::authorize(&route.policy, identity)),
        // A session value's claims never change: its decision per route is taken once.
        Principal::Session(s) => s
            .memo()
            .decision(route, || policy::authorize(&route.policy, &s.identity)),
    };
    decision.map_err(|denied| {
        let id = p.identity();
        audit::record(
            ctx.audit(),
            audit::Event::PolicyDenied,
            id.oid(),
            id.tid(),
            denied.requirement(),
        );
        ProxyError::Forbidden(denied)
    })
}

/// The assertion key set (`/.well-known/portcullis/jwks.json`).
pub fn jwks(a: &Assertions) -> Response<Body> {
    let mut resp = Response::new(crate::body::full(a.jwks()));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::OPTIONS
        && req.headers().contains_key(http::header::ORIGIN)
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Metrics and audit events for a failed request.
fn account(e: &ProxyError, ctx: &RequestCtx<'_>) {
    let route = ctx.route_name();
    match e {
        ProxyError::UpstreamUnreachable(_) => metrics::upstream_error(route, "unreachable"),
        ProxyError::UpstreamFailed(_) => metrics::upstream_error(route, "failed"),
        ProxyError::UpstreamTimeout(_) => metrics::upstream_error(route, "timeout"),
        ProxyError::SignIn(s) => {
            audit::record(ctx.audit(), audit::Event::SignInFailed, "", "", s.kind())
        }
        _ => {}
    }
}

/// Rewrites a client request for the route's upstream.
fn to_upstream(
    req: Request<Incoming>,
    route: &Route,
    target: &Target,
    ctx: &RequestCtx<'_>,
    upgrade: Option<HeaderValue>,
) -> Result<Request<Incoming>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    // The canonical path, the one the route and policy judged, in origin form: the pool
    // knows the upstream (forward/pool.rs adds scheme and authority for HTTP/2).
    let path_and_query = if route.rewrites_path() {
        let mut path = route.upstream_path(target.path());
        if let Some(q) = target.path_and_query.query() {
            path.push('?');
            path.push_str(q);
        }
        http::uri::PathAndQuery::try_from(path)
            .map_err(|_| ProxyError::BadRequest("The request target is malformed."))?
    } else {
        // Shares the client's bytes when the client sent the canonical spelling.
        target.path_and_query.clone()
    };
    parts.uri = Uri::from(path_and_query);
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut parts.headers);
    }
    parts.version = Version::HTTP_11;

    let h = &mut parts.headers;
    if let Some(protocol) = upgrade {
        upgrade::restore(h, protocol);
    }
    headers::set_forwarded(h, ctx.client(), target.authority.as_str());
    h.insert(X_REQUEST_ID, ctx.id().clone());
    if route.preserve_host {
        let host = HeaderValue::from_str(target.authority.as_str())
            .map_err(|_| ProxyError::BadRequest("The Host header is malformed."))?;
        h.insert(HOST, host);
    } else {
        // The client sets Host (HTTP/1) or :authority (HTTP/2) from the upstream URI.
        h.remove(HOST);
    }
    Ok(Request::from_parts(parts, body))
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 upstreams expect one
/// (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut http::HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, v);
    }
}

/// Shared handle to the proxy state.
pub type SharedProxy = Arc<Proxy>;
